//! The graph model of the ConcertMaster editor: what a host's React Flow
//! editor asks while the user draws, answered with the same rules the
//! engine applies when it publishes.
//!
//! - [`Model::to_definition`] and [`Model::from_definition`] convert React
//!   Flow's `{nodes, edges, viewport}` to a [`WorkflowDefinition`] and
//!   back without losing anything (see [`reactflow`]).
//! - [`Model::diagnose`] lists what is wrong, tied to node and edge ids and
//!   JSON pointers into configs: core's own publish-time checks.
//! - [`Model::is_valid_connection`] is React Flow's `isValidConnection`.
//! - [`Model::palette`] groups the node types the host registered, each
//!   with its config schema and default config.
//! - [`forms::build`] turns a form designer's fields into a form schema
//!   (JSON Schema + uiSchema), and [`forms::check_submission`] checks
//!   answers as the server will.
//!
//! The same crate compiles to `wasm32-unknown-unknown`, where `EditorModel`
//! exposes this API to JavaScript through wasm-bindgen (JSON strings in
//! and out; `npm/index.ts` types them). `scripts/build-ui-wasm` builds the
//! npm package.
//!
//! ```
//! use concertmaster_core::{NodeDescriptor, WorkflowDefinition, node::NodeCategory};
//! use concertmaster_ui_wasm::{Connection, Model, Severity};
//! use serde_json::json;
//!
//! // The host exports its registry's descriptors; here two of them.
//! let model = Model::new(vec![
//!     NodeDescriptor::new("manual", NodeCategory::Trigger).inputs(Vec::<&str>::new()),
//!     NodeDescriptor::new("jq", NodeCategory::Transform).config_schema(json!({
//!         "type": "object", "required": ["expression"],
//!         "properties": { "expression": { "type": "string", "minLength": 1 } }
//!     })),
//! ])?;
//!
//! let drawn = json!({
//!     "nodes": [
//!         { "id": "start", "type": "manual", "position": { "x": 0, "y": 0 }, "data": { "config": {} } },
//!         { "id": "shape", "type": "jq", "position": { "x": 250, "y": 0 }, "data": { "config": {} } }
//!     ],
//!     "edges": [ { "id": "e1", "source": "start", "target": "shape" } ],
//!     "viewport": { "x": 0, "y": 0, "zoom": 1 }
//! });
//! let problems = model.diagnose(&drawn)?;
//! assert_eq!(problems[0].severity, Severity::Error);
//! assert_eq!(problems[0].node_id.as_deref(), Some("shape"));
//! assert!(problems[0].message.contains("expression"));
//!
//! // A trigger takes no input: React Flow is told not to draw that edge.
//! let back = Connection { source: "shape".into(), source_handle: None, target: "start".into(), target_handle: None };
//! assert!(!model.is_valid_connection(&drawn, &back)?);
//!
//! let base = WorkflowDefinition::from_json(r#"{"id": "onboarding", "name": "Onboarding", "nodes": []}"#)?;
//! let definition = model.to_definition(&drawn, &base)?;
//! assert_eq!(model.from_definition(&definition), drawn);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(target_arch = "wasm32")]
mod bindings;
mod diagnostics;
pub mod forms;
mod palette;
pub mod reactflow;

use concertmaster_core::{node::RegistryError, NodeDescriptor, NodeRegistry, WorkflowDefinition};
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
pub use bindings::{build_form, check_submission, EditorModel};
pub use diagnostics::{Connection, Diagnostic, Severity};
pub use palette::{PaletteEntry, PaletteGroup};
pub use reactflow::ConvertError;

/// Why a model call was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The palette JSON is not a list of node descriptors.
    #[error("the palette is not a list of node descriptors: {0}")]
    Palette(String),
    /// A descriptor cannot be registered (duplicate type, bad schema).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The React Flow object has the wrong shape.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// A definition or other input is not the JSON expected.
    #[error("{what} is not valid JSON of its kind: {message}")]
    Json {
        /// What was being read.
        what: &'static str,
        /// The parser's message, with the path.
        message: String,
    },
}

