//! Behaviour of the node library through its public API.

mod forms;
mod schedule;
#[cfg(feature = "smtp")]
mod smtp;
mod support;
