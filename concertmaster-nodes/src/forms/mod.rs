//! Forms as a service: publishing form versions, form links, submissions
//! through them, reviews, erasure on request and retention purges, and the
//! nodes that send forms and wait for people.
//!
//! Links are 256-bit tokens stored as SHA-256 and used once: the store uses
//! the link and stores the response in one change. An invalid submission
//! stores nothing and leaves the link usable. A stored response wakes the
//! node waiting on `form:<run>:<send node>` in the transaction that stores
//! it (held in the store when the node is not waiting yet); the node also
//! counts stored responses every time it runs. Drafts are saved part-way
//! and resumed through the same link.

pub(crate) mod notify;
#[cfg(feature = "portal")]
pub mod portal;
#[cfg(feature = "smtp")]
mod smtp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use concertmaster_core::{
    clock::{Clock, SystemClock},
    form::{
        Consent, FormDraft, FormId, FormLink, FormResponse, FormSchema, FormToken,
        PreparedResponse, ResponseFilter, ResponseId, Review, ReviewStatus, Submitter,
    },
    limits::DEFAULT_HELD_WAKEUP_TTL,
    node::RegistryError,
    store::FormStore,
    store::{AuditAction, AuditEntry, HeldWakeup, StoreError, StoreErrorKind},
    validate::FieldError,
    Engine, NodeId, NodeRegistry, RunId, RunStatus, TenantId,
};
use serde_json::{json, Value};

pub use notify::{Notification, NotificationKind, Notifier, NotifyError, Outbox};
#[cfg(feature = "smtp")]
pub use smtp::{SmtpError, SmtpNotifier};

/// Largest submission accepted, in bytes of JSON.
pub const MAX_SUBMISSION_BYTES: usize = 1024 * 1024;

/// Deepest nesting of a submission's values (objects and arrays) accepted.
/// Forms nest a few levels (groups, repeated rows); what is stored must
/// read back through every store's JSON parser, which stops at 128.
pub const MAX_SUBMISSION_DEPTH: usize = 32;

/// How long a link works unless the node or caller says otherwise.
const DEFAULT_LINK_TTL_DAYS: i64 = 14;

/// Why a forms call was refused. Refusals change nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormsError {
    /// The token is not one this system issued (or it was mistyped).
    #[error("this form link is not valid; check that the whole link was copied")]
    UnknownLink,
    /// The link was used for a submission already.
    #[error("this form link has been used already; each link takes one submission")]
    LinkUsed,
    /// The run that sent the link was cancelled: the request was withdrawn
    /// and nothing would use an answer.
    #[error("this form is no longer needed: run {run} that asked for it was cancelled")]
    Withdrawn {
        /// The cancelled run.
        run: RunId,
    },
    /// The link is past its expiry.
    #[error("this form link expired at {expired_at}; ask the sender for a new one")]
    LinkExpired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The submission does not satisfy the form; nothing was stored.
    #[error("form {form} version {version}: {} field(s) invalid: {}", errors.len(), summary(errors))]
    Invalid {
        /// The form.
        form: FormId,
        /// Its version.
        version: u32,
        /// Every failing field, with its JSON pointer.
        errors: Vec<FieldError>,
    },
    /// The submission is larger than [`MAX_SUBMISSION_BYTES`].
    #[error("the submission has {bytes} bytes, more than the {MAX_SUBMISSION_BYTES} accepted")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The submission nests deeper than [`MAX_SUBMISSION_DEPTH`].
    #[error(
        "the submission nests deeper than the {MAX_SUBMISSION_DEPTH} levels accepted, at {pointer}"
    )]
    TooDeep {
        /// JSON pointer to the first value past the limit.
        pointer: String,
    },
    /// No such form (version) for the tenant.
    #[error("form {form} (version {version:?}) does not exist for tenant {tenant}")]
    FormNotFound {
        /// The tenant.
        tenant: TenantId,
        /// The form asked for.
        form: FormId,
        /// The version asked for; `None` for the latest.
        version: Option<u32>,
    },
    /// The form's own schema does not compile.
    #[error(transparent)]
    Form(#[from] concertmaster_core::form::FormError),
    /// No such response for the tenant.
    #[error("form response {0} does not exist for this tenant")]
    ResponseNotFound(ResponseId),
    /// The response was decided already.
    #[error("form response {0} has been reviewed already")]
    AlreadyReviewed(ResponseId),
    /// A review must approve or reject.
    #[error("a review decides approved or rejected, not pending")]
    UndecidedReview,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<StoreError> for FormsError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// What a respondent sends.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Submission {
    /// The answers.
    pub data: Value,
    /// Their consent, when the form asks for it.
    pub consent: Option<Consent>,
    /// Client metadata the host saw.
    pub submitter: Submitter,
}

