//! The output nodes that write items into an ERP: `sap_export` and
//! `netsuite_sync`.
//!
//! Each item becomes one record (through the field mapping) under the
//! idempotency key of (run, node, item). Accepted items leave on `ok` with
//! what the ERP made of them; refused ones leave on `error` with the ERP's
//! message. A failure that may pass (the ERP down or rate limiting) fails
//! the attempt instead, so the engine's retry policy tries again; a
//! repeated attempt writes records that have a key by upsert, so what an
//! earlier attempt created is updated, not created twice.
//!
//! In `batch` sync mode a node hands its records to the connection's
//! batcher and waits (durably, as a suspended run); the batcher writes the
//! records of many runs in one call when `batchSize` records are waiting or
//! `flushIntervalSeconds` have passed, and resumes each run with its own
//! outcomes. Should the process stop in between, each waiting node wakes
//! at its deadline and writes its records itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use concertmaster_core::{
    connector::{ConnectorError, Record, RecordOutcome, WriteMode},
    node::{ConfigError, NodeCategory, RegistryError, Suspend, Wakeup, MAIN_PORT},
    Engine, Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    TenantId,
};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::connections::{ConnectionError, Connections};

mod batch;
mod config;

pub(crate) use batch::Batcher;
use batch::*;
use config::*;

/// The port accepted items leave on.
pub const OK_PORT: &str = "ok";
/// The port refused items leave on.
pub const REFUSED_PORT: &str = "error";

/// How one record is written.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// With `mode`.
    Write(WriteMode),
    /// Looked up by these fields first (an earlier attempt may have made
    /// it); created when not found.
    CreateUnlessFound(Map<String, Value>),
}

/// Registers the export node of every connector whose factory describes
/// one (`sap_export`, `netsuite_sync`, a host's own) for `connections`.
pub(crate) fn register(
    registry: &mut NodeRegistry,
    connections: &Connections,
    batcher: &Arc<Batcher>,
) -> Result<(), RegistryError> {
    for (kind, node) in connections.export_nodes() {
        let flavour = Arc::new(Flavour { kind, node });
        let connections = connections.clone();
        let batcher = Arc::clone(batcher);
        let system = flavour.node.label.split(' ').next().unwrap_or_default();
        let descriptor = NodeDescriptor::new(flavour.node.type_id.clone(), NodeCategory::Output)
            .with_side_effects()
            .label(flavour.node.label.clone())
            .icon(flavour.node.icon.clone())
            .description(format!(
                "Writes each item as a {system} record through a connection. Accepted items leave on `ok` \
                 (with `erp`: id, created, etag), refused ones on `error` (with `erpError`: the ERP's \
                 code, message and field). With keyField set, a repeated attempt updates what an \
                 earlier one created instead of creating it twice."
            ))
            .config_schema(flavour.schema())
            .outputs([OK_PORT, REFUSED_PORT]);
        registry.register(
            descriptor,
            move |config: &Value| -> Result<Export, ConfigError> {
                let config = flavour.read(config)?;
                check(&config, &flavour)?;
                Ok(Export {
                    flavour: Arc::clone(&flavour),
                    config,
                    connections: connections.clone(),
                    batcher: Arc::clone(&batcher),
                })
            },
        )?;
    }
    Ok(())
}

struct Export {
    flavour: Arc<Flavour>,
    config: ExportConfig,
    connections: Connections,
    batcher: Arc<Batcher>,
}

