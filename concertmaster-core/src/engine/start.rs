//! Starting runs: once, at a time, as a child, or prepared for the host's
//! own transaction.

use super::*;

impl Engine {
    /// Starts a run of `workflow` with `trigger` (a JSON object, or an array
    /// of objects for several items) as the input of every node without
    /// inputs. Returns once the run is stored; it executes in the background.
    ///
    /// A failed call may still have stored the run: a database can commit
    /// and lose its answer on the way back. Where starting twice would be
    /// wrong, start with [`Engine::start_once`] and a key of the host's own
    /// (an order number, a request id) and call it again on failure; the
    /// second call finds the run the first one stored.
    pub async fn start(&self, workflow: &PublishedWorkflow, trigger: Value) -> Result<RunId> {
        self.start_run(workflow, None, trigger).await
    }

    /// Starts a run at one trigger node of `workflow`; its other nodes
    /// without inputs (other triggers) are skipped.
    pub async fn start_at(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: &str,
        trigger: Value,
    ) -> Result<RunId> {
        self.start_at_with(workflow, trigger_node, trigger, None)
            .await
    }

    pub(super) async fn start_at_with(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: &str,
        trigger: Value,
        id: Option<RunId>,
    ) -> Result<RunId> {
        let def = workflow.definition();
        let root = def
            .nodes
            .iter()
            .position(|n| n.id.as_str() == trigger_node)
            .filter(|&i| workflow.workflow.plan.incoming[i].is_empty());
        let Some(root) = root else {
            return Err(Error::NotATrigger {
                workflow: def.id.clone(),
                node: NodeId::new(trigger_node),
            });
        };
        self.start_run_with(workflow, Some(def.nodes[root].id.clone()), trigger, id)
            .await
    }

    /// Starts a run (at `trigger_node`, or at every trigger like
    /// [`Engine::start`]) unless a run of this workflow was started with the
    /// same `key` before, by this engine or another on the same store: a
    /// schedule's fire time, a webhook's idempotency key, a parent run's
    /// node. Returns the run, and whether this call started it.
    pub async fn start_once(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<&str>,
        key: &str,
        trigger: Value,
    ) -> Result<(RunId, bool)> {
        let id = keyed_run_id(workflow, key);
        let started = match trigger_node {
            Some(node) => self.start_at_with(workflow, node, trigger, Some(id)).await,
            None => self.start_run_with(workflow, None, trigger, Some(id)).await,
        };
        match started {
            Ok(id) => Ok((id, true)),
            Err(Error::Store(err)) if err.kind() == crate::store::StoreErrorKind::Conflict => {
                Ok((id, false))
            }
            Err(err) => Err(err),
        }
    }

    pub(super) async fn start_run(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<NodeId>,
        trigger: Value,
    ) -> Result<RunId> {
        self.start_run_with(workflow, trigger_node, trigger, None)
            .await
    }

    pub(super) async fn start_run_with(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<NodeId>,
        trigger: Value,
        id: Option<RunId>,
    ) -> Result<RunId> {
        let prepared = self.new_run(workflow, trigger_node, trigger, id, RunStatus::Pending)?;
        self.launch(workflow, prepared).await
    }

