//! The SAP connector against SAP's own OData server (CAP, `@sap/cds`),
//! V4 and V2, with S/4HANA's CSRF and auth behaviour: see
//! `tests/sap-server` and `scripts/sap-for-tests`, which `scripts/test`
//! runs first.
#![cfg(feature = "sap")]

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use crate::support::{fields, fresh_id};
use concertmaster_core::connector::{
    Connector, ConnectorError, ConnectorFactory, ReadQuery, Record, WriteMode,
};
use concertmaster_erp::{ODataVersion, SapAuth, SapConfig, SapConnector, SapFactory, Secret};
use serde_json::{json, Value};

const SERVICE: &str = "API_BUSINESS_PARTNER";
const ENTITY: &str = "A_BusinessPartner";

fn origin() -> String {
    support::sap_origin()
}

fn service_url(version: ODataVersion) -> String {
    support::sap_service(version)
}

fn basic(user: &str, password: &str) -> SapAuth {
    SapAuth::Basic {
        username: user.into(),
        password: Secret::new(password.into()),
    }
}

fn oauth(client: &str, secret: &str) -> SapAuth {
    SapAuth::OAuth2ClientCredentials {
        token_url: format!("{}/oauth/token", origin()),
        client_id: client.into(),
        client_secret: Secret::new(secret.into()),
        scope: None,
    }
}

fn connector(version: ODataVersion, auth: SapAuth, batch_size: usize) -> SapConnector {
    let config = SapConfig {
        service_url: service_url(version),
        version,
        auth,
        batch_size,
        sap_client: None,
        timeout_seconds: 30,
    };
    SapConnector::new("sap-test", config).expect("a valid config")
}

fn alice(version: ODataVersion) -> SapConnector {
    connector(version, basic("alice", "alice-secret-4711"), 10)
}

fn partner(id: &str, category: &str, tag: &str) -> Record {
    Record::new(
        format!("run-1/export/{id}"),
        fields(json!({
            "BusinessPartner": id,
            "BusinessPartnerCategory": category,
            "OrganizationBPName1": format!("Supplier {id}"),
            "SearchTerm1": tag,
        })),
    )
    .with_external_id(id)
}

