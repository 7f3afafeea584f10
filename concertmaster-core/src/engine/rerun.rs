//! Re-running finished runs: one ([`Engine::rerun`]) or every run a filter
//! finds ([`Engine::rerun_batch`]).

use tokio_util::sync::CancellationToken;

use super::{keyed_run_id, Engine};
use crate::error::{Error, Result};
use crate::ids::{NodeId, RunId, TenantId};
use crate::run::{NodeExecution, NodeStatus, PreparedRun, RunFilter, RunOrigin, RunStatus};
use crate::store::{Epoch, RunStart, StoreErrorKind};

/// How many runs a batch reads from the store at a time.
const BATCH_PAGE: usize = 100;

impl Engine {
    /// Runs a finished run again as a new run, from `from`, on the version
    /// `version` says. Nodes not downstream of where it restarts keep the
    /// outputs they had (their records are copied, nothing executes
    /// again); the restart nodes and everything downstream of them run.
    /// The new run records where it came from ([`Run::origin`](crate::Run::origin)) and gets
    /// the original trigger items. A node reused on the latest version
    /// must have the same id and type there; one that does not runs again.
    ///
    /// Refused with [`Error::CannotRerun`] when the run has not ended,
    /// when [`RerunFrom::Failed`] finds no failed node, or when a node
    /// named is not in the chosen version.
    #[tracing::instrument(name = "rerun", skip(self, from), fields(tenant = %tenant))]
    pub async fn rerun(
        &self,
        tenant: &TenantId,
        id: RunId,
        from: RerunFrom,
        version: RerunVersion,
    ) -> Result<RunId> {
        Ok(self.rerun_keyed(tenant, id, &from, version, None).await?.0)
    }

    /// [`Engine::rerun`], with the new run's id derived from `key` when
    /// given: a second call with the same key finds the run the first
    /// stored and returns it with `false`.
    async fn rerun_keyed(
        &self,
        tenant: &TenantId,
        id: RunId,
        from: &RerunFrom,
        version: RerunVersion,
        key: Option<&str>,
    ) -> Result<(RunId, bool)> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let cannot = |reason: String| Error::CannotRerun { run: id, reason };
        let from_trigger = matches!(from, RerunFrom::Trigger);
        let original = self.get_run(tenant, id).await?;
        if !original.status.is_terminal() {
            return Err(cannot(format!(
                "it has not ended (it is {})",
                original.status.as_str()
            )));
        }
        let pinned = match version {
            RerunVersion::Pinned => Some(original.workflow_version),
            RerunVersion::Latest => None,
        };
        let workflow = self.workflow(tenant, &original.workflow_id, pinned).await?;
        let executions = self.inner.store.node_executions(tenant, id).await?;
        let def = workflow.definition();
        let plan = &workflow.workflow.plan;
        let restart: Vec<NodeId> = match from {
            RerunFrom::Trigger => def.nodes.iter().map(|n| n.id.clone()).collect(),
            RerunFrom::Failed => {
                let failed: Vec<NodeId> = executions
                    .iter()
                    .filter(|e| e.status == NodeStatus::Failed)
                    .map(|e| e.node_id.clone())
                    .collect();
                if failed.is_empty() {
                    return Err(cannot("no node of it failed".into()));
                }
                failed
            }
            RerunFrom::Nodes(nodes) => nodes.clone(),
        };
        // The restart nodes and everything reachable from them run again.
        let mut again = vec![false; def.nodes.len()];
        let mut pending = Vec::new();
        for node in &restart {
            let Some(&i) = plan.index.get(node) else {
                return Err(cannot(format!(
                    "node {node} is not in version {} of workflow {}",
                    workflow.version(),
                    def.id
                )));
            };
            // What a node streamed to the next was not recorded: a node
            // of a stream group runs again from the group's producer.
            pending.push(plan.stream_head(i));
        }
        while let Some(i) = pending.pop() {
            if std::mem::replace(&mut again[i], true) {
                continue;
            }
            pending.extend(plan.outgoing[i].iter().map(|&edge| plan.ends[edge].1));
        }
        let reused: Vec<&NodeExecution> = executions
            .iter()
            .filter(|e| e.status == NodeStatus::Succeeded && e.output.is_some())
            .filter(|e| {
                plan.index
                    .get(&e.node_id)
                    .is_some_and(|&i| !again[i] && *plan.types[i] == *e.node_type)
            })
            .collect();
        let trigger = serde_json::to_value(&original.trigger).unwrap_or_default();
        let keyed = key.map(|key| keyed_run_id(&workflow, &format!("rerun:{key}:{id}")));
        let PreparedRun { mut run, audit } = self.new_run(
            &workflow,
            original.trigger_node.clone(),
            trigger,
            keyed,
            RunStatus::Running,
        )?;
        run.origin = Some(RunOrigin {
            run: id,
            version: original.workflow_version,
            from: if from_trigger { Vec::new() } else { restart },
            reused: reused.iter().map(|e| e.node_id.clone()).collect(),
        });
        let new_id = run.id;
        // Stored running and leased here, so that no engine drives it
        // before the copies are stored; should this process stop first,
        // the lease expires and what was not copied runs.
        let start = RunStart {
            run: &run,
            owner: &self.inner.owner,
            lease_until: self.inner.lease_until(run.created_at),
            audit: &audit,
        };
        match self.inner.store.start_run(&start).await {
            Ok(()) => {}
            Err(err) if keyed.is_some() && err.kind() == StoreErrorKind::Conflict => {
                return Ok((new_id, false));
            }
            Err(err) => return Err(err.into()),
        }
        // From here the run exists: the copies ride out a passing store
        // failure, as the engine's own writes do.
        for execution in reused {
            let copy = NodeExecution {
                run_id: new_id,
                ..execution.clone()
            };
            self.inner
                .durably("copy a reused node execution", || {
                    // Under the run's first lease, taken by its start.
                    self.inner
                        .store
                        .save_node_execution(tenant, &copy, Epoch::FIRST)
                })
                .await?;
        }
        self.pick_up(tenant, new_id).await?;
        Ok((new_id, true))
    }

    /// Re-runs every ended run `batch` finds, one after another, newest
    /// first, up to its bound ([`RerunBatch::at_most`]), stopping early
    /// when `stop` is cancelled: for the day after a bad deploy, once the
    /// fix is published. A run that cannot be re-run (no failed node, a
    /// node named that its version lacks) is reported and the batch goes
    /// on; a store error ends the batch with that error.
    ///
    /// With a key ([`RerunBatch::once_per`]), each run is re-run once per
    /// key: calling the batch again after an interruption or a
    /// cancellation goes on where it stopped, reporting the runs re-run
    /// before under [`RerunReport::done_before`].
    ///
    /// ```
    /// use concertmaster_core::{
    ///     RunStatus, node::CancellationToken,
    ///     run::{RerunBatch, RerunFrom, RerunVersion, RunFilter},
    /// };
    /// # async fn deploy_fixed(engine: &concertmaster_core::Engine, tenant: &concertmaster_core::TenantId) -> concertmaster_core::Result<()> {
    /// let failed = RunFilter::status(RunStatus::Failed)
    ///     .workflow("erp-export")
    ///     .version(3)
    ///     .error_contains("unknown cost center");
    /// let batch = RerunBatch::new(failed, RerunFrom::Failed, RerunVersion::Latest)
    ///     .at_most(500)
    ///     .once_per("fix-cost-centers");
    /// let report = engine.rerun_batch(tenant, &batch, &CancellationToken::new()).await?;
    /// println!("{} re-run, {} refused", report.rerun.len(), report.refused.len());
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(name = "rerun_batch", skip(self, batch, stop), fields(tenant = %tenant))]
    pub async fn rerun_batch(
        &self,
        tenant: &TenantId,
        batch: &RerunBatch,
        stop: &CancellationToken,
    ) -> Result<RerunReport> {
        let mut report = RerunReport::default();
        let mut filter = batch.filter.clone();
        if filter.statuses.is_empty() {
            filter.statuses = vec![
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Cancelled,
            ];
        }
        let mut seen = 0;
        // Pages go on after the last run seen, older and older: the runs
        // this batch starts are newer than all of them and never come up.
        'pages: loop {
            let page = self
                .inner
                .store
                .runs(tenant, &filter.clone().limit(BATCH_PAGE))
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            filter = filter.after(last);
            for run in &page {
                if stop.is_cancelled() {
                    report.cancelled = true;
                    break 'pages;
                }
                if seen == batch.at_most {
                    report.more = true;
                    break 'pages;
                }
                seen += 1;
                let key = batch.key.as_deref();
                match self
                    .rerun_keyed(tenant, run.id, &batch.from, batch.version, key)
                    .await
                {
                    Ok((new, true)) => report.rerun.push((run.id, new)),
                    Ok((new, false)) => report.done_before.push((run.id, new)),
                    Err(Error::CannotRerun { run, reason }) => report.refused.push((run, reason)),
                    Err(err) => return Err(err),
                }
            }
            if page.len() < BATCH_PAGE {
                break;
            }
        }
        tracing::info!(
            rerun = report.rerun.len(),
            done_before = report.done_before.len(),
            refused = report.refused.len(),
            cancelled = report.cancelled,
            more = report.more,
            "batch re-run ended"
        );
        Ok(report)
    }
}