impl Submission {
    /// A submission of `data`.
    pub fn new(data: Value) -> Self {
        Self {
            data,
            ..Self::default()
        }
    }

    /// With the respondent's consent.
    pub fn with_consent(mut self, consent: Consent) -> Self {
        self.consent = Some(consent);
        self
    }

    /// With the client's address and user agent.
    pub fn with_submitter(mut self, ip: Option<String>, user_agent: Option<String>) -> Self {
        self.submitter = Submitter { ip, user_agent };
        self
    }
}

/// A reviewer's decision.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Decision {
    /// Approved or rejected.
    pub status: ReviewStatus,
    /// Who decided.
    pub reviewer: String,
    /// Why.
    pub comment: Option<String>,
}

impl Decision {
    /// `reviewer` approves.
    pub fn approve(reviewer: impl Into<String>) -> Self {
        Self {
            status: ReviewStatus::Approved,
            reviewer: reviewer.into(),
            comment: None,
        }
    }

    /// `reviewer` rejects, saying why.
    pub fn reject(reviewer: impl Into<String>, comment: impl Into<String>) -> Self {
        Self {
            status: ReviewStatus::Rejected,
            reviewer: reviewer.into(),
            comment: Some(comment.into()),
        }
    }

    /// Adds a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// A link about to be issued.
#[derive(Debug, Clone)]
pub(crate) struct LinkRequest {
    pub(crate) form: FormId,
    pub(crate) version: u32,
    pub(crate) run: Option<RunId>,
    pub(crate) node: Option<NodeId>,
    pub(crate) respondent: Option<String>,
    pub(crate) expires_at: DateTime<Utc>,
}

/// A form opened through its link, for rendering.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenForm {
    /// The link, as stored (no token).
    pub link: FormLink,
    /// The form version to render.
    pub form: FormSchema,
    /// The answers saved part-way through this link, to fill the form with.
    pub draft: Option<FormDraft>,
}

/// What a retention purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Responses deleted, being older than the form's retention.
    pub deleted: u64,
    /// Responses whose shorter-lived personal fields were erased.
    pub erased: usize,
}

/// The wait key the node `send` of `run` is woken on when a response comes.
pub(crate) fn response_key(run: RunId, send: &str) -> String {
    format!("form:{run}:{send}")
}

/// The wait key reminders for `send` of `run` are woken on.
pub(crate) fn reminder_key(run: RunId, send: &str) -> String {
    format!("remind:{run}:{send}")
}

/// The wait key a review of the responses to `send` of `run` is woken on.
pub(crate) fn review_key(run: RunId, send: &str) -> String {
    format!("review:{run}:{send}")
}

#[derive(Clone)]
pub(crate) struct FormsInner {
    pub(crate) store: Arc<dyn FormStore>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) portal_url: String,
    pub(crate) link_ttl: chrono::Duration,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Forms for one store: the API a host's portal and review inbox call, and
/// the collection nodes its workflows use.
///
/// ```
/// use std::sync::Arc;
/// use concertmaster_core::{Engine, InMemoryStore, TenantId, form::FormSchema};
/// use concertmaster_nodes::forms::{Forms, Outbox};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(InMemoryStore::new());
/// let outbox = Outbox::new();
/// let forms = Forms::new(store.clone(), outbox.clone(), "https://portal.acme.test/f/");
/// let mut registry = concertmaster_nodes::registry();
/// forms.register_nodes(&mut registry)?;
/// let engine = Engine::builder().shared_store(store).registry(registry).build().await?;
///
/// let tenant = TenantId::new("acme");
/// forms.publish(&tenant, FormSchema::new("profile", "Supplier profile", json!({
///     "type": "object", "properties": { "vat": { "type": "string" } }, "required": ["vat"]
/// }))).await?;
/// // A workflow with `send_form` and `wait_for_responses` nodes now sends
/// // links through the outbox; the portal calls `forms.submit(&engine, token, ..)`.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Forms {
    inner: Arc<FormsInner>,
}

impl std::fmt::Debug for Forms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forms")
            .field("portal_url", &self.inner.portal_url)
            .field("link_ttl", &self.inner.link_ttl)
            .finish_non_exhaustive()
    }
}

