//! The group commit's writer: the writes it takes, its task, and how a
//! group is committed or redone write by write.

use super::*;

pub(super) async fn save_execution<'c, E>(
    executor: E,
    tenant: &TenantId,
    e: &NodeExecution,
    epoch: Epoch,
) -> StoreResult<u64>
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
pub(super) const GROUP_COMMIT_MAX: usize = 128;

/// A write the writer task commits, alone or with others. Every
/// write the engine makes while it drives runs comes here: one
/// connection writes, so none waits for another's lock (SQLite's
/// busy handler sleeps milliseconds), and a commit carries whatever
/// was waiting.
#[derive(Debug)]
pub(super) enum Write {
    /// `save_node_execution`; answers the rows written (0: refused,
    /// see `node/upsert`).
    Execution {
        tenant: TenantId,
        execution: NodeExecution,
        epoch: Epoch,
    },
    /// `start_run`; answers 1.
    Start {
        run: Run,
        owner: String,
        until: DateTime<Utc>,
        audit: AuditEntry,
    },
    /// `settle_run`; answers the runs updated (0: the run has ended,
    /// is not the tenant's, or is leased at another epoch), or the
    /// refusal of one of its steps.
    Settle {
        run: Run,
        owner: String,
        epoch: Epoch,
        steps: Vec<NodeExecution>,
    },
    /// `append_audit`; answers 1.
    Audit { entry: AuditEntry },
    /// `claim_run`; answers `Claimed`.
    Claim {
        tenant: TenantId,
        id: RunId,
        owner: String,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// `update_run`; answers 1, or the refusal.
    Update { run: Run, epoch: Epoch },
    /// `suspend_node`; answers `Suspended`, or the refusal.
    Suspend {
        tenant: TenantId,
        execution: NodeExecution,
        epoch: Epoch,
    },
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
    pub(super) fn lock_order(&self) -> Option<(u8, &str, String)> {
        match self {
            Write::Suspend {
                tenant, execution, ..
            } => {
                let key = execution
                    .wait
                    .as_ref()
                    .map(|w| w.key.clone())
                    .unwrap_or_default();
                Some((0, tenant.as_str(), key))
            }
            Write::Deliver { tenant, held, .. } => Some((0, tenant.as_str(), held.key.clone())),
            Write::Claim { tenant, id, .. } => Some((1, tenant.as_str(), id.to_string())),
            Write::Update { run, .. } => Some((1, run.tenant.as_str(), run.id.to_string())),
            Write::Execution { .. }
            | Write::Start { .. }
            | Write::Settle { .. }
            | Write::Audit { .. } => None,
        }
    }
}

/// What the writer answers for one write.
#[derive(Debug)]
pub(super) enum Answer {
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
    pub(super) fn rows(self) -> u64 {
        match self {
            Answer::Rows(rows) => rows,
            _ => 1,
        }
    }
}

/// An answer of the wrong kind: the writer and its caller disagree.
pub(super) fn wrong_answer(answer: &Answer) -> StoreError {
    StoreError::Unavailable {
        message: format!("the store's writer answered {answer:?} to another kind of write"),
    }
}

/// A write waiting for the group commit, and who to tell.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    pub(super) write: Write,
    pub(super) done: tokio::sync::oneshot::Sender<StoreResult<Answer>>,
}

/// Starts the writer task that commits the engine's writes for `pool`
/// and returns its queue. One writer at a time: committing groups
/// side by side made them smaller and measured slower on both
/// backends. With `keep`, the writer holds one connection of `pool`
/// for itself, so that its statements stay prepared there and no
/// group waits for a connection; without, it takes one per group
/// (when `pool`'s only connection serves every other call too). The
/// task ends when the last store clone holding the queue is dropped.
pub(crate) fn spawn_group_commits(
    pool: sqlx::Pool<Db>,
    keep: bool,
) -> tokio::sync::mpsc::Sender<PendingWrite> {
    let (writes, queue) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
    tokio::spawn(group_commits(pool, keep, queue));
    writes
}

impl This {
    /// Hands `write` to the group commit: it returns once the commit
    /// that carries it is durable. The writer task, not the caller,
    /// holds the transaction, so a caller that stops waiting cannot
    /// leave one open.
    pub(super) async fn write(&self, write: Write) -> StoreResult<Answer> {
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
        self.writes
            .send(PendingWrite { write, done })
            .await
            .map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?
    }
}

impl This {
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
pub(super) async fn insert_one_run<'c, E>(executor: E, run: &Run) -> StoreResult<()>
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
pub(crate) async fn insert_one_audit<'c, E>(executor: E, entry: &AuditEntry) -> StoreResult<()>
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
pub(super) async fn group_commits(
    pool: sqlx::Pool<Db>,
    keep: bool,
    mut queue: tokio::sync::mpsc::Receiver<PendingWrite>,
) {
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
                let healthy = results
                    .iter()
                    .all(|r| !matches!(r, Err(err) if err.is_retryable()));
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

pub(super) async fn commit_group(
    conn: &mut <Db as sqlx::Database>::Connection,
    batch: &[PendingWrite],
) -> Vec<StoreResult<Answer>> {
    // The common case, every write applied, costs one commit; only a
    // group holding a refused or failing write pays for learning which.
    let mut group = Group::default();
    for (i, pending) in batch.iter().enumerate() {
        match &pending.write {
            Write::Execution {
                tenant,
                execution,
                epoch,
            } => group.executions.push((tenant, execution, *epoch)),
            Write::Start {
                run,
                owner,
                until,
                audit,
            } => group.starts.push((run, owner, *until, audit)),
            Write::Settle {
                run,
                owner,
                epoch,
                steps,
            } => {
                group.settles.push((run, owner, *epoch));
                group
                    .executions
                    .extend(steps.iter().map(|step| (&run.tenant, step, *epoch)));
            }
            Write::Audit { entry } => group.audits.push(entry),
            _ => group.singles.push(i),
        }
    }
    group.singles.sort_by(|&a, &b| {
        batch[a]
            .write
            .lock_order()
            .cmp(&batch[b].write.lock_order())
    });
    // Which kinds the group holds: one kind alone needs no
    // transaction around its one statement.
    let kinds = [
        !group.executions.is_empty(),
        !group.starts.is_empty(),
        !group.settles.is_empty(),
        !group.audits.is_empty(),
        !group.singles.is_empty(),
    ];
    let only = |kind: usize| {
        kinds
            .iter()
            .enumerate()
            .all(|(k, &held)| held == (k == kind))
    };
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
pub(super) struct Group<'a> {
    pub(super) executions: Vec<(&'a TenantId, &'a NodeExecution, Epoch)>,
    pub(super) starts: Vec<(&'a Run, &'a str, DateTime<Utc>, &'a AuditEntry)>,
    pub(super) settles: Vec<(&'a Run, &'a str, Epoch)>,
    pub(super) audits: Vec<&'a AuditEntry>,
    pub(super) singles: Vec<usize>,
}
