//! Behaviour of the node library through its public API.

mod forms;
mod schedule;
mod support;
