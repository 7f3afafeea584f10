//! Forms, content, datasets and connections on the in-memory state.

use super::*;

#[async_trait]
impl FormStore for InMemoryStore {
    async fn insert_form(&self, tenant: &TenantId, form: &FormSchema) -> StoreResult<()> {
        let mut state = self.state();
        let versions = state
            .forms
            .entry((tenant.clone(), form.id.clone()))
            .or_default();
        insert_version(versions, form.version, form)
            .map_err(|v| StoreError::version_exists("form", &form.id, v, "store a new version"))
    }

    async fn form(
        &self,
        tenant: &TenantId,
        id: &FormId,
        version: Option<u32>,
    ) -> StoreResult<Option<FormSchema>> {
        let state = self.state();
        Ok(pick_version(
            state.forms.get(&(tenant.clone(), id.clone())),
            version,
        ))
    }

    async fn insert_link(&self, link: &FormLink) -> StoreResult<()> {
        let mut state = self.state();
        if state.links.contains_key(&link.token_hash) {
            return Err(StoreError::link_refused("a link with this token exists"));
        }
        state.links.insert(link.token_hash.clone(), link.clone());
        Ok(())
    }

    async fn link(&self, token_hash: &str) -> StoreResult<Option<FormLink>> {
        Ok(self.state().links.get(token_hash).cloned())
    }

    async fn insert_response(
        &self,
        response: &FormResponse,
        link: Option<&str>,
        wake: Option<&HeldWakeup>,
    ) -> StoreResult<Option<Wait>> {
        let mut state = self.state();
        if state.responses.iter().any(|r| r.id == response.id) {
            return Err(StoreError::Conflict {
                entity: "form response",
                id: response.id.to_string(),
                message: "a response with this id exists".into(),
            });
        }
        if let Some(hash) = link {
            let Some(stored) = state
                .links
                .get_mut(hash)
                .filter(|l| l.tenant == response.tenant)
            else {
                return Err(StoreError::NotFound {
                    entity: "form link",
                    id: "(token)".into(),
                });
            };
            if stored.used_at.is_some() {
                return Err(StoreError::link_refused("the link has been used already"));
            }
            if stored.expires_at <= response.submitted_at {
                return Err(StoreError::link_refused("the link has expired"));
            }
            stored.used_at = Some(response.submitted_at);
            state.drafts.remove(hash);
        }
        state.responses.push(response.clone());
        Ok(wake.and_then(|wake| state.deliver(&response.tenant, wake)))
    }

    async fn save_draft(&self, draft: &FormDraft) -> StoreResult<()> {
        let mut state = self.state();
        let Some(link) = state
            .links
            .get(&draft.token_hash)
            .filter(|l| l.tenant == draft.tenant)
        else {
            return Err(StoreError::NotFound {
                entity: "form link",
                id: "(token)".into(),
            });
        };
        if link.used_at.is_some() {
            return Err(StoreError::link_refused("the link has been used already"));
        }
        if link.expires_at <= draft.saved_at {
            return Err(StoreError::link_refused("the link has expired"));
        }
        state.drafts.insert(draft.token_hash.clone(), draft.clone());
        Ok(())
    }

    async fn draft(&self, token_hash: &str) -> StoreResult<Option<FormDraft>> {
        Ok(self.state().drafts.get(token_hash).cloned())
    }

    async fn responses(
        &self,
        tenant: &TenantId,
        filter: &ResponseFilter,
    ) -> StoreResult<Vec<FormResponse>> {
        Ok(newest_first(
            &self.state().responses,
            |r| r.tenant == *tenant && filter.matches(r),
            |r| r.submitted_at,
            filter.effective_limit(),
        ))
    }

    async fn review_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        review: &Review,
        wake: &WakeFor,
    ) -> StoreResult<(FormResponse, Option<Wait>)> {
        let mut state = self.state();
        let response = state
            .responses
            .iter_mut()
            .find(|r| r.id == id && r.tenant == *tenant)
            .ok_or_else(|| StoreError::response_not_found(id))?;
        if response.review_status != ReviewStatus::Pending {
            return Err(StoreError::already_reviewed(id));
        }
        response.review_status = review.status;
        response.review = Some(review.clone());
        let response = response.clone();
        let woke = wake(&response).and_then(|wake| state.deliver(tenant, &wake));
        Ok((response, woke))
    }

    async fn erase_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        let response = state
            .responses
            .iter_mut()
            .find(|r| r.id == id && r.tenant == *tenant)
            .ok_or_else(|| StoreError::response_not_found(id))?;
        response.data = data.clone();
        response.respondent = None;
        response.submitter = Submitter::default();
        response.erased_at = Some(at);
        Ok(())
    }

    async fn delete_responses(
        &self,
        tenant: &TenantId,
        form_id: &FormId,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut state = self.state();
        let before_len = state.responses.len();
        state
            .responses
            .retain(|r| !(r.tenant == *tenant && r.form_id == *form_id && r.submitted_at < before));
        let deleted = (before_len - state.responses.len()) as u64;
        let State { drafts, links, .. } = &mut *state;
        drafts.retain(|hash, draft| {
            let of_form = links
                .get(hash)
                .is_some_and(|l| l.tenant == *tenant && l.form_id == *form_id);
            !(of_form && draft.saved_at < before)
        });
        Ok(deleted)
    }
}

