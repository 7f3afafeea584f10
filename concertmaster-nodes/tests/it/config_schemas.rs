//! Every built-in node's config schema, derived from its config struct,
//! documents examples that publish, and agrees with the struct on what it
//! accepts and refuses.

use std::sync::Arc;

use concertmaster_core::{testing::check_config_examples, InMemoryStore};
use concertmaster_nodes::forms::{Forms, Outbox};
use concertmaster_nodes::{Datasets, SubWorkflows};

#[test]
fn every_builtin_config_schema_agrees_with_its_struct_on_its_documented_examples() {
    let store = Arc::new(InMemoryStore::new());
    let mut registry = concertmaster_nodes::registry();
    Forms::new(store.clone(), Outbox::new(), "https://forms.example.test")
        .register_nodes(&mut registry)
        .expect("forms nodes register");
    SubWorkflows::new()
        .register_nodes(&mut registry)
        .expect("sub_workflow registers");
    Datasets::new(store)
        .register_nodes(&mut registry)
        .expect("collect registers");
    let types = registry.descriptors().count();
    assert!(types >= 20, "only {types} node types registered");
    let problems = check_config_examples(&registry);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn config_fields_keep_their_declared_order() {
    let registry = concertmaster_nodes::registry();
    let switch = registry
        .descriptors()
        .find(|d| d.type_id == "switch")
        .expect("switch is built in");
    assert_eq!(
        switch.config_schema["x-order"],
        serde_json::json!(["cases", "mode"])
    );
    assert_eq!(
        switch.config_schema["properties"]["cases"]["items"]["x-order"],
        serde_json::json!(["port", "condition"])
    );
}
