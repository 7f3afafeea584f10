//! Wake-ups that race their wait: an event delivered at every point around
//! a node's suspension is never lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use concertmaster_core::testing::SuspensionPoint;
use concertmaster_core::{run::Delivery, Engine, RunId, RunStatus, TenantId};
use serde_json::json;

use crate::support::{workflow, Harness};

/// Where the test delivers the answer of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// As soon as `start` returns, before or while the node runs.
    AtStart,
    /// The node returned `Suspend`; its wait is not stored yet.
    Suspending,
    /// The wait is stored; the driver has not acted on it yet.
    Suspended,
    /// The run settled as waiting.
    Settled,
    /// From another task, after a random pause of up to 2 ms.
    Racing,
}

const WHEN: [When; 5] = [
    When::AtStart,
    When::Suspending,
    When::Suspended,
    When::Settled,
    When::Racing,
];

/// 1,000 runs, each answered at one of the points above (200 each): every
/// run finishes with its answer, no wake-up is left held, and the node that
/// waited ran twice (once to suspend, once with the answer) or once, when
/// the answer came first and its suspension took it.
#[tokio::test]
async fn an_answer_at_every_point_around_the_suspension_is_never_lost() {
    let engine_cell: Arc<OnceLock<Engine>> = Arc::new(OnceLock::new());
    let plan: Arc<Mutex<HashMap<RunId, When>>> = Arc::default();
    let tenant = TenantId::new("acme");
    let hook = {
        let (engine_cell, plan, tenant) =
            (Arc::clone(&engine_cell), Arc::clone(&plan), tenant.clone());
        Arc::new(
            move |point: SuspensionPoint, record: concertmaster_core::run::NodeExecution| {
                let (engine_cell, plan, tenant) =
                    (Arc::clone(&engine_cell), Arc::clone(&plan), tenant.clone());
                let fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
                    Box::pin(async move {
                        let when = plan.lock().unwrap().get(&record.run_id).copied();
                        let due = matches!(
                            (when, point),
                            (Some(When::Suspending), SuspensionPoint::Suspending)
                                | (Some(When::Suspended), SuspensionPoint::Suspended)
                        );
                        if due {
                            let engine = engine_cell.get().expect("the engine is built");
                            answer(engine, &tenant, record.run_id).await;
                        }
                    });
                fut
            },
        )
    };
    let h = Harness::with(|b| b.suspension_hook(hook)).await;
    assert!(engine_cell.set(h.engine.clone()).is_ok());
    let wf = h
        .publish(workflow(
            "asks",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({"prefix": "form"})),
                ("after", "pass", json!({})),
            ],
            &[("start", "ask"), ("ask", "after")],
        ))
        .await;

    let mut held_answers = 0;
    for i in 0..1_000 {
        let when = WHEN[i % WHEN.len()];
        // Registered before the run exists: the hook reads it by run id.
        let run = {
            let mut plan = plan.lock().unwrap();
            let run = h
                .engine
                .prepare_run(&wf, json!({"i": i}))
                .expect("prepares");
            plan.insert(run.id(), when);
            run
        };
        let id = run.id();
        h.engine
            .store()
            .insert_run(run.run())
            .await
            .expect("stored");
        assert!(h.engine.pick_up(&tenant, id).await.expect("picked up"));
        match when {
            When::AtStart => {
                if answer(&h.engine, &tenant, id).await == Delivery::Held {
                    held_answers += 1;
                }
            }
            When::Settled => {
                let settled = h.engine.settled(&tenant, id).await.expect("settles");
                assert_eq!(settled.status, RunStatus::Waiting);
                assert_eq!(answer(&h.engine, &tenant, id).await, Delivery::Resumed(id));
            }
            When::Racing => {
                let (engine, tenant) = (h.engine.clone(), tenant.clone());
                let pause = Duration::from_micros(fastrand::u64(0..2_000));
                tokio::spawn(async move {
                    tokio::time::sleep(pause).await;
                    answer(&engine, &tenant, id).await;
                });
            }
            When::Suspending | When::Suspended => {}
        }
        let done = tokio::time::timeout(Duration::from_secs(10), h.engine.finished(&tenant, id))
            .await
            .unwrap_or_else(|_| panic!("run {i} ({when:?}) lost its answer"))
            .expect("finishes");
        assert_eq!(done.status, RunStatus::Succeeded, "run {i} ({when:?})");
        let detail = h.engine.run(&tenant, id).await.expect("detail");
        let items = detail.output("after").expect("after ran").main_items();
        assert_eq!(
            items[0]["payload"],
            json!({"answer": id}),
            "run {i} ({when:?})"
        );
    }
    assert!(
        h.engine
            .held_wakeups(&tenant)
            .await
            .expect("lists")
            .is_empty(),
        "every answer was taken"
    );
    assert!(
        held_answers > 0,
        "some answers came before their node suspended"
    );
}

async fn answer(engine: &Engine, tenant: &TenantId, run: RunId) -> Delivery {
    engine
        .resume(tenant, &format!("form:{run}"), json!({"answer": run}))
        .await
        .expect("delivers")
}
