//! The `Store` implementation shared by the SQL backends.
//!
//! Both backends run the same statements (`queries/`, `$N` parameters work
//! in SQLite and Postgres alike) through the same code; this module is
//! included once per backend (`#[path]`), so each copy is concrete sqlx
//! code without generic database bounds. A backend module provides the
//! `Db` type, `This` (its store type) with a `pool` field and a `writes` field (the
//! queue of the group commit, from `spawn_group_commits`), the timestamp
//! helpers `ts`, `ts_opt` and `read_ts`, `read_ts_opt` (timestamps are
//! microseconds in SQLite and `timestamptz` in Postgres), `parameter`, and
//! the statements `BEGIN`, `RUN_STARTS`, `RUN_SETTLES` and
//! `LEASE_CANDIDATES`, the lease locks `LEASE_LOCK` (what a write holds on
//! its run's lease row) and `LEASE_CLAIM_LOCK` (what a claim takes first),
//! `WAKEUP_LOCK`, `LOCKING_WRITES_GROUPED` (whether claims, suspensions,
//! deliveries and updates go through the group commit), `LEASE_CLAIM_ROWS`
//! (a group's claims in one statement, where groups hold them) and `renew_rows`
//! (lease renewal), which differ per backend.
//!
//! # The group commit
//!
//! Each change the `Store` traits call atomic is one transaction. Both
//! backends send the engine's hot-path writes (node executions, run starts,
//! run settles with their steps, audit entries) through one writer task
//! that commits whatever is waiting together: node executions alone as one
//! multi-row upsert (`node/upsert`), a mix in one transaction; one commit for
//! many runs' transitions, and the writer, not a caller that may stop
//! waiting, holds the transaction. On SQLite the writes that take locks of
//! their own (claims, suspensions, deliveries, run updates) go through it
//! too, one after another inside the group's transaction (wake-up keys
//! first, then lease rows, in one order), and a group's deliveries on
//! distinct keys are three statements and one claim statement for all:
//! SQLite has one write lock, and a second connection waiting for it sleeps
//! in its busy handler. On Postgres they run on pool connections side by
//! side (`LOCKING_WRITES_GROUPED`), which measured faster than one
//! connection's round trips.
//!
//! Run starts and settles are one statement each for a whole group
//! (`run/start_rows.<backend>.sql`, `run/settle_rows.<backend>.sql`): on
//! SQLite an insert into the write-only views `run_starts` / `run_settles`
//! (migration 10), whose triggers write the run, its lease and its audit
//! entry; on Postgres `WITH` sub-statements. A settle the store must refuse
//! (an ended run, another tenant's) fails its statement whole (SQLite's
//! trigger `RAISE`s, Postgres calls `concertmaster_refuse`, migration 11),
//! so a group of starts alone or settles alone needs no transaction.
//!
//! The writer keeps a connection of its own (SQLite: a second one, except
//! for an in-memory database, which has one; Postgres: one of the pool,
//! never the only one), where the group's statements stay prepared. Every
//! SQLite transaction begins `IMMEDIATE`, so the two connections wait for
//! the write lock rather than fail on it; hosts get the same from
//! `store.begin()`. Each caller returns once its commit is durable. A group
//! holding a refused write (an ended run, a run id started twice) is rolled
//! back, or its one statement fails whole, and it is redone write by write,
//! so that each caller gets its own answer.

use super::*;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    node::{Resumed, Wakeup},
    run::{NodeExecution, PreparedRun, RunFilter, RunOrigin, RunParent, Wait},
    store::{
        AuditAction, AuditEntry, AuditFilter, AuditStore, DeliveryAudit, Epoch, HeldWakeup,
        LeaseRequest, LeaseStore, RunClaim, RunMigration, RunStart, RunStore, StoreError,
        StoreResult, WaitStore, Woken, WorkflowStore,
    },
    Item, NodeError, NodeId, Ports, Run, RunId, RunStatus, TenantId, WorkflowDefinition,
    WorkflowId,
};
use sqlx::types::Json;
use sqlx::Row;

