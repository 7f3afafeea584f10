//! Tracing spans, in a test process of their own: tracing caches per
//! call site whether anyone listens, and a test elsewhere in the same
//! process hitting the engine's call sites while this one installs its
//! subscriber can leave them cached as unheard.

#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

use serde_json::json;

#[test]
fn runs_and_nodes_have_tracing_spans() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    struct SpanNames(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanNames {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0
                .lock()
                .expect("lock")
                .push(attrs.metadata().name().to_string());
        }
    }

    let names = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(SpanNames(Arc::clone(&names)));
    let _guard = tracing::subscriber::set_default(subscriber);
    // One thread, so the thread-local subscriber sees every task.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let h = support::Harness::new().await;
        let wf = h
            .publish(support::workflow(
                "traced",
                &[("start", "start", json!({})), ("next", "pass", json!({}))],
                &[("start", "next")],
            ))
            .await;
        let run = h.engine.start(&wf, json!({})).await.expect("starts");
        h.engine.settled(&h.tenant, run).await.expect("settles");
    });
    let names = names.lock().expect("lock").clone();
    assert_eq!(names.iter().filter(|n| *n == "run").count(), 1, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "node").count(),
        2,
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "publish"), "{names:?}");
}
