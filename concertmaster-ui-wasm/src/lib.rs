//! The graph model of the ConcertMaster editor, compiled to WebAssembly.
//!
//! This crate will convert React Flow's `{nodes, edges, viewport}` to a
//! `concertmaster_core::WorkflowDefinition` and back without losing anything,
//! validate a graph while it is drawn with the same rules as publishing in
//! core, and expose the node palette with config schemas, through
//! wasm-bindgen with TypeScript types.