impl Export {
    /// The item as the ERP record: mapped fields and key.
    fn record(&self, key: String, item: &Item) -> Result<Record, String> {
        let fields = match &self.config.mapping {
            None => item.clone(),
            Some(mapping) => {
                let whole = Value::Object(item.clone());
                let mut fields = Map::new();
                for (field, source) in mapping {
                    let value = match source {
                        Source::Constant { value } => Some(value.clone()),
                        Source::Pointer(pointer) => whole.pointer(pointer).cloned(),
                    };
                    if let Some(value) = value {
                        fields.insert(field.clone(), value);
                    }
                }
                fields
            }
        };
        let mut record = Record::new(key, fields);
        if let Some(key_field) = &self.config.key_field {
            let id = match record.fields.get(key_field) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(format!(
                        "the record has no {key_field} (keyField) to find it by"
                    ))
                }
            };
            record.external_id = Some(id);
        }
        // Checked on every attempt: a record that could not be found
        // again must not be created the first time either.
        for field in self.config.match_on.iter().flatten() {
            if record.fields.get(field).is_none_or(Value::is_null) {
                return Err(format!("the record has no {field} (matchOn) to find it by"));
            }
        }
        Ok(record)
    }

    /// How each record is written: a repeated attempt (or a write after
    /// a lost batch) turns creates of keyed records into upserts, and looks
    /// up records with `matchOn` fields before it creates them again.
    fn step_for(&self, record: &Record, repeated: bool) -> Step {
        if self.config.mode != WriteMode::Create || !repeated {
            return Step::Write(self.config.mode);
        }
        if record.external_id.is_some() {
            return Step::Write(WriteMode::Upsert);
        }
        match &self.config.match_on {
            Some(fields) => Step::CreateUnlessFound(
                fields
                    .iter()
                    .filter_map(|f| record.fields.get(f).map(|v| (f.clone(), v.clone())))
                    .collect(),
            ),
            None => Step::Write(WriteMode::Create),
        }
    }

    /// Each record with how it is written.
    fn steps(&self, records: &[Record], repeated: bool) -> Vec<(Step, Record)> {
        records
            .iter()
            .map(|r| (self.step_for(r, repeated), r.clone()))
            .collect()
    }

    async fn write(
        &self,
        tenant: &TenantId,
        steps: &[(Step, Record)],
    ) -> Result<Vec<Outcome>, NodeError> {
        let connector = self
            .connections
            .open(tenant, &self.config.connection)
            .await
            .map_err(open_failed)?;
        self.check_kind(tenant).await?;
        write_steps(
            connector.as_ref(),
            &self.config.connection,
            &self.config.entity,
            steps,
        )
        .await
        .map_err(|err| connector_failed(&err))
    }

    async fn check_kind(&self, tenant: &TenantId) -> Result<(), NodeError> {
        let stored = self
            .connections
            .get(tenant, &self.config.connection)
            .await
            .map_err(open_failed)?;
        if stored.kind != self.flavour.kind {
            return Err(NodeError::fatal(format!(
                "connection {} is a {} connection; {} writes through a {} connection",
                stored.id, stored.kind, self.flavour.node.type_id, self.flavour.kind
            )));
        }
        Ok(())
    }

    /// Sorts the items by outcome onto the ports; a failure that may pass
    /// fails the attempt so the engine tries again.
    fn finish(
        &self,
        items: Vec<Item>,
        refused_early: Vec<(usize, String)>,
        outcomes: Vec<(usize, Outcome)>,
    ) -> Result<NodeOutcome, NodeError> {
        let retry: Vec<&Outcome> = outcomes
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.retryable())
            .collect();
        if !retry.is_empty() {
            let first = retry[0].error_text();
            return Err(NodeError::retryable(format!(
                "{} of {} records could not be written yet ({first}); the attempt is retried",
                retry.len(),
                items.len()
            ))
            .with_details(json!({ "connection": self.config.connection, "failures": retry.iter().map(|o| o.json()).collect::<Vec<_>>() })));
        }
        let mut ports = Ports::new();
        let mut ok = Vec::new();
        let mut refused = Vec::new();
        let mut early: HashMap<usize, String> = refused_early.into_iter().collect();
        let mut by_index: HashMap<usize, Outcome> = outcomes.into_iter().collect();
        for (index, mut item) in items.into_iter().enumerate() {
            if let Some(message) = early.remove(&index) {
                item.insert(
                    "erpError".into(),
                    json!({ "message": message, "connection": self.config.connection }),
                );
                refused.push(item);
                continue;
            }
            match by_index.remove(&index) {
                Some(Outcome::Written(written)) => {
                    item.insert("erp".into(), json!({ "connection": self.config.connection, "entity": self.config.entity, "id": written["id"], "created": written["created"], "etag": written.get("etag").cloned().unwrap_or(Value::Null), "key": written["key"] }));
                    ok.push(item);
                }
                Some(Outcome::Refused(error)) => {
                    item.insert("erpError".into(), error);
                    refused.push(item);
                }
                None => {}
            }
        }
        ports.extend(OK_PORT, ok);
        ports.extend(REFUSED_PORT, refused);
        Ok(NodeOutcome::Done(ports))
    }
}

