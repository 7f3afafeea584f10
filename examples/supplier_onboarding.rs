//! Run with: cargo run --example supplier_onboarding
//!
//! The whole tour of a supplier questionnaire, on a SQLite file, with a
//! clock the example moves forward so that two weeks pass in a second:
//!
//! 1. Monday 08:00 Berlin time the schedule starts a run; the questionnaire
//!    goes to three suppliers as personal portal links.
//! 2. Nordwind answers. Globex sends an invalid form, gets every field
//!    error back, fixes it and sends it again through the same link.
//! 3. Three days later Initech, who has not answered, is reminded, and
//!    answers through the reminder's link.
//! 4. A reviewer approves Nordwind and Globex and rejects Initech.
//! 5. The approved answers are shaped for the ERP with jq and collected in
//!    the dataset `approved-suppliers`.
//!
//! Then the run's timeline and the dataset are printed.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use concertmaster_core::{
    clock::{Clock, ManualClock},
    form::{FormSchema, ResponseFilter},
    run::RunDetail,
    store::DatasetFilter,
    Engine, RunStatus, TenantId, WorkflowDefinition,
};
use concertmaster_nodes::forms::{
    Decision, Forms, FormsError, NotificationKind, Outbox, Submission,
};
use concertmaster_nodes::{Datasets, Scheduler};
use serde_json::{json, Value};

const PORTAL: &str = "https://suppliers.acme.example/f/";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    // Sunday evening before the first Monday of December 2026.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 29, 20, 0, 0).unwrap());
    let dir = tempfile::tempdir()?;
    let store =
        Arc::new(concertmaster_store::SqliteStore::open(dir.path().join("onboarding.db")).await?);
    println!(
        "store: SQLite file {}",
        dir.path().join("onboarding.db").display()
    );

    let outbox = Outbox::new();
    let forms = Forms::new(store.clone(), outbox.clone(), PORTAL).with_clock(clock.clone());
    let datasets = Datasets::new(store.clone());
    let mut registry = concertmaster_nodes::registry();
    forms.register_nodes(&mut registry)?;
    datasets.register_nodes(&mut registry)?;
    let engine = Engine::builder()
        .shared_store(store)
        .registry(registry)
        .clock(clock.clone())
        // The example moves the clock itself and fires timers when it does.
        .timer_poll_interval(std::time::Duration::from_secs(3600))
        .build()
        .await?;
    let tenant = TenantId::new("acme");

    let form = forms.publish(&tenant, supplier_profile()?).await?;
    println!("form {} version {} published", form.id, form.version);
    let workflow = engine
        .publish(
            &tenant,
            WorkflowDefinition::from_json(include_str!("workflows/supplier-questionnaire.json"))?,
        )
        .await?;
    println!(
        "workflow {} version {} published",
        workflow.id(),
        workflow.version()
    );

    let scheduler = Scheduler::new(engine.clone()).with_clock(clock.clone());
    scheduler.watch(&workflow).await?;
    let monday = scheduler.next_fire().ok_or("the schedule never fires")?;
    println!("\n[{}] next fire of the schedule", local(monday));
    clock.set(monday);
    let run = *scheduler.tick().await?.first().ok_or("nothing started")?;
    engine.settled(&tenant, run).await?;
    for message in outbox.messages() {
        println!(
            "[{}] mail to {:<26} {:?}",
            local(clock.now()),
            message.to,
            message.subject
        );
    }

    let token = |to: &str, kind: NotificationKind| -> Result<String, String> {
        outbox
            .messages_to(to)
            .into_iter()
            .rfind(|m| m.kind == kind)
            .and_then(|m| m.link.strip_prefix(PORTAL).map(str::to_string))
            .ok_or_else(|| format!("no {kind:?} for {to}"))
    };

    clock.advance(std::time::Duration::from_secs(2 * 3600));
    let nordwind = token("einkauf@nordwind.example", NotificationKind::Invitation)?;
    forms
        .submit(
            &engine,
            &nordwind,
            Submission::new(profile("Nordwind Logistics GmbH", "DE811907980", 120)),
        )
        .await?;
    println!("[{}] Nordwind answered", local(clock.now()));

    clock.advance(std::time::Duration::from_secs(3600));
    let globex = token("vendor@globex.example", NotificationKind::Invitation)?;
    let sloppy = json!({ "company": "G", "vatId": "globex", "employees": 0, "contact": { "email": "vendor at globex" } });
    match forms
        .submit(&engine, &globex, Submission::new(sloppy))
        .await
    {
        Err(FormsError::Invalid { errors, .. }) => {
            println!(
                "[{}] Globex's form was refused, nothing stored:",
                local(clock.now())
            );
            for error in errors {
                println!("           {error}");
            }
        }
        other => return Err(format!("expected field errors, got {other:?}").into()),
    }
    forms
        .submit(
            &engine,
            &globex,
            Submission::new(profile("Globex Components SE", "FR40303265045", 2300)),
        )
        .await?;
    println!(
        "[{}] Globex fixed it and answered through the same link",
        local(clock.now())
    );
    // Each answer also wakes the reminders node, which gives up its timer,
    // notes who answered and waits again. Let the run settle before moving
    // the clock three days, or the timer fired below may not be back yet.
    engine.settled(&tenant, run).await?;

    // Three days on: Initech gets a reminder.
    clock.advance(std::time::Duration::from_secs(3 * 86_400));
    engine.fire_due_timers().await?;
    engine.settled(&tenant, run).await?;
    for message in outbox
        .messages()
        .iter()
        .filter(|m| m.kind == NotificationKind::Reminder)
    {
        println!(
            "[{}] reminder to {:<22} {:?}",
            local(clock.now()),
            message.to,
            message.subject
        );
    }
    let initech = token("sales@initech.example", NotificationKind::Reminder)?;
    forms
        .submit(
            &engine,
            &initech,
            Submission::new(profile("Initech Metals AG", "DE999999999", 45)),
        )
        .await?;
    println!(
        "[{}] Initech answered through the reminder",
        local(clock.now())
    );

    // The review inbox, the next morning.
    wait_until_reviewing(&engine, &tenant, run).await?;
    clock.advance(std::time::Duration::from_secs(22 * 3600));
    let pending = forms
        .responses(&tenant, &ResponseFilter::node(run, "send"), "maria.keller")
        .await?;
    for response in pending {
        let company = response.data["company"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let decision = if company.starts_with("Initech") {
            Decision::reject("maria.keller", "VAT id not found in VIES")
        } else {
            Decision::approve("maria.keller").with_comment("complete")
        };
        let reviewed = forms
            .review(&engine, &tenant, response.id, decision)
            .await?;
        println!(
            "[{}] {company}: {:?}",
            local(clock.now()),
            reviewed.review_status
        );
    }

    let finished = engine.finished(&tenant, run).await?;
    let detail = engine.run(&tenant, run).await?;
    println!("\nrun {run}: {}\n", finished.status.as_str());
    print_timeline(&detail);
    let collected = datasets
        .records(&tenant, "approved-suppliers", &DatasetFilter::all())
        .await?;
    println!(
        "\ndataset approved-suppliers ({} records):",
        collected.len()
    );
    for record in collected {
        println!("  {}", Value::Object(record.item));
    }
    if finished.status != RunStatus::Succeeded {
        return Err(format!(
            "the run ended {}: {:?}",
            finished.status.as_str(),
            finished.error
        )
        .into());
    }
    Ok(())
}

