//! Submissions through a link: checked, stored with the link used and
//! the waiting node's wake-up in one change; drafts on the way.

use super::*;

impl Forms {
    /// Takes a submission through the link with `token`: checks the link,
    /// checks the data against the form version the link names (every
    /// field error at once; the link stays usable so the respondent can
    /// fix and resend), then stores the response and uses the link in one
    /// change, and wakes the node waiting for it.
    #[tracing::instrument(name = "submit", skip_all)]
    pub async fn submit(
        &self,
        engine: &Engine,
        token: &str,
        submission: Submission,
    ) -> Result<FormResponse, FormsError> {
        let prepared = self.prepare_submission(token, submission).await?;
        let response = prepared.response();
        let hash = prepared.link_hash();
        // The answer and its node's wake-up in one change: a process that
        // stops right after it loses no wake-up.
        let woke = match self
            .inner
            .store
            .insert_response(response, hash, prepared.wakeup())
            .await
        {
            Ok(woke) => woke,
            Err(err) => {
                return Err(match hash {
                    Some(hash) => self.refused(err, hash, response.submitted_at).await,
                    None => FormsError::Store(err),
                })
            }
        };
        // The change itself is committed; a lost audit line is reported,
        // not turned into a failure that would invite a repeat.
        if let Err(err) = self.inner.store.append_audit(prepared.audit()).await {
            tracing::error!(error = %err, entity = %response.id, "audit entry could not be stored");
        }
        if let Some(wait) = woke {
            engine.woken(&response.tenant, wait.run_id);
        }
        self.remind_of(engine, response).await;
        Ok(response.clone())
    }

    /// What the store's refusal to write through the link with hash `hash`
    /// at `at` means: another submission through it won the race, or it
    /// expired meanwhile; said as `open` would.
    pub(super) async fn refused(
        &self,
        err: StoreError,
        hash: &str,
        at: DateTime<Utc>,
    ) -> FormsError {
        if !matches!(
            err.kind(),
            StoreErrorKind::Conflict | StoreErrorKind::NotFound
        ) {
            return FormsError::Store(err);
        }
        match self.inner.store.link(hash).await {
            Ok(Some(link)) => check_usable(&link, at)
                .err()
                .unwrap_or(FormsError::Store(err)),
            Ok(None) => FormsError::UnknownLink,
            Err(read) => FormsError::Store(read),
        }
    }

    /// Saves answers part-way through the link with `token`, replacing the
    /// draft saved before, so that the respondent goes on later, also on
    /// another device: [`Forms::open`] returns the draft with the form.
    /// Checked leniently: fields may be missing, but what the draft holds
    /// must be valid (every failing field is listed in
    /// [`FormsError::Invalid`] and nothing is saved). The link stays
    /// usable; its submission is checked strictly and removes the draft.
    #[tracing::instrument(name = "save_draft", skip_all)]
    pub async fn save_draft(&self, token: &str, data: Value) -> Result<FormDraft, FormsError> {
        let (link, hash) = self.usable_link(token).await?;
        let form = self
            .form(&link.tenant, &link.form_id, Some(link.form_version))
            .await?;
        within_limits(&data)?;
        if let Err(errors) = form.check_draft(&data)? {
            return Err(FormsError::Invalid {
                form: form.id.clone(),
                version: form.version,
                errors,
            });
        }
        let draft = FormDraft {
            token_hash: hash,
            tenant: link.tenant,
            data,
            saved_at: self.now(),
        };
        if let Err(err) = self.inner.store.save_draft(&draft).await {
            return Err(self.refused(err, &draft.token_hash, draft.saved_at).await);
        }
        Ok(draft)
    }