/// One record's outcome in the form a resumed node reads back.
#[derive(Debug, Clone)]
enum Outcome {
    Written(Value),
    Refused(Value),
}

impl Outcome {
    fn refused(error: &ConnectorError, retryable: bool) -> Self {
        let message = error.erp_message();
        Outcome::Refused(json!({
            // The system's own words where it gave them; ours otherwise.
            "message": message.map_or_else(|| error.to_string(), |m| m.message.clone()),
            "code": message.and_then(|m| m.code.clone()),
            "target": message.and_then(|m| m.target.clone()),
            "status": message.and_then(|m| m.status),
            "details": message.map(|m| m.details.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
            "retryable": retryable,
        }))
    }

    fn retryable(&self) -> bool {
        matches!(self, Outcome::Refused(e) if e["retryable"] == true)
    }

    fn error_text(&self) -> String {
        match self {
            Outcome::Refused(e) => e["message"].as_str().unwrap_or_default().to_string(),
            Outcome::Written(_) => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Outcome::Written(w) => json!({ "written": w }),
            Outcome::Refused(e) => json!({ "refused": e }),
        }
    }

    fn from_json(value: &Value) -> Option<Self> {
        if let Some(w) = value.get("written") {
            Some(Outcome::Written(w.clone()))
        } else {
            value.get("refused").map(|e| Outcome::Refused(e.clone()))
        }
    }
}

impl From<RecordOutcome> for Outcome {
    fn from(outcome: RecordOutcome) -> Self {
        match outcome {
            Ok(written) => Outcome::Written(serde_json::to_value(&written).unwrap_or(Value::Null)),
            Err(failure) => Outcome::refused(&failure.error, failure.is_retryable()),
        }
    }
}

/// Writes each record as its step says, keeping their order within each
/// kind of write; one outcome per record. Records looked up and found are
/// reported written (not created) without being written again.
async fn write_steps(
    connector: &dyn concertmaster_core::connector::Connector,
    connection: &str,
    entity: &str,
    steps: &[(Step, Record)],
) -> Result<Vec<Outcome>, ConnectorError> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; steps.len()];
    let mut modes: Vec<Option<WriteMode>> = Vec::with_capacity(steps.len());
    let looks_up = steps
        .iter()
        .any(|(step, _)| matches!(step, Step::CreateUnlessFound(_)));
    if let Some(window) = connector.request_timeout().filter(|_| looks_up) {
        // A create the last attempt gave up on may still be carried out
        // within the connector's timeout: look only once it would have been.
        tokio::time::sleep(window).await;
    }
    for (i, (step, record)) in steps.iter().enumerate() {
        modes.push(match step {
            Step::Write(mode) => Some(*mode),
            Step::CreateUnlessFound(fields) => {
                match connector.find(entity, &record.key, fields).await {
                    Ok(Some(found)) => {
                        outcomes[i] = Some(Outcome::Written(
                            serde_json::to_value(&found).unwrap_or(Value::Null),
                        ));
                        None
                    }
                    Ok(None) => Some(WriteMode::Create),
                    Err(err) if err.is_retryable() => return Err(err),
                    Err(err) => {
                        outcomes[i] = Some(Outcome::refused(&err, false));
                        None
                    }
                }
            }
        });
    }
    for mode in [WriteMode::Create, WriteMode::Update, WriteMode::Upsert] {
        let (indices, group): (Vec<usize>, Vec<Record>) = steps
            .iter()
            .enumerate()
            .filter(|(i, _)| modes[*i] == Some(mode))
            .map(|(i, (_, r))| (i, r.clone()))
            .unzip();
        if group.is_empty() {
            continue;
        }
        let written = connector.write(entity, mode, &group).await?;
        for (i, outcome) in indices.into_iter().zip(written) {
            outcomes[i] = Some(Outcome::from(outcome));
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::refused(
                    &ConnectorError::NotProcessed {
                        connection: connection.to_string(),
                        message: "the connector returned no outcome for this record".into(),
                    },
                    true,
                )
            })
        })
        .collect())
}

fn open_failed(err: ConnectionError) -> NodeError {
    match err {
        ConnectionError::Store(_) => NodeError::retryable(err.to_string()),
        ConnectionError::Connector(err) => connector_failed(&err),
        err => NodeError::fatal(err.to_string()),
    }
}

