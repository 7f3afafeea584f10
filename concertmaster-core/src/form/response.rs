//! Stored responses, the links respondents answer through, and the
//! filters that list them.

use super::*;

/// A checked submission made ready for the host to store in a transaction
/// of its own (the SQL stores' `insert_response_in`), so that the host's
/// records and the answer commit or roll back together: the response, the
/// hash of the link it uses up, and its audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedResponse {
    pub(super) response: FormResponse,
    pub(super) link_hash: Option<String>,
    pub(super) audit: crate::store::AuditEntry,
    pub(super) wakeup: Option<crate::store::HeldWakeup>,
}

impl PreparedResponse {
    /// A response to store with the link it uses (by the SHA-256 hash the
    /// store keeps) and its audit entry.
    pub fn new(
        response: FormResponse,
        link_hash: Option<String>,
        audit: crate::store::AuditEntry,
    ) -> Self {
        Self {
            response,
            link_hash,
            audit,
            wakeup: None,
        }
    }

    /// The same, with the wake-up of the node waiting for the answer,
    /// stored with it ([`WaitStore::deliver`](crate::store::WaitStore::deliver)).
    pub fn with_wakeup(mut self, wakeup: crate::store::HeldWakeup) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// The wake-up to store with it, if any.
    pub fn wakeup(&self) -> Option<&crate::store::HeldWakeup> {
        self.wakeup.as_ref()
    }

    /// The response to store.
    pub fn response(&self) -> &FormResponse {
        &self.response
    }

    /// The hash of the link it uses up, if it came through one.
    pub fn link_hash(&self) -> Option<&str> {
        self.link_hash.as_deref()
    }

    /// Its audit entry, to store with it.
    pub fn audit(&self) -> &crate::store::AuditEntry {
        &self.audit
    }
}

/// A stored, valid submission of a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormResponse {
    /// The response's id.
    pub id: ResponseId,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// The form answered.
    pub form_id: FormId,
    /// The version answered; the data satisfies that version's schema.
    pub form_version: u32,
    /// The run that asked for it, when a workflow sent the form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// The node that asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
    /// Who answered, as they were addressed (e-mail or the host's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respondent: Option<String>,
    /// The answers.
    pub data: Value,
    /// Their consent, when the form asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
    /// Where it came from.
    #[serde(default)]
    pub submitter: Submitter,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// Where it is in review.
    #[serde(default)]
    pub review_status: ReviewStatus,
    /// The decision, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// When its personal data was erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
}

/// A form link handed to one respondent: the stored side of a
/// [`FormToken`], which is never stored itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormLink {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The tenant the link belongs to.
    pub tenant: TenantId,
    /// The form to render.
    pub form_id: FormId,
    /// Its version.
    pub form_version: u32,
    /// The run that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// The node that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
    /// The wait key a submission resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_key: Option<String>,
    /// Who it was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respondent: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// After this it is refused.
    pub expires_at: DateTime<Utc>,
    /// When it was used; a used link is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<DateTime<Utc>>,
}

/// Which responses to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseFilter {
    /// Only answers to this form.
    pub form_id: Option<FormId>,
    /// Only answers asked for by this run.
    pub run_id: Option<RunId>,
    /// Only answers asked for by this node (with `run_id`).
    pub node_id: Option<NodeId>,
    /// Only responses in this review state.
    pub review_status: Option<ReviewStatus>,
    /// Only this respondent's.
    pub respondent: Option<String>,
    /// Only responses submitted before this time.
    pub submitted_before: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

impl ResponseFilter {
    /// Every response, up to the default limit.
    pub fn all() -> Self {
        Self::default()
    }

    /// Responses to form `id`.
    pub fn form(id: impl Into<FormId>) -> Self {
        Self {
            form_id: Some(id.into()),
            ..Self::default()
        }
    }

    /// Responses asked for by node `node` of run `run`.
    pub fn node(run: RunId, node: impl Into<NodeId>) -> Self {
        Self {
            run_id: Some(run),
            node_id: Some(node.into()),
            ..Self::default()
        }
    }

    /// Only responses in review state `status`.
    pub fn status(mut self, status: ReviewStatus) -> Self {
        self.review_status = Some(status);
        self
    }

    /// Only `respondent`'s responses.
    pub fn respondent(mut self, respondent: impl Into<String>) -> Self {
        self.respondent = Some(respondent.into());
        self
    }

    /// Only responses submitted before `at`.
    pub fn before(mut self, at: DateTime<Utc>) -> Self {
        self.submitted_before = Some(at);
        self
    }

    /// At most `limit` responses.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The limit a store applies.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(100).min(1000)
    }

    /// Whether `response` passes (stores without a query language use it).
    pub fn matches(&self, response: &FormResponse) -> bool {
        self.form_id.as_ref().is_none_or(|f| *f == response.form_id)
            && self.run_id.is_none_or(|r| Some(r) == response.run_id)
            && self
                .node_id
                .as_ref()
                .is_none_or(|n| Some(n) == response.node_id.as_ref())
            && self
                .review_status
                .is_none_or(|s| s == response.review_status)
            && self
                .respondent
                .as_ref()
                .is_none_or(|r| Some(r) == response.respondent.as_ref())
            && self
                .submitted_before
                .is_none_or(|t| response.submitted_at < t)
    }
}