/// The editor's model of one palette: conversion, diagnostics and
/// connection checks for graphs drawn with its node types.
pub struct Model {
    registry: NodeRegistry,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field(
                "types",
                &self
                    .registry
                    .descriptors()
                    .map(|d| &d.type_id)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Model {
    /// A model of the node types `descriptors` describe (what a host's
    /// `NodeRegistry::descriptors()` gives, built-in and custom alike).
    pub fn new(descriptors: Vec<NodeDescriptor>) -> Result<Self, ModelError> {
        Ok(Self {
            registry: palette::registry(&descriptors)?,
        })
    }

    /// A model from the descriptors as JSON (an array), as the host sends
    /// them to the browser.
    pub fn from_json(descriptors: &str) -> Result<Self, ModelError> {
        let descriptors: Vec<NodeDescriptor> = serde_json::from_str(descriptors)
            .map_err(|err| ModelError::Palette(err.to_string()))?;
        Self::new(descriptors)
    }

    /// The node types by category, each with its config schema and the
    /// config a new node starts with.
    pub fn palette(&self) -> Vec<PaletteGroup> {
        palette::groups(&self.registry)
    }

    /// The palette entry of `type_id`.
    pub fn entry(&self, type_id: &str) -> Option<PaletteEntry> {
        self.registry.descriptor(type_id).map(palette::entry)
    }

    /// The output ports (besides `error`) of a node of `type_id` with
    /// `config`: the handles to draw. `None` for an unknown type.
    pub fn output_ports(&self, type_id: &str, config: &Value) -> Option<Vec<String>> {
        self.registry
            .descriptor(type_id)
            .map(|d| d.output_ports_for(config))
    }

    /// Whether a node of `type_id` with `config` streams its input
    /// (`Join::Stream`): it takes exactly one incoming edge, and runs while
    /// the node before it does, so the editor may draw that edge as a
    /// stream (React Flow's `animated`). `None` for an unknown type.
    pub fn streams_input(&self, type_id: &str, config: &Value) -> Option<bool> {
        self.registry
            .descriptor(type_id)
            .map(|d| d.streams_input_for(config))
    }

    /// The definition drawn in `flow`, with `base`'s id, name and other
    /// workflow fields.
    pub fn to_definition(
        &self,
        flow: &Value,
        base: &WorkflowDefinition,
    ) -> Result<WorkflowDefinition, ModelError> {
        Ok(reactflow::to_definition(flow, base)?)
    }

    /// The React Flow object of `definition`.
    pub fn from_definition(&self, definition: &WorkflowDefinition) -> Value {
        reactflow::from_definition(definition)
    }

    /// What publishing `flow` would refuse (errors) and what is probably
    /// not meant (warnings), tied to node and edge ids.
    pub fn diagnose(&self, flow: &Value) -> Result<Vec<Diagnostic>, ModelError> {
        let def = reactflow::to_definition(flow, &draft())?;
        Ok(diagnostics::check(&def, &self.registry))
    }

    /// Whether `connection` may be drawn in `flow`: it names existing
    /// nodes and ports, does not enter a trigger, duplicate an edge or
    /// close a cycle.
    pub fn is_valid_connection(
        &self,
        flow: &Value,
        connection: &Connection,
    ) -> Result<bool, ModelError> {
        Ok(self.connection_issues(flow, connection)?.is_empty())
    }

    /// The errors `connection` would add to `flow` (a cycle, a port the
    /// node lacks, an edge into a trigger, ...): what an editor shows while
    /// the user drags, or uses to let some through (a cycle the user is
    /// about to rewire) and diagnose them once drawn.
    pub fn connection_issues(
        &self,
        flow: &Value,
        connection: &Connection,
    ) -> Result<Vec<Diagnostic>, ModelError> {
        let def = reactflow::to_definition(flow, &draft())?;
        Ok(diagnostics::connection_issues(
            &def,
            &self.registry,
            connection,
        ))
    }
}

/// A flow read once, then asked many questions. While a user drags a
/// connection the drawing does not change: it is converted and diagnosed
/// once, and each connection React Flow proposes is checked against that.
#[derive(Debug)]
pub struct Drawing {
    def: WorkflowDefinition,
    diagnostics: Vec<Diagnostic>,
}

impl Model {
    /// Reads `flow` (given away: it is not copied) and diagnoses it.
    pub fn drawing(&self, flow: Value) -> Result<Drawing, ModelError> {
        let def = reactflow::into_definition(flow, &draft())?;
        let diagnostics = diagnostics::check(&def, &self.registry);
        Ok(Drawing { def, diagnostics })
    }
}

impl Drawing {
    /// What publishing the drawing would refuse, then warnings.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The errors `connection` would add ([`Model::connection_issues`]),
    /// for a drawing of `model`.
    pub fn connection_issues(&mut self, model: &Model, connection: &Connection) -> Vec<Diagnostic> {
        diagnostics::connection_issues_after(
            &mut self.def,
            &self.diagnostics,
            &model.registry,
            connection,
        )
    }

    /// The definition drawn, with `base`'s id, name and other workflow
    /// fields ([`Model::to_definition`]).
    pub fn definition(&self, base: &WorkflowDefinition) -> WorkflowDefinition {
        let mut def = base.clone();
        def.nodes = self.def.nodes.clone();
        def.edges = self.def.edges.clone();
        def.ui = self.def.ui.clone();
        def
    }
}

/// The workflow fields a drawing is checked with before it has its own.
fn draft() -> WorkflowDefinition {
    WorkflowDefinition::new("draft", "Draft")
}

#[cfg(test)]
mod tests {
    use super::*;
    use concertmaster_core::node::NodeCategory;
    use serde_json::json;

    fn model() -> Model {
        Model::new(vec![
            NodeDescriptor::new("schedule", NodeCategory::Trigger)
                .inputs(Vec::<&str>::new())
                .config_schema(json!({"type": "object", "required": ["cron"], "properties": {"cron": {"type": "string"}}})),
            NodeDescriptor::new("send_form", NodeCategory::Collection).outputs(["main", "expired"]),
            NodeDescriptor::new("jq", NodeCategory::Transform),
        ])
        .unwrap()
    }

    fn node(id: &str, node_type: &str, config: Value) -> Value {
        json!({ "id": id, "type": node_type, "position": { "x": 0, "y": 0 }, "data": { "config": config } })
    }

    fn flow(edges: Value) -> Value {
        json!({
            "nodes": [node("s", "schedule", json!({"cron": "0 8 * * 1"})), node("f", "send_form", json!({})), node("t", "jq", json!({}))],
            "edges": edges
        })
    }

    #[test]
    fn diagnostics_name_the_edge_and_the_port() {
        let diagnostics = model()
            .diagnose(&flow(json!([
                { "id": "e1", "source": "s", "target": "f" },
                { "id": "e2", "source": "f", "sourceHandle": "late", "target": "t" },
                { "id": "e3", "source": "t", "target": "ghost" }
            ])))
            .unwrap();
        let by_edge = |id: &str| {
            diagnostics
                .iter()
                .find(|d| d.edge_id.as_deref() == Some(id))
                .unwrap()
        };
        assert_eq!(by_edge("e2").kind, "unknown_port");
        assert!(by_edge("e2").message.contains("late"));
        assert_eq!(by_edge("e3").kind, "dangling_edge");
        assert!(diagnostics.iter().all(|d| d.severity == Severity::Error));
    }

    #[test]
    fn a_drawing_answers_as_the_model_does_and_stays_as_drawn() {
        let model = model();
        let drawn = flow(json!([{ "id": "e1", "source": "s", "target": "f" }]));
        let mut drawing = model.drawing(drawn.clone()).unwrap();
        assert_eq!(drawing.diagnostics(), model.diagnose(&drawn).unwrap());
        for (source, handle, target) in [
            ("f", None, "t"),
            ("f", Some("late"), "t"),
            ("t", None, "s"),
            ("f", None, "f"),
            ("t", None, "f"),
            ("s", None, "f"),
        ] {
            let connection = Connection {
                source: source.into(),
                source_handle: handle.map(str::to_string),
                target: target.into(),
                target_handle: None,
            };
            assert_eq!(
                drawing.connection_issues(&model, &connection),
                model.connection_issues(&drawn, &connection).unwrap(),
                "{source}.{handle:?} -> {target}"
            );
        }
        let base = WorkflowDefinition::new("w", "W");
        assert_eq!(
            drawing.definition(&base),
            model.to_definition(&drawn, &base).unwrap(),
            "the checks left the drawing as it was"
        );
    }

    #[test]
    fn config_errors_point_into_the_config() {
        let drawn = json!({ "nodes": [node("s", "schedule", json!({ "cron": 5 }))] });
        let diagnostics = model().diagnose(&drawn).unwrap();
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].kind, "invalid_config");
        assert_eq!(diagnostics[0].pointer.as_deref(), Some("/cron"));
        let missing = model()
            .diagnose(&json!({ "nodes": [node("s", "schedule", json!({}))] }))
            .unwrap();
        assert!(missing[0].message.contains("cron"), "{missing:?}");
    }

