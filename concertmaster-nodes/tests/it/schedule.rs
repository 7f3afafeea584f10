//! Scheduled runs: the right instants across daylight-saving changes, once
//! per fire time across engines, and missed fires after downtime.

use chrono::{DateTime, Duration, TimeZone, Utc};
use concertmaster_core::{
    clock::ManualClock, run::RunFilter, workflow::PublishedWorkflow, Engine, InMemoryStore,
    TenantId, WorkflowDefinition,
};
use concertmaster_nodes::Scheduler;
use serde_json::json;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

async fn engine(store: InMemoryStore, clock: &ManualClock) -> Engine {
    Engine::builder()
        .store(store)
        .registry(concertmaster_nodes::registry())
        .clock(clock.clone())
        .timer_poll_interval(std::time::Duration::from_secs(3600))
        .build()
        .await
        .unwrap()
}

async fn publish(engine: &Engine, cron: &str, missed: &str) -> PublishedWorkflow {
    let def = WorkflowDefinition::from_value(json!({
        "id": "nightly", "name": "Nightly",
        "nodes": [{ "id": "tick", "type": "schedule", "config": {
            "cron": cron, "timezone": "Europe/Berlin", "missedFires": missed
        } }]
    }))
    .unwrap();
    engine.publish(&TenantId::new("acme"), def).await.unwrap()
}

/// The fire times of the runs started so far, oldest first.
async fn fired(engine: &Engine) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let runs = engine
        .runs(&TenantId::new("acme"), &RunFilter::all().limit(1000))
        .await
        .unwrap();
    let mut times: Vec<_> = runs
        .iter()
        .map(|r| {
            let item = &r.trigger[0];
            (
                serde_json::from_value(item["scheduledFor"].clone()).unwrap(),
                serde_json::from_value(item["firedAt"].clone()).unwrap(),
            )
        })
        .collect();
    times.sort();
    times
}

/// Steps the clock from its time to `until` in `step`s, ticking each time.
async fn step_until(
    scheduler: &Scheduler,
    clock: &ManualClock,
    until: DateTime<Utc>,
    step: Duration,
) {
    use concertmaster_core::clock::Clock;
    while clock.now() < until {
        clock.advance(step.to_std().unwrap());
        scheduler.tick().await.unwrap();
    }
}

#[tokio::test]
async fn fires_at_the_right_instants_across_berlins_daylight_saving_changes() {
    for (from, until, expected) in [
        // Spring: 02:30 does not exist on 29 March; it fires at 03:00 CEST.
        (
            utc(2026, 3, 27, 12, 0),
            utc(2026, 3, 31, 0, 0),
            vec![
                utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 30, 0, 30),
            ],
        ),
        // Autumn: 02:30 happens twice on 25 October; it fires once.
        (
            utc(2026, 10, 23, 12, 0),
            utc(2026, 10, 27, 0, 0),
            vec![
                utc(2026, 10, 24, 0, 30),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 26, 1, 30),
            ],
        ),
    ] {
        let clock = ManualClock::new(from);
        let engine = engine(InMemoryStore::new(), &clock).await;
        let workflow = publish(&engine, "30 2 * * *", "skip").await;
        let scheduler = Scheduler::new(engine.clone()).with_clock(clock.clone());
        assert_eq!(scheduler.watch(&workflow).await.unwrap(), 1);
        step_until(&scheduler, &clock, until, Duration::minutes(5)).await;
        let fired = fired(&engine).await;
        let times: Vec<_> = fired.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, expected);
        for (at, started) in fired {
            assert!(
                started >= at && started - at < Duration::minutes(5),
                "{at} started {started}"
            );
        }
    }
}

#[tokio::test]
async fn each_fire_time_starts_one_run_whatever_the_number_of_engines() {
    let clock = ManualClock::new(utc(2026, 6, 1, 0, 0));
    let store = InMemoryStore::new();
    let (one, two) = (
        engine(store.clone(), &clock).await,
        engine(store, &clock).await,
    );
    let workflow = publish(&one, "*/10 * * * *", "skip").await;
    let schedulers = [
        Scheduler::new(one.clone()).with_clock(clock.clone()),
        Scheduler::new(two.clone()).with_clock(clock.clone()),
    ];
    for scheduler in &schedulers {
        scheduler.watch(&workflow).await.unwrap();
    }
    for _ in 0..6 {
        clock.advance(std::time::Duration::from_secs(600));
        let (a, b) = tokio::join!(schedulers[0].tick(), schedulers[1].tick());
        assert_eq!(
            a.unwrap().len() + b.unwrap().len(),
            1,
            "one run per fire time"
        );
    }
    assert_eq!(fired(&one).await.len(), 6);
}

#[tokio::test]
async fn missed_fires_after_downtime_follow_the_policy() {
    for (policy, missed_runs) in [("skip", 0), ("fireOnce", 1), ("fireAll", 3)] {
        let clock = ManualClock::new(utc(2026, 6, 1, 12, 0));
        let store = InMemoryStore::new();
        let first = engine(store.clone(), &clock).await;
        let workflow = publish(&first, "0 9 * * *", policy).await;
        let scheduler = Scheduler::new(first.clone()).with_clock(clock.clone());
        scheduler.watch(&workflow).await.unwrap();
        step_until(
            &scheduler,
            &clock,
            utc(2026, 6, 2, 12, 0),
            Duration::minutes(30),
        )
        .await;
        assert_eq!(fired(&first).await.len(), 1, "{policy}: 2 June 09:00 fired");
        first.shutdown();

        // Down for three days: 3, 4 and 5 June 09:00 pass unnoticed.
        clock.advance(std::time::Duration::from_secs(3 * 86_400));
        let second = engine(store, &clock).await;
        let scheduler = Scheduler::new(second.clone()).with_clock(clock.clone());
        scheduler.watch(&workflow).await.unwrap();
        let started = scheduler.tick().await.unwrap();
        assert_eq!(started.len(), missed_runs, "{policy}");
        step_until(
            &scheduler,
            &clock,
            utc(2026, 6, 6, 12, 0),
            Duration::minutes(30),
        )
        .await;
        let fired = fired(&second).await;
        assert_eq!(
            fired.len(),
            1 + missed_runs + 1,
            "{policy}: and 6 June on time"
        );
        assert_eq!(fired.last().unwrap().0, utc(2026, 6, 6, 7, 0));
    }
}