    /// Stores `prepared` and drives it here when there is room.
    pub(super) async fn launch(
        &self,
        workflow: &PublishedWorkflow,
        prepared: PreparedRun,
    ) -> Result<RunId> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let PreparedRun { mut run, audit } = prepared;
        let moved = self.externalize_trigger(&mut run).await?;
        let stored = self.store_started(&mut run, audit).await;
        if let Err(err) = stored {
            // Refused (an earlier start with the same key stored its own
            // run): what was moved for this one belongs to nothing. After
            // an outage the run may have been stored all the same, so its
            // content stays.
            if matches!(&err, Error::Store(e) if !e.is_retryable()) {
                self.delete_contents(&run.tenant, &moved).await;
            }
            return Err(err);
        }
        let (tenant, id, leased) = (run.tenant.clone(), run.id, run.status == RunStatus::Running);
        self.inner.cache_workflow(&tenant, &workflow.workflow);
        let taken = self.inner.signal(
            tenant,
            id,
            Signal::Start {
                run: Box::new(run),
                leased,
            },
        );
        if leased && !taken {
            // The engine filled up meanwhile.
            self.inner.give_back_lease(id).await;
        }
        Ok(id)
    }

    /// Moves the trigger's values past the content threshold to the
    /// content store, as a node's output is moved
    /// ([`EngineBuilder::content_threshold`]); returns what it stored.
    pub(super) async fn externalize_trigger(
        &self,
        run: &mut Run,
    ) -> Result<Vec<crate::content::ContentRef>> {
        let Some(threshold) = self.inner.limits.content_threshold else {
            return Ok(Vec::new());
        };
        if !run
            .trigger
            .iter()
            .any(|item| attempt::holds_large(item, threshold))
        {
            return Ok(Vec::new());
        }
        let contents =
            crate::content::Contents::of(self.inner.contents.clone(), run.tenant.clone());
        let mut moved = Vec::new();
        let result =
            attempt::externalize_items(&contents, &mut run.trigger, threshold, &mut moved).await;
        match result {
            Ok(()) => Ok(moved),
            Err(err) => {
                self.delete_contents(&run.tenant, &moved).await;
                Err(err.into())
            }
        }
    }

    /// Deletes `contents` of `tenant`, logging what could not be deleted.
    pub(super) async fn delete_contents(
        &self,
        tenant: &TenantId,
        contents: &[crate::content::ContentRef],
    ) {
        let Some(store) = &self.inner.contents else {
            return;
        };
        for content in contents {
            if let Err(err) = store.delete_content(tenant, content.id).await {
                tracing::warn!(error = %err, content = %content.id, "content of a run not started stays stored");
            }
        }
    }

    /// Stores `run`, started: running, with this engine's lease and
    /// `audit`, when this engine has room for it; pending otherwise.
    pub(super) async fn store_started(&self, run: &mut Run, audit: AuditEntry) -> Result<()> {
        // With room to drive it here, the run is stored running and leased
        // to this engine, with its audit entry, in one change; without, it
        // is stored pending for whichever engine has room first.
        let leased = self
            .inner
            .active()
            .has_room(&run.tenant, &self.inner.limits);
        run.status = if leased {
            RunStatus::Running
        } else {
            RunStatus::Pending
        };
        if leased {
            let start = RunStart {
                run,
                owner: &self.inner.owner,
                lease_until: self.inner.lease_until(run.created_at),
                audit: &audit,
            };
            self.inner.store.start_run(&start).await?;
        } else {
            self.inner.store.insert_run(run).await?;
            self.append_audit(audit).await;
        }
        Ok(())
    }

    /// Starts a run of `workflow` as the child of the node executing with
    /// `parent`, once per parent node: a node executed again (after a
    /// crash, or woken) finds the child it started. Returns the child and
    /// whether this call started it.
    ///
    /// The child records its parent ([`Run::parent`]). When it ends, the
    /// engine ends the parent node's wait on [`RunParent::wait_key`] with
    /// `{"childRun": <id>}`, so a node that suspended on that key
    /// executes again and finds the child ended; cancelling the parent
    /// cancels the child ([`Engine::cancel`]).
    pub async fn start_child(
        &self,
        workflow: &PublishedWorkflow,
        parent: &crate::NodeContext,
        trigger: Value,
    ) -> Result<(RunId, bool)> {
        let link = RunParent {
            run: parent.run_id(),
            node: parent.node_id().clone(),
        };
        let id = keyed_run_id(workflow, &link.wait_key());
        let mut prepared = self.new_run(workflow, None, trigger, Some(id), RunStatus::Pending)?;
        prepared.run.parent = Some(link);
        match self.launch(workflow, prepared).await {
            Ok(id) => Ok((id, true)),
            Err(Error::Store(err)) if err.kind() == crate::store::StoreErrorKind::Conflict => {
                Ok((id, false))
            }
            Err(err) => Err(err),
        }
    }

    /// A run of `workflow` with `trigger`, made ready for the host to store
    /// in a transaction of its own, so that the host's records and the run
    /// commit or roll back together (the SQL stores' `insert_run_in`).
    /// Nothing is stored or started here. Once the host's transaction has
    /// committed, [`Engine::pick_up`] drives the run at once; otherwise the
    /// recovery sweep of this engine or another finds it within its
    /// interval ([`EngineBuilder::recovery_interval`]).
    pub fn prepare_run(&self, workflow: &PublishedWorkflow, trigger: Value) -> Result<PreparedRun> {
        self.new_run(workflow, None, trigger, None, RunStatus::Pending)
    }

    pub(super) fn new_run(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<NodeId>,
        trigger: Value,
        id: Option<RunId>,
        status: RunStatus,
    ) -> Result<PreparedRun> {
        let items = items_from_value(trigger).map_err(|found| Error::InvalidTrigger {
            workflow: workflow.id().clone(),
            found,
        })?;
        let limit = self.inner.limits.max_port_items;
        if items.len() > limit {
            return Err(Error::TooManyItems {
                workflow: workflow.id().clone(),
                items: items.len(),
                limit,
            });
        }
        let now = self.inner.clock.now();
        let run = Run {
            id: id.unwrap_or_default(),
            tenant: workflow.tenant.clone(),
            workflow_id: workflow.id().clone(),
            workflow_version: workflow.version(),
            status,
            trigger_node,
            trigger: items,
            created_at: now,
            ended_at: None,
            error: None,
            origin: None,
            parent: None,
        };
        let audit = audit_entry(
            &run.tenant,
            now,
            AuditAction::Execute,
            "run",
            run.id.to_string(),
            serde_json::json!({ "workflow": run.workflow_id, "version": run.workflow_version }),
        );
        Ok(PreparedRun { run, audit })
    }
}

/// The id of the run of `workflow` started with `key`: the same in every
/// process, so the store's uniqueness of run ids lets only one start it.
pub(super) fn keyed_run_id(workflow: &PublishedWorkflow, key: &str) -> RunId {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    // Not the version: a key fires once for the workflow, whichever
    // version the process that gets there first has published.
    for part in [workflow.tenant.as_str(), workflow.id().as_str(), key] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    RunId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}