async fn read_all(sap: &SapConnector, query: &ReadQuery) -> (Vec<Value>, usize) {
    let mut records = Vec::new();
    let mut pages = 0;
    let mut next: Option<String> = None;
    loop {
        let page = sap
            .read(ENTITY, query, next.as_deref())
            .await
            .expect("a page");
        pages += 1;
        records.extend(page.records);
        match page.next {
            Some(cursor) => next = Some(cursor),
            None => return (records, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

async fn stats(principal: &str) -> Value {
    support::sap_stats(principal).await
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats.get(name).and_then(Value::as_u64).unwrap_or(0)
}

const VERSIONS: [ODataVersion; 2] = [ODataVersion::V4, ODataVersion::V2];

#[tokio::test]
async fn test_connection_accepts_good_credentials_and_names_refused_ones_without_the_password() {
    for version in VERSIONS {
        let check = alice(version)
            .validate_connection()
            .await
            .expect("alice signs in");
        assert_eq!(check.identity.as_deref(), Some("alice"));
        assert!(check.system.contains(SERVICE), "{check:?}");

        let wrong = connector(version, basic("alice", "not-the-password-0000"), 10);
        let err = wrong.validate_connection().await.unwrap_err();
        assert!(
            matches!(err, ConnectorError::Unauthorized { .. }),
            "{err:?}"
        );
        let shown = format!("{err} {err:?} {wrong:?}");
        assert!(!shown.contains("not-the-password-0000"), "{shown}");
    }
}

#[tokio::test]
async fn a_batch_reports_each_refused_record_and_keeps_the_others() {
    for version in VERSIONS {
        let sap = alice(version);
        let tag = fresh_id();
        let (a, b, c) = (fresh_id(), fresh_id(), fresh_id());
        // `9` is not a BusinessPartnerCategory: the server refuses that record only.
        let records = [
            partner(&a, "2", &tag),
            partner(&b, "9", &tag),
            partner(&c, "1", &tag),
        ];
        let outcomes = sap
            .write(ENTITY, WriteMode::Create, &records)
            .await
            .expect("the batch is sent");
        assert_eq!(outcomes.len(), 3);

        let written = outcomes[0].as_ref().expect("a is created");
        assert_eq!((written.id.as_str(), written.created), (a.as_str(), true));
        assert!(
            written.etag.as_deref().is_some_and(|e| e.starts_with("W/")),
            "{written:?}"
        );
        assert_eq!(outcomes[2].as_ref().expect("c is created").id, c);

        let failure = outcomes[1].as_ref().expect_err("b is refused");
        assert_eq!(failure.key, records[1].key);
        assert!(!failure.is_retryable());
        let message = failure.error.erp_message().expect("the server's own error");
        assert_eq!(message.status, Some(400));
        assert_eq!(message.code.as_deref(), Some("ASSERT_ENUM"), "{message:?}");
        assert_eq!(message.target.as_deref(), Some("BusinessPartnerCategory"));

        let (stored, _) = read_all(
            &sap,
            &ReadQuery::all().filter(format!("SearchTerm1 eq '{tag}'")),
        )
        .await;
        let mut ids: Vec<_> = stored
            .iter()
            .map(|r| r["BusinessPartner"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        let mut expected = vec![a.clone(), c.clone()];
        expected.sort();
        assert_eq!(
            ids, expected,
            "{version:?}: the accepted records are all there, the refused one is not"
        );
    }
}

#[tokio::test]
async fn batches_follow_the_configured_size_and_single_records_go_alone() {
    for version in VERSIONS {
        let sap = connector(version, basic("alice", "alice-secret-4711"), 2);
        let tag = fresh_id();
        let records: Vec<_> = (0..5).map(|_| partner(&fresh_id(), "2", &tag)).collect();
        let outcomes = sap
            .write(ENTITY, WriteMode::Create, &records)
            .await
            .unwrap();
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        let (stored, _) = read_all(
            &sap,
            &ReadQuery::all().filter(format!("SearchTerm1 eq '{tag}'")),
        )
        .await;
        assert_eq!(stored.len(), 5);
    }
}

#[tokio::test]
async fn an_update_with_a_stale_etag_is_a_typed_conflict_and_a_fresh_one_applies() {
    for version in VERSIONS {
        let sap = alice(version);
        let id = fresh_id();
        let created = sap
            .write(ENTITY, WriteMode::Create, &[partner(&id, "2", "T")])
            .await
            .unwrap()
            .remove(0)
            .expect("created");
        let etag = created.etag.clone().expect("an ETag");

        // Someone else changes it first (the ETag moves on).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let change = Record::new("other", fields(json!({"SearchTerm1": "OTHER"})))
            .with_external_id(&id)
            .with_etag(&etag);
        let theirs = sap
            .write(ENTITY, WriteMode::Update, &[change])
            .await
            .unwrap()
            .remove(0)
            .expect("applied");
        assert_ne!(theirs.etag, Some(etag.clone()));

        let stale = Record::new("mine", fields(json!({"SearchTerm1": "MINE"})))
            .with_external_id(&id)
            .with_etag(&etag);
        let failure = sap
            .write(ENTITY, WriteMode::Update, &[stale])
            .await
            .unwrap()
            .remove(0)
            .unwrap_err();
        match &failure.error {
            ConnectorError::Conflict {
                entity,
                id: conflicted,
                expected,
                ..
            } => {
                assert_eq!(
                    (entity.as_str(), conflicted.as_str(), expected.as_str()),
                    (ENTITY, id.as_str(), etag.as_str())
                );
            }
            other => panic!("{version:?}: expected a conflict, got {other:?}"),
        }

        let fresh = Record::new("mine", fields(json!({"SearchTerm1": "MINE"})))
            .with_external_id(&id)
            .with_etag(theirs.etag.clone().expect("their ETag"));
        let mine = sap
            .write(ENTITY, WriteMode::Update, &[fresh])
            .await
            .unwrap()
            .remove(0)
            .expect("applied");
        assert!(!mine.created);
        let (stored, _) = read_all(
            &sap,
            &ReadQuery::all().filter(format!("BusinessPartner eq '{id}'")),
        )
        .await;
        assert_eq!(stored[0]["SearchTerm1"], "MINE");
    }
}

#[tokio::test]
async fn upsert_creates_what_is_missing_and_updates_what_is_there() {
    for version in VERSIONS {
        let sap = alice(version);
        let tag = fresh_id();
        let (old, new) = (fresh_id(), fresh_id());
        sap.write(ENTITY, WriteMode::Create, &[partner(&old, "2", &tag)])
            .await
            .unwrap()
            .remove(0)
            .unwrap();

        let mut changed = partner(&old, "2", &tag);
        changed
            .fields
            .insert("OrganizationBPName1".into(), json!("Renamed GmbH"));
        let outcomes = sap
            .write(
                ENTITY,
                WriteMode::Upsert,
                &[changed, partner(&new, "1", &tag)],
            )
            .await
            .unwrap();
        let updated = outcomes[0].as_ref().expect("updated");
        let created = outcomes[1].as_ref().expect("created");
        assert_eq!(
            (updated.created, created.created),
            (false, true),
            "{version:?}"
        );

        // Again: the same records, no duplicates.
        let again = sap
            .write(ENTITY, WriteMode::Upsert, &[partner(&new, "1", &tag)])
            .await
            .unwrap();
        assert!(!again[0].as_ref().unwrap().created);
        let (stored, _) = read_all(
            &sap,
            &ReadQuery::all().filter(format!("SearchTerm1 eq '{tag}'")),
        )
        .await;
        assert_eq!(stored.len(), 2);
        let renamed = stored
            .iter()
            .find(|r| r["BusinessPartner"] == old.as_str())
            .unwrap();
        assert_eq!(renamed["OrganizationBPName1"], "Renamed GmbH");
    }
}

#[tokio::test]
async fn reads_page_by_skip_and_by_the_servers_next_links() {
    for version in VERSIONS {
        let sap = alice(version);
        let tag = fresh_id();
        let records: Vec<_> = (0..7).map(|_| partner(&fresh_id(), "2", &tag)).collect();
        assert!(sap
            .write(ENTITY, WriteMode::Create, &records)
            .await
            .unwrap()
            .iter()
            .all(Result::is_ok));
        let query = ReadQuery::all()
            .filter(format!("SearchTerm1 eq '{tag}'"))
            .select(["BusinessPartner", "SearchTerm1"]);

        // Pages of 3 the client asks for with $top/$skip.
        let (by_skip, pages) = read_all(&sap, &query.clone().page_size(3)).await;
        assert_eq!((by_skip.len(), pages), (7, 3), "{version:?}");
        // Pages of 50 the server (limit 5) splits with @odata.nextLink / __next.
        let (by_link, pages) = read_all(&sap, &query.clone().page_size(50)).await;
        assert_eq!((by_link.len(), pages), (7, 2), "{version:?}");
        let mut ids: Vec<_> = by_link
            .iter()
            .map(|r| r["BusinessPartner"].clone())
            .collect();
        ids.dedup();
        assert_eq!(ids.len(), 7);

        let err = sap
            .read(ENTITY, &query, Some("not a cursor"))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Config { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn an_expired_csrf_token_is_fetched_again_once() {
    for version in VERSIONS {
        let sap = connector(version, basic("csrf-tester", "csrf-secret-4711"), 10);
        sap.validate_connection().await.unwrap();
        let before = stats("csrf-tester").await;

        // The server drops the session: the cached token is now refused.
        let expired = reqwest::Client::new()
            .post(format!(
                "{}/test/expire-sessions?principal=csrf-tester",
                origin()
            ))
            .send()
            .await
            .unwrap();
        assert!(expired.status().is_success());
        let outcome = sap
            .write(
                ENTITY,
                WriteMode::Create,
                &[partner(&fresh_id(), "2", "CSRF")],
            )
            .await
            .unwrap();
        assert!(outcome[0].is_ok(), "{outcome:?}");

        let after = stats("csrf-tester").await;
        assert_eq!(
            counter(&after, "rejectedCsrf") - counter(&before, "rejectedCsrf"),
            1,
            "{version:?}"
        );
        assert_eq!(
            counter(&after, "csrfFetches") - counter(&before, "csrfFetches"),
            1,
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn oauth2_tokens_are_cached_until_they_expire() {
    let sap = connector(
        ODataVersion::V4,
        oauth("concertmaster", "client-secret-0815"),
        10,
    );
    let before = counter(&stats("concertmaster").await, "tokenRequests");
    sap.validate_connection().await.unwrap();
    for _ in 0..3 {
        let outcome = sap
            .write(
                ENTITY,
                WriteMode::Create,
                &[partner(&fresh_id(), "2", "OAUTH")],
            )
            .await
            .unwrap();
        assert!(outcome[0].is_ok(), "{outcome:?}");
    }
    assert_eq!(
        counter(&stats("concertmaster").await, "tokenRequests") - before,
        1
    );

    // A token that lives 2 s is renewed once it is due.
    let short = connector(
        ODataVersion::V2,
        oauth("short-lived", "short-secret-0815"),
        10,
    );
    let before = counter(&stats("short-lived").await, "tokenRequests");
    short
        .read(ENTITY, &ReadQuery::all().page_size(1), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    short
        .read(ENTITY, &ReadQuery::all().page_size(1), None)
        .await
        .unwrap();
    assert_eq!(
        counter(&stats("short-lived").await, "tokenRequests") - before,
        2
    );

    let refused = connector(
        ODataVersion::V4,
        oauth("concertmaster", "wrong-secret-1234"),
        10,
    );
    let err = refused.validate_connection().await.unwrap_err();
    match &err {
        ConnectorError::Unauthorized { error, .. } => {
            assert_eq!(error.code.as_deref(), Some("invalid_client"))
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert!(!format!("{err} {err:?} {refused:?}").contains("wrong-secret-1234"));
}

#[tokio::test]
async fn the_factory_refuses_bad_configs_without_echoing_secrets() {
    let open = |config: Value| {
        SapFactory
            .open("sap-x", config.to_string().as_bytes())
            .map(|_| ())
    };
    let good = json!({
        "serviceUrl": service_url(ODataVersion::V4), "version": "v4",
        "auth": {"type": "basic", "username": "alice", "password": "pw-123456"}
    });
    assert!(open(good.clone()).is_ok());

    for (change, expected) in [
        (json!({"version": "v3"}), "at version"),
        (
            json!({"serviceUrl": "https://alice:pw-123456@s4.example/x"}),
            "auth section",
        ),
        (json!({"batchSize": 0}), "batchSize"),
        (
            json!({"auth": {"type": "basic", "username": "alice", "password": "pw-123456", "extra": 1}}),
            "at auth",
        ),
        (json!({"auth": {"type": "pw-123456"}}), "at auth"),
    ] {
        let mut config = good.clone();
        for (k, v) in change.as_object().unwrap() {
            config[k] = v.clone();
        }
        let err = open(config).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("pw-123456"), "{err}");
    }

    let sap: Arc<dyn Connector> = SapFactory
        .open("sap-x", good.to_string().as_bytes())
        .unwrap();
    let err = sap
        .write("A_BusinessPartner('1')/x", WriteMode::Create, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Config { .. }), "{err:?}");
}

#[tokio::test]
async fn a_duplicate_create_is_the_servers_typed_error_for_that_record() {
    for version in VERSIONS {
        let sap = alice(version);
        let id = fresh_id();
        sap.write(ENTITY, WriteMode::Create, &[partner(&id, "2", "DUP")])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        let failure = sap
            .write(ENTITY, WriteMode::Create, &[partner(&id, "2", "DUP")])
            .await
            .unwrap()
            .remove(0)
            .unwrap_err();
        // S/4HANA answers 400; CAP on SQLite answers 500 with the constraint.
        let message = failure.error.erp_message().expect("an OData error");
        assert!(message.status.is_some_and(|s| s >= 400), "{message:?}");
        assert!(
            message.code.is_some() && message.message.contains("UNIQUE"),
            "{message:?}"
        );
    }
}