    #[test]
    fn cycles_and_disconnected_nodes_are_reported() {
        let diagnostics = model()
            .diagnose(&flow(json!([
                { "id": "e1", "source": "f", "target": "t" },
                { "id": "e2", "source": "t", "target": "f" }
            ])))
            .unwrap();
        assert!(diagnostics
            .iter()
            .any(|d| d.kind == "cycle" && d.severity == Severity::Error));
        let warning = diagnostics
            .iter()
            .find(|d| d.severity == Severity::Warning)
            .unwrap();
        assert_eq!(
            (warning.kind.as_str(), warning.node_id.as_deref()),
            ("disconnected", Some("s"))
        );
        assert!(
            model()
                .diagnose(&json!({ "nodes": [] }))
                .unwrap()
                .is_empty(),
            "an empty canvas is fine"
        );
    }

    #[test]
    fn a_node_that_streams_takes_one_edge_as_publishing_checks() {
        let model = Model::new(vec![
            NodeDescriptor::new("start", NodeCategory::Trigger),
            NodeDescriptor::new("map", NodeCategory::Transform).streams_input_when("/stream"),
        ])
        .unwrap();
        assert_eq!(
            model.streams_input("map", &json!({"stream": true})),
            Some(true)
        );
        assert_eq!(model.streams_input("map", &json!({})), Some(false));
        assert_eq!(model.streams_input("nope", &json!({})), None);
        let drawn = json!({
            "nodes": [
                node("a", "start", json!({})),
                node("b", "start", json!({})),
                node("m", "map", json!({"stream": true}))
            ],
            "edges": [{ "id": "e1", "source": "a", "target": "m" }]
        });
        assert!(model
            .diagnose(&drawn)
            .unwrap()
            .iter()
            .all(|d| d.kind != "stream_join"));
        let second = Connection {
            source: "b".into(),
            source_handle: None,
            target: "m".into(),
            target_handle: None,
        };
        let issues = model.connection_issues(&drawn, &second).unwrap();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].kind, "stream_join");
        assert_eq!(issues[0].node_id.as_deref(), Some("m"));
        assert!(
            issues[0].message.contains("2 edges arrive"),
            "{}",
            issues[0].message
        );

        // Not streaming, it joins both.
        let mut plain = drawn.clone();
        plain["nodes"][2]["data"]["config"] = json!({});
        assert!(model.is_valid_connection(&plain, &second).unwrap());
    }

    #[test]
    fn connections_are_checked_as_publishing_would() {
        let model = model();
        let drawn = flow(json!([
            { "id": "e1", "source": "s", "target": "f" },
            { "id": "e2", "source": "f", "target": "t" }
        ]));
        let check = |source: &str, sh: Option<&str>, target: &str, th: Option<&str>| {
            model
                .is_valid_connection(
                    &drawn,
                    &Connection {
                        source: source.into(),
                        source_handle: sh.map(str::to_string),
                        target: target.into(),
                        target_handle: th.map(str::to_string),
                    },
                )
                .unwrap()
        };
        assert!(check("f", Some("expired"), "t", None));
        assert!(
            check("f", Some("error"), "t", None),
            "every node has an error port"
        );
        assert!(!check("f", Some("late"), "t", None), "no such port");
        assert!(!check("t", None, "s", None), "a trigger takes no input");
        assert!(!check("f", None, "s", None));
        assert!(!check("s", None, "f", None), "the same edge twice");
        assert!(
            !check("f", None, "t", Some("main")),
            "the same ports again, named"
        );
        assert!(!check("t", None, "t", None), "a loop on itself");
        assert!(!check("t", None, "f", None), "closes a cycle");
        let issues = model
            .connection_issues(
                &drawn,
                &Connection {
                    source: "t".into(),
                    source_handle: None,
                    target: "f".into(),
                    target_handle: None,
                },
            )
            .unwrap();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].kind, "cycle");
    }

    #[test]
    fn ports_named_by_the_config_are_ports_while_drawing() {
        let model = Model::new(vec![
            NodeDescriptor::new("manual", NodeCategory::Trigger),
            NodeDescriptor::new("switch", NodeCategory::Logic)
                .outputs(["default"])
                .output_ports_from("/cases/*/port"),
        ])
        .unwrap();
        let config = json!({ "cases": [{ "port": "germany" }] });
        assert_eq!(
            model.output_ports("switch", &config).unwrap(),
            ["germany", "default"]
        );
        let drawn = json!({
            "nodes": [node("m", "manual", json!({})), node("s", "switch", config), node("t", "manual", json!({}))],
            "edges": [
                { "id": "e1", "source": "m", "target": "s" },
                { "id": "e2", "source": "s", "sourceHandle": "germany", "target": "x" }
            ]
        });
        let diagnostics = model.diagnose(&drawn).unwrap();
        assert!(
            !diagnostics.iter().any(|d| d.kind == "unknown_port"),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn the_palette_is_read_from_the_hosts_json() {
        let json = serde_json::to_string(&[NodeDescriptor::new("custom_score", NodeCategory::Transform)
            .label("Supplier score")
            .icon("gauge")
            .config_schema(json!({"type": "object", "properties": {"threshold": {"type": "number", "default": 0.5}}}))])
        .unwrap();
        let model = Model::from_json(&json).unwrap();
        let palette = model.palette();
        assert_eq!(palette.len(), 1);
        let entry = &palette[0].entries[0];
        assert_eq!(
            (entry.label.as_str(), entry.icon.as_str()),
            ("Supplier score", "gauge")
        );
        assert_eq!(entry.default_config, json!({ "threshold": 0.5 }));
        assert!(matches!(
            Model::from_json("{}"),
            Err(ModelError::Palette(_))
        ));
    }
}
