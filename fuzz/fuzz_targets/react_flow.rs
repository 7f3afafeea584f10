//! React Flow JSON as the editor sends it: converted to a definition and
//! diagnosed by the editor's model; a converted definition converts back.
#![no_main]

use std::sync::OnceLock;

use concertmaster_core::WorkflowDefinition;
use concertmaster_ui_wasm::Model;
use libfuzzer_sys::fuzz_target;

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let registry = concertmaster_nodes::registry();
        Model::new(registry.descriptors().cloned().collect()).expect("the built-in palette")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(flow) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let model = model();
    let _ = model.diagnose(&flow);
    let base = WorkflowDefinition::new("fuzzed", "Fuzzed");
    if let Ok(def) = model.to_definition(&flow, &base) {
        let back = model.from_definition(&def);
        let again = model
            .to_definition(&back, &base)
            .expect("a flow drawn from a definition converts");
        assert_eq!(again, def, "a definition survives the trip through React Flow");
    }
});