    /// Checks a submission through the link with `token` as
    /// [`Forms::submit`] does, and stores nothing: the host stores it in a
    /// transaction of its own (the SQL stores' `insert_response_in`), so
    /// that its records and the answer commit or roll back together, then
    /// calls [`Forms::delivered`].
    pub async fn prepare_submission(
        &self,
        token: &str,
        submission: Submission,
    ) -> Result<PreparedResponse, FormsError> {
        let (link, hash) = self.usable_link(token).await?;
        let form = self
            .form(&link.tenant, &link.form_id, Some(link.form_version))
            .await?;
        let response = self.checked_response(&form, &link.tenant, submission)?;
        let response = FormResponse {
            run_id: link.run_id,
            node_id: link.node_id.clone(),
            respondent: link.respondent.clone(),
            ..response
        };
        let audit = AuditEntry {
            tenant: link.tenant.clone(),
            at: response.submitted_at,
            actor: concertmaster_core::run::current_actor(),
            action: AuditAction::Create,
            entity_type: "form response".into(),
            entity_id: response.id.to_string(),
            // Consent given or refused with the answers is on record (GDPR
            // Art. 7): what was agreed to, and when.
            details: json!({ "form": form.id, "version": form.version, "run": link.run_id, "consent": response.consent }),
        };
        let wakeup = self.response_wakeup(&response);
        let prepared = PreparedResponse::new(response, Some(hash), audit);
        Ok(match wakeup {
            Some(wakeup) => prepared.with_wakeup(wakeup),
            None => prepared,
        })
    }

    /// Wakes the node waiting for `prepared`, once the host's transaction
    /// that stored it has committed. [`FormsError::ResponseNotFound`] when
    /// it is not stored (the transaction rolled back); the link is then
    /// still usable.
    pub async fn delivered(
        &self,
        engine: &Engine,
        prepared: &PreparedResponse,
    ) -> Result<(), FormsError> {
        let response = prepared.response();
        // The responses of the same form, run, node and respondent: a few.
        let mut same = ResponseFilter::form(response.form_id.clone());
        same.run_id = response.run_id;
        same.node_id = response.node_id.clone();
        same.respondent = response.respondent.clone();
        same.limit = Some(usize::MAX >> 1);
        let stored = self.inner.store.responses(&response.tenant, &same).await?;
        if !stored.iter().any(|r| r.id == response.id) {
            return Err(FormsError::ResponseNotFound(response.id));
        }
        // The wake-up was stored with the answer: the run continues, here
        // or, should this process stop first, through the recovery sweep.
        if let Some(run) = response.run_id {
            engine.woken(&response.tenant, run);
        }
        self.remind_of(engine, response).await;
        Ok(())
    }

    /// The wake-up of the node waiting for `response`, stored with it.
    pub(super) fn response_wakeup(&self, response: &FormResponse) -> Option<HeldWakeup> {
        let (run, node) = (response.run_id?, response.node_id.as_ref()?);
        Some(HeldWakeup::new(
            response_key(run, node.as_str()),
            json!({ "responseId": response.id }),
            self.now(),
            DEFAULT_HELD_WAKEUP_TTL,
        ))
    }

    /// Tells a reminder node waiting now for `response`'s node that an
    /// answer came, so it stops reminding before its next round; one that
    /// is not waiting sees the answer when it next runs.
    pub(super) async fn remind_of(&self, engine: &Engine, response: &FormResponse) {
        if let (Some(run), Some(node)) = (response.run_id, &response.node_id) {
            let key = reminder_key(run, node.as_str());
            let payload = json!({ "responseId": response.id });
            if let Err(err) = engine
                .resume_if_waiting(&response.tenant, &key, payload)
                .await
            {
                tracing::warn!(error = %err, %key, "reminder node not told of the answer; it sees it on its next round");
            }
        }
    }