/// The supplier profile form (`workflows/supplier-profile.form.json`): JSON
/// Schema for the data, uiSchema for the portal, the contact e-mail flagged
/// as personal data.
fn supplier_profile() -> Result<FormSchema, serde_json::Error> {
    serde_json::from_str(include_str!("workflows/supplier-profile.form.json"))
}

fn profile(company: &str, vat: &str, employees: u32) -> Value {
    json!({ "company": company, "vatId": vat, "employees": employees,
            "contact": { "email": format!("purchasing@{}.example", company.split(' ').next().unwrap_or("x").to_lowercase()) } })
}

/// Berlin wall-clock time, as the people in the example see it.
fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Berlin)
        .format("%a %d %b %H:%M")
        .to_string()
}

async fn wait_until_reviewing(
    engine: &Engine,
    tenant: &TenantId,
    run: concertmaster_core::RunId,
) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..500 {
        let detail = engine.run(tenant, run).await?;
        if detail
            .node("review")
            .is_some_and(|n| n.status == concertmaster_core::run::NodeStatus::Waiting)
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err("the run did not reach the review".into())
}

fn print_timeline(detail: &RunDetail) {
    println!(
        "{:<13} {:<10} {:<16} items out",
        "node", "status", "finished"
    );
    for node in &detail.nodes {
        let finished = node.ended_at.map(local).unwrap_or_else(|| "-".into());
        let out = node
            .output
            .as_ref()
            .map(|ports| {
                ports
                    .iter()
                    .map(|(port, items)| format!("{port}: {}", items.len()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "{:<13} {:<10} {:<16} {out}",
            node.node_id.as_str(),
            node.status.as_str(),
            finished
        );
    }
}
