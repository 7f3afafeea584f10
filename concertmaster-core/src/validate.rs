//! Validation on publish: every problem of a workflow, each tied to a node or edge.
//!
//! For editors and hosts that check a workflow before publishing it
//! ([`diagnose`], [`validate`]), and for nodes that check data against a
//! JSON Schema ([`SchemaValidator`]).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::descriptor::NodeCategory;
use crate::graph::Plan;
use crate::ids::{NodeId, WorkflowId};
use crate::item::ERROR_PORT;
use crate::node::{Join, Node};
use crate::registry::NodeRegistry;
use crate::workflow::WorkflowDefinition;

pub use crate::schema::{FieldError, SchemaValidator};

/// What kind of problem an [`Issue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssueKind {
    /// The workflow has no nodes.
    EmptyWorkflow,
    /// A node or workflow id is empty.
    EmptyId,
    /// Two nodes share an id.
    DuplicateNodeId,
    /// Two edges share an id (or join the same ports twice).
    DuplicateEdge,
    /// A node's type is not registered.
    UnknownNodeType,
    /// An edge names a node that does not exist.
    DanglingEdge,
    /// An edge names a port its node does not have.
    UnknownPort,
    /// Edges form a cycle.
    Cycle,
    /// An edge arrives at a trigger.
    TriggerWithInputs,
    /// A node's config fails its type's schema or factory.
    InvalidConfig,
    /// A node's retry policy or timeout is unusable.
    InvalidPolicy,
    /// A node whose join is [`Join::Stream`] does not
    /// have exactly one incoming edge, or takes it from an `error` port.
    StreamJoin,
    /// The workflow has more nodes than [`MAX_NODES`] or edges than
    /// [`MAX_EDGES`]; nothing else is checked.
    TooLarge,
}

/// Most nodes a workflow may have: far above what people draw, low enough
/// that a hostile definition is refused before it costs anything.
pub const MAX_NODES: usize = 5_000;

/// Most edges a workflow may have.
pub const MAX_EDGES: usize = 20_000;

/// One problem of a workflow definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    /// What kind of problem.
    pub kind: IssueKind,
    /// The node concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// The edge concerned (its id, or `source:port->target:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    /// JSON pointer into the node's config, for config problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl Issue {
    fn node(kind: IssueKind, node: &NodeId, message: String) -> Self {
        Self {
            kind,
            node: Some(node.clone()),
            edge: None,
            pointer: None,
            message,
        }
    }

    fn edge(kind: IssueKind, edge: String, message: String) -> Self {
        Self {
            kind,
            node: None,
            edge: Some(edge),
            pointer: None,
            message,
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, &self.edge) {
            (Some(node), _) => write!(f, "node {node}")?,
            (None, Some(edge)) => write!(f, "edge {edge}")?,
            (None, None) => f.write_str("workflow")?,
        }
        if let Some(pointer) = &self.pointer {
            write!(
                f,
                " config {}",
                if pointer.is_empty() { "/" } else { pointer }
            )?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A workflow that failed validation, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The workflow checked.
    pub workflow: WorkflowId,
    /// Every problem, in the order of the definition.
    pub issues: Vec<Issue>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "workflow {} is invalid ({n} problem{})",
            self.workflow,
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  - {issue}")?;
        }
        Ok(())
    }
}

/// A workflow that passed validation, with its nodes built from their configs.
///
/// Only [`validate`] makes one, so holding one proves the checks passed.
#[derive(Clone)]
pub struct ValidatedWorkflow {
    pub(crate) definition: Arc<WorkflowDefinition>,
    pub(crate) nodes: Vec<Arc<dyn Node>>,
    pub(crate) plan: Arc<Plan>,
    /// Per node, the metric key its attempt durations are recorded under,
    /// for the tenant whose engine cache holds this copy (built once there,
    /// not per execution); empty elsewhere.
    #[cfg(feature = "runtime")]
    pub(crate) node_timings: Arc<[metrics::Key]>,
}

impl ValidatedWorkflow {
    /// The definition that was validated.
    pub fn definition(&self) -> &WorkflowDefinition {
        &self.definition
    }
}

