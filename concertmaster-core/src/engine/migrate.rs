//! Moving waiting runs to another published version of their workflow
//! ([`Engine::migrate`]).

use std::collections::{BTreeMap, HashMap};

use super::{audit_entry, Engine};
use crate::error::{Error, Result};
use crate::ids::{NodeId, RunId, TenantId};
use crate::run::{NodeExecution, NodeStatus, Run, RunStatus};
use crate::store::{AuditAction, RunMigration, StoreErrorKind};
use crate::validate::ValidatedWorkflow;

/// How [`Engine::migrate`] moves a waiting run: the version it moves to,
/// and the nodes whose ids changed there. Every other node keeps its id.
///
/// ```
/// use concertmaster_core::workflow::Migration;
///
/// // Version 4 renamed the approval step.
/// let migration = Migration::to_version(4).rename("approve", "approve-by-buyer");
/// # let _ = migration;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    to_version: u32,
    renames: BTreeMap<NodeId, NodeId>,
}

impl Migration {
    /// Moves runs to `version` of their workflow.
    pub fn to_version(version: u32) -> Self {
        Self {
            to_version: version,
            renames: BTreeMap::new(),
        }
    }

    /// Node `old` of the run's version is node `new` of the new version.
    pub fn rename(mut self, old: impl Into<NodeId>, new: impl Into<NodeId>) -> Self {
        self.renames.insert(old.into(), new.into());
        self
    }
}

impl Engine {
    /// Moves waiting run `id` to another version of its workflow, where it
    /// goes on from the same waits. Runs stay on their pinned version
    /// unless moved; a host chooses which (`runs` with a `RunFilter`, then
    /// this for each).
    ///
    /// Checked first, all at once, and refused with
    /// [`Error::CannotMigrate`] naming every problem, changing nothing: the
    /// run must be waiting; each waiting node needs a counterpart of the
    /// same type (same id, or named by [`Migration::rename`]); each node
    /// that ran needs a counterpart of the same type or none at all (its
    /// record is then kept, unused); and every node of the new version
    /// that comes before a waiting node must have run. The version, the
    /// renamed records and waits and the audit entry are stored in one
    /// change, which a wake-up arriving meanwhile refuses. Nodes new in
    /// that version whose inputs have all arrived run at once.
    #[tracing::instrument(name = "migrate", skip(self, migration), fields(tenant = %tenant, to = migration.to_version))]
    pub async fn migrate(
        &self,
        tenant: &TenantId,
        id: RunId,
        migration: &Migration,
    ) -> Result<Run> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let version = migration.to_version;
        let refuse = |problems: Vec<String>| Error::CannotMigrate {
            run: id,
            version,
            problems,
        };
        let run = self.get_run(tenant, id).await?;
        if run.status != RunStatus::Waiting {
            return Err(refuse(vec![format!(
                "it is {}; only waiting runs move",
                run.status.as_str()
            )]));
        }
        if run.workflow_version == version {
            return Err(refuse(vec![format!("it is on version {version} already")]));
        }
        let from = self
            .inner
            .load_workflow(tenant, &run.workflow_id, Some(run.workflow_version))
            .await?;
        let to = self
            .inner
            .load_workflow(tenant, &run.workflow_id, Some(version))
            .await?;
        let records = self.inner.store.node_executions(tenant, id).await?;
        let problems = check(&run, &from, &to, &records, &migration.renames);
        if !problems.is_empty() {
            return Err(refuse(problems));
        }
        let renames: Vec<(NodeId, NodeId)> = migration
            .renames
            .iter()
            .filter(|(old, new)| old != new)
            .map(|(old, new)| (old.clone(), new.clone()))
            .collect();
        let audit = audit_entry(
            tenant,
            self.inner.clock.now(),
            AuditAction::Update,
            "run",
            id.to_string(),
            serde_json::json!({
                "migrated": { "from": run.workflow_version, "to": version },
                "renames": migration.renames,
            }),
        );
        let change = RunMigration {
            tenant,
            run: id,
            from_version: run.workflow_version,
            to_version: version,
            renames: &renames,
            audit: &audit,
        };
        match self.inner.store.migrate_run(&change).await {
            Ok(()) => {}
            Err(err) if err.kind() == StoreErrorKind::Conflict => {
                return Err(refuse(vec![format!(
                    "it stopped waiting on version {} while it was checked (woken, \
                     cancelled or moved); nothing was changed",
                    run.workflow_version
                )]));
            }
            Err(err) => return Err(err.into()),
        }
        tracing::info!(from = run.workflow_version, "run migrated");
        self.pick_up(tenant, id).await?;
        self.get_run(tenant, id).await
    }
}

