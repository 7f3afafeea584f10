//! SQL stores of ConcertMaster.
//!
//! This crate will hold `SqliteStore` (feature `sqlite`, the embedded default
//! for programs that persist) and `PostgresStore` (feature `postgres`, also the
//! way several engine processes share work), both implementing
//! `concertmaster_core::Store` with embedded migrations and both passing the
//! store conformance suite shipped by `concertmaster-core` unchanged.
//!
//! Until then, `concertmaster_core::InMemoryStore` is the store to use.