impl fmt::Debug for ValidatedWorkflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedWorkflow")
            .field("id", &self.definition.id)
            .field("version", &self.definition.version)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// Every problem of `def` against the node types of `registry`, in
/// definition order; empty when the workflow can be published. This is what
/// an editor shows while a graph is drawn.
pub fn diagnose(def: &WorkflowDefinition, registry: &NodeRegistry) -> Vec<Issue> {
    if let Some(issue) = too_large(def) {
        return vec![issue];
    }
    check(def, registry).0
}

/// The one issue of a workflow too large to check further.
fn too_large(def: &WorkflowDefinition) -> Option<Issue> {
    let (nodes, edges) = (def.nodes.len(), def.edges.len());
    (nodes > MAX_NODES || edges > MAX_EDGES).then(|| Issue {
        kind: IssueKind::TooLarge,
        node: None,
        edge: None,
        pointer: None,
        message: format!(
            "the workflow has {nodes} nodes and {edges} edges; at most {MAX_NODES} nodes and \
             {MAX_EDGES} edges are accepted (split it into sub-workflows)"
        ),
    })
}

/// Checks `def` and builds its nodes; all problems are reported together.
///
/// ```
/// use concertmaster_core::{NodeRegistry, WorkflowDefinition, validate::{IssueKind, validate}};
///
/// let def = WorkflowDefinition::from_json(r#"{"id": "w", "name": "W",
///     "nodes": [{"id": "a", "type": "nope"}],
///     "edges": [{"source": "a", "target": "ghost"}]}"#)?;
/// let err = validate(&def, &NodeRegistry::new()).unwrap_err();
/// let kinds: Vec<_> = err.issues.iter().map(|i| i.kind).collect();
/// assert_eq!(kinds, [IssueKind::UnknownNodeType, IssueKind::DanglingEdge]);
/// # Ok::<(), concertmaster_core::workflow::DefinitionError>(())
/// ```
pub fn validate(
    def: &WorkflowDefinition,
    registry: &NodeRegistry,
) -> Result<ValidatedWorkflow, ValidationError> {
    if let Some(issue) = too_large(def) {
        return Err(ValidationError {
            workflow: def.id.clone(),
            issues: vec![issue],
        });
    }
    let (issues, nodes, mut plan) = check(def, registry);
    if !issues.is_empty() {
        return Err(ValidationError {
            workflow: def.id.clone(),
            issues,
        });
    }
    let nodes: Vec<Arc<dyn Node>> = nodes.into_iter().flatten().collect();
    plan.mark_streams(|i| nodes[i].join() == Join::Stream);
    plan.side_effects = def
        .nodes
        .iter()
        .map(|spec| {
            registry
                .descriptor(&spec.node_type)
                .is_some_and(|d| d.side_effects)
        })
        .collect();
    Ok(ValidatedWorkflow {
        definition: Arc::new(def.clone()),
        nodes,
        plan: Arc::new(plan),
        #[cfg(feature = "runtime")]
        node_timings: Arc::from([]),
    })
}

/// What a check found: the issues, each node built from its config (`None`
/// where it could not be), and the graph's indexes.
type Checked = (Vec<Issue>, Vec<Option<Arc<dyn Node>>>, Plan);

