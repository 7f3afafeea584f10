//! `SmtpNotifier`: form links by e-mail over SMTP (feature `smtp`).

use async_trait::async_trait;
use concertmaster_core::connector::url_without_password;
use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::notify::{Notification, Notifier, NotifyError};

/// Why an SMTP notifier could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// The URL is not an SMTP URL lettre understands.
    #[error("SMTP URL {url}: {message}; write it like smtp://user:password@mail.acme.test:587?tls=required")]
    Url {
        /// The URL with any password hidden.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The sender address is not an address.
    #[error("sender {from:?} is not an e-mail address: {message}")]
    From {
        /// The sender given.
        from: String,
        /// What is wrong.
        message: String,
    },
}

/// Sends each notification as a plain-text e-mail.
///
/// The URL says where and how: `smtp://host:25` (no TLS, for a relay on
/// the same host), `smtp://user:password@host:587?tls=required`
/// (STARTTLS), `smtps://user:password@host:465` (TLS). `Debug` shows
/// neither the password nor the links in messages. Connections are pooled
/// on the Tokio runtime, so make and drop it inside one.
///
/// ```
/// use concertmaster_nodes::forms::SmtpNotifier;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), concertmaster_nodes::forms::SmtpError> {
/// let notifier = SmtpNotifier::new(
///     "smtp://mailer:s3cret@mail.acme.test:587?tls=required",
///     "Supplier portal <portal@acme.test>",
/// )?;
/// assert!(!format!("{notifier:?}").contains("s3cret"));
/// # Ok(()) }
/// ```
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl std::fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpNotifier")
            .field("server", &self.server)
            .field("from", &self.from.email.to_string())
            .finish()
    }
}

impl SmtpNotifier {
    /// A notifier sending through the server at `url`, from `from`
    /// (`portal@acme.test` or `Supplier portal <portal@acme.test>`).
    pub fn new(url: &str, from: &str) -> Result<Self, SmtpError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|err| SmtpError::Url {
                url: url_without_password(url),
                message: err.to_string(),
            })?
            .build();
        let from = from.parse::<Mailbox>().map_err(|err| SmtpError::From {
            from: from.to_string(),
            message: err.to_string(),
        })?;
        let server = url_without_password(url);
        Ok(Self {
            transport,
            from,
            server,
        })
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        let fail = |message: String, retryable| NotifyError {
            to: notification.to.clone(),
            message,
            retryable,
        };
        let to = notification
            .to
            .parse::<Mailbox>()
            .map_err(|err| fail(format!("not an e-mail address: {err}"), false))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&notification.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(notification.body.clone())
            .map_err(|err| fail(format!("the message cannot be built: {err}"), false))?;
        self.transport.send(message).await.map_err(|err| {
            // 5xx answers are final; connection trouble and 4xx may pass later.
            fail(
                format!("{} answered: {err}", self.server),
                !err.is_permanent(),
            )
        })?;
        Ok(())
    }
}
