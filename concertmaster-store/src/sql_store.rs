//! The `Store` implementation shared by the SQL backends.
//!
//! Both backends run the same statements (`queries/`, `$N` parameters work
//! in SQLite and Postgres alike) through the same code; the macro below
//! expands that code once per backend, so each expansion is concrete sqlx
//! code without generic database bounds. A backend module provides the
//! `Db` type, its store type with a `pool` field and a `writes` field (the
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

/// Prepared statements a connection keeps: the group commit's (each
/// kind of write, 1 to `GROUP_COMMIT_MAX` rows each) and every other query,
/// with room to spare. sqlx's default of 100 made the group commit prepare
/// its statements again and again. Only the connection the writer keeps
/// holds the group's statements.
pub(crate) const STATEMENT_CACHE: usize = 2048;

macro_rules! sql {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/queries/",
            $path,
            ".sql"
        ))
    };
}
pub(crate) use sql;

macro_rules! sql_store {
    ($store:ident) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use concertmaster_core::{Item, NodeError, NodeId, Ports, Run, RunId, RunStatus, TenantId, WorkflowDefinition, WorkflowId, node::{Resumed, Wakeup}, run::{NodeExecution, PreparedRun, RunFilter, RunOrigin, RunParent, Wait}, store::{AuditAction, AuditEntry, AuditFilter, AuditStore, DeliveryAudit, Epoch, HeldWakeup, LeaseRequest, LeaseStore, RunClaim, RunMigration, RunStart, RunStore, StoreError, StoreResult, WaitStore, Woken, WorkflowStore}};
        use sqlx::types::Json;
        use sqlx::Row;

        use $crate::codec::{limit, name_of, parse_name, to_i32, to_u32};
        use $crate::error::store_error;
        use $crate::sql_store::sql;

        type DbRow = <Db as sqlx::Database>::Row;

        fn run_from_row(row: &DbRow) -> Result<Run, sqlx::Error> {
            Ok(Run {
                id: RunId::from_uuid(row.try_get("id")?),
                tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?),
                workflow_id: WorkflowId::new(row.try_get::<String, _>("workflow_id")?),
                workflow_version: to_u32("workflow_version", row.try_get("workflow_version")?)?,
                status: parse_name("status", row.try_get("status")?)?,
                trigger_node: row.try_get::<Option<String>, _>("trigger_node")?.map(NodeId::new),
                trigger: row.try_get::<Json<Vec<Item>>, _>("trigger_items")?.0,
                created_at: read_ts(row, "created_at")?,
                ended_at: read_ts_opt(row, "ended_at")?,
                error: row.try_get("error")?,
                origin: row.try_get::<Option<Json<RunOrigin>>, _>("origin")?.map(|origin| origin.0),
                parent: match (row.try_get::<Option<uuid::Uuid>, _>("parent_run")?, row.try_get::<Option<String>, _>("parent_node")?) {
                    (Some(run), Some(node)) => Some(RunParent { run: RunId::from_uuid(run), node: NodeId::new(node) }),
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
                output: row.try_get::<Option<Json<Ports>>, _>("output")?.map(|j| j.0),
                error: row.try_get::<Option<Json<NodeError>>, _>("error")?.map(|j| j.0),
                wait: row.try_get::<Option<Json<Wait>>, _>("wait")?.map(|j| Box::new(j.0)),
                resumed: row.try_get::<Option<Json<Resumed>>, _>("resumed")?.map(|j| Box::new(j.0)),
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
        async fn lock_wakeup_key(conn: &mut <Db as sqlx::Database>::Connection, tenant: &TenantId, key: &str) -> StoreResult<()> {
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
                    wakeup: Wakeup::Event { key: wait.key.clone(), payload },
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
                        row.try_get::<uuid::Uuid, _>("run_id").map(|u| u.to_string()).unwrap_or_default()
                    ),
                    None => "another node".to_string(),
                };
                return Err(StoreError::Conflict {
                    entity: "wait",
                    id: wait.key.clone(),
                    message: format!("{held_by} already waits on this key; wait keys must be unique per tenant"),
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
        async fn lease_row_busy(conn: &mut <Db as sqlx::Database>::Connection, id: RunId) -> Result<bool, sqlx::Error> {
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
        async fn deliver_on(
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

        async fn save_execution<'c, E>(executor: E, tenant: &TenantId, e: &NodeExecution, epoch: Epoch) -> StoreResult<u64>
        where
            E: sqlx::Executor<'c, Database = Db>,
        {
            let done = bind_execution(sqlx::query(NODE_UPSERT.rows(1)), tenant, e, epoch)?
                .execute(executor)
                .await
                .map_err(|err| store_error(err, "node execution", format!("{}/{}", e.run_id, e.node_id)))?;
            Ok(done.rows_affected())
        }

        /// Most writes one group commit carries.
        const GROUP_COMMIT_MAX: usize = 128;

        /// A write the writer task commits, alone or with others. Every
        /// write the engine makes while it drives runs comes here: one
        /// connection writes, so none waits for another's lock (SQLite's
        /// busy handler sleeps milliseconds), and a commit carries whatever
        /// was waiting.
        #[derive(Debug)]
        enum Write {
            /// `save_node_execution`; answers the rows written (0: refused,
            /// see `node/upsert`).
            Execution { tenant: TenantId, execution: NodeExecution, epoch: Epoch },
            /// `start_run`; answers 1.
            Start { run: Run, owner: String, until: DateTime<Utc>, audit: AuditEntry },
            /// `settle_run`; answers the runs updated (0: the run has ended,
            /// is not the tenant's, or is leased at another epoch), or the
            /// refusal of one of its steps.
            Settle { run: Run, owner: String, epoch: Epoch, steps: Vec<NodeExecution> },
            /// `append_audit`; answers 1.
            Audit { entry: AuditEntry },
            /// `claim_run`; answers `Claimed`.
            Claim { tenant: TenantId, id: RunId, owner: String, until: DateTime<Utc>, now: DateTime<Utc> },
            /// `update_run`; answers 1, or the refusal.
            Update { run: Run, epoch: Epoch },
            /// `suspend_node`; answers `Suspended`, or the refusal.
            Suspend { tenant: TenantId, execution: NodeExecution, epoch: Epoch },
            /// `deliver`; answers `Delivered`. With `lease` (owner, until,
            /// now), a wait ended also takes its run's lease.
            /// With `audit`, the delivery's audit entry is written with it.
            Deliver {
                tenant: TenantId,
                held: HeldWakeup,
                lease: Option<(String, DateTime<Utc>, DateTime<Utc>)>,
                audit: Option<DeliveryAudit>,
            },
        }

        impl Write {
            /// Where a write that takes locks of its own goes in a group:
            /// wake-up keys first, then lease rows, each in one order, so
            /// that two engines' groups take them in the same order. `None`
            /// for the kinds written together by one statement each.
            fn lock_order(&self) -> Option<(u8, &str, String)> {
                match self {
                    Write::Suspend { tenant, execution, .. } => {
                        let key = execution.wait.as_ref().map(|w| w.key.clone()).unwrap_or_default();
                        Some((0, tenant.as_str(), key))
                    }
                    Write::Deliver { tenant, held, .. } => Some((0, tenant.as_str(), held.key.clone())),
                    Write::Claim { tenant, id, .. } => Some((1, tenant.as_str(), id.to_string())),
                    Write::Update { run, .. } => Some((1, run.tenant.as_str(), run.id.to_string())),
                    Write::Execution { .. } | Write::Start { .. } | Write::Settle { .. } | Write::Audit { .. } => None,
                }
            }
        }

        /// What the writer answers for one write.
        #[derive(Debug)]
        enum Answer {
            /// Rows written (see `Write`).
            Rows(u64),
            /// The epoch of the lease taken, or `None`: another engine holds
            /// it, or the run is not stored.
            Claimed(Option<Epoch>),
            /// A held wake-up the suspension took, or `None`: it waits.
            Suspended(Option<Resumed>),
            /// The wait the wake-up ended, or `None`: it is held.
            Delivered(Option<Woken>),
            /// The wait the wake-up ended, whose run's lease row another
            /// transaction held: the lease is to be claimed apart.
            DeliveredUnclaimed(Wait),
        }

        impl Answer {
            fn rows(self) -> u64 {
                match self {
                    Answer::Rows(rows) => rows,
                    _ => 1,
                }
            }
        }

        /// An answer of the wrong kind: the writer and its caller disagree.
        fn wrong_answer(answer: &Answer) -> StoreError {
            StoreError::Unavailable {
                message: format!("the store's writer answered {answer:?} to another kind of write"),
            }
        }

        /// A write waiting for the group commit, and who to tell.
        #[derive(Debug)]
        struct PendingWrite {
            write: Write,
            done: tokio::sync::oneshot::Sender<StoreResult<Answer>>,
        }

        /// Starts the writer task that commits the engine's writes for `pool`
        /// and returns its queue. One writer at a time: committing groups
        /// side by side made them smaller and measured slower on both
        /// backends. With `keep`, the writer holds one connection of `pool`
        /// for itself, so that its statements stay prepared there and no
        /// group waits for a connection; without, it takes one per group
        /// (when `pool`'s only connection serves every other call too). The
        /// task ends when the last store clone holding the queue is dropped.
        fn spawn_group_commits(pool: sqlx::Pool<Db>, keep: bool) -> tokio::sync::mpsc::Sender<PendingWrite> {
            let (writes, queue) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
            tokio::spawn(group_commits(pool, keep, queue));
            writes
        }

        impl $store {
            /// Hands `write` to the group commit: it returns once the commit
            /// that carries it is durable. The writer task, not the caller,
            /// holds the transaction, so a caller that stops waiting cannot
            /// leave one open.
            async fn write(&self, write: Write) -> StoreResult<Answer> {
                if !LOCKING_WRITES_GROUPED && write.lock_order().is_some() {
                    let mut conn = self
                        .pool
                        .acquire()
                        .await
                        .map_err(|err| store_error(err, "store connection", "write"))?;
                    return write_alone(&mut conn, &write).await;
                }
                let gone = || StoreError::Unavailable {
                    message: "the store's writer task stopped".into(),
                };
                let (done, outcome) = tokio::sync::oneshot::channel();
                self.writes.send(PendingWrite { write, done }).await.map_err(|_| gone())?;
                outcome.await.map_err(|_| gone())?
            }
        }

        impl $store {
            /// Begins a transaction on the store's database, for the host's
            /// own writes beside [`insert_run_in`](Self::insert_run_in) (the
            /// outbox pattern). On SQLite it takes the write lock at once
            /// (`BEGIN IMMEDIATE`): the engine writes on a connection of its
            /// own, and a transaction that read before it wrote would fail
            /// with "database is locked" had the engine committed meanwhile.
            pub async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
                self.pool
                    .begin_with(BEGIN)
                    .await
                    .map_err(|err| store_error(err, "store connection", "transaction"))
            }

            /// Stores `prepared` (a pending run and its audit entry, from
            /// `Engine::prepare_run`) on `conn`. Given the host's own
            /// transaction (`&mut *tx`), the run commits or rolls back with
            /// the host's writes: "the order is saved" and "the workflow
            /// started" are one change. Once it committed,
            /// `Engine::pick_up` drives the run; a run rolled back was never
            /// stored. A second insert of the same run is a `Conflict`.
            pub async fn insert_run_in(
                &self,
                conn: &mut <Db as sqlx::Database>::Connection,
                prepared: &PreparedRun,
            ) -> StoreResult<()> {
                insert_one_run(&mut *conn, prepared.run()).await?;
                insert_one_audit(&mut *conn, prepared.audit()).await
            }
        }

        /// Inserts `run` on `executor`: the store's pool, or a host's
        /// transaction.
        async fn insert_one_run<'c, E>(executor: E, run: &Run) -> StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = Db>,
        {
            bind_new_run(sqlx::query(RUN_INSERT.rows(1)), run)?
                .execute(executor)
                .await
                .map_err(|err| store_error(err, "run", run.id))?;
            Ok(())
        }

        /// Appends `entry` on `executor`: the store's pool, or a host's
        /// transaction.
        async fn insert_one_audit<'c, E>(executor: E, entry: &AuditEntry) -> StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = Db>,
        {
            bind_audit(sqlx::query(AUDIT_INSERT.rows(1)), entry)
                .execute(executor)
                .await
                .map_err(|err| store_error(err, "audit entry", &entry.entity_id))?;
            Ok(())
        }

        /// The writer task: takes every write waiting and commits them
        /// together. Under load one commit carries the transitions of many
        /// runs, sharing one commit and its WAL write or fsync; alone, a
        /// write commits at once.
        async fn group_commits(pool: sqlx::Pool<Db>, keep: bool, mut queue: tokio::sync::mpsc::Receiver<PendingWrite>) {
            let mut batch = Vec::with_capacity(GROUP_COMMIT_MAX);
            let mut kept: Option<sqlx::pool::PoolConnection<Db>> = None;
            while queue.recv_many(&mut batch, GROUP_COMMIT_MAX).await > 0 {
                let conn = match kept.take() {
                    Some(conn) => Ok(conn),
                    None => pool.acquire().await,
                };
                let results = match conn {
                    Ok(mut conn) => {
                        let results = commit_group(&mut conn, &batch).await;
                        // A connection that just failed may be broken: the
                        // next group takes a fresh one.
                        let healthy = results.iter().all(|r| !matches!(r, Err(err) if err.is_retryable()));
                        if keep && healthy {
                            kept = Some(conn);
                        }
                        results
                    }
                    Err(err) => {
                        let err = store_error(err, "store connection", "group commit");
                        batch.iter().map(|_| Err(err.clone())).collect()
                    }
                };
                for (write, result) in batch.drain(..).zip(results) {
                    // The caller may have given up waiting; nothing to tell then.
                    let _ = write.done.send(result);
                }
            }
        }

        async fn commit_group(conn: &mut <Db as sqlx::Database>::Connection, batch: &[PendingWrite]) -> Vec<StoreResult<Answer>> {
            // The common case, every write applied, costs one commit; only a
            // group holding a refused or failing write pays for learning which.
            let mut group = Group::default();
            for (i, pending) in batch.iter().enumerate() {
                match &pending.write {
                    Write::Execution { tenant, execution, epoch } => group.executions.push((tenant, execution, *epoch)),
                    Write::Start { run, owner, until, audit } => group.starts.push((run, owner, *until, audit)),
                    Write::Settle { run, owner, epoch, steps } => {
                        group.settles.push((run, owner, *epoch));
                        group.executions.extend(steps.iter().map(|step| (&run.tenant, step, *epoch)));
                    }
                    Write::Audit { entry } => group.audits.push(entry),
                    _ => group.singles.push(i),
                }
            }
            group.singles.sort_by(|&a, &b| batch[a].write.lock_order().cmp(&batch[b].write.lock_order()));
            // Which kinds the group holds: one kind alone needs no
            // transaction around its one statement.
            let kinds = [
                !group.executions.is_empty(),
                !group.starts.is_empty(),
                !group.settles.is_empty(),
                !group.audits.is_empty(),
                !group.singles.is_empty(),
            ];
            let only = |kind: usize| kinds.iter().enumerate().all(|(k, &held)| held == (k == kind));
            let together = if only(0) {
                // Node executions alone: one statement, its own commit.
                batch.len() > 1 && upsert_all(&mut *conn, &group.executions).await
            } else if only(1) {
                // Starts alone, settles alone or audit entries alone: one
                // statement, atomic without a transaction around it.
                start_all(&mut *conn, &group.starts).await.is_ok()
            } else if only(2) {
                settled_all(&mut *conn, &group.settles).await
            } else if only(3) {
                insert_audits(&mut *conn, &group.audits).await.is_ok()
            } else if only(4) && batch.len() == 1 {
                false
            } else {
                match commit_in_one_transaction(conn, batch, &group).await {
                    Some(mut answers) => {
                        return batch
                            .iter()
                            .enumerate()
                            .map(|(i, _)| Ok(answers.remove(&i).unwrap_or(Answer::Rows(1))))
                            .collect();
                    }
                    None => false,
                }
            };
            if together {
                return batch.iter().map(|_| Ok(Answer::Rows(1))).collect();
            }
            let mut results = Vec::with_capacity(batch.len());
            for pending in batch {
                // Each in its own commit: in Postgres a failed statement would
                // take a shared transaction down with it.
                results.push(write_alone(conn, &pending.write).await);
            }
            results
        }

        /// A group's writes by kind, each kind saved by one statement, and
        /// the writes that take locks of their own (`singles`, indices into
        /// the batch in `Write::lock_order`), written one at a time.
        #[derive(Default)]
        struct Group<'a> {
            executions: Vec<(&'a TenantId, &'a NodeExecution, Epoch)>,
            starts: Vec<(&'a Run, &'a str, DateTime<Utc>, &'a AuditEntry)>,
            settles: Vec<(&'a Run, &'a str, Epoch)>,
            audits: Vec<&'a AuditEntry>,
            singles: Vec<usize>,
        }

        /// Applies the whole group in one transaction, a statement per kind
        /// of write and one per single: the singles' answers when it
        /// committed with every write applied. Otherwise it is rolled back,
        /// and each write is redone alone.
        async fn commit_in_one_transaction(
            conn: &mut <Db as sqlx::Database>::Connection,
            batch: &[PendingWrite],
            group: &Group<'_>,
        ) -> Option<std::collections::HashMap<usize, Answer>> {
            let mut tx = sqlx::Connection::begin_with(conn, BEGIN).await.ok()?;
            let mut answers = std::collections::HashMap::with_capacity(group.singles.len());
            let (together, singles) = deliveries_together(batch, &group.singles);
            if !together.is_empty() {
                answers.extend(deliver_all(&mut tx, &together).await.ok()?);
            }
            for i in singles {
                answers.insert(i, write_single(&mut tx, &batch[i].write).await.ok()?);
            }
            if !group.executions.is_empty() && !upsert_all(&mut *tx, &group.executions).await {
                return None;
            }
            if !group.starts.is_empty() && start_all(&mut tx, &group.starts).await.is_err() {
                return None;
            }
            if !group.settles.is_empty() && !settled_all(&mut tx, &group.settles).await {
                return None;
            }
            if !group.audits.is_empty() && insert_audits(&mut tx, &group.audits).await.is_err() {
                return None;
            }
            tx.commit().await.ok()?;
            Some(answers)
        }

        /// A delivery of a group written with the others (`deliver_all`):
        /// its index in the batch, tenant, wake-up and lease request.
        /// A delivery of a group: its index in the batch and its write.
        struct GroupDelivery<'a> {
            i: usize,
            tenant: &'a TenantId,
            held: &'a HeldWakeup,
            lease: Option<&'a (String, DateTime<Utc>, DateTime<Utc>)>,
            audit: Option<&'a DeliveryAudit>,
        }

        /// Splits a group's `singles` into the deliveries that can be
        /// written together, on keys no other write of the group takes,
        /// and the writes to make one at a time, in lock order. Only where
        /// the writer groups locking writes (one writer: nothing else takes
        /// a key between the statements).
        fn deliveries_together<'a>(batch: &'a [PendingWrite], singles: &[usize]) -> (Vec<GroupDelivery<'a>>, Vec<usize>) {
            if !LOCKING_WRITES_GROUPED {
                return (Vec::new(), singles.to_vec());
            }
            let key = |i: usize| match &batch[i].write {
                Write::Suspend { .. } | Write::Deliver { .. } => batch[i].write.lock_order(),
                _ => None,
            };
            let mut together = Vec::new();
            let mut apart = Vec::new();
            for (n, &i) in singles.iter().enumerate() {
                // Sorted by lock order: writes on one key sit side by side.
                let shared = key(i).is_some()
                    && ((n > 0 && key(singles[n - 1]) == key(i)) || singles.get(n + 1).is_some_and(|&j| key(j) == key(i)));
                match &batch[i].write {
                    Write::Deliver { tenant, held, lease, audit } if !shared => together.push(GroupDelivery {
                        i,
                        tenant,
                        held,
                        lease: lease.as_ref(),
                        audit: audit.as_ref(),
                    }),
                    _ => apart.push(i),
                }
            }
            (together, apart)
        }

        /// `Write::Deliver` for each of `deliveries` (distinct keys), with
        /// three statements for all (take the waits, record the wake-ups on
        /// their nodes, mark the runs running), then a claim per wait taken
        /// when asked and a hold per wake-up that found no wait. Answers
        /// each delivery's index and answer.
        async fn deliver_all(
            conn: &mut <Db as sqlx::Database>::Connection,
            deliveries: &[GroupDelivery<'_>],
        ) -> StoreResult<Vec<(usize, Answer)>> {
            let fail = |err| store_error(err, "waits", "a group of deliveries");
            let mut take = sqlx::query(WAIT_TAKE.rows(deliveries.len()));
            for d in deliveries {
                take = take.bind(d.tenant.as_str()).bind(d.held.key.as_str());
            }
            let mut taken = std::collections::HashMap::with_capacity(deliveries.len());
            for row in take.fetch_all(&mut *conn).await.map_err(fail)? {
                let tenant: String = row.try_get("tenant_id").map_err(fail)?;
                let key: String = row.try_get("key").map_err(fail)?;
                let wait = wait_from_row(&row, key.clone()).map_err(fail)?;
                taken.insert((tenant, key), wait);
            }
            let woken: Vec<(&GroupDelivery<'_>, Wait)> = deliveries
                .iter()
                .filter_map(|d| taken.remove(&(d.tenant.as_str().to_string(), d.held.key.clone())).map(|wait| (d, wait)))
                .collect();
            if !woken.is_empty() {
                let resumed: Vec<Resumed> = woken
                    .iter()
                    .map(|(d, wait)| Resumed { wakeup: d.held.wakeup(), state: wait.state.clone() })
                    .collect();
                let mut record = sqlx::query(NODE_RESUME.rows(woken.len()));
                for ((_, wait), resumed) in woken.iter().zip(&resumed) {
                    record = record.bind(wait.run_id.as_uuid()).bind(wait.node_id.as_str()).bind(Json(resumed));
                }
                record.execute(&mut *conn).await.map_err(fail)?;
                let mut running = sqlx::query(RUN_MARK_RUNNING.rows(woken.len()));
                for (_, wait) in &woken {
                    running = running.bind(wait.run_id.as_uuid());
                }
                running.execute(&mut *conn).await.map_err(fail)?;
            }
            let mut answers = Vec::with_capacity(deliveries.len());
            let mut audits = Vec::new();
            let woke: std::collections::HashSet<usize> = woken.iter().map(|(d, _)| d.i).collect();
            let claimed = match LEASE_CLAIM_ROWS {
                Some(_) => Some(claim_all(&mut *conn, &woken).await?),
                None => None,
            };
            for (d, wait) in &woken {
                if let Some(audit) = d.audit {
                    audits.push(audit.entry(d.tenant, d.held, Some(wait)));
                }
                let answer = match (d.lease, &claimed) {
                    (Some((owner, ..)), Some(claimed)) => Answer::Delivered(Some(Woken {
                        wait: wait.clone(),
                        epoch: claimed.get(&(wait.run_id.as_uuid(), owner.clone())).copied(),
                    })),
                    (Some(lease), None) => claim_for_delivery(&mut *conn, d.tenant, wait.clone(), lease).await?,
                    (None, _) => Answer::Delivered(Some(Woken { wait: wait.clone(), epoch: None })),
                };
                answers.push((d.i, answer));
            }
            for d in deliveries.iter().filter(|d| !woke.contains(&d.i)) {
                hold_wakeup(&mut *conn, d.tenant, d.held).await?;
                if let Some(audit) = d.audit {
                    audits.push(audit.entry(d.tenant, d.held, None));
                }
                answers.push((d.i, Answer::Delivered(None)));
            }
            if !audits.is_empty() {
                insert_audits(&mut *conn, &audits.iter().collect::<Vec<_>>()).await?;
            }
            Ok(answers)
        }

        /// Takes the leases the deliveries of `woken` asked for, in one
        /// statement (`LEASE_CLAIM_ROWS`): the epoch of each lease taken, by
        /// run and owner.
        async fn claim_all(
            conn: &mut <Db as sqlx::Database>::Connection,
            woken: &[(&GroupDelivery<'_>, Wait)],
        ) -> StoreResult<std::collections::HashMap<(uuid::Uuid, String), Epoch>> {
            let asked: Vec<(&TenantId, &Wait, &(String, DateTime<Utc>, DateTime<Utc>))> =
                woken.iter().filter_map(|(d, wait)| d.lease.map(|lease| (d.tenant, wait, lease))).collect();
            let mut claimed = std::collections::HashMap::with_capacity(asked.len());
            if asked.is_empty() {
                return Ok(claimed);
            }
            let fail = |err| store_error(err, "run leases", "a group of deliveries");
            let mut query = sqlx::query(LEASE_CLAIMS.rows(asked.len()));
            for (tenant, wait, (owner, until, now)) in &asked {
                query = query
                    .bind(wait.run_id.as_uuid())
                    .bind(tenant.as_str())
                    .bind(owner.as_str())
                    .bind(ts(*until))
                    .bind(ts(*now));
            }
            for row in query.fetch_all(&mut *conn).await.map_err(fail)? {
                let run: uuid::Uuid = row.try_get("run_id").map_err(fail)?;
                let owner: String = row.try_get("owner").map_err(fail)?;
                let epoch: i64 = row.try_get("epoch").map_err(fail)?;
                claimed.insert((run, owner), Epoch::new(epoch.unsigned_abs()));
            }
            Ok(claimed)
        }

        /// Appends `entries` with one statement.
        async fn insert_audits(conn: &mut <Db as sqlx::Database>::Connection, entries: &[&AuditEntry]) -> StoreResult<()> {
            let mut query = sqlx::query(AUDIT_INSERT.rows(entries.len()));
            for entry in entries {
                query = bind_audit(query, entry);
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(|err| store_error(err, "audit entry", entries.first().map_or("", |e| e.entity_id.as_str())))?;
            Ok(())
        }

        /// A write that takes locks of its own, on `conn`, inside the
        /// caller's transaction.
        async fn write_single(conn: &mut <Db as sqlx::Database>::Connection, write: &Write) -> StoreResult<Answer> {
            match write {
                Write::Claim { tenant, id, owner, until, now } => {
                    claim_on(conn, tenant, *id, owner, *until, *now).await.map(Answer::Claimed)
                }
                Write::Update { run, epoch } => {
                    let done = bind_run(sqlx::query(RUN_UPDATE.as_str()), run)?
                        .bind(epoch_param(*epoch))
                        .execute(&mut *conn)
                        .await
                        .map_err(|err| store_error(err, "run", run.id))?;
                    if done.rows_affected() == 0 {
                        return Err(match run_refusal(&mut *conn, &run.tenant, run.id, Some(*epoch)).await {
                            Ok(Some(refusal)) | Err(refusal) => refusal,
                            Ok(None) => unexplained_refusal("run", run.id.to_string()),
                        });
                    }
                    Ok(Answer::Rows(1))
                }
                Write::Suspend { tenant, execution, epoch } => {
                    suspend_on(conn, tenant, execution, *epoch).await.map(Answer::Suspended)
                }
                Write::Deliver { tenant, held, lease, audit } => {
                    let ended = deliver_on(&mut *conn, tenant, held).await?;
                    if let Some(audit) = audit {
                        insert_one_audit(&mut *conn, &audit.entry(tenant, held, ended.as_ref())).await?;
                    }
                    let Some(wait) = ended else {
                        return Ok(Answer::Delivered(None));
                    };
                    match lease {
                        Some(lease) => Ok(claim_for_delivery(conn, tenant, wait, lease).await?),
                        None => Ok(Answer::Delivered(Some(Woken { wait, epoch: None }))),
                    }
                }
                Write::Audit { entry } => insert_one_audit(&mut *conn, entry).await.map(|()| Answer::Rows(1)),
                Write::Execution { tenant, execution, epoch } => {
                    save_execution(&mut *conn, tenant, execution, *epoch).await.map(Answer::Rows)
                }
                Write::Start { run, owner, until, audit } => {
                    start_all(&mut *conn, &[(run, owner, *until, audit)]).await.map(|()| Answer::Rows(1))
                }
                Write::Settle { run, owner, epoch, steps } => {
                    for step in steps {
                        if save_execution(&mut *conn, &run.tenant, step, *epoch).await? == 0 {
                            return Err(refused_node(&mut *conn, &run.tenant, step, *epoch).await);
                        }
                    }
                    let settled = settle_all(&mut *conn, &[(run, owner, *epoch)]).await?;
                    if settled == 0 && !steps.is_empty() {
                        // An error, so that the steps roll back with it.
                        return Err(match run_refusal(&mut *conn, &run.tenant, run.id, Some(*epoch)).await {
                            Ok(Some(refusal)) | Err(refusal) => refusal,
                            Ok(None) => unexplained_refusal("run", run.id.to_string()),
                        });
                    }
                    Ok(Answer::Rows(settled))
                }
            }
        }

        /// Settles every run of `settles`: true when each was replaced.
        async fn settled_all(conn: &mut <Db as sqlx::Database>::Connection, settles: &[(&Run, &str, Epoch)]) -> bool {
            matches!(settle_all(conn, settles).await, Ok(n) if n == settles.len() as u64)
        }

        /// One write in a commit of its own: a transaction for the writes
        /// of several statements, which is rolled back when they fail.
        async fn write_alone(conn: &mut <Db as sqlx::Database>::Connection, write: &Write) -> StoreResult<Answer> {
            let several = match write {
                Write::Suspend { .. } | Write::Deliver { .. } => true,
                Write::Settle { steps, .. } => !steps.is_empty(),
                _ => false,
            };
            if !several {
                return write_single(conn, write).await;
            }
            let fail = |err| store_error(err, "store connection", "write");
            let mut tx = sqlx::Connection::begin_with(conn, BEGIN).await.map_err(fail)?;
            let answer = write_single(&mut tx, write).await?;
            tx.commit().await.map_err(fail)?;
            Ok(answer)
        }

        /// Inserts started runs, their starters' leases and their audit
        /// entries with one statement (the backend's `RUN_STARTS`): all of
        /// them, or none when one is refused.
        async fn start_all(
            conn: &mut <Db as sqlx::Database>::Connection,
            starts: &[(&Run, &str, DateTime<Utc>, &AuditEntry)],
        ) -> StoreResult<()> {
            let id = starts.first().map(|s| s.0.id.to_string()).unwrap_or_default();
            let fail = |err| store_error(err, "run", &id);
            let mut query = sqlx::query(RUN_START_ROWS.rows(starts.len()));
            for (run, owner, until, entry) in starts {
                query = bind_audit(bind_new_run(query, run)?.bind(*owner).bind(ts(*until)), entry);
            }
            query.execute(&mut *conn).await.map_err(fail)?;
            Ok(())
        }

        /// Replaces settled runs and gives up the callers' leases on them
        /// with one statement (the backend's `RUN_SETTLES`); returns the
        /// runs replaced: all, or none when one had ended or is not stored
        /// for its tenant, which refuses the statement whole.
        async fn settle_all(
            conn: &mut <Db as sqlx::Database>::Connection,
            settles: &[(&Run, &str, Epoch)],
        ) -> StoreResult<u64> {
            let id = settles.first().map(|s| s.0.id.to_string()).unwrap_or_default();
            let fail = |err| store_error(err, "run", &id);
            let mut query = sqlx::query(RUN_SETTLE_ROWS.rows(settles.len()));
            for (run, owner, epoch) in settles {
                query = bind_run(query, run)?.bind(*owner).bind(epoch_param(*epoch));
            }
            match query.execute(&mut *conn).await {
                Ok(_) => Ok(settles.len() as u64),
                Err(sqlx::Error::Database(err)) if err.message().contains(RUN_NOT_SETTLED) => Ok(0),
                Err(err) => Err(fail(err)),
            }
        }

        fn bind_audit<'q>(
            query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
            entry: &'q AuditEntry,
        ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments> {
            query
                .bind(entry.tenant.as_str())
                .bind(ts(entry.at))
                .bind(entry.actor.as_deref())
                .bind(name_of(&entry.action))
                .bind(entry.entity_type.as_str())
                .bind(entry.entity_id.as_str())
                .bind(Json(&entry.details))
        }

        /// Saves `executions` with one `node/upsert` per `GROUP_COMMIT_MAX`
        /// rows: true when every row was saved. When a statement skipped a
        /// row, the rows saved are saved again, identically, by the
        /// row-by-row pass.
        async fn upsert_all(conn: &mut <Db as sqlx::Database>::Connection, executions: &[(&TenantId, &NodeExecution, Epoch)]) -> bool {
            // A group holds at most GROUP_COMMIT_MAX writes, but a settle
            // carries the run's steps with it: one statement per chunk.
            for chunk in executions.chunks(GROUP_COMMIT_MAX) {
                let mut query = sqlx::query(NODE_UPSERT.rows(chunk.len()));
                for (tenant, execution, epoch) in chunk {
                    query = match bind_execution(query, tenant, execution, *epoch) {
                        Ok(query) => query,
                        Err(_) => return false,
                    };
                }
                if !matches!(query.execute(&mut *conn).await, Ok(done) if done.rows_affected() == chunk.len() as u64) {
                    return false;
                }
            }
            true
        }

        /// A statement over a list of rows: its template's `{rows}` becomes
        /// that many tuples of `columns` parameters. Each size, up to
        /// `GROUP_COMMIT_MAX` rows (which `recv_many` never exceeds), is
        /// built the first time it is needed: some statements only ever
        /// run with one row, and the largest sizes come only under load.
        struct RowsStatement {
            template: &'static str,
            columns: usize,
            built: [std::sync::OnceLock<String>; GROUP_COMMIT_MAX + 1],
        }

        impl RowsStatement {
            const fn new(template: &'static str, columns: usize) -> Self {
                Self {
                    template,
                    columns,
                    built: [const { std::sync::OnceLock::new() }; GROUP_COMMIT_MAX + 1],
                }
            }

            fn rows(&self, rows: usize) -> &str {
                let n = rows.clamp(1, GROUP_COMMIT_MAX);
                self.built[n].get_or_init(|| {
                    let tuples: Vec<String> = (0..n)
                        .map(|row| {
                            let params: Vec<String> = (1..=self.columns)
                                .map(|col| parameter(row * self.columns + col))
                                .collect();
                            format!("({})", params.join(", "))
                        })
                        .collect();
                    self.template
                        .replace("{rows}", &tuples.join(", "))
                        .replace("{lease_lock}", LEASE_LOCK)
                })
            }
        }

        static NODE_UPSERT: RowsStatement = RowsStatement::new(sql!("node/upsert"), 14);
        /// `sql` with the backend's lease lock (what a write holds) in place.
        fn with_locks(sql: &str) -> String {
            sql.replace("{lease_lock}", LEASE_LOCK)
        }
        static RUN_UPDATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| with_locks(sql!("run/update")));
        static RUN_END: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| with_locks(sql!("run/end")));
        static RUN_WRITE_STATE: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| with_locks(sql!("run/write_state")));
        /// The lease row, unlocked.
        static LEASE_ROW: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| sql!("lease/lock").replace("{lease_claim_lock}", ""));
        /// The claim lock, skipping a row another transaction holds.
        static LEASE_LOCK_SKIP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            sql!("lease/lock").replace(
                "{lease_claim_lock}",
                &LEASE_CLAIM_LOCK.map(|lock| format!("{lock} SKIP LOCKED")).unwrap_or_default(),
            )
        });
        static RUN_INSERT: RowsStatement = RowsStatement::new(sql!("run/insert_rows"), 13);
        static WAIT_TAKE: RowsStatement = RowsStatement::new(sql!("wait/take_rows"), 2);
        static NODE_RESUME: RowsStatement = RowsStatement::new(sql!("node/resume_rows"), 3);
        static RUN_MARK_RUNNING: RowsStatement = RowsStatement::new(sql!("run/mark_running_rows"), 1);
        static LEASE_RELEASE: RowsStatement = RowsStatement::new(sql!("lease/release_rows"), 2);
        static AUDIT_INSERT: RowsStatement = RowsStatement::new(sql!("audit/insert_rows"), 7);
        static RUN_START_ROWS: RowsStatement = RowsStatement::new(RUN_STARTS, 22);
        static LEASE_CLAIMS: RowsStatement = RowsStatement::new(
            match LEASE_CLAIM_ROWS {
                Some(sql) => sql,
                None => "",
            },
            5,
        );
        static RUN_SETTLE_ROWS: RowsStatement = RowsStatement::new(RUN_SETTLES, 12);
        /// How the settle statement says a run was not settled (see
        /// `run/settle_rows.<backend>.sql`).
        const RUN_NOT_SETTLED: &str = "concertmaster: run not settled";

        /// Why a write into run `id` would be refused, if it would: the run
        /// does not exist for the tenant, has ended, or (for a write naming
        /// `epoch`) is leased at another epoch.
        async fn run_refusal<'c, E>(executor: E, tenant: &TenantId, id: RunId, epoch: Option<Epoch>) -> StoreResult<Option<StoreError>>
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
                Ok((parse_name("status", row.try_get("status")?)?, row.try_get("epoch")?))
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
        async fn refused_run(pool: &sqlx::Pool<Db>, tenant: &TenantId, id: RunId, epoch: Option<Epoch>) -> StoreError {
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
                        Ok((parse_name("status", row.try_get("status")?)?, to_u32("attempt", row.try_get("attempt")?)?))
                    };
                    match read() {
                        Ok(stored) => stored,
                        Err(err) => return store_error(err, "node execution", entity()),
                    }
                }
                Ok(None) => return unexplained_refusal("node execution", entity()),
                Err(err) => return store_error(err, "node execution", entity()),
            };
            StoreError::check_forward_parts(id, &execution.node_id, stored, (execution.status, execution.attempt))
                .unwrap_or_else(|| unexplained_refusal("node execution", entity()))
        }

        /// Applies the migrations the database lacks, each in its own
        /// transaction with its ledger row, so a failing one leaves the ones
        /// before it applied. `lock`, when given, runs first in each
        /// transaction so that engines starting together migrate one at a
        /// time; the applied version is read after it.
        async fn apply_migrations(
            pool: &sqlx::Pool<Db>,
            lock: Option<&'static str>,
            sql_of: fn(&$crate::migrate::Migration) -> &'static str,
        ) -> Result<(), $crate::error::Error> {
            use sqlx::Executor;
            use $crate::error::Error;
            use $crate::migrate::{latest, CREATE_LEDGER, MIGRATIONS};
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
                let applied: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0) FROM concertmaster_migrations",
                )
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
                tracing::info!(version = migration.version, backend = <Db as sqlx::Database>::NAME, "store migrated");
            }
            Ok(())
        }

        #[async_trait]
        impl WorkflowStore for $store {
            async fn insert_workflow(&self, tenant: &TenantId, def: &WorkflowDefinition) -> StoreResult<()> {
                let id = format!("{}@{}", def.id, def.version);
                let result = sqlx::query(sql!("workflow/insert"))
                    .bind(tenant.as_str())
                    .bind(def.id.as_str())
                    .bind(to_i32(def.version)?)
                    .bind(def.name.as_str())
                    .bind(def.template)
                    .bind(Json(&def.tags))
                    .bind(Json(def))
                    .bind(ts(Utc::now()))
                    .execute(&self.pool)
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(err) => match store_error(err, "workflow", &id) {
                        StoreError::Conflict { .. } => {
                            Err(StoreError::version_exists("workflow", &def.id, def.version, "publish a new version"))
                        }
                        other => Err(other),
                    },
                }
            }

            async fn workflow(
                &self,
                tenant: &TenantId,
                id: &WorkflowId,
                version: Option<u32>,
            ) -> StoreResult<Option<WorkflowDefinition>> {
                let row = match version {
                    Some(v) => {
                        sqlx::query(sql!("workflow/get_version"))
                            .bind(tenant.as_str())
                            .bind(id.as_str())
                            .bind(to_i32(v)?)
                            .fetch_optional(&self.pool)
                            .await
                    }
                    None => {
                        sqlx::query(sql!("workflow/get_latest"))
                            .bind(tenant.as_str())
                            .bind(id.as_str())
                            .fetch_optional(&self.pool)
                            .await
                    }
                }
                .map_err(|err| store_error(err, "workflow", id))?;
                row.map(|row| row.try_get::<Json<WorkflowDefinition>, _>("definition").map(|j| j.0))
                    .transpose()
                    .map_err(|err| store_error(err, "workflow", id))
            }

            async fn workflow_versions(&self, tenant: &TenantId, id: &WorkflowId) -> StoreResult<Vec<u32>> {
                let rows = sqlx::query(sql!("workflow/versions"))
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|err| store_error(err, "workflow", id))?;
                rows.iter()
                    .map(|row| to_u32("version", row.try_get("version")?))
                    .collect::<Result<_, _>>()
                    .map_err(|err| store_error(err, "workflow", id))
            }

            async fn workflows(&self, tenant: &TenantId) -> StoreResult<Vec<WorkflowDefinition>> {
                let rows = sqlx::query(sql!("workflow/list_latest"))
                    .bind(tenant.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|err| store_error(err, "workflows of tenant", tenant))?;
                rows.iter()
                    .map(|row| row.try_get::<Json<WorkflowDefinition>, _>("definition").map(|j| j.0))
                    .collect::<Result<_, _>>()
                    .map_err(|err| store_error(err, "workflows of tenant", tenant))
            }
        }

        #[async_trait]
        impl RunStore for $store {
            async fn insert_run(&self, run: &Run) -> StoreResult<()> {
                insert_one_run(&self.pool, run).await
            }

            async fn start_run(&self, start: &RunStart<'_>) -> StoreResult<()> {
                self.write(Write::Start {
                    run: start.run.clone(),
                    owner: start.owner.to_string(),
                    until: start.lease_until,
                    audit: start.audit.clone(),
                })
                .await?;
                Ok(())
            }

            async fn settle_run(&self, run: &Run, owner: &str, epoch: Epoch, steps: &[NodeExecution]) -> StoreResult<()> {
                let write = Write::Settle {
                    run: run.clone(),
                    owner: owner.to_string(),
                    epoch,
                    steps: steps.to_vec(),
                };
                if self.write(write).await?.rows() == 0 {
                    return Err(refused_run(&self.pool, &run.tenant, run.id, Some(epoch)).await);
                }
                Ok(())
            }

            async fn run(&self, tenant: &TenantId, id: RunId) -> StoreResult<Option<Run>> {
                sqlx::query(sql!("run/get"))
                    .bind(id.as_uuid())
                    .bind(tenant.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .and_then(|row| row.as_ref().map(run_from_row).transpose())
                    .map_err(|err| store_error(err, "run", id))
            }

            async fn update_run(&self, run: &Run, epoch: Epoch) -> StoreResult<()> {
                self.write(Write::Update { run: run.clone(), epoch }).await?;
                Ok(())
            }

            async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> StoreResult<Vec<Run>> {
                let mut statuses = filter.statuses.iter().map(|s| Some(s.as_str()));
                let mut query = sqlx::query(sql!("run/list"))
                    .bind(tenant.as_str())
                    .bind(filter.workflow_id.as_ref().map(|w| w.as_str()))
                    .bind(filter.statuses.is_empty());
                for _ in 0..6 {
                    query = query.bind(statuses.next().flatten());
                }
                query
                    .bind(limit(filter.effective_limit()))
                    .bind(filter.version.map(to_i32).transpose()?)
                    .bind(ts_opt(filter.created_from))
                    .bind(ts_opt(filter.created_before))
                    .bind(filter.error_pattern())
                    .bind(filter.parent.map(|p| p.as_uuid()))
                    .bind(ts_opt(filter.after.map(|(at, _)| at)))
                    .bind(filter.after.map(|(_, id)| id.as_uuid()))
                    .fetch_all(&self.pool)
                    .await
                    .and_then(|rows| rows.iter().map(run_from_row).collect())
                    .map_err(|err| store_error(err, "runs of tenant", tenant))
            }

            async fn save_node_execution(&self, tenant: &TenantId, execution: &NodeExecution, epoch: Epoch) -> StoreResult<()> {
                let write = Write::Execution {
                    tenant: tenant.clone(),
                    execution: execution.clone(),
                    epoch,
                };
                if self.write(write).await?.rows() == 0 {
                    let mut conn = self
                        .pool
                        .acquire()
                        .await
                        .map_err(|err| store_error(err, "run", execution.run_id))?;
                    return Err(refused_node(&mut conn, tenant, execution, epoch).await);
                }
                Ok(())
            }

            async fn node_executions(&self, tenant: &TenantId, id: RunId) -> StoreResult<Vec<NodeExecution>> {
                sqlx::query(sql!("node/list"))
                    .bind(id.as_uuid())
                    .bind(tenant.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .and_then(|rows| rows.iter().map(execution_from_row).collect())
                    .map_err(|err| store_error(err, "node executions of run", id))
            }

            async fn end_run(
                &self,
                tenant: &TenantId,
                id: RunId,
                status: RunStatus,
                reason: &str,
                at: DateTime<Utc>,
                epoch: Option<Epoch>,
            ) -> StoreResult<Option<Run>> {
                if let Some(refused) = StoreError::check_end_status(id, status) {
                    return Err(refused);
                }
                let fail = |err| store_error(err, "run", id);
                let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
                let ended = sqlx::query(RUN_END.as_str())
                    .bind(id.as_uuid())
                    .bind(tenant.as_str())
                    .bind(status.as_str())
                    .bind(reason)
                    .bind(ts(at))
                    .bind(epoch.map(epoch_param))
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?
                    .rows_affected();
                if ended == 0 && epoch.is_some() {
                    // An open run not ended: leased at another epoch.
                    if let Some(StoreError::Fenced { run, epoch }) = run_refusal(&mut *tx, tenant, id, epoch).await? {
                        return Err(StoreError::Fenced { run, epoch });
                    }
                }
                if ended > 0 {
                    sqlx::query(sql!("node/cancel_open"))
                        .bind(id.as_uuid())
                        .bind(ts(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                    sqlx::query(sql!("wait/delete_for_run"))
                        .bind(id.as_uuid())
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
                let run = sqlx::query(sql!("run/get"))
                    .bind(id.as_uuid())
                    .bind(tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .and_then(|row| row.as_ref().map(run_from_row).transpose())
                    .map_err(fail)?;
                tx.commit().await.map_err(fail)?;
                Ok(run)
            }

            async fn migrate_run(&self, migration: &RunMigration<'_>) -> StoreResult<()> {
                let id = migration.run;
                let fail = |err| store_error(err, "run", id);
                let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
                let moved = sqlx::query(sql!("run/migrate"))
                    .bind(id.as_uuid())
                    .bind(migration.tenant.as_str())
                    .bind(to_i32(migration.to_version)?)
                    .bind(to_i32(migration.from_version)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?
                    .rows_affected();
                if moved == 0 {
                    let exists = sqlx::query_scalar::<_, String>(sql!("run/exists"))
                        .bind(id.as_uuid())
                        .bind(migration.tenant.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(fail)?;
                    return Err(match exists {
                        None => StoreError::run_not_found(id),
                        Some(_) => StoreError::not_waiting_on(id, migration.from_version),
                    });
                }
                for (old, new) in migration.renames {
                    let wait = sqlx::query_scalar::<_, Option<Json<Wait>>>(sql!("node/wait_of"))
                        .bind(id.as_uuid())
                        .bind(old.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(fail)?
                        .flatten()
                        .map(|Json(wait)| Wait { node_id: new.clone(), ..wait });
                    sqlx::query(sql!("node/rename"))
                        .bind(id.as_uuid())
                        .bind(old.as_str())
                        .bind(new.as_str())
                        .bind(wait.as_ref().map(Json))
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                    sqlx::query(sql!("wait/rename_node"))
                        .bind(id.as_uuid())
                        .bind(old.as_str())
                        .bind(new.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
                bind_audit(sqlx::query(AUDIT_INSERT.rows(1)), migration.audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                tx.commit().await.map_err(fail)
            }

            async fn runs_in_flight(&self) -> StoreResult<Vec<(TenantId, RunId)>> {
                let rows = sqlx::query(sql!("run/in_flight"))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|err| store_error(err, "runs", "in flight"))?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            TenantId::new(row.try_get::<String, _>("tenant_id")?),
                            RunId::from_uuid(row.try_get("id")?),
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|err| store_error(err, "runs", "in flight"))
            }
        }

        #[async_trait]
        impl WaitStore for $store {
            async fn suspend_node(&self, tenant: &TenantId, execution: &NodeExecution, epoch: Epoch) -> StoreResult<Option<Resumed>> {
                let write = Write::Suspend {
                    tenant: tenant.clone(),
                    execution: execution.clone(),
                    epoch,
                };
                match self.write(write).await? {
                    Answer::Suspended(resumed) => Ok(resumed),
                    other => Err(wrong_answer(&other)),
                }
            }

            async fn take_wait(
                &self,
                tenant: &TenantId,
                key: &str,
                wakeup: Wakeup,
                audit: Option<&DeliveryAudit>,
            ) -> StoreResult<Option<Wait>> {
                let fail = |err| store_error(err, "wait", key);
                let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
                let taken = take_wait_on(&mut tx, tenant, key, wakeup).await?;
                if let Some(wait) = &taken {
                    if let Some(audit) = audit {
                        insert_one_audit(&mut *tx, &audit.resumed(tenant, wait, key)).await?;
                    }
                    tx.commit().await.map_err(fail)?;
                }
                Ok(taken)
            }

            async fn deliver(
                &self,
                tenant: &TenantId,
                wakeup: &HeldWakeup,
                lease: Option<LeaseRequest<'_>>,
                audit: Option<&DeliveryAudit>,
            ) -> StoreResult<Option<Woken>> {
                let ask = lease.map(|lease| (lease.owner.to_string(), lease.until, lease.now));
                let write = Write::Deliver {
                    tenant: tenant.clone(),
                    held: wakeup.clone(),
                    lease: ask.clone(),
                    audit: audit.cloned(),
                };
                match (self.write(write).await?, ask) {
                    (Answer::Delivered(woken), _) => Ok(woken),
                    (Answer::DeliveredUnclaimed(wait), Some((owner, until, now))) => {
                        let epoch = self.claim_run(tenant, wait.run_id, &owner, until, now).await?;
                        Ok(Some(Woken { wait, epoch }))
                    }
                    (other, _) => Err(wrong_answer(&other)),
                }
            }

            async fn held_wakeups(&self, tenant: &TenantId) -> StoreResult<Vec<HeldWakeup>> {
                sqlx::query(sql!("wakeup/list"))
                    .bind(tenant.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .and_then(|rows| rows.iter().map(held_from_row).collect())
                    .map_err(|err| store_error(err, "held wake-ups of tenant", tenant))
            }

            async fn expire_wakeups(&self, now: DateTime<Utc>, max: usize) -> StoreResult<Vec<(TenantId, HeldWakeup)>> {
                let fail = |err| store_error(err, "held wake-ups", "expiring");
                let rows = sqlx::query(sql!("wakeup/expire"))
                    .bind(ts(now))
                    .bind(limit(max))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(fail)?;
                let mut expired = rows
                    .iter()
                    .map(|row| {
                        let tenant = TenantId::new(row.try_get::<String, _>("tenant_id")?);
                        Ok((tenant, held_from_row(row)?))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(fail)?;
                expired.sort_by(|a, b| (a.1.expires_at, &a.1.key).cmp(&(b.1.expires_at, &b.1.key)));
                Ok(expired)
            }

            async fn discard_wakeup(&self, tenant: &TenantId, key: &str) -> StoreResult<bool> {
                let done = sqlx::query(sql!("wakeup/discard"))
                    .bind(tenant.as_str())
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(|err| store_error(err, "held wake-up", key))?;
                Ok(done.rows_affected() > 0)
            }

            async fn due_waits(&self, now: DateTime<Utc>, max: usize) -> StoreResult<Vec<(TenantId, Wait)>> {
                let rows = sqlx::query(sql!("wait/due"))
                    .bind(ts(now))
                    .bind(limit(max))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|err| store_error(err, "waits", "due"))?;
                rows.iter()
                    .map(|row| {
                        let tenant = TenantId::new(row.try_get::<String, _>("tenant_id")?);
                        let key: String = row.try_get("key")?;
                        Ok((tenant, wait_from_row(row, key)?))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|err| store_error(err, "waits", "due"))
            }

            async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
                let row = sqlx::query(sql!("wait/next_due"))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|err| store_error(err, "waits", "next due"))?;
                read_ts_opt(&row, "next_due").map_err(|err| store_error(err, "waits", "next due"))
            }
        }

        #[async_trait]
        impl LeaseStore for $store {
            async fn claim_run(
                &self,
                tenant: &TenantId,
                id: RunId,
                owner: &str,
                until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Epoch>> {
                let write = Write::Claim {
                    tenant: tenant.clone(),
                    id,
                    owner: owner.to_string(),
                    until,
                    now,
                };
                match self.write(write).await? {
                    Answer::Claimed(epoch) => Ok(epoch),
                    other => Err(wrong_answer(&other)),
                }
            }

            async fn claim_runs(&self, claim: &RunClaim<'_>) -> StoreResult<Vec<(TenantId, RunId)>> {
                let RunClaim { owner, until, now, .. } = *claim;
                let fail = |err| store_error(err, "run leases", owner);
                let skip: Vec<&str> = claim.skip.iter().map(TenantId::as_str).collect();
                let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
                let rows = sqlx::query(LEASE_CANDIDATES)
                    .bind(owner)
                    .bind(ts(now))
                    .bind(limit(claim.limit))
                    .bind(limit(claim.per_tenant))
                    .bind(Json(skip))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(fail)?;
                let candidates = rows
                    .iter()
                    .map(|row| {
                        Ok((
                            TenantId::new(row.try_get::<String, _>("tenant_id")?),
                            RunId::from_uuid(row.try_get("id")?),
                            row.try_get::<Option<bool>, _>("held")?.unwrap_or(false),
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(fail)?;
                let mut claimed = Vec::with_capacity(candidates.len());
                for (tenant, id, held) in candidates {
                    if held {
                        // The caller's own live lease: nothing to take, and
                        // nothing to lock (its renewal must not wait).
                        claimed.push((tenant, id));
                        continue;
                    }
                    // A lease row a write still holds is left for a later
                    // claim: waiting here, with candidates locked, could
                    // deadlock with that write.
                    if lease_row_busy(&mut tx, id).await.map_err(fail)? {
                        continue;
                    }
                    let taken = sqlx::query_scalar::<_, i64>(sql!("lease/take"))
                        .bind(id.as_uuid())
                        .bind(owner)
                        .bind(ts(until))
                        .bind(ts(now))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(fail)?;
                    if taken.is_some() {
                        claimed.push((tenant, id));
                    }
                }
                tx.commit().await.map_err(fail)?;
                Ok(claimed)
            }

            async fn renew_leases(&self, owner: &str, runs: &[RunId], until: DateTime<Utc>) -> StoreResult<Vec<RunId>> {
                renew_rows(self, owner, runs, until).await
            }

            async fn release_run(&self, id: RunId, owner: &str) -> StoreResult<()> {
                sqlx::query(LEASE_RELEASE.rows(1))
                    .bind(id.as_uuid())
                    .bind(owner)
                    .execute(&self.pool)
                    .await
                    .map_err(|err| store_error(err, "run lease", id))?;
                Ok(())
            }
        }

        #[async_trait]
        impl AuditStore for $store {
            async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
                self.write(Write::Audit { entry: entry.clone() }).await?;
                Ok(())
            }

            async fn audit_log(&self, tenant: &TenantId, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
                sqlx::query(sql!("audit/list"))
                    .bind(tenant.as_str())
                    .bind(filter.entity_type.as_deref())
                    .bind(filter.entity_id.as_deref())
                    .bind(ts_opt(filter.since))
                    .bind(limit(filter.effective_limit()))
                    .fetch_all(&self.pool)
                    .await
                    .and_then(|rows| rows.iter().map(audit_from_row).collect())
                    .map_err(|err| store_error(err, "audit log of tenant", tenant))
            }
        }

    };
}
pub(crate) use sql_store;
