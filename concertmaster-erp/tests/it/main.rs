//! Behaviour of the ERP crate through its public API: connections, the SAP
//! and NetSuite connectors against their servers, and the export nodes in
//! workflows run by the engine.

mod connections;
mod export;
mod netsuite;
mod sap;
#[cfg(any(feature = "sap", feature = "netsuite"))]
mod support;
