//! Run with: cargo run --example palette > palette.json
//!
//! Prints the node descriptors of a host that registered every built-in
//! node, the forms nodes, datasets and the ERP export nodes: the JSON the
//! editor's WebAssembly model is made from (`Model.load(descriptors)`).
//! A host sends its own registry's descriptors the same way, custom node
//! types included.

use std::sync::Arc;

use concertmaster_core::InMemoryStore;
use concertmaster_erp::{Connections, KeyRing};
use concertmaster_nodes::forms::{Forms, Outbox};
use concertmaster_nodes::{Datasets, SubWorkflows};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(InMemoryStore::new());
    let mut registry = concertmaster_nodes::registry();
    Forms::new(store.clone(), Outbox::new(), "https://forms.example/f/")
        .register_nodes(&mut registry)?;
    Datasets::new(store.clone()).register_nodes(&mut registry)?;
    SubWorkflows::new().register_nodes(&mut registry)?;
    // Descriptors only: the key never seals anything here.
    Connections::new(store, KeyRing::new("palette", [0u8; 32])?).register_nodes(&mut registry)?;
    let descriptors: Vec<_> = registry.descriptors().collect();
    println!("{}", serde_json::to_string_pretty(&descriptors)?);
    Ok(())
}
