//! Batch sync: records of many runs handed to a per-process batcher,
//! written together, and claimed in the store so that a node's deadline
//! fallback and the batch never both write one.

use super::*;

/// How long a node whose records a batch claimed waits for the batch's
/// answer before it writes (looking first) itself: longer than a batch
/// write takes, so the two never write at once.
pub(super) const BATCH_RESULT_PATIENCE: Duration = Duration::from_secs(600);

/// The key a batch-mode node waits on until a batch claims its records.
pub(super) fn batch_key(ctx: &NodeContext) -> String {
    format!("erp-batch:{}:{}", ctx.run_id(), ctx.node_id())
}

/// The key a batch-mode node whose records were claimed waits on for the
/// batch's outcomes.
pub(super) fn batch_result_key(ctx: &NodeContext) -> String {
    format!("erp-batch-result:{}:{}", ctx.run_id(), ctx.node_id())
}

/// Which records are written together: one connection, one entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Group {
    pub(super) tenant: TenantId,
    pub(super) connection: String,
    pub(super) entity: String,
}

/// One waiting node's records.
pub(crate) struct Entry {
    /// The key the node waits on until a batch claims its records.
    pub(super) wait_key: String,
    /// The key it then waits on for their outcomes.
    pub(super) result_key: String,
    pub(super) steps: Vec<(Step, Record)>,
}

#[derive(Default)]
pub(super) struct Pending {
    pub(super) entries: Vec<Entry>,
    pub(super) records: usize,
    pub(super) timer: bool,
}

/// Gathers batch-mode records across runs and writes them together.
pub(crate) struct Batcher {
    pub(super) engine: OnceLock<Engine>,
    pub(super) pending: Mutex<HashMap<Group, Pending>>,
}

impl Batcher {
    pub(crate) fn new() -> Self {
        Self {
            engine: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn attach(&self, engine: &Engine) {
        let _ = self.engine.set(engine.clone());
    }

    pub(super) fn add(
        self: &Arc<Self>,
        connections: &Connections,
        group: Group,
        entry: Entry,
        batch_size: usize,
        interval: Duration,
    ) -> Result<(), NodeError> {
        if self.engine.get().is_none() {
            return Err(NodeError::fatal(
                "batch sync needs the engine to resume runs: call Connections::attach(&engine) after building it",
            ));
        }
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = pending.entry(group.clone()).or_default();
        slot.records += entry.steps.len();
        slot.entries.push(entry);
        if slot.records >= batch_size {
            let full = std::mem::take(slot);
            pending.remove(&group);
            let batcher = Arc::clone(self);
            let connections = connections.clone();
            tokio::spawn(async move { batcher.flush(&connections, group, full.entries).await });
        } else if !slot.timer {
            slot.timer = true;
            let batcher = Arc::clone(self);
            let connections = connections.clone();
            tokio::spawn(async move {
                tokio::time::sleep(interval).await;
                let due = batcher
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&group);
                if let Some(due) = due {
                    batcher.flush(&connections, group, due.entries).await;
                }
            });
        }
        Ok(())
    }

    pub(super) async fn flush(&self, connections: &Connections, group: Group, entries: Vec<Entry>) {
        let Some(engine) = self.engine.get() else {
            return;
        };
        let span = tracing::info_span!("erp.batch_flush", tenant = %group.tenant, connection = %group.connection, entity = %group.entity, runs = entries.len());
        async {
            // Claim each node's records by taking its wait: a node whose
            // deadline took it first writes its records itself, so the
            // store lets exactly one of the two write them.
            let mut claimed = Vec::with_capacity(entries.len());
            for entry in entries {
                let claim = Wakeup::Event {
                    key: entry.wait_key.clone(),
                    payload: json!({ "claimed": true }),
                };
                match engine
                    .store()
                    .take_wait(&group.tenant, &entry.wait_key, claim, None)
                    .await
                {
                    Ok(Some(wait)) => {
                        engine.woken(&group.tenant, wait.run_id);
                        claimed.push(entry);
                    }
                    Ok(None) => {
                        tracing::debug!(key = %entry.wait_key, "records left to their node: it stopped waiting for the batch");
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, key = %entry.wait_key, "records not claimed; their node writes them at its deadline");
                    }
                }
            }
            if claimed.is_empty() {
                return;
            }
            let payloads = Self::write_batch(connections, &group, &claimed).await;
            for (entry, payload) in claimed.iter().zip(payloads) {
                resume(engine, &group.tenant, &entry.result_key, payload).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Writes the entries' records, as few calls as their steps allow; the
    /// resume payload of each entry.
    pub(super) async fn write_batch(
        connections: &Connections,
        group: &Group,
        entries: &[Entry],
    ) -> Vec<Value> {
        let connector = match connections.open(&group.tenant, &group.connection).await {
            Ok(connector) => connector,
            Err(err) => {
                let retryable = matches!(err, ConnectionError::Store(_));
                let payload =
                    json!({ "error": { "message": err.to_string(), "retryable": retryable } });
                return entries.iter().map(|_| payload.clone()).collect();
            }
        };
        let steps: Vec<(Step, Record)> = entries
            .iter()
            .flat_map(|e| e.steps.iter().cloned())
            .collect();
        match write_steps(connector.as_ref(), &group.connection, &group.entity, &steps).await {
            Err(err) => {
                let payload = json!({ "error": { "message": err.to_string(), "retryable": err.is_retryable() } });
                entries.iter().map(|_| payload.clone()).collect()
            }
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                entries
                    .iter()
                    .map(|entry| {
                        let mine: Vec<Value> = outcomes
                            .by_ref()
                            .take(entry.steps.len())
                            .map(|o| o.json())
                            .collect();
                        json!({ "outcomes": mine })
                    })
                    .collect()
            }
        }
    }
}

/// Resumes the waiting node. Its suspension may not be stored yet: the
/// store then holds the wake-up, and the suspension takes it.
pub(super) async fn resume(engine: &Engine, tenant: &TenantId, key: &str, payload: Value) {
    if let Err(err) = engine.resume(tenant, key, payload).await {
        tracing::warn!(error = %err, key, "a batched export could not resume its run; it writes its records at its deadline");
    }
}
