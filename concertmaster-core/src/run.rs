//! Runs and node executions: the durable record of what happened.
//!
//! For hosts that inspect, filter, resume and rerun runs beyond
//! [`Run`] and [`RunStatus`] (kept at the crate root): each node's record,
//! the waits, and what [`Engine`](crate::Engine)'s calls answer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, RunId, TenantId, WorkflowId};
use crate::item::{Item, Ports};
use crate::node::{NodeError, Resumed};
use crate::store::AuditEntry;

#[cfg(feature = "runtime")]
pub use crate::engine::{
    acting_as, current_actor, Delivery, RerunBatch, RerunFrom, RerunReport, RerunVersion,
};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Created; no node has started yet.
    Pending,
    /// Nodes are executing or ready to.
    Running,
    /// Every unfinished node waits for an event or a time; no task is held.
    Waiting,
    /// Every node finished or was skipped.
    Succeeded,
    /// A node failed with no `error` edge to route the failure.
    Failed,
    /// Cancelled by a caller.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Whether an engine should be driving the run (after a restart too).
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }

    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One execution of a workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The run's id.
    pub id: RunId,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// The workflow it runs.
    pub workflow_id: WorkflowId,
    /// The version it is pinned to; later versions never change it.
    pub workflow_version: u32,
    /// Where it is.
    pub status: RunStatus,
    /// The trigger node started, when one was named; all roots otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_node: Option<NodeId>,
    /// The items the run started with.
    pub trigger: Vec<Item>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run this one re-runs, when it is a re-run (`Engine::rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<RunOrigin>,
    /// The run and node that started this one as a sub-workflow
    /// (`Engine::start_child`): it wakes that node when it ends, and is
    /// cancelled with that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RunParent>,
}

/// The run and node a child run was started from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunParent {
    /// The parent run.
    pub run: RunId,
    /// The node of the parent run that started the child and waits for it.
    pub node: NodeId,
}

impl RunParent {
    /// The event key the parent's node waits on for its child, and the key
    /// the child's run id is derived from, so that a node executed again
    /// finds the child it started.
    pub fn wait_key(&self) -> String {
        format!("subflow:{}:{}", self.run, self.node)
    }
}

/// Where a re-run came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOrigin {
    /// The run re-run.
    pub run: RunId,
    /// The version that run was pinned to.
    pub version: u32,
    /// The nodes executed again, with everything downstream of them; empty
    /// when the re-run started from the trigger.
    pub from: Vec<NodeId>,
    /// The nodes whose outputs were taken over from that run.
    pub reused: Vec<NodeId>,
}

/// Where a node is within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeStatus {
    /// An attempt is in progress (or was, when the engine stopped).
    Running,
    /// Suspended until an event or a time.
    Waiting,
    /// Finished with output.
    Succeeded,
    /// Failed; if the failure was routed to the `error` port, `output` holds it.
    Failed,
    /// Not executed: every edge into it came from an untaken port or a skipped node.
    Skipped,
    /// Stopped because the run was cancelled.
    Cancelled,
}

impl NodeStatus {
    /// Whether the node's attempt has ended: succeeded, failed, skipped or
    /// cancelled. A record only moves from ended to running or waiting
    /// with a later attempt.
    pub fn is_ended(self) -> bool {
        !matches!(self, Self::Running | Self::Waiting)
    }

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A node's durable record within one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeExecution {
    /// The run.
    pub run_id: RunId,
    /// The node.
    pub node_id: NodeId,
    /// The node's type (shared text: every record of a node type holds
    /// the same).
    pub node_type: Arc<str>,
    /// Where it is.
    pub status: NodeStatus,
    /// The latest attempt's number (0 for a skipped node).
    pub attempt: u32,
    /// The items it was given.
    pub input: Ports,
    /// The items it emitted (for a routed failure, the `error` port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Ports>,
    /// The latest failure, also one that a later attempt overcame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<NodeError>,
    /// What it waits for, while it waits. Boxed, as is `resumed`: few
    /// records have either, and every record is kept by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Box<Wait>>,
    /// Set when its wait ended and it is to be executed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<Box<Resumed>>,
    /// When its first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished, failed, was skipped or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// A suspended node's wait: an event key, a wake-up time, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wait {
    /// The key `resume` is called with; for a plain timer, one the engine made.
    pub key: String,
    /// The waiting run.
    pub run_id: RunId,
    /// The waiting node.
    pub node_id: NodeId,
    /// When the node wakes if no event came first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Handed back to the node when it wakes.
    #[serde(default)]
    pub state: serde_json::Value,
}

/// Which runs to list: newest first (by creation time, then id), every
/// condition set must hold.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use concertmaster_core::{RunStatus, run::RunFilter};
///
/// // Yesterday's failed exports of version 3 that timed out.
/// let filter = RunFilter::status(RunStatus::Failed)
///     .workflow("erp-export")
///     .version(3)
///     .created_between(
///         Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap(),
///         Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap(),
///     )
///     .error_contains("timed out")
///     .limit(500);
/// # let _ = filter;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs in one of these statuses (all when empty).
    pub statuses: Vec<RunStatus>,
    /// Only runs of this workflow.
    pub workflow_id: Option<WorkflowId>,
    /// Only runs pinned to this version.
    pub version: Option<u32>,
    /// Only runs created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only runs whose error contains this text, letters compared without
    /// case (ASCII letters only on SQLite).
    pub error_contains: Option<String>,
    /// Only the child runs of this run (started by its `sub_workflow`
    /// nodes).
    pub parent: Option<RunId>,
    /// Only runs listed after this one (its creation time and id): the
    /// next page after a page that ended with it.
    pub after: Option<(DateTime<Utc>, RunId)>,
    /// At most this many (100 when `None`).
    pub limit: Option<usize>,
}

impl RunFilter {
    /// Every run, newest first, at most 100.
    pub fn all() -> Self {
        Self::default()
    }

    /// Runs in `status`.
    pub fn status(status: RunStatus) -> Self {
        Self {
            statuses: vec![status],
            ..Self::default()
        }
    }

    /// Runs in any of `statuses`.
    pub fn statuses(statuses: impl IntoIterator<Item = RunStatus>) -> Self {
        Self {
            statuses: statuses.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Also requires the workflow.
    pub fn workflow(mut self, id: impl Into<WorkflowId>) -> Self {
        self.workflow_id = Some(id.into());
        self
    }

    /// Also requires the pinned version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    /// Also requires a creation time in `[from, before)`.
    pub fn created_between(mut self, from: DateTime<Utc>, before: DateTime<Utc>) -> Self {
        self.created_from = Some(from);
        self.created_before = Some(before);
        self
    }

    /// Also requires `text` in the run's error.
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error_contains = Some(text.into());
        self
    }

    /// Also requires the run to be a child of `run`.
    pub fn children_of(mut self, run: RunId) -> Self {
        self.parent = Some(run);
        self
    }

    /// Continues a listing after `run`, the last of the previous page.
    pub fn after(mut self, run: &Run) -> Self {
        self.after = Some((run.created_at, run.id));
        self
    }

    /// Also caps the count.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `run` passes the filter (the limit aside).
    pub fn matches(&self, run: &Run) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&run.status))
            && self
                .workflow_id
                .as_ref()
                .is_none_or(|w| *w == run.workflow_id)
            && self.version.is_none_or(|v| v == run.workflow_version)
            && self.created_from.is_none_or(|t| run.created_at >= t)
            && self.created_before.is_none_or(|t| run.created_at < t)
            && self.error_contains.as_ref().is_none_or(|text| {
                run.error
                    .as_ref()
                    .is_some_and(|e| e.to_lowercase().contains(&text.to_lowercase()))
            })
            && self
                .parent
                .is_none_or(|p| run.parent.as_ref().is_some_and(|rp| rp.run == p))
            && self
                .after
                .is_none_or(|(at, id)| (run.created_at, run.id) < (at, id))
    }

    /// The `LIKE` pattern (escape character `\`) the SQL stores match
    /// errors with: the text, lower-cased, anywhere.
    pub fn error_pattern(&self) -> Option<String> {
        self.error_contains.as_ref().map(|text| {
            let mut pattern = String::from("%");
            for c in text.to_lowercase().chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            pattern
        })
    }

    /// The cap in force.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(100)
    }
}

/// A run with the record of each of its nodes, in workflow order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    /// The run.
    pub run: Run,
    /// Its nodes that started, were skipped or were cancelled.
    pub nodes: Vec<NodeExecution>,
}

impl RunDetail {
    /// The record of `node`.
    pub fn node(&self, node: &str) -> Option<&NodeExecution> {
        self.nodes.iter().find(|n| n.node_id.as_str() == node)
    }

    /// The output of `node`, if it finished.
    pub fn output(&self, node: &str) -> Option<&Ports> {
        self.node(node).and_then(|n| n.output.as_ref())
    }

    /// The keys the run waits on.
    pub fn waiting_on(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Waiting)
            .filter_map(|n| n.wait.as_ref().map(|w| w.key.as_str()))
            .collect()
    }
}

/// A run made ready by `Engine::prepare_run`, for the host to store in
/// its own transaction; `Engine::pick_up` drives it once that commits.
#[derive(Debug, Clone)]
pub struct PreparedRun {
    pub(crate) run: Run,
    pub(crate) audit: AuditEntry,
}

impl PreparedRun {
    /// The run's id, known before it is stored.
    pub fn id(&self) -> RunId {
        self.run.id
    }

    /// The run to store, pending.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// Its audit entry, to store with it.
    pub fn audit(&self) -> &AuditEntry {
        &self.audit
    }
}
