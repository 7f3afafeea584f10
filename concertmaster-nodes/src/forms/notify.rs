//! How a form reaches its respondent: the `Notifier` trait, and the
//! outbox notifier that keeps messages for the host to show or send.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use concertmaster_core::TenantId;

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not notify {to}: {message}")]
pub struct NotifyError {
    /// The address.
    pub to: String,
    /// What the channel said.
    pub message: String,
    /// Whether trying again may work (a server down, a rate limit).
    pub retryable: bool,
}

/// Whether a message asks for the first time, reminds, or escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotificationKind {
    /// The first request to answer.
    Invitation,
    /// A reminder to someone who has not answered.
    Reminder,
    /// To someone asked to answer on behalf of a respondent who did not,
    /// after the reminders (`reminders` with `escalateTo`).
    Escalation,
}

/// One message to one respondent, carrying their personal form link.
///
/// `Debug` leaves the link out: it holds the respondent's token.
#[derive(Clone)]
#[non_exhaustive]
pub struct Notification {
    /// The tenant sending it.
    pub tenant: TenantId,
    /// The respondent's address (e-mail, or the host's user id).
    pub to: String,
    /// Invitation or reminder.
    pub kind: NotificationKind,
    /// Subject line.
    pub subject: String,
    /// Text with the link in it.
    pub body: String,
    /// The link alone, for channels that render it themselves.
    pub link: String,
    /// The same for every attempt to send this message: a channel that can
    /// deduplicate (an e-mail API's idempotency header) should pass it on.
    pub idempotency_key: String,
}

impl Notification {
    /// A notification, for notifiers' own tests; the nodes build theirs.
    pub fn new(
        tenant: TenantId,
        to: impl Into<String>,
        kind: NotificationKind,
        subject: impl Into<String>,
        body: impl Into<String>,
        link: impl Into<String>,
        idempotency_key: impl Into<String>,
    ) -> Self {
        Self {
            tenant,
            to: to.into(),
            kind,
            subject: subject.into(),
            body: body.into(),
            link: link.into(),
            idempotency_key: idempotency_key.into(),
        }
    }
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("tenant", &self.tenant)
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

/// Delivers form links: e-mail, a chat message, an inbox in the host's
/// own portal. SMS and other channels are the host's to implement.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Delivers `notification`.
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError>;
}

/// Keeps every notification in memory, for a portal that shows each user
/// their open forms, for tests, and for examples. Clones share the outbox.
#[derive(Clone, Default)]
pub struct Outbox {
    sent: Arc<Mutex<Vec<Notification>>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("messages", &self.messages().len())
            .finish()
    }
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every notification so far, oldest first.
    pub fn messages(&self) -> Vec<Notification> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The notifications sent to `to`, oldest first.
    pub fn messages_to(&self, to: &str) -> Vec<Notification> {
        self.messages().into_iter().filter(|n| n.to == to).collect()
    }
}

#[async_trait]
impl Notifier for Outbox {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(notification.clone());
        Ok(())
    }
}