/// Every reason `run` with `records` cannot move from `from` to `to` with
/// `renames`; empty when it can.
fn check(
    run: &Run,
    from: &ValidatedWorkflow,
    to: &ValidatedWorkflow,
    records: &[NodeExecution],
    renames: &BTreeMap<NodeId, NodeId>,
) -> Vec<String> {
    let (v_from, v_to) = (run.workflow_version, to.definition.version);
    let mut problems = Vec::new();
    let mut taken: HashMap<&NodeId, &NodeId> = HashMap::new();
    for (old, new) in renames {
        if !from.plan.index.contains_key(old) {
            problems.push(format!("renamed node {old} is not in version {v_from}"));
        }
        if !to.plan.index.contains_key(new) {
            problems.push(format!(
                "node {new} (renamed from {old}) is not in version {v_to}"
            ));
        }
        if let Some(first) = taken.insert(new, old) {
            problems.push(format!("nodes {first} and {old} are both renamed to {new}"));
        }
        if old != new && renames.contains_key(new) {
            problems.push(format!(
                "node {new} is renamed and is also the new name of {old}; move in two steps"
            ));
        }
    }
    let counterpart = |node: &NodeId| renames.get(node).unwrap_or(node).clone();
    let type_in = |wf: &ValidatedWorkflow, node: &NodeId| {
        wf.plan
            .index
            .get(node)
            .map(|&i| wf.plan.types[i].to_string())
    };
    // The nodes of `to` that have run, by index.
    let mut ran = vec![false; to.definition.nodes.len()];
    let mut waiting = Vec::new();
    for record in records {
        let old = &record.node_id;
        let new = counterpart(old);
        if old == &new && taken.contains_key(&new) && !renames.contains_key(old) {
            problems.push(format!(
                "node {new} has run in this run, so {} cannot take its name",
                taken[&new]
            ));
        }
        let is_waiting = record.status == NodeStatus::Waiting;
        match (to.plan.index.get(&new), type_in(to, &new)) {
            (Some(&i), Some(new_type)) => {
                if *new_type != *record.node_type {
                    let what = if is_waiting { "waiting node" } else { "node" };
                    problems.push(format!(
                        "{what} {old} is of type {}; its counterpart {new} in version {v_to} is of type {new_type}",
                        record.node_type
                    ));
                }
                if is_waiting {
                    waiting.push(i);
                } else if finished(record) {
                    ran[i] = true;
                }
            }
            _ if is_waiting => problems.push(format!(
                "waiting node {old} has no counterpart in version {v_to}: keep a node with \
                 that id there or name one with rename({old:?}, ...)"
            )),
            _ => {}
        }
    }
    // What a waiting node got as input must still be what comes before it.
    let mut seen = vec![false; ran.len()];
    let mut pending: Vec<usize> = waiting.clone();
    while let Some(i) = pending.pop() {
        for &edge in &to.plan.incoming[i] {
            let source = to.plan.ends[edge].0;
            if std::mem::replace(&mut seen[source], true) {
                continue;
            }
            if !ran[source] {
                problems.push(format!(
                    "node {} comes before a waiting node in version {v_to} but has not run \
                     in this run",
                    to.definition.nodes[source].id
                ));
            }
            pending.push(source);
        }
    }
    problems
}

/// Whether a record is of a node that finished: its outputs (or its
/// routed failure, or its skip) are settled.
fn finished(record: &NodeExecution) -> bool {
    match record.status {
        NodeStatus::Succeeded | NodeStatus::Skipped => true,
        NodeStatus::Failed => record.output.is_some(),
        _ => false,
    }
}
