//! `PostgresStore`: the conformance suite against a real PostgreSQL server.

concertmaster_core::store_conformance!(crate::support::fresh_postgres());
