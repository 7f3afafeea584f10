//! `FormStore`: forms, their responses and the links respondents answer through.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{HeldWakeup, StoreError, StoreResult};
use crate::form::{FormDraft, FormLink, FormResponse, FormSchema, ResponseFilter, Review};
use crate::ids::{FormId, ResponseId, TenantId};
use crate::run::Wait;

/// Forms, responses and form links.
///
/// Every call takes the tenant it acts for, except [`FormStore::link`]: a
/// respondent following a link presents only the token, and the link it
/// names says which tenant it belongs to.
///
/// Forms live beside the engine's records ([`Store`](super::Store)): an
/// answer wakes the node waiting for it in the change that stores it, and
/// a link of a cancelled run no longer opens.
#[async_trait]
pub trait FormStore: super::Store {
    /// Stores `form` as version `form.version` of `form.id`. A version is
    /// immutable: storing one that exists is a [`StoreError::Conflict`].
    async fn insert_form(&self, tenant: &TenantId, form: &FormSchema) -> StoreResult<()>;

    /// Version `version` of form `id`, or its latest when `None`.
    async fn form(
        &self,
        tenant: &TenantId,
        id: &FormId,
        version: Option<u32>,
    ) -> StoreResult<Option<FormSchema>>;

    /// Stores a new link; a token hash already stored is a conflict.
    async fn insert_link(&self, link: &FormLink) -> StoreResult<()>;

    /// The link whose token hashes to `token_hash`, of whichever tenant.
    async fn link(&self, token_hash: &str) -> StoreResult<Option<FormLink>>;

    /// Stores `response`. With `link`, in one change it also uses the link
    /// with that token hash, which must belong to the response's tenant, be
    /// unused and not expired at `response.submitted_at`, and removes the
    /// link's draft; otherwise nothing is stored and the answer is
    /// [`StoreError::Conflict`] (or `NotFound`). With `wake`, the wake-up of
    /// the node waiting for the answer is delivered in the same change
    /// ([`WaitStore::deliver`](super::WaitStore::deliver)): the answer is
    /// the wait it ended, if it was stored; otherwise the wake-up is held
    /// for the node, so a crash right after the answer is stored loses no
    /// wake-up.
    async fn insert_response(
        &self,
        response: &FormResponse,
        link: Option<&str>,
        wake: Option<&HeldWakeup>,
    ) -> StoreResult<Option<Wait>>;

    /// Saves `draft` as its link's draft, replacing the one before, when
    /// the link belongs to the draft's tenant, is unused and is not expired
    /// at `draft.saved_at`; otherwise nothing is stored and the answer is
    /// [`StoreError::Conflict`] (used or expired) or `NotFound`.
    async fn save_draft(&self, draft: &FormDraft) -> StoreResult<()>;

    /// The draft saved through the link whose token hashes to `token_hash`.
    async fn draft(&self, token_hash: &str) -> StoreResult<Option<FormDraft>>;

    /// Responses passing `filter`, newest first.
    async fn responses(
        &self,
        tenant: &TenantId,
        filter: &ResponseFilter,
    ) -> StoreResult<Vec<FormResponse>>;

    /// Records `review` on pending response `id` and returns it. A response
    /// already decided is a [`StoreError::Conflict`]. `wake` names, from the
    /// response as reviewed, the wake-up of the node waiting for the
    /// decision, delivered in the same change as for
    /// [`insert_response`](Self::insert_response); the answer holds the
    /// wait it ended, if any.
    async fn review_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        review: &Review,
        wake: &WakeFor,
    ) -> StoreResult<(FormResponse, Option<Wait>)>;

    /// Erases the personal data of response `id`: its data becomes `data`
    /// (the caller blanked the form's personal fields), and its respondent
    /// and submitter metadata are removed; `erased_at` is set to `at`.
    async fn erase_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        data: &Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Deletes the responses to form `form_id` submitted before `before`,
    /// and the drafts of its links saved before then; returns how many
    /// responses.
    async fn delete_responses(
        &self,
        tenant: &TenantId,
        form_id: &FormId,
        before: DateTime<Utc>,
    ) -> StoreResult<u64>;
}

/// Which wake-up a stored response makes, if any: what
/// [`FormStore::review_response`] delivers with the decision.
pub type WakeFor = dyn Fn(&FormResponse) -> Option<HeldWakeup> + Send + Sync;

impl StoreError {
    /// Response `id` does not exist for the tenant.
    pub fn response_not_found(id: ResponseId) -> Self {
        Self::NotFound {
            entity: "form response",
            id: id.to_string(),
        }
    }

    /// The link a submission came through cannot be used (any more).
    pub fn link_refused(why: &str) -> Self {
        Self::Conflict {
            entity: "form link",
            id: "(token)".into(),
            message: why.into(),
        }
    }

    /// Response `id` has been decided already.
    pub fn already_reviewed(id: ResponseId) -> Self {
        Self::Conflict {
            entity: "form response",
            id: id.to_string(),
            message: "it has been reviewed already".into(),
        }
    }
}
