//! Diagnostics of a graph being drawn: core's publish-time checks, tied to
//! the node or edge the editor draws, plus warnings that do not block
//! publishing.

use std::collections::HashSet;

use concertmaster_core::{diagnose, Edge, IssueKind, NodeRegistry, WorkflowDefinition};
use serde::Serialize;

/// How much a diagnostic matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Publishing refuses the workflow.
    Error,
    /// Publishing accepts it, but it is probably not what was meant.
    Warning,
}

/// One problem, where the editor shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What kind of problem (`cycle`, `unknown_port`, `invalid_config`, ...).
    pub kind: String,
    /// What is wrong and what to do.
    pub message: String,
    /// The node to mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The edge to mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    /// JSON pointer into the node's config, for the config panel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

/// Everything wrong with `def`, as publishing would find it, then warnings.
pub(crate) fn check(def: &WorkflowDefinition, registry: &NodeRegistry) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = diagnose(def, registry)
        .into_iter()
        // An empty canvas is where every drawing starts, not an error to show.
        .filter(|issue| issue.kind != IssueKind::EmptyWorkflow)
        .map(|issue| Diagnostic {
            severity: Severity::Error,
            kind: serde_json::to_value(issue.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            message: issue.message,
            node_id: issue.node.map(|n| n.as_str().to_string()),
            edge_id: issue.edge,
            pointer: issue.pointer,
        })
        .collect();
    if def.nodes.len() > 1 {
        let connected: HashSet<&str> = def
            .edges
            .iter()
            .flat_map(|e| [e.source.as_str(), e.target.as_str()])
            .collect();
        for node in &def.nodes {
            if !connected.contains(node.id.as_str()) {
                out.push(Diagnostic {
                    severity: Severity::Warning,
                    kind: "disconnected".into(),
                    message: format!(
                        "node {} is connected to nothing; it runs on its own with the trigger data",
                        node.id
                    ),
                    node_id: Some(node.id.as_str().to_string()),
                    edge_id: None,
                    pointer: None,
                });
            }
        }
    }
    out
}

/// A connection React Flow proposes, by node ids and handle ids (`None`
/// for a node's default handle, the `main` port).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The node it leaves.
    pub source: String,
    /// The output port, `None` for `main`.
    #[serde(default)]
    pub source_handle: Option<String>,
    /// The node it reaches.
    pub target: String,
    /// The input port, `None` for `main`.
    #[serde(default)]
    pub target_handle: Option<String>,
}

/// Whether adding `connection` to `def` keeps it publishable as far as
/// edges go: with it, publishing finds no problem it did not find without.
pub(crate) fn is_valid_connection(
    def: &WorkflowDefinition,
    registry: &NodeRegistry,
    connection: &Connection,
) -> bool {
    if connection.source == connection.target {
        return false;
    }
    let before: HashSet<(IssueKind, Option<String>, String)> = diagnose(def, registry)
        .into_iter()
        .map(|i| (i.kind, i.node.map(|n| n.as_str().to_string()), i.message))
        .collect();
    let mut candidate = def.clone();
    let mut edge = Edge::new(connection.source.as_str(), connection.target.as_str());
    if let Some(port) = &connection.source_handle {
        edge = edge.from_port(port.clone());
    }
    if let Some(port) = &connection.target_handle {
        edge = edge.to_port(port.clone());
    }
    candidate.edges.push(edge);
    diagnose(&candidate, registry)
        .into_iter()
        .filter(|i| i.kind != IssueKind::EmptyWorkflow)
        .all(|i| before.contains(&(i.kind, i.node.map(|n| n.as_str().to_string()), i.message)))
}
