//! The `Scheduler`: starts runs of watched workflows at their `schedule`
//! triggers' fire times, once per fire time across every engine on the
//! store, with the missed-fire policy after downtime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use concertmaster_core::{
    clock::{Clock, SystemClock},
    run::RunFilter,
    workflow::PublishedWorkflow,
    Engine, NodeId, RunId,
};
use serde_json::json;

use super::cron::CronSchedule;
use crate::trigger::schedule::{parse, MissedFires};

/// A fire counts as on time within this long after its time.
const GRACE: chrono::Duration = chrono::Duration::seconds(60);
/// Most runs one schedule starts for missed times in one go.
const MAX_MISSED: usize = 1000;

/// Why a workflow's schedules cannot be watched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A `schedule` node's config is wrong (publishing checks it too).
    #[error("workflow {workflow}, node {node}: {message}")]
    Config {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The engine or its store failed.
    #[error(transparent)]
    Engine(#[from] concertmaster_core::Error),
}

struct Entry {
    workflow: PublishedWorkflow,
    node: NodeId,
    cron: CronSchedule,
    missed: MissedFires,
    /// Fire times up to here are dealt with.
    checked: DateTime<Utc>,
}

/// What one schedule has to start in a tick.
struct Due {
    workflow: PublishedWorkflow,
    node: NodeId,
    /// The fire times to start runs for, per the missed-fire policy.
    fires: Vec<DateTime<Utc>>,
    /// The latest fire time passed, started or not.
    last: DateTime<Utc>,
}

/// Starts scheduled runs.
///
/// Give it the published workflows (at start-up and after each publish);
/// call [`Scheduler::spawn`] to run it in the background, or
/// [`Scheduler::tick`] from a test with a manual clock. Each fire time
/// starts its run through [`Engine::start_once`], so several processes
/// watching the same workflow start it once.
///
/// ```
/// use concertmaster_core::{Engine, TenantId, WorkflowDefinition};
/// use concertmaster_nodes::Scheduler;
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::builder().registry(concertmaster_nodes::registry()).build().await?;
/// let tenant = TenantId::new("acme");
/// let nightly = engine.publish(&tenant, WorkflowDefinition::from_value(json!({
///     "id": "nightly-export", "name": "Nightly export",
///     "nodes": [{ "id": "every_night", "type": "schedule",
///                 "config": { "cron": "0 2 * * *", "timezone": "Europe/Berlin" } }]
/// }))?).await?;
///
/// let scheduler = Scheduler::new(engine.clone());
/// assert_eq!(scheduler.watch(&nightly).await?, 1);
/// let background = scheduler.spawn();
/// # background.abort();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Scheduler {
    engine: Engine,
    clock: Arc<dyn Clock>,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("schedules", &self.entries().len())
            .finish()
    }
}

