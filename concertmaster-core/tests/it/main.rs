//! Behaviour of concertmaster-core through its public API.

mod content;
mod engine;
mod faults;
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
