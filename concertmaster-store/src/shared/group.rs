//! One group's writes in one transaction: deliveries, claims, starts,
//! settles and audit entries a statement per kind; the statements built
//! for a group's size.

use super::*;

/// Applies the whole group in one transaction, a statement per kind
/// of write and one per single: the singles' answers when it
/// committed with every write applied. Otherwise it is rolled back,
/// and each write is redone alone.
pub(super) async fn commit_in_one_transaction(
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
    if !group.executions.is_empty() && !upsert_all(&mut tx, &group.executions).await {
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
pub(super) struct GroupDelivery<'a> {
    pub(super) i: usize,
    pub(super) tenant: &'a TenantId,
    pub(super) held: &'a HeldWakeup,
    pub(super) lease: Option<&'a (String, DateTime<Utc>, DateTime<Utc>)>,
    pub(super) audit: Option<&'a DeliveryAudit>,
}

/// Splits a group's `singles` into the deliveries that can be
/// written together, on keys no other write of the group takes,
/// and the writes to make one at a time, in lock order. Only where
/// the writer groups locking writes (one writer: nothing else takes
/// a key between the statements).
pub(super) fn deliveries_together<'a>(
    batch: &'a [PendingWrite],
    singles: &[usize],
) -> (Vec<GroupDelivery<'a>>, Vec<usize>) {
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
            && ((n > 0 && key(singles[n - 1]) == key(i))
                || singles.get(n + 1).is_some_and(|&j| key(j) == key(i)));
        match &batch[i].write {
            Write::Deliver {
                tenant,
                held,
                lease,
                audit,
            } if !shared => together.push(GroupDelivery {
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
pub(super) async fn deliver_all(
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
        .filter_map(|d| {
            taken
                .remove(&(d.tenant.as_str().to_string(), d.held.key.clone()))
                .map(|wait| (d, wait))
        })
        .collect();
    if !woken.is_empty() {
        let resumed: Vec<Resumed> = woken
            .iter()
            .map(|(d, wait)| Resumed {
                wakeup: d.held.wakeup(),
                state: wait.state.clone(),
            })
            .collect();
        let mut record = sqlx::query(NODE_RESUME.rows(woken.len()));
        for ((_, wait), resumed) in woken.iter().zip(&resumed) {
            record = record
                .bind(wait.run_id.as_uuid())
                .bind(wait.node_id.as_str())
                .bind(Json(resumed));
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
                epoch: claimed
                    .get(&(wait.run_id.as_uuid(), owner.clone()))
                    .copied(),
            })),
            (Some(lease), None) => {
                claim_for_delivery(&mut *conn, d.tenant, wait.clone(), lease).await?
            }
            (None, _) => Answer::Delivered(Some(Woken {
                wait: wait.clone(),
                epoch: None,
            })),
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

/// A lease a delivery asks for: owner, until, now.
type LeaseAsk = (String, DateTime<Utc>, DateTime<Utc>);

/// Takes the leases the deliveries of `woken` asked for, in one
/// statement (`LEASE_CLAIM_ROWS`): the epoch of each lease taken, by
/// run and owner.
pub(super) async fn claim_all(
    conn: &mut <Db as sqlx::Database>::Connection,
    woken: &[(&GroupDelivery<'_>, Wait)],
) -> StoreResult<std::collections::HashMap<(uuid::Uuid, String), Epoch>> {
    let asked: Vec<(&TenantId, &Wait, &LeaseAsk)> = woken
        .iter()
        .filter_map(|(d, wait)| d.lease.map(|lease| (d.tenant, wait, lease)))
        .collect();
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
pub(super) async fn insert_audits(
    conn: &mut <Db as sqlx::Database>::Connection,
    entries: &[&AuditEntry],
) -> StoreResult<()> {
    let mut query = sqlx::query(AUDIT_INSERT.rows(entries.len()));
    for entry in entries {
        query = bind_audit(query, entry);
    }
    query.execute(&mut *conn).await.map_err(|err| {
        store_error(
            err,
            "audit entry",
            entries.first().map_or("", |e| e.entity_id.as_str()),
        )
    })?;
    Ok(())
}

/// A write that takes locks of its own, on `conn`, inside the
/// caller's transaction.
pub(super) async fn write_single(
    conn: &mut <Db as sqlx::Database>::Connection,
    write: &Write,
) -> StoreResult<Answer> {
    match write {
        Write::Claim {
            tenant,
            id,
            owner,
            until,
            now,
        } => claim_on(conn, tenant, *id, owner, *until, *now)
            .await
            .map(Answer::Claimed),
        Write::Update { run, epoch } => {
            let done = bind_run(sqlx::query(RUN_UPDATE.as_str()), run)?
                .bind(epoch_param(*epoch))
                .execute(&mut *conn)
                .await
                .map_err(|err| store_error(err, "run", run.id))?;
            if done.rows_affected() == 0 {
                return Err(
                    match run_refusal(&mut *conn, &run.tenant, run.id, Some(*epoch)).await {
                        Ok(Some(refusal)) | Err(refusal) => refusal,
                        Ok(None) => unexplained_refusal("run", run.id.to_string()),
                    },
                );
            }
            Ok(Answer::Rows(1))
        }
        Write::Suspend {
            tenant,
            execution,
            epoch,
        } => suspend_on(conn, tenant, execution, *epoch)
            .await
            .map(Answer::Suspended),
        Write::Deliver {
            tenant,
            held,
            lease,
            audit,
        } => {
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
        Write::Audit { entry } => insert_one_audit(&mut *conn, entry)
            .await
            .map(|()| Answer::Rows(1)),
        Write::Execution {
            tenant,
            execution,
            epoch,
        } => save_execution(&mut *conn, tenant, execution, *epoch)
            .await
            .map(Answer::Rows),
        Write::Start {
            run,
            owner,
            until,
            audit,
        } => start_all(&mut *conn, &[(run, owner, *until, audit)])
            .await
            .map(|()| Answer::Rows(1)),
        Write::Settle {
            run,
            owner,
            epoch,
            steps,
        } => {
            for step in steps {
                if save_execution(&mut *conn, &run.tenant, step, *epoch).await? == 0 {
                    return Err(refused_node(&mut *conn, &run.tenant, step, *epoch).await);
                }
            }
            let settled = settle_all(&mut *conn, &[(run, owner, *epoch)]).await?;
            if settled == 0 && !steps.is_empty() {
                // An error, so that the steps roll back with it.
                return Err(
                    match run_refusal(&mut *conn, &run.tenant, run.id, Some(*epoch)).await {
                        Ok(Some(refusal)) | Err(refusal) => refusal,
                        Ok(None) => unexplained_refusal("run", run.id.to_string()),
                    },
                );
            }
            Ok(Answer::Rows(settled))
        }
    }
}

/// Settles every run of `settles`: true when each was replaced.
pub(super) async fn settled_all(
    conn: &mut <Db as sqlx::Database>::Connection,
    settles: &[(&Run, &str, Epoch)],
) -> bool {
    matches!(settle_all(conn, settles).await, Ok(n) if n == settles.len() as u64)
}

/// One write in a commit of its own: a transaction for the writes
/// of several statements, which is rolled back when they fail.
pub(super) async fn write_alone(
    conn: &mut <Db as sqlx::Database>::Connection,
    write: &Write,
) -> StoreResult<Answer> {
    let several = match write {
        Write::Suspend { .. } | Write::Deliver { .. } => true,
        Write::Settle { steps, .. } => !steps.is_empty(),
        _ => false,
    };
    if !several {
        return write_single(conn, write).await;
    }
    let fail = |err| store_error(err, "store connection", "write");
    let mut tx = sqlx::Connection::begin_with(conn, BEGIN)
        .await
        .map_err(fail)?;
    let answer = write_single(&mut tx, write).await?;
    tx.commit().await.map_err(fail)?;
    Ok(answer)
}

/// Inserts started runs, their starters' leases and their audit
/// entries with one statement (the backend's `RUN_STARTS`): all of
/// them, or none when one is refused.
pub(super) async fn start_all(
    conn: &mut <Db as sqlx::Database>::Connection,
    starts: &[(&Run, &str, DateTime<Utc>, &AuditEntry)],
) -> StoreResult<()> {
    let id = starts
        .first()
        .map(|s| s.0.id.to_string())
        .unwrap_or_default();
    let fail = |err| store_error(err, "run", &id);
    let mut query = sqlx::query(RUN_START_ROWS.rows(starts.len()));
    for (run, owner, until, entry) in starts {
        query = bind_audit(
            bind_new_run(query, run)?.bind(*owner).bind(ts(*until)),
            entry,
        );
    }
    query.execute(&mut *conn).await.map_err(fail)?;
    Ok(())
}

/// Replaces settled runs and gives up the callers' leases on them
/// with one statement (the backend's `RUN_SETTLES`); returns the
/// runs replaced: all, or none when one had ended or is not stored
/// for its tenant, which refuses the statement whole.
pub(super) async fn settle_all(
    conn: &mut <Db as sqlx::Database>::Connection,
    settles: &[(&Run, &str, Epoch)],
) -> StoreResult<u64> {
    let id = settles
        .first()
        .map(|s| s.0.id.to_string())
        .unwrap_or_default();
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

pub(super) fn bind_audit<'q>(
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
pub(super) async fn upsert_all(
    conn: &mut <Db as sqlx::Database>::Connection,
    executions: &[(&TenantId, &NodeExecution, Epoch)],
) -> bool {
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
        if !matches!(query.execute(&mut *conn).await, Ok(done) if done.rows_affected() == chunk.len() as u64)
        {
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
pub(super) struct RowsStatement {
    pub(super) template: &'static str,
    pub(super) columns: usize,
    pub(super) built: [std::sync::OnceLock<String>; GROUP_COMMIT_MAX + 1],
}

impl RowsStatement {
    const fn new(template: &'static str, columns: usize) -> Self {
        Self {
            template,
            columns,
            built: [const { std::sync::OnceLock::new() }; GROUP_COMMIT_MAX + 1],
        }
    }

    pub(super) fn rows(&self, rows: usize) -> &str {
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

pub(super) static NODE_UPSERT: RowsStatement = RowsStatement::new(sql!("node/upsert"), 14);
/// `sql` with the backend's lease lock (what a write holds) in place.
pub(super) fn with_locks(sql: &str) -> String {
    sql.replace("{lease_lock}", LEASE_LOCK)
}
pub(super) static RUN_UPDATE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| with_locks(sql!("run/update")));
pub(super) static RUN_END: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| with_locks(sql!("run/end")));
pub(super) static RUN_WRITE_STATE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| with_locks(sql!("run/write_state")));
/// The lease row, unlocked.
pub(super) static LEASE_ROW: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| sql!("lease/lock").replace("{lease_claim_lock}", ""));
/// The claim lock, skipping a row another transaction holds.
pub(super) static LEASE_LOCK_SKIP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    sql!("lease/lock").replace(
        "{lease_claim_lock}",
        &LEASE_CLAIM_LOCK
            .map(|lock| format!("{lock} SKIP LOCKED"))
            .unwrap_or_default(),
    )
});
pub(super) static RUN_INSERT: RowsStatement = RowsStatement::new(sql!("run/insert_rows"), 13);
pub(super) static WAIT_TAKE: RowsStatement = RowsStatement::new(sql!("wait/take_rows"), 2);
pub(super) static NODE_RESUME: RowsStatement = RowsStatement::new(sql!("node/resume_rows"), 3);
pub(super) static RUN_MARK_RUNNING: RowsStatement =
    RowsStatement::new(sql!("run/mark_running_rows"), 1);
pub(super) static LEASE_RELEASE: RowsStatement = RowsStatement::new(sql!("lease/release_rows"), 2);
pub(super) static AUDIT_INSERT: RowsStatement = RowsStatement::new(sql!("audit/insert_rows"), 7);
pub(super) static RUN_START_ROWS: RowsStatement = RowsStatement::new(RUN_STARTS, 22);
pub(super) static LEASE_CLAIMS: RowsStatement = RowsStatement::new(
    match LEASE_CLAIM_ROWS {
        Some(sql) => sql,
        None => "",
    },
    5,
);
pub(super) static RUN_SETTLE_ROWS: RowsStatement = RowsStatement::new(RUN_SETTLES, 12);
/// How the settle statement says a run was not settled (see
/// `run/settle_rows.<backend>.sql`).
pub(super) const RUN_NOT_SETTLED: &str = "concertmaster: run not settled";
