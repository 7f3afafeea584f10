//! How a host tests a workflow that takes a month: a supplier survey with
//! a 30-day deadline and weekly reminders, simulated day by day on
//! `concertmaster_core::testing` (in-memory store, a manual clock) in a
//! few milliseconds.
//!
//! `cargo test -p concertmaster-examples --test thirty_day_survey -- --nocapture`

use std::sync::Arc;
use std::time::{Duration, Instant};

use concertmaster_core::testing::TestEngine;
use concertmaster_core::{
    clock::ManualClock, form::FormSchema, store::Backend, InMemoryStore, RunStatus,
    WorkflowDefinition,
};
use concertmaster_nodes::forms::{Forms, NotificationKind, Outbox, Submission};
use serde_json::json;

const PORTAL: &str = "https://suppliers.acme.example/f/";
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn thirty_days_of_a_supplier_survey_in_milliseconds() {
    let started = Instant::now();

    // The store and the clock the engine and the forms share; the outbox
    // keeps the e-mails instead of sending them.
    let store: Arc<dyn Backend> = Arc::new(InMemoryStore::new());
    let clock = ManualClock::default();
    let outbox = Outbox::new();
    let forms = Forms::new(store.clone(), outbox.clone(), PORTAL).with_clock(clock.clone());
    let mut registry = concertmaster_nodes::registry();
    forms
        .register_nodes(&mut registry)
        .expect("the forms nodes register");
    let test = TestEngine::on(registry, store, clock)
        .await
        .expect("engine");

    forms
        .publish(
            &test.tenant,
            FormSchema::new(
                "survey",
                "Supplier survey",
                json!({ "type": "object", "properties": { "onTime": { "type": "boolean" } },
                        "required": ["onTime"] }),
            ),
        )
        .await
        .expect("the form publishes");
    let workflow = test
        .publish(
            WorkflowDefinition::from_value(json!({
                "id": "survey", "name": "Monthly supplier survey",
                "nodes": [
                    { "id": "start", "type": "manual" },
                    { "id": "send", "type": "send_form",
                      "config": { "formId": "survey", "recipientField": "/email", "expiresIn": "30d" } },
                    { "id": "remind", "type": "reminders", "config": { "every": "7d", "times": 3 } },
                    { "id": "wait", "type": "wait_for_responses",
                      "config": { "mode": "all", "deadline": "30d" } }
                ],
                "edges": [
                    { "id": "e1", "source": "start", "target": "send" },
                    { "id": "e2", "source": "send", "target": "remind" },
                    { "id": "e3", "source": "send", "target": "wait" }
                ]
            }))
            .expect("the definition parses"),
        )
        .await
        .expect("the workflow publishes");

    let (nordwind, globex, initech) = (
        "einkauf@nordwind.example",
        "vendor@globex.example",
        "sales@initech.example",
    );
    let run = test
        .engine
        .start(
            &workflow,
            json!([{ "email": nordwind }, { "email": globex }, { "email": initech }]),
        )
        .await
        .expect("the run starts");
    assert_eq!(
        test.settled(run).await.expect("settles").status,
        RunStatus::Waiting
    );

    // The link in the latest e-mail to `to` answers the survey.
    let answer = |to: &'static str| {
        let link = outbox
            .messages_to(to)
            .last()
            .map(|m| m.link.clone())
            .expect("an e-mail with a link");
        let forms = forms.clone();
        let engine = test.engine.clone();
        async move {
            let token = link
                .strip_prefix(PORTAL)
                .expect("a portal link")
                .to_string();
            forms
                .submit(&engine, &token, Submission::new(json!({ "onTime": true })))
                .await
                .expect("the answer is taken");
        }
    };

    // A month, a day at a time: each step fires what came due that day
    // and lets the run settle before the clock moves on.
    for day in 1..=30 {
        test.advance(DAY).await.expect("the day's timers fire");
        match day {
            3 => answer(nordwind).await,
            10 => answer(globex).await,
            _ => {}
        }
        test.settled(run).await.expect("settles");
    }

    // Reminders on days 7, 14 and 21, each to those who had not answered.
    let reminded = |to: &str| {
        outbox
            .messages_to(to)
            .iter()
            .filter(|m| m.kind == NotificationKind::Reminder)
            .count()
    };
    assert_eq!(reminded(nordwind), 0, "answered on day 3");
    assert_eq!(reminded(globex), 1, "reminded on day 7, answered on day 10");
    assert_eq!(reminded(initech), 3, "reminded on days 7, 14 and 21");

    // On day 30 the deadline ends the wait: two answers, one missing.
    let ended = test.settled(run).await.expect("settles");
    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let detail = test
        .engine
        .run(&test.tenant, run)
        .await
        .expect("the run reads");
    let wait = detail.output("wait").expect("the wait ended");
    assert_eq!(wait.main_items().len(), 2);
    let missing = wait.get("missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["respondent"], initech);

    println!("30 simulated days in {:?}", started.elapsed());
}
