//! Form links: issued per respondent, opened by their token, checked
//! before every use.

use super::*;

impl Forms {
    /// A link for one respondent outside any workflow (a survey sent by
    /// hand): the link as stored, and the URL to give them.
    pub async fn issue_link(
        &self,
        tenant: &TenantId,
        form: &FormId,
        respondent: Option<String>,
    ) -> Result<(FormLink, String), FormsError> {
        let form = self.form(tenant, form, None).await?;
        let request = LinkRequest {
            form: form.id,
            version: form.version,
            run: None,
            node: None,
            respondent,
            expires_at: self.now() + self.inner.link_ttl,
        };
        issue(&self.inner, tenant, request, self.now()).await
    }

    /// Checks a link a respondent followed and returns what to render.
    pub async fn open(&self, token: &str) -> Result<OpenForm, FormsError> {
        let (link, hash) = self.usable_link(token).await?;
        let form = self
            .form(&link.tenant, &link.form_id, Some(link.form_version))
            .await?;
        let draft = self.inner.store.draft(&hash).await?;
        Ok(OpenForm { link, form, draft })
    }

    pub(super) async fn usable_link(&self, token: &str) -> Result<(FormLink, String), FormsError> {
        let token = FormToken::from_link(token.trim()).ok_or(FormsError::UnknownLink)?;
        let hash = token.hash();
        let link = self
            .inner
            .store
            .link(&hash)
            .await?
            .ok_or(FormsError::UnknownLink)?;
        check_usable(&link, self.now())?;
        if let Some(run) = link.run_id {
            let status = self
                .inner
                .store
                .run(&link.tenant, run)
                .await?
                .map(|r| r.status);
            if status == Some(RunStatus::Cancelled) {
                return Err(FormsError::Withdrawn { run });
            }
        }
        Ok((link, hash))
    }
}

pub(super) fn check_usable(link: &FormLink, now: DateTime<Utc>) -> Result<(), FormsError> {
    if link.used_at.is_some() {
        return Err(FormsError::LinkUsed);
    }
    if link.expires_at <= now {
        return Err(FormsError::LinkExpired {
            expired_at: link.expires_at,
        });
    }
    Ok(())
}

/// Stores a new link and returns it with its URL.
pub(crate) async fn issue(
    forms: &FormsInner,
    tenant: &TenantId,
    request: LinkRequest,
    now: DateTime<Utc>,
) -> Result<(FormLink, String), FormsError> {
    let token = FormToken::generate()?;
    let link = FormLink {
        token_hash: token.hash(),
        tenant: tenant.clone(),
        form_id: request.form,
        form_version: request.version,
        run_id: request.run,
        wait_key: match (request.run, &request.node) {
            (Some(run), Some(node)) => Some(response_key(run, node.as_str())),
            _ => None,
        },
        node_id: request.node,
        respondent: request.respondent,
        created_at: now,
        expires_at: request.expires_at,
        used_at: None,
    };
    forms.store.insert_link(&link).await?;
    let url = format!("{}{}", forms.portal_url, token.expose());
    Ok((link, url))
}