    /// Takes a submission of form `form` without a link (a public form):
    /// stores it and starts `workflow` from its `form_submission` trigger
    /// with the response as the trigger item. Returns the response and the
    /// run.
    pub async fn submit_public(
        &self,
        engine: &Engine,
        workflow: &concertmaster_core::workflow::PublishedWorkflow,
        trigger_node: &str,
        form: &FormId,
        submission: Submission,
    ) -> Result<(FormResponse, RunId), FormsError> {
        let tenant = workflow.tenant().clone();
        let form = self.form(&tenant, form, None).await?;
        let response = self.checked_response(&form, &tenant, submission)?;
        self.inner
            .store
            .insert_response(&response, None, None)
            .await?;
        self.audit(
            &tenant,
            None,
            AuditAction::Create,
            "form response",
            response.id.to_string(),
            json!({ "form": form.id, "version": form.version, "consent": response.consent }),
        )
        .await;
        let item = response_item(&response, None);
        let run = engine
            .start_at(workflow, trigger_node, Value::Object(item))
            .await
            .map_err(|err| {
                FormsError::Store(StoreError::Unavailable {
                    message: format!(
                        "response {} stored, but the run did not start: {err}",
                        response.id
                    ),
                })
            })?;
        Ok((response, run))
    }

    pub(super) fn checked_response(
        &self,
        form: &FormSchema,
        tenant: &TenantId,
        submission: Submission,
    ) -> Result<FormResponse, FormsError> {
        within_limits(&submission.data)?;
        if let Err(errors) = form.check(&submission.data)? {
            return Err(FormsError::Invalid {
                form: form.id.clone(),
                version: form.version,
                errors,
            });
        }
        Ok(FormResponse {
            id: ResponseId::new(),
            tenant: tenant.clone(),
            form_id: form.id.clone(),
            form_version: form.version,
            run_id: None,
            node_id: None,
            respondent: None,
            data: submission.data,
            consent: submission.consent,
            submitter: submission.submitter,
            submitted_at: self.now(),
            review_status: ReviewStatus::Pending,
            review: None,
            erased_at: None,
        })
    }
}

/// Refuses answers nested deeper than [`MAX_SUBMISSION_DEPTH`] or larger
/// than [`MAX_SUBMISSION_BYTES`].
pub(super) fn within_limits(data: &Value) -> Result<(), FormsError> {
    // Before anything walks it without bound: serializing it is one such walk.
    if let Some(pointer) = too_deep(data, MAX_SUBMISSION_DEPTH) {
        return Err(FormsError::TooDeep { pointer });
    }
    let bytes = serde_json::to_vec(data).map_or(0, |b| b.len());
    if bytes > MAX_SUBMISSION_BYTES {
        return Err(FormsError::TooLarge { bytes });
    }
    Ok(())
}

/// A response as an item for the nodes after it.
pub(crate) fn response_item(
    response: &FormResponse,
    send_node: Option<&str>,
) -> concertmaster_core::Item {
    let mut item = concertmaster_core::Item::new();
    item.insert("responseId".into(), json!(response.id));
    item.insert("formId".into(), json!(response.form_id));
    item.insert("formVersion".into(), json!(response.form_version));
    if let Some(respondent) = &response.respondent {
        item.insert("respondent".into(), json!(respondent));
    }
    if let Some(node) = send_node {
        item.insert("sendNode".into(), json!(node));
    }
    item.insert("submittedAt".into(), json!(response.submitted_at));
    item.insert("reviewStatus".into(), json!(response.review_status));
    item.insert("data".into(), response.data.clone());
    item
}

/// The pointer to the first value of `value` nested deeper than `limit`.
/// It recurses at most `limit` levels, however deep the value, and
/// allocates nothing for a submission within the limit.
pub(super) fn too_deep(value: &Value, limit: usize) -> Option<String> {
    deeper(value, limit).map(|pointer| {
        if pointer.is_empty() {
            "/".into()
        } else {
            pointer
        }
    })
}

/// `too_deep`'s walk: the pointer relative to `value`.
pub(super) fn deeper(value: &Value, levels_left: usize) -> Option<String> {
    let is_container = matches!(value, Value::Array(_) | Value::Object(_));
    if !is_container {
        return None;
    }
    if levels_left == 0 {
        return Some(String::new());
    }
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| deeper(item, levels_left - 1).map(|rest| format!("/{i}{rest}"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            deeper(item, levels_left - 1)
                .map(|rest| format!("/{}{rest}", key.replace('~', "~0").replace('/', "~1")))
        }),
        _ => None,
    }
}
