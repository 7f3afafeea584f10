//! A form and a submission (split at the first NUL byte). The form is a
//! designer's draft (built into a schema by the form builder) or, if it is
//! not one, a JSON Schema as a host may publish it. The submission is
//! checked against it as the form portal does, and the schema's validator
//! gives the same verdict through both of its walks.
#![no_main]

use concertmaster_core::{form::FormSchema, validate::SchemaValidator};
use concertmaster_ui_wasm::forms::{build, FormDraft};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (Ok(form), Ok(answer)) = (
        serde_json::from_slice::<Value>(&data[..split]),
        serde_json::from_slice::<Value>(&data[split + 1..]),
    ) else {
        return;
    };
    let form = match serde_json::from_value::<FormDraft>(form.clone()) {
        Ok(draft) => match build(&draft).form {
            Some(form) => form,
            None => return,
        },
        Err(_) => FormSchema::new("fuzzed", "Fuzzed", form),
    };
    if let Ok(Err(errors)) = form.check(&answer) {
        assert!(!errors.is_empty(), "a refused submission names what is wrong");
    }
    // The validator's two walks agree: the quick verdict and the full list.
    if let Ok(validator) = SchemaValidator::new(&form.schema) {
        assert_eq!(
            validator.is_valid(&answer),
            validator.check(&answer).is_empty(),
            "is_valid and check agree"
        );
    }
});
