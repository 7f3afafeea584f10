//! The in-memory store passes the store conformance suite.

concertmaster_core::backend_conformance!(async { concertmaster_core::InMemoryStore::new() });
