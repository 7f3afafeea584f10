//! Run with a SAP OData service, e.g. the local test server:
//!
//! ```text
//! eval "$(scripts/sap-for-tests)" && cargo run --example erp_export
//! ```
//!
//! Approved supplier answers become business partners in SAP S/4HANA
//! (`API_BUSINESS_PARTNER`, OData V2):
//!
//! 1. A SAP connection is stored with its password sealed (AES-256-GCM)
//!    and tested, as the editor's "test connection" does.
//! 2. The workflow `workflows/erp-export.json` keeps the approved answers,
//!    upserts them as business partners through `sap_export`, and collects
//!    what SAP accepted and what it refused, with SAP's message.
//! 3. The same answers are exported again: SAP's records are updated, not
//!    doubled.
//!
//! Then it prints what SAP now holds. CONCERTMASTER_SAP_URL names the
//! server (scripts/sap-for-tests starts one and sets it).

use std::sync::Arc;

use concertmaster_core::{
    connector::ReadQuery, store::DatasetFilter, Engine, RunStatus, TenantId, WorkflowDefinition,
};
use concertmaster_erp::{
    Connections, KeyRing, NewConnection, ODataVersion, SapAuth, SapConfig, Secret,
};
use concertmaster_nodes::Datasets;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let Ok(origin) = std::env::var("CONCERTMASTER_SAP_URL") else {
        eprintln!(
            "erp_export needs a SAP OData server: start the local one with\n  \
             eval \"$(scripts/sap-for-tests)\" && cargo run --example erp_export"
        );
        std::process::exit(2);
    };

    let dir = tempfile::tempdir()?;
    let store = Arc::new(concertmaster_store::SqliteStore::open(dir.path().join("erp.db")).await?);
    // A fixed demo key; a host loads its keys from its secret manager.
    let keys = KeyRing::new("demo-2026-11", *b"concertmaster-demo-key-32-bytes!")?;
    let connections = Connections::new(store.clone(), keys);
    let datasets = Datasets::new(store.clone());
    let mut registry = concertmaster_nodes::registry();
    connections.register_nodes(&mut registry)?;
    datasets.register_nodes(&mut registry)?;
    let engine = Engine::builder()
        .shared_store(store)
        .registry(registry)
        .build()
        .await?;
    connections.attach(&engine);
    let tenant = TenantId::new("acme");

    // 1. The connection, sealed at rest, and tested.
    let config = SapConfig {
        service_url: format!("{origin}/odata/v2/API_BUSINESS_PARTNER"),
        version: ODataVersion::V2,
        auth: SapAuth::Basic {
            username: "alice".into(),
            password: Secret::new("alice-secret-4711".into()),
        },
        batch_size: 50,
        sap_client: None,
        timeout_seconds: 30,
    };
    connections
        .create(
            &tenant,
            Some("admin@acme"),
            NewConnection::new("sap-s4", "sap", &config)?.named("S/4HANA (dev)"),
        )
        .await?;
    let check = connections.test(&tenant, "sap-s4").await?;
    let stored = connections.get(&tenant, "sap-s4").await?;
    println!(
        "connection sap-s4: {} as {}, sealed with key {}, tested at {}",
        check.system,
        check.identity.unwrap_or_default(),
        stored.key_id,
        stored
            .last_tested_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    );

    // 2. Export the reviewed answers.
    let workflow = engine
        .publish(
            &tenant,
            WorkflowDefinition::from_json(include_str!("workflows/erp-export.json"))?,
        )
        .await?;
    // Numbers and a search term of this run, so runs of the example do not meet.
    let batch = format!("CM{}", std::process::id() % 100_000);
    let number = |n: u32| format!("{}{n:02}", &batch);
    let answers = json!([
        { "supplierNumber": number(1), "companyName": "Nordwind Logistik GmbH", "email": "ap@nordwind.example", "country": "DE", "review": "approved", "batch": batch },
        { "supplierNumber": number(2), "companyName": "Globex Components AG", "email": "billing@globex.example", "country": "CH", "review": "approved", "batch": batch },
        { "supplierNumber": number(3), "companyName": "Initech Ltd", "email": "ap@initech.example", "country": "GB", "review": "rejected", "batch": batch },
        { "supplierNumber": number(4), "companyName": "Umbrella Supplies", "email": "not-an-address", "country": "US", "review": "approved", "batch": batch }
    ]);
    for round in ["first export", "second export of the same answers"] {
        let run = engine.start(&workflow, answers.clone()).await?;
        let ended = engine.finished(&tenant, run).await?;
        let detail = engine.run(&tenant, run).await?;
        let output = detail.output("sap").cloned().unwrap_or_default();
        println!("\n{round}: run {run} {:?}", ended.status);
        for item in output.get("ok") {
            println!(
                "  ok     {} {:<26} {}",
                item["erp"]["id"].as_str().unwrap_or_default(),
                item["companyName"].as_str().unwrap_or_default(),
                if item["erp"]["created"] == true {
                    "created"
                } else {
                    "updated"
                }
            );
        }
        for item in output.get("error") {
            println!(
                "  error  {} {:<26} SAP: {} [{}] on {}",
                item["supplierNumber"].as_str().unwrap_or_default(),
                item["companyName"].as_str().unwrap_or_default(),
                item["erpError"]["message"].as_str().unwrap_or_default(),
                item["erpError"]["code"].as_str().unwrap_or_default(),
                item["erpError"]["target"].as_str().unwrap_or("-"),
            );
        }
        if ended.status != RunStatus::Succeeded {
            return Err(
                format!("the export run ended {:?}: {:?}", ended.status, ended.error).into(),
            );
        }
    }
    let refused = datasets
        .records(&tenant, "sap-refused", &DatasetFilter::all())
        .await?;
    println!(
        "\ndataset sap-refused holds {} record(s) for the review team",
        refused.len()
    );

    // 3. What SAP holds now.
    let sap = connections.open(&tenant, "sap-s4").await?;
    let query = ReadQuery::all()
        .filter(format!("SearchTerm1 eq '{batch}'"))
        .select([
            "BusinessPartner",
            "OrganizationBPName1",
            "EmailAddress",
            "Country",
        ]);
    let mut next = None;
    let mut held: Vec<Value> = Vec::new();
    loop {
        let page = sap
            .read("A_BusinessPartner", &query, next.as_deref())
            .await?;
        held.extend(page.records);
        match page.next {
            Some(cursor) => next = Some(cursor),
            None => break,
        }
    }
    println!(
        "\nSAP A_BusinessPartner with SearchTerm1 = {batch}: {} record(s)",
        held.len()
    );
    for record in &held {
        println!(
            "  {} {:<26} {:<24} {}",
            record["BusinessPartner"].as_str().unwrap_or_default(),
            record["OrganizationBPName1"].as_str().unwrap_or_default(),
            record["EmailAddress"].as_str().unwrap_or_default(),
            record["Country"].as_str().unwrap_or_default()
        );
    }
    if held.len() != 2 {
        return Err(format!(
            "expected the two approved, valid suppliers in SAP, found {}",
            held.len()
        )
        .into());
    }
    engine.shutdown();
    Ok(())
}
