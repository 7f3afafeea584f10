//! Workflow definition JSON: parse, validate against the built-in nodes,
//! store in a fresh in-memory store and read back. A definition that parses
//! must serialize and parse again to itself.
#![no_main]

use std::sync::OnceLock;

use concertmaster_core::{Engine, InMemoryStore, TenantId, WorkflowDefinition, store::WorkflowStore};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        runtime().block_on(async {
            Engine::builder()
                .registry(concertmaster_nodes::registry())
                .build()
                .await
                .expect("an engine on the in-memory store")
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(def) = WorkflowDefinition::from_json(text) else {
        return;
    };
    let again = WorkflowDefinition::from_json(&def.to_json()).expect("a parsed definition reads back");
    assert_eq!(again, def, "a parsed definition reads back as itself");
    let Ok(validated) = engine().validate(&def) else {
        return;
    };
    drop(validated);
    runtime().block_on(async {
        let store = InMemoryStore::new();
        let tenant = TenantId::new("fuzz");
        let mut def = def;
        def.version = 1;
        store.insert_workflow(&tenant, &def).await.expect("stores a valid definition");
        let stored = store
            .workflow(&tenant, &def.id, Some(1))
            .await
            .expect("reads it back")
            .expect("it is there");
        assert_eq!(stored, def);
    });
});
