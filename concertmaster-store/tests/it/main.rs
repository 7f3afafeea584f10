//! The SQL stores through the public API: the core conformance suite, run
//! unchanged on each, and what is particular to a database.

mod crash;
mod outbox;
mod support;

#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "postgres")]
mod chaos;

#[cfg(feature = "postgres")]
mod renewal;
