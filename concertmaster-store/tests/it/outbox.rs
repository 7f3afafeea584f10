//! A run started, or an answer stored, inside the host's own transaction:
//! the host's record and the engine's commit together, or neither is
//! stored.

/// The same cases on each SQL store: `$make` gives a fresh store.
macro_rules! outbox_cases {
    ($module:ident, $make:expr) => {
        mod $module {
            use std::time::Duration;

            use concertmaster_core::{Engine, Error, NodeDescriptor, NodeRegistry, RunStatus, TenantId, WorkflowDefinition, node::NodeCategory, store::{AuditFilter, AuditStore}};
            use serde_json::json;

            use crate::support::Pass;

            async fn engine_on(store: impl concertmaster_core::Store + 'static, sweep: Duration) -> Engine {
                let mut registry = NodeRegistry::new();
                registry
                    .register_node(NodeDescriptor::new("pass", NodeCategory::Transform), Pass)
                    .expect("registers");
                Engine::builder()
                    .store(store)
                    .registry(registry)
                    .recovery_interval(sweep)
                    .build()
                    .await
                    .expect("builds")
            }

            fn order_workflow() -> WorkflowDefinition {
                WorkflowDefinition::from_value(json!({
                    "id": "order", "name": "Order placed",
                    "nodes": [{ "id": "confirm", "type": "pass" }]
                }))
                .expect("parses")
            }

            #[tokio::test]
            async fn a_committed_run_starts_with_the_host_record() {
                let store = $make.await;
                sqlx::query("CREATE TABLE host_orders (id TEXT PRIMARY KEY)")
                    .execute(store.pool())
                    .await
                    .expect("the host's table");
                // Only the host's call starts it: the sweep would take an hour.
                let engine = engine_on(store.clone(), Duration::from_secs(3600)).await;
                let tenant = TenantId::new("acme");
                let workflow = engine.publish(&tenant, order_workflow()).await.expect("publishes");

                let prepared = engine
                    .prepare_run(&workflow, json!({ "order": "A-1" }))
                    .expect("a run to store");
                let mut tx = store.begin().await.expect("the host's transaction");
                sqlx::query("INSERT INTO host_orders (id) VALUES ('A-1')")
                    .execute(&mut *tx)
                    .await
                    .expect("the host's record");
                store
                    .insert_run_in(&mut tx, &prepared)
                    .await
                    .expect("the run, in the same transaction");
                tx.commit().await.expect("commits");
                // Stored twice, it is refused (on Postgres the refusal also
                // aborts the host's transaction, as any failed statement does).
                let mut tx = store.begin().await.expect("a second transaction");
                let again = store.insert_run_in(&mut tx, &prepared).await;
                assert!(
                    matches!(&again, Err(err) if err.kind() == concertmaster_core::store::StoreErrorKind::Conflict),
                    "{again:?}"
                );
                tx.rollback().await.expect("rolls back");

                assert!(engine.pick_up(&tenant, prepared.id()).await.expect("picks up"));
                let run = engine.finished(&tenant, prepared.id()).await.expect("finishes");
                assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
                let detail = engine.run(&tenant, prepared.id()).await.expect("reads");
                assert_eq!(detail.output("confirm").expect("ran").main_items()[0]["order"], "A-1");
                let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM host_orders WHERE id = 'A-1'")
                    .fetch_one(store.pool())
                    .await
                    .expect("counts");
                assert_eq!(stored, 1);
                let audit = store.audit_log(&tenant, &AuditFilter::default()).await.expect("audit");
                assert!(audit.iter().any(|e| e.entity_id == prepared.id().to_string()));
            }

            #[tokio::test]
            async fn a_rolled_back_run_leaves_nothing() {
                let store = $make.await;
                sqlx::query("CREATE TABLE host_orders (id TEXT PRIMARY KEY)")
                    .execute(store.pool())
                    .await
                    .expect("the host's table");
                let engine = engine_on(store.clone(), Duration::from_millis(50)).await;
                let tenant = TenantId::new("acme");
                let workflow = engine.publish(&tenant, order_workflow()).await.expect("publishes");

                let prepared = engine
                    .prepare_run(&workflow, json!({ "order": "B-2" }))
                    .expect("a run to store");
                let mut tx = store.begin().await.expect("the host's transaction");
                sqlx::query("INSERT INTO host_orders (id) VALUES ('B-2')")
                    .execute(&mut *tx)
                    .await
                    .expect("the host's record");
                store.insert_run_in(&mut tx, &prepared).await.expect("the run");
                tx.rollback().await.expect("rolls back");

                match engine.pick_up(&tenant, prepared.id()).await {
                    Err(Error::RunNotFound { id, .. }) => assert_eq!(id, prepared.id()),
                    other => panic!("expected RunNotFound, got {other:?}"),
                }
                // Several sweeps later there is still nothing to run.
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert!(matches!(
                    engine.run(&tenant, prepared.id()).await,
                    Err(Error::RunNotFound { .. })
                ));
                let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM host_orders")
                    .fetch_one(store.pool())
                    .await
                    .expect("counts");
                assert_eq!(stored, 0);
                let audit = store.audit_log(&tenant, &AuditFilter::default()).await.expect("audit");
                assert!(audit.iter().all(|e| e.entity_id != prepared.id().to_string()));
            }

            #[tokio::test]
            async fn a_committed_run_nobody_picks_up_is_found_by_the_sweep() {
                let store = $make.await;
                let engine = engine_on(store.clone(), Duration::from_millis(50)).await;
                let tenant = TenantId::new("acme");
                let workflow = engine.publish(&tenant, order_workflow()).await.expect("publishes");
                let prepared = engine
                    .prepare_run(&workflow, json!({ "order": "C-3" }))
                    .expect("a run to store");
                let mut tx = store.begin().await.expect("the host's transaction");
                store.insert_run_in(&mut tx, &prepared).await.expect("the run");
                tx.commit().await.expect("commits");
                // The host crashed before calling pick_up.
                let run = tokio::time::timeout(
                    Duration::from_secs(10),
                    engine.finished(&tenant, prepared.id()),
                )
                .await
                .expect("the sweep found it")
                .expect("finishes");
                assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
            }

            /// An answer through a link, checked and made ready as
            /// `Forms::prepare_submission` makes it.
            fn prepared_answer(tenant: &TenantId, hash: &str) -> (concertmaster_core::form::FormLink, concertmaster_core::form::PreparedResponse) {
                let now = chrono::Utc::now();
                let link = concertmaster_core::form::FormLink {
                    token_hash: hash.into(),
                    tenant: tenant.clone(),
                    form_id: "profile".into(),
                    form_version: 1,
                    run_id: None,
                    node_id: Some("send".into()),
                    wait_key: None,
                    respondent: Some("jane@acme.test".into()),
                    created_at: now,
                    expires_at: now + chrono::Duration::days(14),
                    used_at: None,
                };
                let response = concertmaster_core::form::FormResponse {
                    id: concertmaster_core::form::ResponseId::new(),
                    tenant: tenant.clone(),
                    form_id: "profile".into(),
                    form_version: 1,
                    run_id: None,
                    node_id: Some("send".into()),
                    respondent: Some("jane@acme.test".into()),
                    data: json!({ "company": "ACME" }),
                    consent: None,
                    submitter: concertmaster_core::form::Submitter::default(),
                    submitted_at: now,
                    review_status: concertmaster_core::form::ReviewStatus::Pending,
                    review: None,
                    erased_at: None,
                };
                let audit = concertmaster_core::store::AuditEntry {
                    tenant: tenant.clone(),
                    at: now,
                    actor: None,
                    action: concertmaster_core::store::AuditAction::Create,
                    entity_type: "form response".into(),
                    entity_id: response.id.to_string(),
                    details: json!({}),
                };
                (link, concertmaster_core::form::PreparedResponse::new(response, Some(hash.into()), audit))
            }

            #[tokio::test]
            async fn an_answer_commits_or_rolls_back_with_the_host_record() {
                use concertmaster_core::{form::ResponseFilter, store::FormStore};

                let store = $make.await;
                sqlx::query("CREATE TABLE host_answers (id TEXT PRIMARY KEY)")
                    .execute(store.pool())
                    .await
                    .expect("the host's table");
                let tenant = TenantId::new("acme");
                for (hash, commit) in [("h-rolled-back", false), ("h-committed", true)] {
                    let (link, prepared) = prepared_answer(&tenant, hash);
                    store.insert_link(&link).await.expect("the link");
                    let mut tx = store.begin().await.expect("the host's transaction");
                    sqlx::query("INSERT INTO host_answers (id) VALUES ($1)")
                        .bind(hash)
                        .execute(&mut *tx)
                        .await
                        .expect("the host's record");
                    store.insert_response_in(&mut tx, &prepared).await.expect("the answer");
                    if commit {
                        tx.commit().await.expect("commits");
                    } else {
                        tx.rollback().await.expect("rolls back");
                    }
                    let used = store.link(hash).await.expect("reads").expect("the link").used_at;
                    assert_eq!(used.is_some(), commit, "{hash}: the link is used with the answer");
                    let stored = store.responses(&tenant, &ResponseFilter::all()).await.expect("reads");
                    assert_eq!(
                        stored.iter().any(|r| r.id == prepared.response().id),
                        commit,
                        "{hash}"
                    );
                    let audit = store.audit_log(&tenant, &AuditFilter::default()).await.expect("audit");
                    assert_eq!(
                        audit.iter().any(|e| e.entity_id == prepared.response().id.to_string()),
                        commit,
                        "{hash}"
                    );
                }
                let (host_rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM host_answers")
                    .fetch_one(store.pool())
                    .await
                    .expect("counts");
                assert_eq!(host_rows, 1);

                // A link used already refuses a second answer in the host's
                // transaction too.
                let (_, again) = prepared_answer(&tenant, "h-committed");
                let mut tx = store.begin().await.expect("the host's transaction");
                let refused = store.insert_response_in(&mut tx, &again).await;
                assert!(
                    matches!(&refused, Err(err) if err.kind() == concertmaster_core::store::StoreErrorKind::Conflict),
                    "{refused:?}"
                );
                tx.rollback().await.expect("rolls back");
            }
        }
    };
}

#[cfg(feature = "sqlite")]
outbox_cases!(sqlite, crate::support::fresh_sqlite());

#[cfg(feature = "postgres")]
outbox_cases!(postgres, crate::support::fresh_postgres());
