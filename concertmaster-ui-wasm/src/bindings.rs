//! The JavaScript API: `EditorModel`, JSON strings in and out (typed by
//! `npm/index.ts`), errors thrown as `Error` with the model's message.

use wasm_bindgen::prelude::*;

use std::cell::RefCell;

use crate::{Connection, Drawing, Model, ModelError};
use concertmaster_core::WorkflowDefinition;

fn thrown(err: impl std::fmt::Display) -> JsError {
    JsError::new(&err.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(what: &'static str, json: &str) -> Result<T, JsError> {
    serde_json::from_str(json).map_err(|err| {
        thrown(ModelError::Json {
            what,
            message: err.to_string(),
        })
    })
}

fn json(value: &impl serde::Serialize) -> Result<String, JsError> {
    serde_json::to_string(value).map_err(thrown)
}

/// The editor's model of one palette, and the drawing it last read.
#[wasm_bindgen]
pub struct EditorModel {
    model: Model,
    drawing: RefCell<Option<Drawing>>,
}

#[wasm_bindgen]
impl EditorModel {
    /// A model of the node types in `descriptors` (a JSON array of node
    /// descriptors, as the host exports them).
    #[wasm_bindgen(constructor)]
    pub fn new(descriptors: &str) -> Result<EditorModel, JsError> {
        let model = Model::from_json(descriptors).map_err(thrown)?;
        Ok(EditorModel {
            model,
            drawing: RefCell::new(None),
        })
    }

    /// The palette groups, as JSON.
    pub fn palette(&self) -> Result<String, JsError> {
        json(&self.model.palette())
    }

    /// The palette entry of `type_id` as JSON, or `null`.
    pub fn entry(&self, type_id: &str) -> Result<String, JsError> {
        json(&self.model.entry(type_id))
    }

    /// The output ports (JSON array of names, besides `error`) of a node of
    /// `type_id` with `config` (JSON), or `null` for an unknown type.
    #[wasm_bindgen(js_name = outputPorts)]
    pub fn output_ports(&self, type_id: &str, config: &str) -> Result<String, JsError> {
        let config = parse("the node config", config)?;
        json(&self.model.output_ports(type_id, &config))
    }

    /// Whether a node of `type_id` with `config` (JSON) streams its input
    /// (JSON `true`/`false`), or `null` for an unknown type.
    #[wasm_bindgen(js_name = streamsInput)]
    pub fn streams_input(&self, type_id: &str, config: &str) -> Result<String, JsError> {
        let config = parse("the node config", config)?;
        json(&self.model.streams_input(type_id, &config))
    }

    /// The React Flow object (JSON) of the definition `definition`.
    #[wasm_bindgen(js_name = fromDefinition)]
    pub fn flow_of(&self, definition: &str) -> Result<String, JsError> {
        let def = WorkflowDefinition::from_json(definition).map_err(thrown)?;
        json(&self.model.from_definition(&def))
    }

    /// Reads the React Flow object `flow` (JSON) and diagnoses it: the
    /// drawing the `loaded*` calls answer about, until the next `load`.
    pub fn load(&self, flow: &str) -> Result<(), JsError> {
        // A drawing that does not read leaves none loaded, so no answer
        // is about an older one.
        self.drawing.replace(None);
        let flow = parse("the React Flow object", flow)?;
        let drawing = self.model.drawing(flow).map_err(thrown)?;
        self.drawing.replace(Some(drawing));
        Ok(())
    }

    /// The diagnostics (JSON array) of the drawing loaded.
    #[wasm_bindgen(js_name = loadedDiagnostics)]
    pub fn loaded_diagnostics(&self) -> Result<String, JsError> {
        json(&self.loaded(|d| d.diagnostics().to_vec())?)
    }

    /// The workflow definition (JSON) of the drawing loaded, with the id,
    /// name and other fields of the definition `base`.
    #[wasm_bindgen(js_name = loadedDefinition)]
    pub fn loaded_definition(&self, base: &str) -> Result<String, JsError> {
        let base = WorkflowDefinition::from_json(base).map_err(thrown)?;
        // Compact: half the size of the pretty form, and JavaScript parses it.
        json(&self.loaded(|d| d.definition(&base))?)
    }

    /// The errors (JSON array of diagnostics) `connection` would add to
    /// the drawing loaded.
    #[wasm_bindgen(js_name = loadedConnectionIssues)]
    pub fn loaded_connection_issues(&self, connection: &str) -> Result<String, JsError> {
        let connection: Connection = parse("the connection", connection)?;
        json(&self.loaded_mut(|d, model| d.connection_issues(model, &connection))?)
    }

    /// Whether `connection` (JSON: source, sourceHandle, target,
    /// targetHandle) may be drawn in the drawing loaded.
    #[wasm_bindgen(js_name = loadedIsValidConnection)]
    pub fn loaded_is_valid_connection(&self, connection: &str) -> Result<bool, JsError> {
        let connection: Connection = parse("the connection", connection)?;
        self.loaded_mut(|d, model| d.connection_issues(model, &connection).is_empty())
    }
}

impl EditorModel {
    fn loaded<T>(&self, answer: impl FnOnce(&Drawing) -> T) -> Result<T, JsError> {
        let drawing = self.drawing.borrow();
        drawing.as_ref().map(answer).ok_or_else(not_loaded)
    }

    fn loaded_mut<T>(&self, answer: impl FnOnce(&mut Drawing, &Model) -> T) -> Result<T, JsError> {
        let mut drawing = self.drawing.borrow_mut();
        drawing
            .as_mut()
            .map(|d| answer(d, &self.model))
            .ok_or_else(not_loaded)
    }
}

fn not_loaded() -> JsError {
    JsError::new("no drawing is loaded: call load(flow) first")
}

/// The form (JSON: `{form, diagnostics}`) a form designer's draft (JSON)
/// makes.
#[wasm_bindgen(js_name = buildForm)]
pub fn build_form(draft: &str) -> Result<String, JsError> {
    let draft: crate::forms::FormDraft = parse("the form draft", draft)?;
    json(&crate::forms::build(&draft))
}

/// The field errors (JSON array of `{pointer, message}`) of `data` (JSON)
/// against `form` (a form schema as JSON), as the server finds them.
#[wasm_bindgen(js_name = checkSubmission)]
pub fn check_submission(form: &str, data: &str) -> Result<String, JsError> {
    let form: concertmaster_core::form::FormSchema = parse("the form schema", form)?;
    let data: serde_json::Value = parse("the answers", data)?;
    json(&crate::forms::check_submission(&form, &data).map_err(thrown)?)
}