fn check(def: &WorkflowDefinition, registry: &NodeRegistry) -> Checked {
    let mut issues = Vec::new();
    if def.id.as_str().is_empty() {
        issues.push(Issue {
            kind: IssueKind::EmptyId,
            node: None,
            edge: None,
            pointer: None,
            message: "the workflow id is empty".into(),
        });
    }
    if def.nodes.is_empty() {
        issues.push(Issue {
            kind: IssueKind::EmptyWorkflow,
            node: None,
            edge: None,
            pointer: None,
            message: "the workflow has no nodes; add a trigger to start from".into(),
        });
    }

    let mut seen = HashSet::new();
    let mut built: Vec<Option<Arc<dyn Node>>> = Vec::with_capacity(def.nodes.len());
    for spec in &def.nodes {
        if spec.id.as_str().is_empty() {
            issues.push(Issue::node(
                IssueKind::EmptyId,
                &spec.id,
                "a node has an empty id".into(),
            ));
        } else if !seen.insert(spec.id.clone()) {
            issues.push(Issue::node(
                IssueKind::DuplicateNodeId,
                &spec.id,
                "another node already has this id; node ids must be unique in a workflow".into(),
            ));
        }
        if let Some(retry) = &spec.retry {
            for problem in retry.problems() {
                issues.push(Issue::node(
                    IssueKind::InvalidPolicy,
                    &spec.id,
                    format!("retry: {problem}"),
                ));
            }
        }
        if spec.timeout_ms == Some(0) {
            issues.push(Issue::node(
                IssueKind::InvalidPolicy,
                &spec.id,
                "timeoutMs must be at least 1; leave it out for the engine default".into(),
            ));
        }
        built.push(check_config(spec, registry, &mut issues));
    }

    let plan = Plan::new(def);
    let mut edge_keys = HashSet::new();
    let mut joins = HashSet::new();
    for (e, edge) in def.edges.iter().enumerate() {
        let key = edge.key();
        let join = (
            edge.source.as_str(),
            edge.source_port.as_str(),
            edge.target.as_str(),
            edge.target_port.as_str(),
        );
        // Two edges joining the same ports would deliver every item twice.
        if !edge_keys.insert(key.clone()) | !joins.insert(join) {
            issues.push(Issue::edge(
                IssueKind::DuplicateEdge,
                key.clone(),
                "another edge has the same id or joins the same ports".into(),
            ));
        }
        let (source, target) = plan.ends[e];
        for (end, id) in [(source, &edge.source), (target, &edge.target)] {
            if end == usize::MAX && !plan.index.contains_key(id) {
                issues.push(Issue::edge(
                    IssueKind::DanglingEdge,
                    key.clone(),
                    format!("node {id} does not exist"),
                ));
            }
        }
        if source != usize::MAX {
            check_source_port(
                def,
                registry,
                &built,
                source,
                edge.source_port.as_str(),
                &key,
                &mut issues,
            );
        }
        if target != usize::MAX {
            check_target_port(
                def,
                registry,
                target,
                edge.target_port.as_str(),
                &key,
                &mut issues,
            );
        }
    }

    for (i, node) in built.iter().enumerate() {
        let Some(node) = node else { continue };
        let streams = node.join() == Join::Stream;
        if streams {
            check_stream_join(def, &plan, i, &mut issues);
        }
        check_stream_hint(def, registry, i, streams, &mut issues);
    }

    for cycle in plan.cycles() {
        let names: Vec<&str> = cycle.iter().map(|&i| def.nodes[i].id.as_str()).collect();
        let first = &def.nodes[cycle[0]].id;
        issues.push(Issue::node(
            IssueKind::Cycle,
            first,
            format!(
                "nodes {} form a cycle; a workflow must be acyclic (use a loop node or a sub-workflow to repeat)",
                names.join(", ")
            ),
        ));
    }
    (issues, built, plan)
}

/// Editors know that a node streams only from its descriptor: one that
/// says otherwise than the node would have them check the wrong rules.
fn check_stream_hint(
    def: &WorkflowDefinition,
    registry: &NodeRegistry,
    i: usize,
    streams: bool,
    issues: &mut Vec<Issue>,
) {
    let spec = &def.nodes[i];
    let Some(descriptor) = registry
        .descriptor(&spec.node_type)
        .filter(|d| d.streams_input_when.is_some())
    else {
        return;
    };
    if descriptor.streams_input_for(&spec.config) != streams {
        let (says, does) = if streams {
            ("does not stream", "does")
        } else {
            ("streams", "does not")
        };
        issues.push(Issue::node(
            IssueKind::StreamJoin,
            &spec.id,
            format!(
                "the descriptor of node type {} (streams_input_when) says this node {says} its \
                 input, but the node's join says it {does}; make them agree",
                spec.node_type
            ),
        ));
    }
}