use crate::codec::{limit, name_of, parse_name, to_i32, to_u32};
use crate::error::store_error;
use crate::sql_store::sql;

type DbRow = <Db as sqlx::Database>::Row;

fn run_from_row(row: &DbRow) -> Result<Run, sqlx::Error> {
    Ok(Run {
        id: RunId::from_uuid(row.try_get("id")?),
        tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        workflow_id: WorkflowId::new(row.try_get::<String, _>("workflow_id")?),
        workflow_version: to_u32("workflow_version", row.try_get("workflow_version")?)?,
        status: parse_name("status", row.try_get("status")?)?,
        trigger_node: row
            .try_get::<Option<String>, _>("trigger_node")?
            .map(NodeId::new),
        trigger: row.try_get::<Json<Vec<Item>>, _>("trigger_items")?.0,
        created_at: read_ts(row, "created_at")?,
        ended_at: read_ts_opt(row, "ended_at")?,
        error: row.try_get("error")?,
        origin: row
            .try_get::<Option<Json<RunOrigin>>, _>("origin")?
            .map(|origin| origin.0),
        parent: match (
            row.try_get::<Option<uuid::Uuid>, _>("parent_run")?,
            row.try_get::<Option<String>, _>("parent_node")?,
        ) {
            (Some(run), Some(node)) => Some(RunParent {
                run: RunId::from_uuid(run),
                node: NodeId::new(node),
            }),
            _ => None,
        },
    })
}

fn execution_from_row(row: &DbRow) -> Result<NodeExecution, sqlx::Error> {
    Ok(NodeExecution {
        run_id: RunId::from_uuid(row.try_get("run_id")?),
        node_id: NodeId::new(row.try_get::<String, _>("node_id")?),
        node_type: row.try_get::<String, _>("node_type")?.into(),
        status: parse_name("status", row.try_get("status")?)?,
        attempt: to_u32("attempt", row.try_get("attempt")?)?,
        input: row.try_get::<Json<Ports>, _>("input")?.0,
        output: row
            .try_get::<Option<Json<Ports>>, _>("output")?
            .map(|j| j.0),
        error: row
            .try_get::<Option<Json<NodeError>>, _>("error")?
            .map(|j| j.0),
        wait: row
            .try_get::<Option<Json<Wait>>, _>("wait")?
            .map(|j| Box::new(j.0)),
        resumed: row
            .try_get::<Option<Json<Resumed>>, _>("resumed")?
            .map(|j| Box::new(j.0)),
        started_at: read_ts_opt(row, "started_at")?,
        ended_at: read_ts_opt(row, "ended_at")?,
    })
}

fn wait_from_row(row: &DbRow, key: String) -> Result<Wait, sqlx::Error> {
    Ok(Wait {
        key,
        run_id: RunId::from_uuid(row.try_get("run_id")?),
        node_id: NodeId::new(row.try_get::<String, _>("node_id")?),
        until: read_ts_opt(row, "until")?,
        state: row.try_get::<Json<serde_json::Value>, _>("state")?.0,
    })
}

fn held_from_row(row: &DbRow) -> Result<HeldWakeup, sqlx::Error> {
    Ok(HeldWakeup {
        key: row.try_get("key")?,
        payload: row.try_get::<Json<serde_json::Value>, _>("payload")?.0,
        received_at: read_ts(row, "received_at")?,
        expires_at: read_ts(row, "expires_at")?,
        expired: row.try_get("expired")?,
    })
}

