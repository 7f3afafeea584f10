//! Behaviour of concertmaster-core through its public API.

mod content;
mod engine;
mod faults;
mod json_schema_suite;
mod migrate;
mod properties;
mod quotas;
mod recovery;
mod rerun;
mod retention;
mod store;
mod streaming;
mod support;
mod validation;
mod wakeups;