#[async_trait]
impl ContentStore for InMemoryStore {
    async fn put_chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
        bytes: &[u8],
    ) -> StoreResult<()> {
        let mut state = self.state();
        let chunks = state.contents.entry((tenant.clone(), id)).or_default();
        if chunks.contains_key(&seq) {
            return Err(StoreError::Conflict {
                entity: "content chunk",
                id: format!("{id}/{seq}"),
                message: "stored already; content does not change".into(),
            });
        }
        chunks.insert(seq, bytes.to_vec());
        Ok(())
    }

    async fn chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .state()
            .contents
            .get(&(tenant.clone(), id))
            .and_then(|chunks| chunks.get(&seq).cloned()))
    }

    async fn delete_content(&self, tenant: &TenantId, id: ContentId) -> StoreResult<u64> {
        Ok(self
            .state()
            .contents
            .remove(&(tenant.clone(), id))
            .map_or(0, |chunks| chunks.len() as u64))
    }
}

#[async_trait]
impl DatasetStore for InMemoryStore {
    async fn put_dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        run: RunId,
        node: &NodeId,
        items: &[crate::item::Item],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        let records = state
            .datasets
            .entry((tenant.clone(), name.to_string()))
            .or_default();
        records.retain(|r| !(r.run_id == run && r.node_id == *node));
        for (position, item) in items.iter().enumerate() {
            records.push(DatasetRecord {
                run_id: run,
                node_id: node.clone(),
                position: u32::try_from(position).unwrap_or(u32::MAX),
                item: item.clone(),
                collected_at: at,
            });
        }
        Ok(())
    }

    async fn dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        filter: &DatasetFilter,
    ) -> StoreResult<Vec<DatasetRecord>> {
        let state = self.state();
        let mut found: Vec<DatasetRecord> = state
            .datasets
            .get(&(tenant.clone(), name.to_string()))
            .map(|records| {
                records
                    .iter()
                    .filter(|r| filter.run_id.is_none_or(|run| r.run_id == run))
                    .filter(|r| filter.since.is_none_or(|t| r.collected_at >= t))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by(|a, b| {
            b.collected_at
                .cmp(&a.collected_at)
                .then(b.run_id.cmp(&a.run_id))
                .then(a.node_id.cmp(&b.node_id))
                .then(a.position.cmp(&b.position))
        });
        found.truncate(filter.effective_limit());
        Ok(found)
    }
}

#[async_trait]
impl ConnectionStore for InMemoryStore {
    async fn save_connection(&self, connection: &StoredConnection) -> StoreResult<()> {
        self.state().connections.insert(
            (connection.tenant.clone(), connection.id.clone()),
            connection.clone(),
        );
        Ok(())
    }

    async fn replace_connection(
        &self,
        connection: &StoredConnection,
        previous: &StoredConnection,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        let key = (previous.tenant.clone(), previous.id.clone());
        match state.connections.get_mut(&key) {
            Some(stored)
                if stored == previous
                    && (&connection.tenant, &connection.id) == (&previous.tenant, &previous.id) =>
            {
                *stored = connection.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn connection(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<StoredConnection>> {
        Ok(self
            .state()
            .connections
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }

    async fn connections(&self, tenant: &TenantId) -> StoreResult<Vec<StoredConnection>> {
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.tenant == *tenant)
            .cloned()
            .collect())
    }

    async fn mark_tested(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let mut state = self.state();
        let connection = state
            .connections
            .get_mut(&(tenant.clone(), id.to_string()))
            .ok_or_else(|| StoreError::NotFound {
                entity: "connection",
                id: id.to_string(),
            })?;
        connection.last_tested_at = Some(at);
        Ok(())
    }

    async fn connections_sealed_with(
        &self,
        key_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredConnection>> {
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.key_id == key_id)
            .take(limit)
            .cloned()
            .collect())
    }
}