impl Scheduler {
    /// A scheduler starting runs on `engine`, timed by the system clock.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            clock: Arc::new(SystemClock),
            entries: Arc::default(),
        }
    }

    /// Times it by `clock` (the engine's, in tests).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Watches `workflow`'s `schedule` triggers, replacing what was watched
    /// for it (an earlier version). Fire times since its last scheduled run
    /// count as missed. Returns how many schedules it has.
    pub async fn watch(&self, workflow: &PublishedWorkflow) -> Result<usize, ScheduleError> {
        let def = workflow.definition();
        let now = self.clock.now();
        let mut found = Vec::new();
        for node in def.nodes.iter().filter(|n| n.node_type == "schedule") {
            let (config, cron) = parse(&node.config).map_err(|err| ScheduleError::Config {
                workflow: def.id.to_string(),
                node: node.id.to_string(),
                message: err.to_string(),
            })?;
            let checked = self.last_fire(workflow, &node.id).await?.unwrap_or(now);
            found.push(Entry {
                workflow: workflow.clone(),
                node: node.id.clone(),
                cron,
                missed: config.missed_fires,
                checked,
            });
        }
        let count = found.len();
        let mut entries = self.entries();
        entries.retain(|e| {
            !(e.workflow.tenant() == workflow.tenant() && e.workflow.id() == workflow.id())
        });
        entries.extend(found);
        Ok(count)
    }

    /// The fire time of the latest run a schedule node started.
    async fn last_fire(
        &self,
        workflow: &PublishedWorkflow,
        node: &NodeId,
    ) -> Result<Option<DateTime<Utc>>, ScheduleError> {
        let filter = RunFilter::all().workflow(workflow.id().clone()).limit(1000);
        let runs = self.engine.runs(workflow.tenant(), &filter).await?;
        Ok(runs
            .iter()
            .filter(|r| r.trigger_node.as_ref() == Some(node))
            .filter_map(|r| r.trigger.first()?.get("scheduledFor").cloned())
            .filter_map(|v| serde_json::from_value::<DateTime<Utc>>(v).ok())
            .max())
    }

    /// Starts the runs due now; returns the runs this call started. A fire
    /// whose run could not start (the store is down) is tried again on the
    /// next tick.
    pub async fn tick(&self) -> Result<Vec<RunId>, ScheduleError> {
        let now = self.clock.now();
        let due: Vec<Due> = self
            .entries()
            .iter()
            .filter_map(|entry| {
                let fires = entry.cron.fires_between(entry.checked, now, MAX_MISSED + 1);
                let last = *fires.last()?;
                let (late, on_time): (Vec<_>, Vec<_>) =
                    fires.into_iter().partition(|t| now - *t > GRACE);
                let mut chosen = match entry.missed {
                    MissedFires::Skip => Vec::new(),
                    MissedFires::FireOnce => late.last().copied().into_iter().collect(),
                    MissedFires::FireAll => late.into_iter().take(MAX_MISSED).collect(),
                };
                chosen.extend(on_time);
                Some(Due {
                    workflow: entry.workflow.clone(),
                    node: entry.node.clone(),
                    fires: chosen,
                    last,
                })
            })
            .collect();
        let mut started = Vec::new();
        for Due {
            workflow,
            node,
            fires,
            last,
        } in due
        {
            for at in fires {
                let key = format!("schedule:{node}:{}", at.to_rfc3339());
                let item = json!({ "scheduledFor": at, "firedAt": now });
                let (run, new) = self
                    .engine
                    .start_once(&workflow, Some(node.as_str()), &key, item)
                    .await?;
                if new {
                    tracing::info!(workflow = %workflow.id(), %node, %at, %run, "scheduled run started");
                    started.push(run);
                }
            }
            // Only now are this schedule's fires up to `last` dealt with.
            for entry in self.entries().iter_mut() {
                if entry.node == node
                    && entry.workflow.id() == workflow.id()
                    && entry.workflow.tenant() == workflow.tenant()
                {
                    entry.checked = entry.checked.max(last);
                }
            }
        }
        Ok(started)
    }

    /// The next fire time of any watched schedule.
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.entries()
            .iter()
            .filter_map(|e| e.cron.next_after(e.checked))
            .min()
    }

    /// Runs the scheduler on the Tokio runtime until the engine shuts down
    /// or the returned handle is aborted.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let scheduler = self.clone();
        tokio::spawn(async move {
            loop {
                match scheduler.tick().await {
                    Ok(_) => {}
                    Err(ScheduleError::Engine(concertmaster_core::Error::ShutDown)) => return,
                    Err(err) => {
                        tracing::error!(error = %err, "scheduled runs could not start; trying again")
                    }
                }
                let wait = scheduler
                    .next_fire()
                    .and_then(|at| (at - scheduler.clock.now()).to_std().ok())
                    .unwrap_or(Duration::from_secs(30));
                tokio::time::sleep(wait.clamp(Duration::from_millis(50), Duration::from_secs(30)))
                    .await;
            }
        })
    }
}
