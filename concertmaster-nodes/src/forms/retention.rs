//! Erasure on request and retention purges: personal fields removed,
//! the erasure audited.

use super::*;

impl Forms {
    /// Erases `respondent`'s personal data from every response of the
    /// tenant (a data subject's request): the forms' `x-pii` fields are
    /// blanked, respondent and client metadata removed, and each erasure
    /// audited. Returns how many responses were erased.
    pub async fn erase_respondent(
        &self,
        tenant: &TenantId,
        respondent: &str,
        actor: &str,
    ) -> Result<usize, FormsError> {
        let mut erased = 0;
        let mut forms: HashMap<(FormId, u32), FormSchema> = HashMap::new();
        loop {
            let filter = ResponseFilter::all().respondent(respondent).limit(1000);
            let batch = self.inner.store.responses(tenant, &filter).await?;
            if batch.is_empty() {
                return Ok(erased);
            }
            for response in batch {
                self.erase(tenant, &response, &mut forms, actor, "data subject request")
                    .await?;
                erased += 1;
            }
        }
    }

    pub(super) async fn erase(
        &self,
        tenant: &TenantId,
        response: &FormResponse,
        forms: &mut HashMap<(FormId, u32), FormSchema>,
        actor: &str,
        reason: &str,
    ) -> Result<(), FormsError> {
        let key = (response.form_id.clone(), response.form_version);
        if !forms.contains_key(&key) {
            let form = self
                .form(tenant, &response.form_id, Some(response.form_version))
                .await?;
            forms.insert(key.clone(), form);
        }
        let mut data = response.data.clone();
        if let Some(form) = forms.get(&key) {
            form.erase_pii(&mut data);
        }
        self.inner
            .store
            .erase_response(tenant, response.id, &data, self.now())
            .await?;
        self.audit(
            tenant,
            Some(actor),
            AuditAction::Erase,
            "form response",
            response.id.to_string(),
            json!({ "reason": reason, "form": response.form_id }),
        )
        .await;
        Ok(())
    }

    /// Applies form `form`'s retention policy: deletes responses older than
    /// its `retentionDays`, and erases personal fields whose own
    /// `x-retention-days` has passed. Run it daily per form.
    pub async fn purge(&self, tenant: &TenantId, form: &FormId) -> Result<PurgeReport, FormsError> {
        let latest = self.form(tenant, form, None).await?;
        let now = self.now();
        let mut report = PurgeReport::default();
        if let Some(days) = latest.retention_days {
            let before = now - chrono::Duration::days(i64::from(days));
            report.deleted = self
                .inner
                .store
                .delete_responses(tenant, form, before)
                .await?;
            if report.deleted > 0 {
                self.audit(
                    tenant,
                    Some("retention"),
                    AuditAction::Delete,
                    "form responses",
                    form.to_string(),
                    json!({ "deleted": report.deleted, "before": before }),
                )
                .await;
            }
        }
        let shortest = latest
            .pii_fields()
            .iter()
            .filter_map(|f| f.retention_days)
            .min();
        if let Some(days) = shortest {
            let before = now - chrono::Duration::days(i64::from(days));
            let mut forms = HashMap::new();
            let filter = ResponseFilter::form(form.clone())
                .before(before)
                .limit(1000);
            for response in self.inner.store.responses(tenant, &filter).await? {
                if response.erased_at.is_none() {
                    self.erase(
                        tenant,
                        &response,
                        &mut forms,
                        "retention",
                        "retention period ended",
                    )
                    .await?;
                    report.erased += 1;
                }
            }
        }
        Ok(report)
    }
}