/// Serializes the calls on wake-up key `key` of `tenant` (a delivery
/// and a suspension) until the transaction on `conn` ends, where the
/// backend needs it (`WAKEUP_LOCK`): otherwise each could miss the
/// other's uncommitted row, leaving a wait and a held wake-up apart.
async fn lock_wakeup_key(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    key: &str,
) -> StoreResult<()> {
    if let Some(lock) = WAKEUP_LOCK {
        sqlx::query(lock)
            .bind(tenant.as_str())
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(|err| store_error(err, "wait", key))?;
    }
    Ok(())
}

/// `WaitStore::take_wait` on `conn`, inside the caller's transaction.
async fn take_wait_on(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    key: &str,
    wakeup: Wakeup,
) -> StoreResult<Option<Wait>> {
    let fail = |err| store_error(err, "wait", key);
    let taken = sqlx::query(sql!("wait/take"))
        .bind(tenant.as_str())
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(fail)?;
    let Some(row) = taken else {
        return Ok(None);
    };
    let wait = wait_from_row(&row, key.to_string()).map_err(fail)?;
    let resumed = Resumed {
        wakeup,
        state: wait.state.clone(),
    };
    sqlx::query(sql!("node/resume"))
        .bind(wait.run_id.as_uuid())
        .bind(wait.node_id.as_str())
        .bind(Json(&resumed))
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
    sqlx::query(sql!("run/mark_running"))
        .bind(wait.run_id.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
    Ok(Some(wait))
}

/// `WaitStore::suspend_node` on `conn`, inside the caller's
/// transaction: what it wrote is rolled back with it on an error.
async fn suspend_on(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    execution: &NodeExecution,
    epoch: Epoch,
) -> StoreResult<Option<Resumed>> {
    let entity = format!("{}/{}", execution.run_id, execution.node_id);
    let Some(wait) = &execution.wait else {
        return Err(StoreError::Conflict {
            entity: "node execution",
            id: entity,
            message: "a suspended node needs a wait".into(),
        });
    };
    let fail = |err| store_error(err, "wait", &wait.key);
    if let Some(refusal) = run_refusal(&mut *conn, tenant, execution.run_id, Some(epoch)).await? {
        return Err(refusal);
    }
    lock_wakeup_key(&mut *conn, tenant, &wait.key).await?;
    let held = sqlx::query_scalar::<_, Json<serde_json::Value>>(sql!("wakeup/take"))
        .bind(tenant.as_str())
        .bind(wait.key.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(fail)?;
    if let Some(Json(payload)) = held {
        // The wake-up came first: the node continues at once,
        // and no wait is registered.
        let resumed = Resumed {
            wakeup: Wakeup::Event {
                key: wait.key.clone(),
                payload,
            },
            state: wait.state.clone(),
        };
        let woken = NodeExecution {
            wait: None,
            resumed: Some(Box::new(resumed.clone())),
            ..execution.clone()
        };
        if save_execution(&mut *conn, tenant, &woken, epoch).await? == 0 {
            return Err(refused_node(&mut *conn, tenant, execution, epoch).await);
        }
        return Ok(Some(resumed));
    }
    let registered = sqlx::query(sql!("wait/upsert"))
        .bind(tenant.as_str())
        .bind(wait.key.as_str())
        .bind(wait.run_id.as_uuid())
        .bind(wait.node_id.as_str())
        .bind(ts_opt(wait.until))
        .bind(Json(&wait.state))
        .execute(&mut *conn)
        .await
        .map_err(fail)?
        .rows_affected();
    if registered == 0 {
        let holder = sqlx::query(sql!("wait/holder"))
            .bind(tenant.as_str())
            .bind(wait.key.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(fail)?;
        let held_by = match holder {
            Some(row) => format!(
                "node {} of run {}",
                row.try_get::<String, _>("node_id").unwrap_or_default(),
                row.try_get::<uuid::Uuid, _>("run_id")
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            ),
            None => "another node".to_string(),
        };
        return Err(StoreError::Conflict {
            entity: "wait",
            id: wait.key.clone(),
            message: format!(
                "{held_by} already waits on this key; wait keys must be unique per tenant"
            ),
        });
    }
    if save_execution(&mut *conn, tenant, execution, epoch).await? == 0 {
        // Rolled back with the transaction, wait and all.
        return Err(refused_node(&mut *conn, tenant, execution, epoch).await);
    }
    Ok(None)
}

/// The lease of the run of `wait`, just ended by a delivery on `conn`,
/// taken for the deliverer in the same transaction, unless another
/// transaction holds its lease row. The delivery holds its key's
/// lock, and a suspension on that key may hold the lease row while
/// it waits for the key: waiting for the row here could deadlock,
/// so a busy row is left for a claim once the delivery committed.
async fn claim_for_delivery(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    wait: Wait,
    (owner, until, now): &(String, DateTime<Utc>, DateTime<Utc>),
) -> StoreResult<Answer> {
    let busy = lease_row_busy(&mut *conn, wait.run_id)
        .await
        .map_err(|err| store_error(err, "run lease", wait.run_id))?;
    if busy {
        return Ok(Answer::DeliveredUnclaimed(wait));
    }
    let epoch = claim_on(conn, tenant, wait.run_id, owner, *until, *now).await?;
    Ok(Answer::Delivered(Some(Woken { wait, epoch })))
}

/// Whether another transaction holds run `id`'s lease row, so that
/// claiming it now would wait (locked here for the claim if not).
/// Never, where claims take no row lock (SQLite writes one at a
/// time).
async fn lease_row_busy(
    conn: &mut <Db as sqlx::Database>::Connection,
    id: RunId,
) -> Result<bool, sqlx::Error> {
    if LEASE_CLAIM_LOCK.is_none() {
        return Ok(false);
    }
    let locked = sqlx::query(LEASE_LOCK_SKIP.as_str())
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    if locked.is_some() {
        return Ok(false);
    }
    // Skipped, or no row at all (never leased: nothing to wait for).
    let leased = sqlx::query(LEASE_ROW.as_str())
        .bind(id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(leased.is_some())
}

/// `LeaseStore::claim_run` on `conn`, inside the caller's transaction.
async fn claim_on(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    id: RunId,
    owner: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<Option<Epoch>> {
    let claimed = sqlx::query_scalar::<_, i64>(LEASE_CLAIM_ONE)
        .bind(id.as_uuid())
        .bind(tenant.as_str())
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(|err| store_error(err, "run lease", id))?;
    Ok(claimed.map(|epoch| Epoch::new(epoch.unsigned_abs())))
}

/// `WaitStore::deliver` on `conn`, inside the caller's transaction
/// (a form answer's, or its own).
pub(super) async fn deliver_on(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    held: &HeldWakeup,
) -> StoreResult<Option<Wait>> {
    lock_wakeup_key(&mut *conn, tenant, &held.key).await?;
    if let Some(wait) = take_wait_on(&mut *conn, tenant, &held.key, held.wakeup()).await? {
        return Ok(Some(wait));
    }
    hold_wakeup(conn, tenant, held).await?;
    Ok(None)
}

/// Holds `held` for a node that will suspend on its key (one held
/// and not expired is kept).
async fn hold_wakeup(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    held: &HeldWakeup,
) -> StoreResult<()> {
    sqlx::query(sql!("wakeup/hold"))
        .bind(tenant.as_str())
        .bind(held.key.as_str())
        .bind(Json(&held.payload))
        .bind(ts(held.received_at))
        .bind(ts(held.expires_at))
        .execute(&mut *conn)
        .await
        .map_err(|err| store_error(err, "held wake-up", &held.key))?;
    Ok(())
}

fn audit_from_row(row: &DbRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        at: read_ts(row, "at")?,
        actor: row.try_get("actor")?,
        action: parse_name::<AuditAction>("action", row.try_get("action")?)?,
        entity_type: row.try_get("entity_type")?,
        entity_id: row.try_get("entity_id")?,
        details: row.try_get::<Json<serde_json::Value>, _>("details")?.0,
    })
}

fn bind_run<'q>(
    query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
    run: &'q Run,
) -> StoreResult<sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>> {
    Ok(query
        .bind(run.id.as_uuid())
        .bind(run.tenant.as_str())
        .bind(run.workflow_id.as_str())
        .bind(to_i32(run.workflow_version)?)
        .bind(run.status.as_str())
        .bind(run.trigger_node.as_ref().map(|n| n.as_str()))
        .bind(Json(&run.trigger))
        .bind(ts(run.created_at))
        .bind(ts_opt(run.ended_at))
        .bind(run.error.as_deref()))
}

/// Binds a new run's 13 parameters in the order of `run/insert_rows`:
/// those of `bind_run`, then where a re-run came from and the parent.
fn bind_new_run<'q>(
    query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
    run: &'q Run,
) -> StoreResult<sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>> {
    Ok(bind_run(query, run)?
        .bind(run.origin.as_ref().map(Json))
        .bind(run.parent.as_ref().map(|p| p.run.as_uuid()))
        .bind(run.parent.as_ref().map(|p| p.node.as_str())))
}

/// An epoch as the databases keep it (BIGINT).
fn epoch_param(epoch: Epoch) -> i64 {
    i64::try_from(epoch.get()).unwrap_or(i64::MAX)
}

/// Binds one execution's 14 parameters in the order of `node/upsert`'s
/// rows: its column list, then the writer's lease epoch.
fn bind_execution<'q>(
    query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
    tenant: &'q TenantId,
    e: &'q NodeExecution,
    epoch: Epoch,
) -> StoreResult<sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>> {
    Ok(query
        .bind(e.run_id.as_uuid())
        .bind(e.node_id.as_str())
        .bind(tenant.as_str())
        .bind(&*e.node_type)
        .bind(e.status.as_str())
        .bind(to_i32(e.attempt)?)
        .bind(Json(&e.input))
        .bind(e.output.as_ref().map(Json))
        .bind(e.error.as_ref().map(Json))
        .bind(e.wait.as_ref().map(Json))
        .bind(e.resumed.as_ref().map(Json))
        .bind(ts_opt(e.started_at))
        .bind(ts_opt(e.ended_at))
        .bind(epoch_param(epoch)))
}