impl Forms {
    /// Forms kept in `store`, links delivered by `notifier`; a link is
    /// `portal_url` followed by the token.
    pub fn new(
        store: Arc<dyn FormStore>,
        notifier: impl Notifier,
        portal_url: impl Into<String>,
    ) -> Self {
        Self {
            inner: Arc::new(FormsInner {
                store,
                notifier: Arc::new(notifier),
                portal_url: portal_url.into(),
                link_ttl: chrono::Duration::days(DEFAULT_LINK_TTL_DAYS),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// How long links work unless a node says otherwise (default 14 days,
    /// at most ten years).
    pub fn with_link_ttl(mut self, ttl: Duration) -> Self {
        let most = chrono::Duration::days(3650);
        Arc::make_mut(&mut self.inner).link_ttl =
            chrono::Duration::from_std(ttl).map_or(most, |ttl| ttl.min(most));
        self
    }

    /// The clock submissions and links are timed by; the engine's, in tests.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        Arc::make_mut(&mut self.inner).clock = Arc::new(clock);
        self
    }

    /// Registers the collection nodes (`send_form`, `wait_for_responses`,
    /// `reminders`, `review`) and the `form_submission` trigger.
    pub fn register_nodes(&self, registry: &mut NodeRegistry) -> Result<(), RegistryError> {
        crate::collection::register(registry, &self.inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    async fn audit(
        &self,
        tenant: &TenantId,
        actor: Option<&str>,
        action: AuditAction,
        entity_type: &str,
        entity_id: String,
        details: Value,
    ) {
        let entry = AuditEntry {
            tenant: tenant.clone(),
            at: self.now(),
            actor: actor
                .map(str::to_string)
                .or_else(concertmaster_core::run::current_actor),
            action,
            entity_type: entity_type.into(),
            entity_id,
            details,
        };
        // The change itself is committed; a lost audit line is reported,
        // not turned into a failure that would invite a repeat.
        if let Err(err) = self.inner.store.append_audit(&entry).await {
            tracing::error!(error = %err, entity = %entry.entity_id, "audit entry could not be stored");
        }
    }

    /// Stores `form` as the next version of its id (its `version` field is
    /// ignored) after checking that its schema compiles; returns it as stored.
    pub async fn publish(
        &self,
        tenant: &TenantId,
        mut form: FormSchema,
    ) -> Result<FormSchema, FormsError> {
        form.check_definition()?;
        let latest = self.inner.store.form(tenant, &form.id, None).await?;
        form.version = latest.map_or(1, |f| f.version + 1);
        self.inner.store.insert_form(tenant, &form).await?;
        self.audit(
            tenant,
            None,
            AuditAction::Create,
            "form",
            format!("{}@{}", form.id, form.version),
            json!({ "title": form.title }),
        )
        .await;
        Ok(form)
    }

    /// Version `version` of form `id`, or its latest.
    pub async fn form(
        &self,
        tenant: &TenantId,
        id: &FormId,
        version: Option<u32>,
    ) -> Result<FormSchema, FormsError> {
        self.inner
            .store
            .form(tenant, id, version)
            .await?
            .ok_or_else(|| FormsError::FormNotFound {
                tenant: tenant.clone(),
                form: id.clone(),
                version,
            })
    }

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

    async fn usable_link(&self, token: &str) -> Result<(FormLink, String), FormsError> {
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
    async fn refused(&self, err: StoreError, hash: &str, at: DateTime<Utc>) -> FormsError {
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
    fn response_wakeup(&self, response: &FormResponse) -> Option<HeldWakeup> {
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
    async fn remind_of(&self, engine: &Engine, response: &FormResponse) {
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

    fn checked_response(
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

    async fn erase(
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

/// Refuses answers nested deeper than [`MAX_SUBMISSION_DEPTH`] or larger
/// than [`MAX_SUBMISSION_BYTES`].
fn within_limits(data: &Value) -> Result<(), FormsError> {
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

fn check_usable(link: &FormLink, now: DateTime<Utc>) -> Result<(), FormsError> {
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
fn too_deep(value: &Value, limit: usize) -> Option<String> {
    deeper(value, limit).map(|pointer| {
        if pointer.is_empty() {
            "/".into()
        } else {
            pointer
        }
    })
}

/// `too_deep`'s walk: the pointer relative to `value`.
fn deeper(value: &Value, levels_left: usize) -> Option<String> {
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
