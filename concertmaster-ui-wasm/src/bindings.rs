//! The JavaScript API: `EditorModel`, JSON strings in and out (typed by
//! `npm/index.ts`), errors thrown as `Error` with the model's message.

use wasm_bindgen::prelude::*;

use crate::{Connection, Model, ModelError};
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

/// The editor's model of one palette.
#[wasm_bindgen]
pub struct EditorModel(Model);

#[wasm_bindgen]
impl EditorModel {
    /// A model of the node types in `descriptors` (a JSON array of node
    /// descriptors, as the host exports them).
    #[wasm_bindgen(constructor)]
    pub fn new(descriptors: &str) -> Result<EditorModel, JsError> {
        Model::from_json(descriptors)
            .map(EditorModel)
            .map_err(thrown)
    }

    /// The palette groups, as JSON.
    pub fn palette(&self) -> Result<String, JsError> {
        json(&self.0.palette())
    }

    /// The palette entry of `type_id` as JSON, or `null`.
    pub fn entry(&self, type_id: &str) -> Result<String, JsError> {
        json(&self.0.entry(type_id))
    }

    /// The output ports (JSON array of names, besides `error`) of a node of
    /// `type_id` with `config` (JSON), or `null` for an unknown type.
    #[wasm_bindgen(js_name = outputPorts)]
    pub fn output_ports(&self, type_id: &str, config: &str) -> Result<String, JsError> {
        let config = parse("the node config", config)?;
        json(&self.0.output_ports(type_id, &config))
    }

    /// Whether a node of `type_id` with `config` (JSON) streams its input
    /// (JSON `true`/`false`), or `null` for an unknown type.
    #[wasm_bindgen(js_name = streamsInput)]
    pub fn streams_input(&self, type_id: &str, config: &str) -> Result<String, JsError> {
        let config = parse("the node config", config)?;
        json(&self.0.streams_input(type_id, &config))
    }

    /// The workflow definition (JSON) drawn in `flow`, with the id, name
    /// and other fields of the definition `base`.
    #[wasm_bindgen(js_name = toDefinition)]
    pub fn definition_of(&self, flow: &str, base: &str) -> Result<String, JsError> {
        let flow = parse("the React Flow object", flow)?;
        let base = WorkflowDefinition::from_json(base).map_err(thrown)?;
        let def = self.0.to_definition(&flow, &base).map_err(thrown)?;
        Ok(def.to_json())
    }

    /// The React Flow object (JSON) of the definition `definition`.
    #[wasm_bindgen(js_name = fromDefinition)]
    pub fn flow_of(&self, definition: &str) -> Result<String, JsError> {
        let def = WorkflowDefinition::from_json(definition).map_err(thrown)?;
        json(&self.0.from_definition(&def))
    }

    /// The diagnostics (JSON array) of `flow`.
    pub fn diagnose(&self, flow: &str) -> Result<String, JsError> {
        let flow = parse("the React Flow object", flow)?;
        json(&self.0.diagnose(&flow).map_err(thrown)?)
    }

    /// The errors (JSON array of diagnostics) `connection` would add to
    /// `flow`.
    #[wasm_bindgen(js_name = connectionIssues)]
    pub fn connection_issues(&self, flow: &str, connection: &str) -> Result<String, JsError> {
        let flow = parse("the React Flow object", flow)?;
        let connection: Connection = parse("the connection", connection)?;
        json(
            &self
                .0
                .connection_issues(&flow, &connection)
                .map_err(thrown)?,
        )
    }

    /// Whether `connection` (JSON: source, sourceHandle, target,
    /// targetHandle) may be drawn in `flow`.
    #[wasm_bindgen(js_name = isValidConnection)]
    pub fn is_valid_connection(&self, flow: &str, connection: &str) -> Result<bool, JsError> {
        let flow = parse("the React Flow object", flow)?;
        let connection: Connection = parse("the connection", connection)?;
        self.0
            .is_valid_connection(&flow, &connection)
            .map_err(thrown)
    }
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