/// Why a write into run `id` would be refused, if it would: the run
/// does not exist for the tenant, has ended, or (for a write naming
/// `epoch`) is leased at another epoch.
async fn run_refusal<'c, E>(
    executor: E,
    tenant: &TenantId,
    id: RunId,
    epoch: Option<Epoch>,
) -> StoreResult<Option<StoreError>>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    let row = sqlx::query(RUN_WRITE_STATE.as_str())
        .bind(id.as_uuid())
        .bind(tenant.as_str())
        .fetch_optional(executor)
        .await
        .map_err(|err| store_error(err, "run", id))?;
    let Some(row) = row else {
        return Ok(Some(StoreError::run_not_found(id)));
    };
    let read = || -> Result<(RunStatus, Option<i64>), sqlx::Error> {
        Ok((
            parse_name("status", row.try_get("status")?)?,
            row.try_get("epoch")?,
        ))
    };
    let (status, current) = read().map_err(|err| store_error(err, "run", id))?;
    if status.is_terminal() {
        return Ok(Some(StoreError::run_ended(id)));
    }
    Ok(epoch
        .filter(|epoch| current != Some(epoch_param(*epoch)))
        .map(|epoch| StoreError::Fenced { run: id, epoch }))
}

/// A write of `entity` `id` refused for none of the reasons a store
/// tells apart: it raced another change, so the caller reads again.
fn unexplained_refusal(entity: &'static str, id: String) -> StoreError {
    StoreError::Conflict {
        entity,
        id,
        message: "the write was refused; read the run again".into(),
    }
}