/// Where [`Engine::rerun`] starts the new run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RerunFrom {
    /// The nodes that failed, and everything downstream of them.
    Failed,
    /// These nodes, and everything downstream of them.
    Nodes(Vec<NodeId>),
    /// The trigger: every node runs again.
    Trigger,
}

/// Which version of the workflow [`Engine::rerun`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RerunVersion {
    /// The version the original run was pinned to.
    Pinned,
    /// The latest published version.
    Latest,
}

/// Which ended runs [`Engine::rerun_batch`] re-runs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerunBatch {
    filter: RunFilter,
    from: RerunFrom,
    version: RerunVersion,
    at_most: usize,
    key: Option<String>,
}

impl RerunBatch {
    /// The runs `filter` finds (only ended runs: succeeded, failed or
    /// cancelled when it names no status; its limit is ignored), each
    /// re-run from `from` on `version`; at most 1,000 unless
    /// [`RerunBatch::at_most`] says otherwise.
    pub fn new(filter: RunFilter, from: RerunFrom, version: RerunVersion) -> Self {
        Self {
            filter,
            from,
            version,
            at_most: 1000,
            key: None,
        }
    }

    /// Looks at `n` matching runs at most; the report says when more
    /// matched ([`RerunReport::more`]).
    pub fn at_most(mut self, n: usize) -> Self {
        self.at_most = n;
        self
    }

    /// Re-runs each run once for `key` (a deploy, a ticket): a repeated
    /// call goes on where an earlier one stopped.
    pub fn once_per(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// What [`Engine::rerun_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RerunReport {
    /// Each run re-run by this call, with its new run.
    pub rerun: Vec<(RunId, RunId)>,
    /// Runs an earlier call with the same key re-ran, with that re-run.
    pub done_before: Vec<(RunId, RunId)>,
    /// Runs that could not be re-run, with why.
    pub refused: Vec<(RunId, String)>,
    /// Whether `stop` ended the batch before it was through.
    pub cancelled: bool,
    /// Whether the batch stopped at its bound with runs left.
    pub more: bool,
}
