//! The workflow model: definitions, nodes, edges, retry policies.
//!
//! For hosts and editors that build, publish and migrate workflows in
//! code; [`WorkflowDefinition`] itself is at the crate root.
//!
//! This is the JSON that editors save and engines run. Field names are
//! camelCase; unknown fields are refused (a typo is an error, not a silent
//! default); editor-only data lives under `ui` and is kept as it is.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{NodeId, TenantId, WorkflowId};
use crate::item::MAIN_PORT;

#[cfg(feature = "runtime")]
pub use crate::engine::{Migration, PublishedWorkflow};

/// A workflow: nodes joined by edges, run by the engine.
///
/// A published version is immutable: publishing again stores a new version,
/// and runs keep the version they started on.
///
/// ```
/// use concertmaster_core::WorkflowDefinition;
///
/// let workflow = WorkflowDefinition::from_json(r#"{
///     "id": "supplier-onboarding",
///     "name": "Supplier onboarding",
///     "nodes": [
///         { "id": "start", "type": "manual" },
///         { "id": "send", "type": "send_form", "config": { "form": "supplier-v1" } }
///     ],
///     "edges": [ { "source": "start", "target": "send" } ]
/// }"#)?;
/// assert_eq!(workflow.edges[0].source_port, "main");
/// # Ok::<(), concertmaster_core::workflow::DefinitionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowDefinition {
    /// Shared by every version of this workflow.
    pub id: WorkflowId,
    /// Human-readable name.
    pub name: String,
    /// Assigned when published (1, 2, ...); 0 for a draft never published.
    #[serde(default)]
    pub version: u32,
    /// What the workflow is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The steps.
    pub nodes: Vec<NodeSpec>,
    /// How items flow between the steps.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Free-form labels for finding workflows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Whether this is a template to copy rather than a workflow to run.
    #[serde(default, skip_serializing_if = "is_false")]
    pub template: bool,
    /// The tenant that owns it; set on publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// Editor data the engine does not read (viewport, colours, ...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub ui: serde_json::Map<String, Value>,
}

/// One step of a workflow: an instance of a registered node type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique within the workflow; named by edges and errors.
    pub id: NodeId,
    /// The registered node type, e.g. `send_form`.
    #[serde(rename = "type")]
    pub node_type: String,
    /// A label for people; the id is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Checked against the node type's config JSON Schema on publish.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// Retries after a retryable failure; the engine default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Longest one attempt may take, in milliseconds; the engine default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Where the editor draws the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// Editor data the engine does not read.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub ui: serde_json::Map<String, Value>,
}

impl NodeSpec {
    /// A node of `node_type` with an empty config.
    pub fn new(id: impl Into<NodeId>, node_type: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            node_type: node_type.into(),
            label: None,
            config: empty_object(),
            retry: None,
            timeout_ms: None,
            position: None,
            ui: serde_json::Map::new(),
        }
    }

    /// Sets the config.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The per-attempt timeout, when set.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// Items flow from a source node's output port to a target node's input port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Edge {
    /// The editor's id for the edge; derived from its ends when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The node the items come from.
    pub source: NodeId,
    /// The output port they leave by; `main` when absent.
    #[serde(default = "main_port")]
    pub source_port: String,
    /// The node they go to.
    pub target: NodeId,
    /// The input port they arrive at; `main` when absent.
    #[serde(default = "main_port")]
    pub target_port: String,
    /// Editor data the engine does not read (label, style, ...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub ui: serde_json::Map<String, Value>,
}

impl Edge {
    /// An edge from `source`'s `main` port to `target`'s `main` port.
    pub fn new(source: impl Into<NodeId>, target: impl Into<NodeId>) -> Self {
        Self {
            id: None,
            source: source.into(),
            source_port: MAIN_PORT.to_string(),
            target: target.into(),
            target_port: MAIN_PORT.to_string(),
            ui: serde_json::Map::new(),
        }
    }

    /// Leaves the source by `port` instead of `main`.
    pub fn from_port(mut self, port: impl Into<String>) -> Self {
        self.source_port = port.into();
        self
    }

    /// Arrives at the target's `port` instead of `main`.
    pub fn to_port(mut self, port: impl Into<String>) -> Self {
        self.target_port = port.into();
        self
    }

    /// The id errors name: the editor's, or `source:port->target:port`.
    pub fn key(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => format!(
                "{}:{}->{}:{}",
                self.source, self.source_port, self.target, self.target_port
            ),
        }
    }
}

