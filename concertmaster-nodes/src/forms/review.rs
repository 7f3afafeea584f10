//! Reviewing stored responses: listed per form or node, approved or
//! rejected once, the review's wake-up delivered.

use super::*;

impl Forms {
    /// Responses passing `filter`. Reading answers that may hold personal
    /// data is recorded in the audit log as an access by `actor`.
    pub async fn responses(
        &self,
        tenant: &TenantId,
        filter: &ResponseFilter,
        actor: &str,
    ) -> Result<Vec<FormResponse>, FormsError> {
        let found = self.inner.store.responses(tenant, filter).await?;
        if !found.is_empty() {
            self.audit(
                tenant,
                Some(actor),
                AuditAction::Access,
                "form responses",
                filter
                    .form_id
                    .as_ref()
                    .map_or_else(|| "*".into(), ToString::to_string),
                json!({ "responses": found.iter().map(|r| r.id).collect::<Vec<_>>() }),
            )
            .await;
        }
        Ok(found)
    }

    /// Approves or rejects response `id` and wakes the review node waiting
    /// for it.
    #[tracing::instrument(name = "review", skip_all, fields(response = %id))]
    pub async fn review(
        &self,
        engine: &Engine,
        tenant: &TenantId,
        id: ResponseId,
        decision: Decision,
    ) -> Result<FormResponse, FormsError> {
        if decision.status == ReviewStatus::Pending {
            return Err(FormsError::UndecidedReview);
        }
        let review = Review {
            status: decision.status,
            reviewer: decision.reviewer,
            comment: decision.comment,
            at: self.now(),
        };
        let at = review.at;
        // The decision and the review node's wake-up in one change.
        let wake = move |response: &FormResponse| {
            let (run, node) = (response.run_id?, response.node_id.as_ref()?);
            Some(HeldWakeup::new(
                review_key(run, node.as_str()),
                json!({ "responseId": id, "status": response.review_status }),
                at,
                DEFAULT_HELD_WAKEUP_TTL,
            ))
        };
        let (response, woke) = self
            .inner
            .store
            .review_response(tenant, id, &review, &wake)
            .await
            .map_err(|err| match err.kind() {
                StoreErrorKind::NotFound => FormsError::ResponseNotFound(id),
                StoreErrorKind::Conflict => FormsError::AlreadyReviewed(id),
                _ => FormsError::Store(err),
            })?;
        self.audit(
            tenant,
            Some(&review.reviewer),
            AuditAction::Review,
            "form response",
            id.to_string(),
            json!({ "status": review.status, "comment": review.comment }),
        )
        .await;
        if let Some(wait) = woke {
            engine.woken(tenant, wait.run_id);
        }
        Ok(response)
    }
}