/// A streaming node reads one producer's stream: exactly one edge in, and
/// not from an `error` port, which carries one item made by the engine.
fn check_stream_join(def: &WorkflowDefinition, plan: &Plan, i: usize, issues: &mut Vec<Issue>) {
    let spec = &def.nodes[i];
    let edges = &plan.incoming[i];
    let message = match edges.as_slice() {
        [e] if def.edges[*e].source_port == ERROR_PORT => format!(
            "node {} ({}) streams its input, and an error port sends no stream; \
             connect it to a port its producer emits on",
            spec.id, spec.node_type
        ),
        [_] => return,
        _ => format!(
            "node {} ({}) streams its input from one producer, but {} edges arrive at it; \
             connect exactly one (put a node that joins the others before it)",
            spec.id,
            spec.node_type,
            edges.len()
        ),
    };
    issues.push(Issue::node(IssueKind::StreamJoin, &spec.id, message));
}

fn check_config(
    spec: &crate::workflow::NodeSpec,
    registry: &NodeRegistry,
    issues: &mut Vec<Issue>,
) -> Option<Arc<dyn Node>> {
    let Some(schema_errors) = registry.schema_errors(&spec.node_type, &spec.config) else {
        let similar = registry.similar(&spec.node_type);
        let hint = if similar.is_empty() {
            "register it on the NodeRegistry before publishing".to_string()
        } else {
            format!("did you mean {}?", similar.join(" or "))
        };
        issues.push(Issue::node(
            IssueKind::UnknownNodeType,
            &spec.id,
            format!("unknown node type {:?}; {hint}", spec.node_type),
        ));
        return None;
    };
    if !schema_errors.is_empty() {
        for err in schema_errors {
            issues.push(Issue {
                kind: IssueKind::InvalidConfig,
                node: Some(spec.id.clone()),
                edge: None,
                pointer: Some(err.pointer),
                message: err.message,
            });
        }
        return None;
    }
    match registry.build(&spec.node_type, &spec.config)? {
        Ok(node) => Some(node),
        Err(err) => {
            issues.push(Issue {
                kind: IssueKind::InvalidConfig,
                node: Some(spec.id.clone()),
                edge: None,
                pointer: Some(err.pointer),
                message: err.message,
            });
            None
        }
    }
}

fn check_source_port(
    def: &WorkflowDefinition,
    registry: &NodeRegistry,
    built: &[Option<Arc<dyn Node>>],
    source: usize,
    port: &str,
    key: &str,
    issues: &mut Vec<Issue>,
) {
    let spec = &def.nodes[source];
    let Some(descriptor) = registry.descriptor(&spec.node_type) else {
        return;
    };
    if port == ERROR_PORT {
        return;
    }
    let ports: Vec<String> = built[source]
        .as_ref()
        .and_then(|node| node.output_ports())
        .unwrap_or_else(|| descriptor.outputs.iter().map(|p| p.name.clone()).collect());
    if !ports.iter().any(|p| p == port) {
        issues.push(Issue::edge(
            IssueKind::UnknownPort,
            key.to_string(),
            format!(
                "node {} ({}) has no output port {port:?}; its outputs are {}",
                spec.id,
                spec.node_type,
                list_ports(ports.iter().map(String::as_str).chain([ERROR_PORT]))
            ),
        ));
    }
}

fn check_target_port(
    def: &WorkflowDefinition,
    registry: &NodeRegistry,
    target: usize,
    port: &str,
    key: &str,
    issues: &mut Vec<Issue>,
) {
    let spec = &def.nodes[target];
    let Some(descriptor) = registry.descriptor(&spec.node_type) else {
        return;
    };
    if descriptor.category == NodeCategory::Trigger {
        issues.push(Issue::edge(
            IssueKind::TriggerWithInputs,
            key.to_string(),
            format!(
                "node {} is a trigger ({}); triggers start runs and take no input",
                spec.id, spec.node_type
            ),
        ));
    } else if !descriptor.has_input(port) {
        issues.push(Issue::edge(
            IssueKind::UnknownPort,
            key.to_string(),
            format!(
                "node {} ({}) has no input port {port:?}; its inputs are {}",
                spec.id,
                spec.node_type,
                list_ports(descriptor.inputs.iter().map(|p| p.name.as_str()))
            ),
        ));
    }
}

fn list_ports<'a>(ports: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = ports.map(|p| format!("{p:?}")).collect();
    if quoted.is_empty() {
        "none".into()
    } else {
        quoted.join(", ")
    }
}