/// Why a write into run `id` changed nothing (see `run_refusal`).
async fn refused_run(
    pool: &sqlx::Pool<Db>,
    tenant: &TenantId,
    id: RunId,
    epoch: Option<Epoch>,
) -> StoreError {
    match run_refusal(pool, tenant, id, epoch).await {
        Ok(Some(refusal)) | Err(refusal) => refusal,
        Ok(None) => unexplained_refusal("run", id.to_string()),
    }
}

/// Why a write of `execution` changed nothing: the refusals of its
/// run, or a record that would move its node backwards.
async fn refused_node(
    conn: &mut <Db as sqlx::Database>::Connection,
    tenant: &TenantId,
    execution: &NodeExecution,
    epoch: Epoch,
) -> StoreError {
    let id = execution.run_id;
    match run_refusal(&mut *conn, tenant, id, Some(epoch)).await {
        Ok(Some(refusal)) | Err(refusal) => return refusal,
        Ok(None) => {}
    }
    let row = sqlx::query(sql!("node/progress"))
        .bind(id.as_uuid())
        .bind(execution.node_id.as_str())
        .fetch_optional(&mut *conn)
        .await;
    let entity = || format!("{}/{}", id, execution.node_id);
    let stored = match row {
        Ok(Some(row)) => {
            let read = || -> Result<(concertmaster_core::run::NodeStatus, u32), sqlx::Error> {
                Ok((
                    parse_name("status", row.try_get("status")?)?,
                    to_u32("attempt", row.try_get("attempt")?)?,
                ))
            };
            match read() {
                Ok(stored) => stored,
                Err(err) => return store_error(err, "node execution", entity()),
            }
        }
        Ok(None) => return unexplained_refusal("node execution", entity()),
        Err(err) => return store_error(err, "node execution", entity()),
    };
    StoreError::check_forward_parts(
        id,
        &execution.node_id,
        stored,
        (execution.status, execution.attempt),
    )
    .unwrap_or_else(|| unexplained_refusal("node execution", entity()))
}

