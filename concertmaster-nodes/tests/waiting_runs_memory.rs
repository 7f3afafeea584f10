//! 10,000 runs waiting for a form response on SQLite: what the process
//! holds for them, measured as resident memory in a process of its own
//! (this file is its own test binary), and that every one still resumes.
//!
//! `cargo test -p concertmaster-nodes --test waiting_runs_memory -- --nocapture`
//! prints the figures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use concertmaster_core::{
    form::FormSchema, store::Backend, Engine, RunId, RunStatus, TenantId, WorkflowDefinition,
};
use concertmaster_nodes::forms::{Forms, Notification, Notifier, NotifyError, Submission};
use serde_json::json;

const PORTAL: &str = "https://forms.acme.test/f/";
const WAITING: usize = 10_000;
/// Bytes of resident memory the process may gain per waiting run. A
/// waiting run is rows in the store; the engine keeps nothing of it
/// (asserted below), so this is what SQLite's page cache and the
/// allocator keep.
const BOUND_PER_RUN: usize = 4 * 1024;

/// Counts what it is asked to send and keeps the links of the first few.
#[derive(Clone, Default)]
struct Counting(Arc<Sent>);

#[derive(Default)]
struct Sent {
    count: AtomicUsize,
    links: Mutex<Vec<String>>,
}

#[async_trait]
impl Notifier for Counting {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        if self.0.count.fetch_add(1, Ordering::Relaxed) < 10 {
            if let Ok(mut links) = self.0.links.lock() {
                links.push(notification.link.clone());
            }
        }
        Ok(())
    }
}

/// Resident memory of this process, in bytes.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

async fn start_waiting(
    engine: &Engine,
    tenant: &TenantId,
    workflow: &concertmaster_core::workflow::PublishedWorkflow,
    count: usize,
) -> Vec<RunId> {
    let mut runs = Vec::with_capacity(count);
    for chunk in 0..count.div_ceil(100) {
        let mut starting = tokio::task::JoinSet::new();
        for i in chunk * 100..((chunk + 1) * 100).min(count) {
            let engine = engine.clone();
            let workflow = workflow.clone();
            starting.spawn(async move {
                engine
                    .start(
                        &workflow,
                        json!([{ "email": format!("s{i}@supplier.test") }]),
                    )
                    .await
                    .expect("starts")
            });
        }
        while let Some(run) = starting.join_next().await {
            runs.push(run.expect("the start task ends"));
        }
        for run in &runs[chunk * 100..] {
            let run = engine.settled(tenant, *run).await.expect("settles");
            assert_eq!(run.status, RunStatus::Waiting, "{:?}", run.error);
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_waiting_runs_cost_the_process_little_and_all_resume() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store: Arc<dyn Backend> = Arc::new(
        concertmaster_store::SqliteStore::open(&dir.path().join("waiting.db"))
            .await
            .expect("SQLite opens"),
    );
    let notifier = Counting::default();
    let forms = Forms::new(store.clone(), notifier.clone(), PORTAL);
    let mut registry = concertmaster_nodes::registry();
    forms
        .register_nodes(&mut registry)
        .expect("forms nodes register");
    let engine = Engine::builder()
        .shared_store(store)
        .registry(registry)
        .build()
        .await
        .expect("engine");
    let tenant = TenantId::new("acme");
    forms
        .publish(
            &tenant,
            FormSchema::new(
                "confirm",
                "Confirm your details",
                json!({ "type": "object", "properties": { "ok": { "type": "boolean" } }, "required": ["ok"] }),
            ),
        )
        .await
        .expect("the form publishes");
    let workflow = engine
        .publish(
            &tenant,
            WorkflowDefinition::from_value(json!({
                "id": "confirm", "name": "Confirm",
                "nodes": [
                    { "id": "start", "type": "manual" },
                    { "id": "send", "type": "send_form",
                      "config": { "formId": "confirm", "recipientField": "/email", "expiresIn": "30d" } },
                    { "id": "wait", "type": "wait_for_responses" }
                ],
                "edges": [
                    { "id": "e1", "source": "start", "target": "send" },
                    { "id": "e2", "source": "send", "target": "wait" }
                ]
            }))
            .expect("the definition parses"),
        )
        .await
        .expect("the workflow publishes");

    // Warm up: connections, statement caches, the allocator's arenas.
    start_waiting(&engine, &tenant, &workflow, 500).await;
    let before = resident();
    let started = Instant::now();
    let runs = start_waiting(&engine, &tenant, &workflow, WAITING).await;
    let took = started.elapsed();
    let after = resident();
    let per_run = after.saturating_sub(before) / WAITING;
    println!(
        "{WAITING} runs waiting for a response on SQLite: resident memory {:.1} MiB before, \
         {:.1} MiB after: {per_run} bytes per waiting run; started in {took:.1?}",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
    );
    // No run is held by the engine while it waits: the figure above is
    // the store's caches and the allocator's.
    assert!(
        format!("{engine:?}").contains("active_runs: 0"),
        "{engine:?}"
    );
    assert!(
        per_run <= BOUND_PER_RUN,
        "{per_run} bytes of resident memory per waiting run, more than {BOUND_PER_RUN}"
    );
    assert_eq!(notifier.0.count.load(Ordering::Relaxed), 500 + WAITING);

    // They are waiting, not lost: the first links answer their runs.
    let links = notifier.0.links.lock().expect("links").clone();
    for link in &links {
        let token = link.strip_prefix(PORTAL).expect("a portal link");
        let response = forms
            .submit(&engine, token, Submission::new(json!({ "ok": true })))
            .await
            .expect("the answer is taken");
        let run = response.run_id.expect("the answer belongs to a run");
        let ended = engine.finished(&tenant, run).await.expect("the run ends");
        assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    }
    assert_eq!(links.len(), 10);
    drop(runs);
}
