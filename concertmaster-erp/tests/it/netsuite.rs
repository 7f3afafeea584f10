//! The NetSuite connector against a local SuiteTalk REST stand-in
//! (`tests/netsuite-server/server.py`) that checks every signature with
//! oauthlib as NetSuite does and answers with NetSuite's payloads,
//! including 429s and error bodies.
#![cfg(feature = "netsuite")]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concertmaster_core::{
    connector::{Connector, ConnectorError, ConnectorFactory, ReadQuery, Record, WriteMode},
    InMemoryStore, TenantId,
};
use concertmaster_erp::{
    Connections, KeyRing, NetSuiteConnector, NetSuiteFactory, NewConnection, Secret,
};
use serde_json::{json, Value};

use crate::support::{fields, python, server_dir, NetSuite, ACCOUNT, CONSUMER_SECRET};

fn vendor(key: &str, name: Option<&str>) -> Record {
    let mut f = json!({ "email": format!("{key}@supplier.example"), "externalId": key });
    if let Some(name) = name {
        f["companyName"] = json!(name);
    }
    Record::new(format!("run-1/sync/{key}"), fields(f)).with_external_id(key)
}

#[test]
fn the_checked_in_vectors_are_what_oauthlib_makes_now() {
    let output = Command::new(python())
        .arg(server_dir().join("vectors.py"))
        .output()
        .expect("vectors.py runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fresh: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let checked_in: Value =
        serde_json::from_str(include_str!("../data/netsuite-oauth1-vectors.json")).unwrap();
    assert_eq!(fresh, checked_in, "regenerate with: python tests/netsuite-server/vectors.py > tests/data/netsuite-oauth1-vectors.json");
}

#[tokio::test]
async fn test_connection_passes_the_signature_check_and_a_wrong_secret_is_refused() {
    let netsuite = NetSuite::start();
    let check = netsuite
        .connector()
        .validate_connection()
        .await
        .expect("signed correctly");
    assert!(check.system.contains(ACCOUNT), "{check:?}");
    assert_eq!(netsuite.stats().await["rejectedSignatures"], 0);
    let header = netsuite.stats().await["lastAuthorization"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        header.starts_with(&format!("OAuth realm=\"{ACCOUNT}\"")),
        "{header}"
    );
    assert!(
        header.contains("oauth_signature_method=\"HMAC-SHA256\""),
        "{header}"
    );

    let mut config = netsuite.config();
    config.token_secret = Secret::new("ts-wrong-000000".into());
    let wrong = NetSuiteConnector::new("netsuite-test", config).unwrap();
    let err = wrong.validate_connection().await.unwrap_err();
    match &err {
        ConnectorError::Unauthorized { error, .. } => {
            assert_eq!(error.code.as_deref(), Some("INVALID_LOGIN"))
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(netsuite.stats().await["rejectedSignatures"], 1);
    let shown = format!("{err} {err:?} {wrong:?}");
    assert!(
        !shown.contains("ts-wrong-000000") && !shown.contains(CONSUMER_SECRET),
        "{shown}"
    );
}

#[tokio::test]
async fn creates_report_refused_records_with_netsuites_error_and_keep_the_rest() {
    let netsuite = NetSuite::start();
    let connector = netsuite.connector();
    let records = [
        vendor("SUP-1", Some("Acme GmbH")),
        vendor("SUP-2", None),
        vendor("SUP-3", Some("Globex")),
    ];
    let outcomes = connector
        .write("vendor", WriteMode::Create, &records)
        .await
        .unwrap();
    let first = outcomes[0].as_ref().expect("created");
    assert!(
        first.created && first.id.parse::<u64>().is_ok(),
        "{first:?}"
    );
    assert!(outcomes[2].is_ok());
    let failure = outcomes[1].as_ref().expect_err("no company name");
    let message = failure.error.erp_message().expect("NetSuite's error");
    assert_eq!(
        (
            message.status,
            message.code.as_deref(),
            message.target.as_deref()
        ),
        (Some(400), Some("USER_ERROR"), Some("companyName"))
    );
    assert!(!failure.is_retryable());
    assert_eq!(netsuite.vendors().await.len(), 2);
}

#[tokio::test]
async fn a_create_sent_again_under_the_same_key_is_not_made_twice() {
    let netsuite = NetSuite::start();
    let connector = netsuite.connector();
    let records = [
        vendor("SUP-1", Some("Acme GmbH")),
        vendor("SUP-2", Some("Globex")),
    ];
    let first = connector
        .write("vendor", WriteMode::Create, &records)
        .await
        .unwrap();
    // A re-run after a crash between the call and the store commit.
    let again = connector
        .write("vendor", WriteMode::Create, &records)
        .await
        .unwrap();
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.as_ref().unwrap().id, b.as_ref().unwrap().id);
    }
    assert_eq!(netsuite.vendors().await.len(), 2);
    assert_eq!(netsuite.stats().await["idempotentReplays"], 2);
}

#[tokio::test]
async fn upsert_by_external_id_creates_once_then_updates() {
    let netsuite = NetSuite::start();
    let connector = netsuite.connector();
    let first = connector
        .write(
            "vendor",
            WriteMode::Upsert,
            &[vendor("SUP-9", Some("Old name"))],
        )
        .await
        .unwrap();
    let second = connector
        .write(
            "vendor",
            WriteMode::Upsert,
            &[vendor("SUP-9", Some("New name"))],
        )
        .await
        .unwrap();
    assert_eq!(
        first[0].as_ref().unwrap().id,
        second[0].as_ref().unwrap().id
    );
    let vendors = netsuite.vendors().await;
    assert_eq!(vendors.len(), 1);
    assert_eq!(vendors[0]["companyName"], "New name");
    assert_eq!(vendors[0]["externalId"], "SUP-9");

    let missing = connector
        .write("vendor", WriteMode::Update, &[vendor("SUP-404", Some("x"))])
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(
        missing.error.erp_message().unwrap().code.as_deref(),
        Some("NONEXISTENT_ID")
    );

    let no_key = Record::new("k", fields(json!({"companyName": "x"})));
    let refused = connector
        .write("vendor", WriteMode::Upsert, &[no_key])
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert!(
        matches!(refused.error, ConnectorError::Config { .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn suiteql_reads_page_by_offset_until_has_more_is_false() {
    let netsuite = NetSuite::start();
    let connector = netsuite.connector();
    let records: Vec<_> = (0..7)
        .map(|i| vendor(&format!("PAGE-{i}"), Some("Paged")))
        .collect();
    assert!(connector
        .write("vendor", WriteMode::Create, &records)
        .await
        .unwrap()
        .iter()
        .all(Result::is_ok));
    connector
        .write(
            "vendor",
            WriteMode::Create,
            &[vendor("OTHER-1", Some("Other"))],
        )
        .await
        .unwrap();

    let query = ReadQuery::all()
        .filter("externalid LIKE 'PAGE-%'")
        .select(["id", "externalid"])
        .page_size(3);
    let mut rows = Vec::new();
    let mut pages = 0;
    let mut next = None;
    loop {
        let page = connector
            .read("vendor", &query, next.as_deref())
            .await
            .unwrap();
        pages += 1;
        rows.extend(page.records);
        match page.next {
            Some(cursor) => next = Some(cursor),
            None => break,
        }
    }
    assert_eq!((rows.len(), pages), (7, 3));
    assert!(rows.iter().all(
        |r| r["externalid"].as_str().unwrap().starts_with("PAGE-") && r.get("links").is_none()
    ));

    let err = connector
        .read("vendor", &ReadQuery::all().filter("SELECT nonsense"), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.erp_message().unwrap().target.as_deref(),
        Some("q"),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_retry_after_says_and_nothing_is_doubled() {
    let netsuite = NetSuite::start();
    let connector = netsuite.connector();
    netsuite.throttle(2, "1").await;
    let started = Instant::now();
    let outcome = connector
        .write(
            "vendor",
            WriteMode::Create,
            &[vendor("SUP-1", Some("Acme"))],
        )
        .await
        .unwrap();
    assert!(outcome[0].is_ok(), "{outcome:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(netsuite.stats().await["throttled"], 2);

    // Without Retry-After: half a second, then a second.
    netsuite.throttle(2, "").await;
    let started = Instant::now();
    connector
        .write(
            "vendor",
            WriteMode::Create,
            &[vendor("SUP-2", Some("Globex"))],
        )
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(netsuite.vendors().await.len(), 2);
}

#[tokio::test]
async fn past_its_retries_a_record_is_rate_limited_and_the_rest_wait() {
    let netsuite = NetSuite::start();
    let mut config = netsuite.config();
    config.max_retries = 1;
    let connector = NetSuiteConnector::new("netsuite-test", config).unwrap();
    netsuite.throttle(10, "0").await;
    let outcomes = connector
        .write(
            "vendor",
            WriteMode::Create,
            &[vendor("SUP-1", Some("a")), vendor("SUP-2", Some("b"))],
        )
        .await
        .unwrap();
    let first = outcomes[0].as_ref().unwrap_err();
    assert!(
        matches!(first.error, ConnectorError::RateLimited { .. }) && first.is_retryable(),
        "{first:?}"
    );
    let second = outcomes[1].as_ref().unwrap_err();
    assert!(
        matches!(second.error, ConnectorError::NotProcessed { .. }) && second.is_retryable(),
        "{second:?}"
    );
    assert_eq!(
        netsuite.stats().await["throttled"],
        2,
        "one try and one retry, then stop"
    );
    assert!(netsuite.vendors().await.is_empty());
}

#[tokio::test]
async fn a_netsuite_connection_is_tested_through_connections() {
    let netsuite = NetSuite::start();
    let connections = Connections::new(
        Arc::new(InMemoryStore::new()),
        KeyRing::new("k", [3u8; 32]).unwrap(),
    );
    let tenant = TenantId::new("acme");
    connections
        .create(
            &tenant,
            Some("admin"),
            NewConnection::new("ns-sandbox", "netsuite", &netsuite.config()).unwrap(),
        )
        .await
        .unwrap();
    let check = connections.test(&tenant, "ns-sandbox").await.unwrap();
    assert_eq!(check.identity.as_deref(), Some("tk-concertmaster"));
    assert!(connections
        .get(&tenant, "ns-sandbox")
        .await
        .unwrap()
        .last_tested_at
        .is_some());

    let factory_err = NetSuiteFactory
        .open("ns", br#"{"accountId":"1234567","consumerKey":"ck","consumerSecret":"hunter2-secret","tokenId":"tk","tokenSecret":7}"#)
        .err()
        .expect("tokenSecret must be a string");
    let text = factory_err.to_string();
    assert!(
        text.contains("tokenSecret") && !text.contains("hunter2-secret"),
        "{text}"
    );
}