/// Applies the migrations the database lacks, each in its own
/// transaction with its ledger row, so a failing one leaves the ones
/// before it applied. `lock`, when given, runs first in each
/// transaction so that engines starting together migrate one at a
/// time; the applied version is read after it.
pub(super) async fn apply_migrations(
    pool: &sqlx::Pool<Db>,
    lock: Option<&'static str>,
    sql_of: fn(&crate::migrate::Migration) -> &'static str,
) -> Result<(), crate::error::Error> {
    use crate::error::Error;
    use crate::migrate::{latest, CREATE_LEDGER, MIGRATIONS};
    use sqlx::Executor;
    let ledger_error = |source| Error::Migration {
        version: 0,
        description: "migration ledger",
        source,
    };
    pool.execute(CREATE_LEDGER).await.map_err(ledger_error)?;
    for migration in MIGRATIONS {
        let failed = |source| Error::Migration {
            version: migration.version,
            description: migration.description,
            source,
        };
        let mut tx = pool.begin_with(BEGIN).await.map_err(failed)?;
        if let Some(lock) = lock {
            tx.execute(lock).await.map_err(ledger_error)?;
        }
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM concertmaster_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(ledger_error)?;
        if applied > latest() {
            return Err(Error::SchemaTooNew {
                found: applied,
                known: latest(),
            });
        }
        if applied >= migration.version {
            continue;
        }
        let sql = sql_of(migration);
        if !sql.is_empty() {
            tx.execute(sql).await.map_err(failed)?;
        }
        sqlx::query("INSERT INTO concertmaster_migrations (version, description) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(
            version = migration.version,
            backend = <Db as sqlx::Database>::NAME,
            "store migrated"
        );
    }
    Ok(())
}

mod connections;
mod contents;
mod datasets;
mod forms;
mod group;
mod traits;
mod writer;

use group::*;
use writer::*;
pub(super) use writer::{spawn_group_commits, PendingWrite};
