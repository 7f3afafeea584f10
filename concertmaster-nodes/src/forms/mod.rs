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

mod links;
pub(crate) mod notify;
#[cfg(feature = "portal")]
pub mod portal;
mod retention;
mod review;
#[cfg(feature = "smtp")]
mod smtp;
mod submission;

pub(crate) use links::issue;
use links::*;
pub(crate) use submission::response_item;

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
}