/// How a node is retried after a retryable failure.
///
/// The n-th retry waits `initialBackoffMs * multiplier^(n-1)`, capped at
/// `maxBackoffMs`, then shortened by a random share up to `jitter` so that
/// many failing nodes do not retry in lockstep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// Wait before the first retry, in milliseconds.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Growth of the wait from one retry to the next.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Largest share (0 to 1) of a wait removed at random.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

impl RetryPolicy {
    /// A policy of `max_attempts` with the default backoff (1 s doubling up to
    /// 60 s, 20 % jitter).
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            multiplier: default_multiplier(),
            jitter: default_jitter(),
        }
    }

    /// No retry: one attempt.
    pub fn none() -> Self {
        Self::attempts(1)
    }

    /// Sets the first wait and the cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff_ms = u64::try_from(initial.as_millis()).unwrap_or(u64::MAX);
        self.max_backoff_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the jitter share.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The wait before retry number `retry` (1 for the first), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let millis = (self.initial_backoff_ms as f64) * self.multiplier.powi(exponent);
        let capped = millis.min(self.max_backoff_ms as f64).max(0.0);
        Duration::from_millis(capped as u64)
    }

    /// The wait before retry number `retry`, with `random` (in 0..1) taking
    /// off up to `jitter` of it.
    pub fn backoff_with_jitter(&self, retry: u32, random: f64) -> Duration {
        let base = self.backoff(retry);
        let cut = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        base.mul_f64(1.0 - cut)
    }

    /// The pause before retry number `retry` after a failure that asked
    /// for `asked` ([`NodeError::retry_after`](crate::NodeError::retry_after)):
    /// the back-off with jitter, or the wait asked for when longer, up to
    /// `max_backoff_ms`.
    pub fn pause(&self, retry: u32, random: f64, asked: Option<Duration>) -> Duration {
        let backoff = self.backoff_with_jitter(retry, random);
        let asked = asked
            .unwrap_or_default()
            .min(Duration::from_millis(self.max_backoff_ms));
        backoff.max(asked)
    }

    /// What is wrong with this policy, if anything.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_attempts == 0 {
            problems.push("maxAttempts must be at least 1".to_string());
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            problems.push(format!(
                "multiplier must be at least 1, got {}",
                self.multiplier
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            problems.push(format!(
                "jitter must be between 0 and 1, got {}",
                self.jitter
            ));
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            problems.push(format!(
                "initialBackoffMs ({}) exceeds maxBackoffMs ({})",
                self.initial_backoff_ms, self.max_backoff_ms
            ));
        }
        problems
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

/// A node's place on the editor canvas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Horizontal, in canvas units.
    pub x: f64,
    /// Vertical, in canvas units.
    pub y: f64,
}

/// Longest workflow JSON [`WorkflowDefinition::from_json`] reads: a
/// thousand-node workflow is about 200 KB.
pub const MAX_DEFINITION_BYTES: usize = 8 * 1024 * 1024;

