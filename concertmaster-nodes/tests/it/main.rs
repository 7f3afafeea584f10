//! Behaviour of the node library through its public API.

mod config_schemas;
mod forms;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "portal")]
mod portal;
mod schedule;
#[cfg(feature = "smtp")]
mod smtp;
mod sub_workflows;
mod support;
