//! A run started inside the host's own transaction: the host's record and
//! the run commit together, or neither is stored.

/// The same cases on each SQL store: `$make` gives a fresh store.
macro_rules! outbox_cases {
    ($module:ident, $make:expr) => {
        mod $module {
            use std::time::Duration;

            use concertmaster_core::{
                AuditFilter, AuditStore, Engine, Error, NodeCategory, NodeDescriptor,
                NodeRegistry, RunStatus, TenantId, WorkflowDefinition,
            };
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
                let mut tx = store.pool().begin().await.expect("the host's transaction");
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
                let mut tx = store.pool().begin().await.expect("a second transaction");
                let again = store.insert_run_in(&mut tx, &prepared).await;
                assert!(
                    matches!(&again, Err(err) if err.kind() == concertmaster_core::StoreErrorKind::Conflict),
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
                let mut tx = store.pool().begin().await.expect("the host's transaction");
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
                let mut tx = store.pool().begin().await.expect("the host's transaction");
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
        }
    };
}

#[cfg(feature = "sqlite")]
outbox_cases!(sqlite, crate::support::fresh_sqlite());

#[cfg(feature = "postgres")]
outbox_cases!(postgres, crate::support::fresh_postgres());
