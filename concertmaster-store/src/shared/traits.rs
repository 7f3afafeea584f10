//! The engine's store traits on the shared SQL code.

use super::*;

#[async_trait]
impl WorkflowStore for This {
    async fn insert_workflow(
        &self,
        tenant: &TenantId,
        def: &WorkflowDefinition,
    ) -> StoreResult<()> {
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
                StoreError::Conflict { .. } => Err(StoreError::version_exists(
                    "workflow",
                    &def.id,
                    def.version,
                    "publish a new version",
                )),
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
        row.map(|row| {
            row.try_get::<Json<WorkflowDefinition>, _>("definition")
                .map(|j| j.0)
        })
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
            .map(|row| {
                row.try_get::<Json<WorkflowDefinition>, _>("definition")
                    .map(|j| j.0)
            })
            .collect::<Result<_, _>>()
            .map_err(|err| store_error(err, "workflows of tenant", tenant))
    }
}

#[async_trait]
impl RunStore for This {
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

    async fn settle_run(
        &self,
        run: &Run,
        owner: &str,
        epoch: Epoch,
        steps: &[NodeExecution],
    ) -> StoreResult<()> {
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
        self.write(Write::Update {
            run: run.clone(),
            epoch,
        })
        .await?;
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

    async fn save_node_execution(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<()> {
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

    async fn node_executions(
        &self,
        tenant: &TenantId,
        id: RunId,
    ) -> StoreResult<Vec<NodeExecution>> {
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
            if let Some(StoreError::Fenced { run, epoch }) =
                run_refusal(&mut *tx, tenant, id, epoch).await?
            {
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
                .map(|Json(wait)| Wait {
                    node_id: new.clone(),
                    ..wait
                });
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
impl WaitStore for This {
    async fn suspend_node(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<Option<Resumed>> {
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
                let epoch = self
                    .claim_run(tenant, wait.run_id, &owner, until, now)
                    .await?;
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

    async fn expire_wakeups(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<(TenantId, HeldWakeup)>> {
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

    async fn due_waits(
        &self,
        now: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<(TenantId, Wait)>> {
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
impl LeaseStore for This {
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
        let RunClaim {
            owner, until, now, ..
        } = *claim;
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

    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[RunId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunId>> {
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
impl AuditStore for This {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.write(Write::Audit {
            entry: entry.clone(),
        })
        .await?;
        Ok(())
    }

    async fn audit_log(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>> {
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
