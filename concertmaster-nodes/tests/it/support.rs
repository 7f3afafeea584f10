//! An engine with the forms nodes, a manual clock and an outbox.

use std::sync::Arc;
use std::time::Duration;

use concertmaster_core::{
    clock::ManualClock, form::FormSchema, run::RunDetail, store::Backend,
    workflow::PublishedWorkflow, Engine, RunId, RunStatus, TenantId, WorkflowDefinition,
};
use concertmaster_nodes::forms::{Forms, Notification, NotificationKind, Outbox};
use serde_json::{json, Value};

pub(crate) const PORTAL: &str = "https://portal.acme.test/f/";

pub(crate) struct Harness {
    pub(crate) engine: Engine,
    /// The engine's store, as every trait the forms use.
    pub(crate) store: Arc<dyn Backend>,
    pub(crate) forms: Forms,
    pub(crate) outbox: Outbox,
    pub(crate) clock: ManualClock,
    pub(crate) tenant: TenantId,
}

impl Harness {
    /// Every form response the store holds for the harness's tenant.
    pub(crate) async fn stored_responses(&self) -> Vec<concertmaster_core::form::FormResponse> {
        self.store
            .responses(
                &self.tenant,
                &concertmaster_core::form::ResponseFilter::all(),
            )
            .await
            .expect("responses read")
    }

    pub(crate) async fn in_memory() -> Self {
        Self::on(
            Arc::new(concertmaster_core::InMemoryStore::new()),
            ManualClock::default(),
        )
        .await
    }

    pub(crate) async fn on(store: Arc<dyn Backend>, clock: ManualClock) -> Self {
        let outbox = Outbox::new();
        let forms = Forms::new(store.clone(), outbox.clone(), PORTAL).with_clock(clock.clone());
        let mut registry = concertmaster_nodes::registry();
        forms
            .register_nodes(&mut registry)
            .expect("forms nodes register");
        let subs = concertmaster_nodes::SubWorkflows::new();
        subs.register_nodes(&mut registry)
            .expect("sub_workflow registers");
        let engine = Engine::builder()
            .shared_store(store.clone())
            .registry(registry)
            .clock(clock.clone())
            // Timers fire when a test advances the clock.
            .timer_poll_interval(Duration::from_secs(3600))
            .build()
            .await
            .expect("engine");
        subs.attach(&engine);
        Self {
            engine,
            store,
            forms,
            outbox,
            clock,
            tenant: TenantId::new("acme"),
        }
    }

    pub(crate) async fn publish_profile_form(&self) -> FormSchema {
        self.forms
            .publish(&self.tenant, profile_form())
            .await
            .expect("form publishes")
    }

    pub(crate) async fn publish(&self, def: Value) -> PublishedWorkflow {
        let def = WorkflowDefinition::from_value(def).expect("workflow parses");
        self.engine
            .publish(&self.tenant, def)
            .await
            .expect("workflow publishes")
    }

    pub(crate) async fn status(&self, run: RunId) -> RunStatus {
        self.engine
            .settled(&self.tenant, run)
            .await
            .expect("settles")
            .status
    }

    pub(crate) async fn detail(&self, run: RunId) -> RunDetail {
        self.engine
            .run(&self.tenant, run)
            .await
            .expect("run detail")
    }

    /// The run's detail once `done` holds for it; fails after 10 s
    /// saying what did not happen.
    pub(crate) async fn until(
        &self,
        run: RunId,
        what: &str,
        done: impl Fn(&RunDetail) -> bool,
    ) -> RunDetail {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let detail = self.detail(run).await;
            if done(&detail) {
                return detail;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "{what}: not after 10 s; run is {:?} with nodes {:?}",
                detail.run.status,
                detail
                    .nodes
                    .iter()
                    .map(|n| (n.node_id.to_string(), n.status))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Moves the clock and fires what came due.
    pub(crate) async fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by.to_std().expect("positive"));
        self.engine.fire_due_timers().await.expect("timers fire");
    }

    /// The token in the latest message of `kind` to `to`.
    pub(crate) fn token_for(&self, to: &str, kind: NotificationKind) -> String {
        let message: Notification = self
            .outbox
            .messages_to(to)
            .into_iter()
            .filter(|m| m.kind == kind)
            .last()
            .unwrap_or_else(|| panic!("no {kind:?} to {to}"));
        message
            .link
            .strip_prefix(PORTAL)
            .expect("links start with the portal URL")
            .to_string()
    }
}

/// The supplier profile: company name, VAT id, contact e-mail (personal).
pub(crate) fn profile_form() -> FormSchema {
    FormSchema::new(
        "supplier-profile",
        "Supplier profile",
        json!({
            "type": "object",
            "properties": {
                "company": { "type": "string", "minLength": 2 },
                "vatId": { "type": "string", "pattern": "^[A-Z]{2}[0-9A-Z]{8,12}$" },
                "employees": { "type": "integer", "minimum": 1 },
                "contact": {
                    "type": "object",
                    "properties": {
                        "email": { "type": "string", "format": "email", "x-pii": true },
                        "phone": { "type": "string", "x-pii": true, "x-retention-days": 30 }
                    },
                    "required": ["email"]
                }
            },
            "required": ["company", "vatId", "contact"]
        }),
    )
    .with_ui_schema(json!({ "ui:order": ["company", "vatId", "employees", "contact"] }))
    .with_retention_days(365)
}

/// Answers that satisfy the profile form.
pub(crate) fn answers(company: &str, email: &str) -> Value {
    json!({
        "company": company,
        "vatId": "DE123456789",
        "employees": 250,
        "contact": { "email": email, "phone": "+49 30 1234567" }
    })
}

/// send_form -> wait_for_responses -> review, plus the given extra config.
pub(crate) fn questionnaire(recipients: &[&str], wait: Value) -> Value {
    json!({
        "id": "questionnaire", "name": "Supplier questionnaire",
        "nodes": [
            { "id": "start", "type": "manual" },
            { "id": "send", "type": "send_form", "config": {
                "formId": "supplier-profile", "recipients": recipients, "expiresIn": "14d"
            } },
            { "id": "wait", "type": "wait_for_responses", "config": wait },
            { "id": "review", "type": "review" }
        ],
        "edges": [
            { "id": "e1", "source": "start", "target": "send" },
            { "id": "e2", "source": "send", "target": "wait" },
            { "id": "e3", "source": "wait", "target": "review" }
        ]
    })
}

/// The nodes of a run that wait.
pub(crate) fn waiting_nodes(detail: &RunDetail) -> Vec<String> {
    detail
        .nodes
        .iter()
        .filter(|n| n.status == concertmaster_core::run::NodeStatus::Waiting)
        .map(|n| n.node_id.to_string())
        .collect()
}

/// Everything logged on this thread, at every level with span events,
/// from now until the guard drops: for scanning logs for secrets.
#[cfg(any(feature = "http", feature = "smtp"))]
pub(crate) fn capture_logs() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let captured = CapturedLogs::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

/// Log output kept in memory.
#[cfg(any(feature = "http", feature = "smtp"))]
#[derive(Clone, Default)]
pub(crate) struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(any(feature = "http", feature = "smtp"))]
impl CapturedLogs {
    /// What was logged so far.
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(any(feature = "http", feature = "smtp"))]
impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
