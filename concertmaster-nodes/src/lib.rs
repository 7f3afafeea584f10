//! Built-in nodes of ConcertMaster.
//!
//! This crate will hold the node library every workflow draws from, each node
//! a `concertmaster_core::Node` with its descriptor and config JSON Schema:
//!
//! | category   | nodes |
//! |------------|-------|
//! | trigger    | schedule (cron + IANA timezone), form submission, webhook / manual |
//! | collection | send form, wait for responses, reminders, review |
//! | transform  | map fields, jq, validate, anonymize |
//! | logic      | if, switch, filter, merge, delay, sub-workflow |
//! | output     | SAP export, NetSuite sync, HTTP request, write to store |
//!
//! Until then, hosts register their own nodes on a
//! `concertmaster_core::NodeRegistry`; see `examples/quickstart.rs`.
