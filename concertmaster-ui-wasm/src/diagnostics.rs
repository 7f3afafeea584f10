//! Diagnostics of a graph being drawn: core's publish-time checks, tied to
//! the node or edge the editor draws, plus warnings that do not block
//! publishing.

use std::collections::HashSet;

use concertmaster_core::{
    node::MAIN_PORT,
    validate::{diagnose, IssueKind},
    workflow::Edge,
    NodeRegistry, WorkflowDefinition,
};
use serde::Serialize;

/// How much a diagnostic matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Publishing refuses the workflow.
    Error,
    /// Publishing accepts it, but it is probably not what was meant.
    Warning,
}

/// One problem, where the editor shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
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
    /// Every node concerned, where it is more than one (the nodes of a
    /// cycle), so the editor marks them and the edges between them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
}

/// Everything wrong with `def`, as publishing would find it, then warnings.
pub(crate) fn check(def: &WorkflowDefinition, registry: &NodeRegistry) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = diagnose(def, registry)
        .into_iter()
        // An empty canvas is where every drawing starts, not an error to show.
        .filter(|issue| issue.kind != IssueKind::EmptyWorkflow)
        .map(|issue| Diagnostic {
            related: if issue.kind == IssueKind::Cycle {
                issue
                    .node
                    .as_ref()
                    .map(|n| on_cycle_with(def, n.as_str()))
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
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
                    related: Vec::new(),
                });
            }
        }
    }
    out
}

/// The nodes on a cycle with `node`: those it reaches that reach it back,
/// in definition order.
fn on_cycle_with(def: &WorkflowDefinition, node: &str) -> Vec<String> {
    let reach = |forward: bool| {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![node];
        while let Some(at) = stack.pop() {
            for edge in &def.edges {
                let (from, to) = if forward {
                    (edge.source.as_str(), edge.target.as_str())
                } else {
                    (edge.target.as_str(), edge.source.as_str())
                };
                if from == at && seen.insert(to) {
                    stack.push(to);
                }
            }
        }
        seen
    };
    let (ahead, behind) = (reach(true), reach(false));
    def.nodes
        .iter()
        .map(|n| n.id.as_str())
        .filter(|id| ahead.contains(id) && behind.contains(id))
        .map(str::to_string)
        .collect()
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

/// What publishing would find wrong with `def` once `connection` is
/// added that it does not find now: empty when the connection is fine.
pub(crate) fn connection_issues(
    def: &WorkflowDefinition,
    registry: &NodeRegistry,
    connection: &Connection,
) -> Vec<Diagnostic> {
    let edge_id = format!(
        "{}:{}->{}:{}",
        connection.source,
        connection.source_handle.as_deref().unwrap_or(MAIN_PORT),
        connection.target,
        connection.target_handle.as_deref().unwrap_or(MAIN_PORT)
    );
    if connection.source == connection.target {
        return vec![Diagnostic {
            severity: Severity::Error,
            kind: "self_loop".into(),
            message: format!("node {} cannot feed itself", connection.source),
            node_id: Some(connection.source.clone()),
            edge_id: Some(edge_id),
            pointer: None,
            related: Vec::new(),
        }];
    }
    let before = check(def, registry);
    connection_issues_after(&mut def.clone(), &before, registry, connection)
}

/// [`connection_issues`] of `def` whose diagnostics are `before`: the
/// edge is added to `def` for the check and taken out again.
pub(crate) fn connection_issues_after(
    def: &mut WorkflowDefinition,
    before: &[Diagnostic],
    registry: &NodeRegistry,
    connection: &Connection,
) -> Vec<Diagnostic> {
    if connection.source == connection.target {
        return connection_issues(def, registry, connection);
    }
    let before: HashSet<&Diagnostic> = before.iter().collect();
    let mut edge = Edge::new(connection.source.as_str(), connection.target.as_str());
    if let Some(port) = &connection.source_handle {
        edge = edge.from_port(port.clone());
    }
    if let Some(port) = &connection.target_handle {
        edge = edge.to_port(port.clone());
    }
    def.edges.push(edge);
    let found = check(def, registry);
    def.edges.pop();
    found
        .into_iter()
        // Adding an edge cannot make a node less connected.
        .filter(|d| d.severity == Severity::Error && !before.contains(d))
        .collect()
}
