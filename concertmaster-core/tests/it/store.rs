//! The in-memory store passes the store conformance suite.

concertmaster_core::store_conformance!(async { concertmaster_core::InMemoryStore::new() });