fn connector_failed(err: &ConnectorError) -> NodeError {
    if let ConnectorError::RateLimited {
        retry_after: Some(wait),
        ..
    } = err
    {
        NodeError::retryable(err.to_string()).with_retry_after(*wait)
    } else if err.is_retryable() {
        NodeError::retryable(err.to_string())
    } else {
        NodeError::fatal(err.to_string())
    }
}

#[async_trait]
impl Node for Export {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let items = input.take(MAIN_PORT);
        let mut refused_early = Vec::new();
        let mut records = Vec::new();
        let mut indices = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match self.record(ctx.item_key(index), item) {
                Ok(record) => {
                    records.push(record);
                    indices.push(index);
                }
                Err(message) => refused_early.push((index, message)),
            }
        }
        if records.is_empty() {
            return self.finish(items, refused_early, Vec::new());
        }
        // An earlier execution of this step may have written some of the
        // records (its answer lost, or the process stopped before its
        // result was committed): look before creating again.
        let repeated = ctx.may_be_repeat();

        let outcomes = match (self.config.sync, ctx.resumed()) {
            (SyncMode::RealTime, _) => {
                self.write(ctx.tenant(), &self.steps(&records, repeated))
                    .await?
            }
            (SyncMode::Batch, None) => {
                // Fail now, not at the flush, on a connection that cannot be used.
                self.connections
                    .open(ctx.tenant(), &self.config.connection)
                    .await
                    .map_err(open_failed)?;
                self.check_kind(ctx.tenant()).await?;
                let key = batch_key(ctx);
                let interval = Duration::from_secs(self.config.flush_interval_seconds);
                let deadline = ctx.now()
                    + chrono::Duration::from_std(interval * 2 + Duration::from_secs(30))
                        .unwrap_or(chrono::Duration::days(1));
                self.batcher.add(
                    &self.connections,
                    Group {
                        tenant: ctx.tenant().clone(),
                        connection: self.config.connection.clone(),
                        entity: self.config.entity.clone(),
                    },
                    Entry {
                        wait_key: key.clone(),
                        result_key: batch_result_key(ctx),
                        steps: self.steps(&records, repeated),
                    },
                    self.config.batch_size,
                    interval,
                )?;
                return Ok(NodeOutcome::suspend(
                    Suspend::until_event(key)
                        .with_deadline(deadline)
                        .with_state(json!({ "records": records.len() })),
                ));
            }
            (SyncMode::Batch, Some(resumed)) if resumed.by_timer() => {
                // The batcher did not claim the records in time (the
                // process stopped: the timer took the wait, so no batch
                // will write them), or claimed them and did not answer in
                // time: the records may have been written, so look first.
                self.write(ctx.tenant(), &self.steps(&records, true))
                    .await?
            }
            (SyncMode::Batch, Some(resumed)) if resumed.wakeup_payload()["claimed"] == true => {
                // The batcher took the wait before writing: only it writes
                // the records now, and it answers on the result key (held
                // for this node should it answer first).
                let deadline = ctx.now()
                    + chrono::Duration::from_std(BATCH_RESULT_PATIENCE)
                        .unwrap_or(chrono::Duration::days(1));
                return Ok(NodeOutcome::suspend(
                    Suspend::until_event(batch_result_key(ctx))
                        .with_deadline(deadline)
                        .with_state(json!({ "records": records.len(), "claimed": true })),
                ));
            }
            (SyncMode::Batch, Some(resumed)) => {
                let payload = resumed.wakeup_payload();
                if let Some(error) = payload.get("error") {
                    let message = error["message"]
                        .as_str()
                        .unwrap_or("the batch failed")
                        .to_string();
                    return Err(if error["retryable"] == true {
                        NodeError::retryable(message)
                    } else {
                        NodeError::fatal(message)
                    });
                }
                let outcomes: Vec<Outcome> = payload
                    .get("outcomes")
                    .and_then(Value::as_array)
                    .map(|o| o.iter().filter_map(Outcome::from_json).collect())
                    .unwrap_or_default();
                if outcomes.len() != records.len() {
                    return Err(NodeError::retryable(format!(
                        "the batch answered {} outcomes for {} records",
                        outcomes.len(),
                        records.len()
                    )));
                }
                outcomes
            }
        };
        self.finish(
            items,
            refused_early,
            indices.into_iter().zip(outcomes).collect(),
        )
    }
}