/// Workflow JSON that could not be read, with the path to the offending part.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("workflow definition: {path}: {message}")]
pub struct DefinitionError {
    /// Where in the document, e.g. `nodes[3].config`; `.` for the whole.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl WorkflowDefinition {
    /// A definition with no nodes, to be filled in code.
    pub fn new(id: impl Into<WorkflowId>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            version: 0,
            description: None,
            nodes: Vec::new(),
            edges: Vec::new(),
            tags: Vec::new(),
            template: false,
            tenant: None,
            ui: serde_json::Map::new(),
        }
    }

    /// Adds a node.
    pub fn node(mut self, node: NodeSpec) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds an edge.
    pub fn edge(mut self, edge: Edge) -> Self {
        self.edges.push(edge);
        self
    }

    /// Reads a definition from JSON text, naming the path of the first error.
    /// Text longer than [`MAX_DEFINITION_BYTES`] is refused unread.
    pub fn from_json(json: &str) -> Result<Self, DefinitionError> {
        if json.len() > MAX_DEFINITION_BYTES {
            return Err(DefinitionError {
                path: ".".into(),
                message: format!(
                    "{} bytes, more than the {MAX_DEFINITION_BYTES} accepted",
                    json.len()
                ),
            });
        }
        let mut deserializer = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| DefinitionError {
            path: err.path().to_string(),
            message: err.into_inner().to_string(),
        })
    }

    /// Reads a definition from a JSON value, naming the path of the first error.
    pub fn from_value(value: Value) -> Result<Self, DefinitionError> {
        serde_path_to_error::deserialize(value).map_err(|err| DefinitionError {
            path: err.path().to_string(),
            message: err.into_inner().to_string(),
        })
    }

    /// The definition as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The node with `id`.
    pub fn find_node(&self, id: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id.as_str() == id)
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn main_port() -> String {
    MAIN_PORT.to_string()
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_initial_backoff_ms() -> u64 {
    1_000
}

fn default_max_backoff_ms() -> u64 {
    60_000
}

fn default_multiplier() -> f64 {
    2.0
}

fn default_jitter() -> f64 {
    0.2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_json_gets_defaults() {
        let def = WorkflowDefinition::from_value(json!({
            "id": "w", "name": "W",
            "nodes": [{"id": "a", "type": "manual"}, {"id": "b", "type": "noop"}],
            "edges": [{"source": "a", "target": "b"}]
        }))
        .expect("minimal workflow parses");
        assert_eq!(def.version, 0);
        assert_eq!(def.nodes[0].config, json!({}));
        assert_eq!(def.edges[0].source_port, MAIN_PORT);
        assert_eq!(def.edges[0].key(), "a:main->b:main");
    }

    #[test]
    fn json_errors_name_the_path() {
        let err = WorkflowDefinition::from_json(
            r#"{"id":"w","name":"W","nodes":[{"id":"a","type":"x"},{"id":"b","type":"y","timeoutMs":"soon"}]}"#,
        )
        .expect_err("a string timeout is refused");
        assert_eq!(err.path, "nodes[1].timeoutMs");
        assert!(err
            .to_string()
            .starts_with("workflow definition: nodes[1].timeoutMs: "));

        let err = WorkflowDefinition::from_value(json!({
            "id": "w", "name": "W", "nodes": [], "edges": [{"source": "a", "target": "b", "sourcePrt": "x"}]
        }))
        .expect_err("a misspelt field is refused");
        assert_eq!(err.path, "edges[0].sourcePrt");
        assert!(err.message.contains("sourcePrt"), "{}", err.message);
    }

    #[test]
    fn round_trip_keeps_everything() {
        let json = json!({
            "id": "w", "name": "W", "version": 3, "description": "d",
            "nodes": [{
                "id": "a", "type": "t", "label": "A", "config": {"k": 1},
                "retry": {"maxAttempts": 3, "initialBackoffMs": 10, "maxBackoffMs": 100, "multiplier": 2.0, "jitter": 0.0},
                "timeoutMs": 500, "position": {"x": 1.5, "y": 2.0}, "ui": {"width": 150}
            }],
            "edges": [{"id": "e1", "source": "a", "sourcePort": "true", "target": "a", "targetPort": "main", "ui": {"label": "yes"}}],
            "tags": ["t"], "template": true, "tenant": "acme", "ui": {"viewport": {"x": 0, "y": 0, "zoom": 1}}
        });
        let def = WorkflowDefinition::from_value(json.clone()).expect("full workflow parses");
        assert_eq!(serde_json::to_value(&def).ok(), Some(json));
    }

    #[test]
    fn backoff_grows_caps_and_jitters_down() {
        let policy = RetryPolicy::attempts(5)
            .with_backoff(Duration::from_millis(100), Duration::from_millis(350))
            .with_jitter(0.5);
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(2), Duration::from_millis(200));
        assert_eq!(policy.backoff(3), Duration::from_millis(350));
        assert_eq!(
            policy.backoff_with_jitter(2, 1.0),
            Duration::from_millis(100)
        );
        assert_eq!(
            policy.backoff_with_jitter(2, 0.0),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn a_wait_asked_for_lengthens_the_pause_up_to_the_cap() {
        let policy = RetryPolicy::attempts(5)
            .with_backoff(Duration::from_millis(100), Duration::from_secs(30))
            .with_jitter(0.0);
        assert_eq!(policy.pause(1, 0.5, None), Duration::from_millis(100));
        assert_eq!(
            policy.pause(1, 0.5, Some(Duration::ZERO)),
            Duration::from_millis(100),
            "a date in the past asks for nothing"
        );
        assert_eq!(
            policy.pause(1, 0.5, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.pause(1, 0.5, Some(Duration::from_secs(3_600))),
            Duration::from_secs(30),
            "bounded by maxBackoffMs"
        );
    }

    #[test]
    fn bad_retry_policies_say_why() {
        let mut policy = RetryPolicy::attempts(0);
        policy.jitter = 2.0;
        let problems = policy.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("maxAttempts"));
    }
}
