//! Connections through the public API: sealed at rest, integrity-checked,
//! refused while inactive, re-sealed on key rotation, audited without
//! secrets; on the in-memory store and on SQLite.

use std::sync::Arc;

use chrono::TimeZone;
use concertmaster_core::{
    clock::ManualClock,
    connector::{
        ConnectionCheck, Connector, ConnectorError, ConnectorFactory, Page, ReadQuery, Record,
        RecordOutcome, WriteMode,
    },
    store::Backend,
    store::{AuditFilter, AuditStore, ConnectionStore},
    InMemoryStore, TenantId,
};
use concertmaster_erp::{ConnectionError, Connections, CryptoError, KeyRing, NewConnection};
use concertmaster_store::SqliteStore;
use serde_json::{json, Value};

const PASSWORD: &str = "pw-Zr8#kq2!x";

/// A connector that needs no system: it reports the config's `system`.
struct Loopback {
    system: String,
}

#[async_trait::async_trait]
impl Connector for Loopback {
    async fn validate_connection(&self) -> Result<ConnectionCheck, ConnectorError> {
        Ok(ConnectionCheck {
            system: self.system.clone(),
            identity: None,
        })
    }

    async fn write(
        &self,
        _: &str,
        _: WriteMode,
        _: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError> {
        Ok(Vec::new())
    }

    async fn read(&self, _: &str, _: &ReadQuery, _: Option<&str>) -> Result<Page, ConnectorError> {
        Ok(Page {
            records: Vec::new(),
            next: None,
        })
    }
}

struct LoopbackFactory;

impl ConnectorFactory for LoopbackFactory {
    fn kind(&self) -> &str {
        "loopback"
    }

    fn config_schema(&self) -> Value {
        json!({"type": "object", "required": ["system", "password"]})
    }

    fn open(&self, connection: &str, config: &[u8]) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config: Value =
            serde_json::from_slice(config).map_err(|err| ConnectorError::Config {
                connection: connection.into(),
                message: err.to_string(),
            })?;
        match (config["system"].as_str(), config["password"].as_str()) {
            (Some(system), Some(_)) => Ok(Arc::new(Loopback {
                system: system.into(),
            })),
            _ => Err(ConnectorError::Config {
                connection: connection.into(),
                message: "at system: required".into(),
            }),
        }
    }
}

fn config(system: &str) -> Value {
    json!({ "system": system, "password": PASSWORD })
}

fn ring() -> KeyRing {
    KeyRing::new("2026-01", [1u8; 32]).unwrap()
}

fn clock() -> ManualClock {
    ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap())
}

fn connections(store: Arc<dyn Backend>) -> Connections {
    Connections::new(store, ring())
        .with_connector(LoopbackFactory)
        .with_clock(clock())
}

async fn sqlite() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("cm.db")).await.unwrap();
    (Arc::new(store), dir)
}

/// Creates connection `id` of `kind` for `tenant`.
async fn add(
    connections: &Connections,
    tenant: &TenantId,
    id: &str,
    kind: &str,
    config: &impl serde::Serialize,
) {
    connections
        .create(tenant, None, NewConnection::new(id, kind, config).unwrap())
        .await
        .unwrap();
}

/// What `validate_connection` answers for connection `id`, opened through
/// `connections` (which holds the key ring to open it with).
async fn opened_check(
    connections: &Connections,
    tenant: &TenantId,
    id: &str,
) -> concertmaster_core::connector::ConnectionCheck {
    connections
        .open(tenant, id)
        .await
        .unwrap()
        .validate_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_connection_is_sealed_at_rest_and_opens_into_its_connector() {
    let (store, _dir) = sqlite().await;
    let connections = connections(store.clone());
    let acme = TenantId::new("acme");
    let created = connections
        .create(
            &acme,
            Some("ops@acme"),
            NewConnection::new("erp", "loopback", &config("ERP one"))
                .unwrap()
                .named("Our ERP"),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            created.name.as_str(),
            created.key_id.as_str(),
            created.active
        ),
        ("Our ERP", "2026-01", true)
    );

    let stored = store.connection(&acme, "erp").await.unwrap().unwrap();
    let raw = String::from_utf8_lossy(&stored.sealed_config);
    assert!(
        !raw.contains(PASSWORD) && !raw.contains("ERP one"),
        "the config is not stored in the clear"
    );
    assert!(!stored.config_hash.is_empty());

    let check = opened_check(&connections, &acme, "erp").await;
    assert_eq!(check.system, "ERP one");

    // Another tenant sees nothing of it.
    let other = TenantId::new("other");
    assert!(matches!(
        connections.open(&other, "erp").await,
        Err(ConnectionError::NotFound { .. })
    ));
    assert!(connections.list(&other).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let store = Arc::new(InMemoryStore::new());
    let connections = connections(store.clone());
    let acme = TenantId::new("acme");

    let err = connections
        .create(
            &acme,
            None,
            NewConnection::new("erp", "loopback", &json!({"password": PASSWORD})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectionError::Connector(ConnectorError::Config { .. })
        ),
        "{err:?}"
    );
    let err = connections
        .create(
            &acme,
            None,
            NewConnection::new("erp", "oracle", &config("x")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("oracle") && err.to_string().contains("loopback"),
        "{err}"
    );
    for id in ["", "a/b", "x y", &"x".repeat(65)] {
        let err = connections
            .create(
                &acme,
                None,
                NewConnection::new(id, "loopback", &config("x")).unwrap(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectionError::InvalidId { .. }),
            "{id:?}: {err:?}"
        );
    }
    assert!(connections.list(&acme).await.unwrap().is_empty());

    add(&connections, &acme, "erp", "loopback", &config("x")).await;
    let err = connections
        .create(
            &acme,
            None,
            NewConnection::new("erp", "loopback", &config("y")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectionError::AlreadyExists { .. }),
        "{err:?}"
    );
    let check = opened_check(&connections, &acme, "erp").await;
    assert_eq!(check.system, "x", "the refused create changed nothing");
}

#[tokio::test]
async fn an_inactive_connection_refuses_use_until_activated() {
    let connections = connections(Arc::new(InMemoryStore::new()));
    let acme = TenantId::new("acme");
    add(&connections, &acme, "erp", "loopback", &config("x")).await;
    connections
        .set_active(&acme, Some("ops"), "erp", false)
        .await
        .unwrap();
    let err = connections.open(&acme, "erp").await.err().expect("refused");
    assert!(matches!(err, ConnectionError::Inactive { .. }), "{err:?}");
    assert!(
        err.to_string().contains("inactive") && err.to_string().contains("erp"),
        "{err}"
    );
    // It can still be tested before it is switched back on.
    connections.test(&acme, "erp").await.unwrap();
    connections
        .set_active(&acme, Some("ops"), "erp", true)
        .await
        .unwrap();
    connections.open(&acme, "erp").await.unwrap();
}

#[tokio::test]
async fn testing_records_the_time_and_a_new_config_clears_it() {
    let store = Arc::new(InMemoryStore::new());
    let clock = clock();
    let connections = Connections::new(store.clone(), ring())
        .with_connector(LoopbackFactory)
        .with_clock(clock.clone());
    let acme = TenantId::new("acme");
    add(&connections, &acme, "erp", "loopback", &config("x")).await;
    assert_eq!(
        connections.get(&acme, "erp").await.unwrap().last_tested_at,
        None
    );

    clock.advance(std::time::Duration::from_secs(300));
    connections.test(&acme, "erp").await.unwrap();
    let tested = connections.get(&acme, "erp").await.unwrap();
    assert_eq!(
        tested.last_tested_at,
        Some(concertmaster_core::clock::Clock::now(&clock))
    );

    let before = tested.config_hash.clone();
    let updated = connections
        .update_config(&acme, Some("ops"), "erp", &config("y"))
        .await
        .unwrap();
    assert_ne!(updated.config_hash, before);
    assert_eq!(updated.last_tested_at, None);
    let check = opened_check(&connections, &acme, "erp").await;
    assert_eq!(check.system, "y");
}

#[tokio::test]
async fn a_config_altered_or_moved_in_the_store_does_not_open() {
    let store = Arc::new(InMemoryStore::new());
    let connections = connections(store.clone());
    let acme = TenantId::new("acme");
    add(&connections, &acme, "erp", "loopback", &config("x")).await;
    let stored = store.connection(&acme, "erp").await.unwrap().unwrap();

    let mut flipped = stored.clone();
    let last = flipped.sealed_config.len() - 1;
    flipped.sealed_config[last] ^= 0x01;
    store.save_connection(&flipped).await.unwrap();
    let err = connections.open(&acme, "erp").await.err().expect("refused");
    assert!(
        matches!(
            err,
            ConnectionError::Crypto {
                source: CryptoError::Tampered { .. },
                ..
            }
        ),
        "{err:?}"
    );

    // The same sealed bytes under another tenant: bound to their record.
    let evil = TenantId::new("evil");
    store
        .save_connection(&concertmaster_core::store::StoredConnection {
            tenant: evil.clone(),
            ..stored.clone()
        })
        .await
        .unwrap();
    assert!(matches!(
        connections.open(&evil, "erp").await,
        Err(ConnectionError::Crypto { .. })
    ));

    let mut rehashed = stored.clone();
    rehashed.config_hash = "0".repeat(64);
    store.save_connection(&rehashed).await.unwrap();
    assert!(matches!(
        connections.open(&acme, "erp").await,
        Err(ConnectionError::Integrity { .. })
    ));
}

#[tokio::test]
async fn rotation_reseals_every_config_and_the_old_key_can_go() {
    let (store, _dir) = sqlite().await;
    let old = connections(store.clone());
    for tenant in ["acme", "globex"] {
        for id in ["erp-1", "erp-2", "erp-3"] {
            old.create(
                &TenantId::new(tenant),
                None,
                NewConnection::new(id, "loopback", &config(id)).unwrap(),
            )
            .await
            .unwrap();
        }
    }
    let both = ring()
        .with_key("2026-12", [2u8; 32])
        .unwrap()
        .activate("2026-12")
        .unwrap();
    old.set_keys(both);
    let report = old.reseal_all(4).await.unwrap();
    assert_eq!((report.resealed, report.skipped.len()), (6, 0));
    assert_eq!(
        old.reseal_all(4).await.unwrap().resealed,
        0,
        "a second pass has nothing left"
    );

    let only_new = Connections::new(store.clone(), KeyRing::new("2026-12", [2u8; 32]).unwrap())
        .with_connector(LoopbackFactory);
    for tenant in ["acme", "globex"] {
        let tenant = TenantId::new(tenant);
        for stored in only_new.list(&tenant).await.unwrap() {
            assert_eq!(stored.key_id, "2026-12");
            let check = opened_check(&only_new, &tenant, &stored.id).await;
            assert_eq!(check.system, stored.id);
        }
    }
    let only_old = Connections::new(store, ring()).with_connector(LoopbackFactory);
    let err = only_old
        .open(&TenantId::new("acme"), "erp-1")
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("2026-12"),
        "names the missing key: {err}"
    );
}

#[tokio::test]
async fn audit_entries_and_debug_output_hold_no_secret() {
    let store = Arc::new(InMemoryStore::new());
    let connections = connections(store.clone());
    let acme = TenantId::new("acme");
    let new = NewConnection::new("erp", "loopback", &config("x")).unwrap();
    assert!(!format!("{new:?}").contains(PASSWORD));
    let created = connections.create(&acme, Some("ops"), new).await.unwrap();
    connections
        .update_config(&acme, Some("ops"), "erp", &config("y"))
        .await
        .unwrap();
    connections
        .set_active(&acme, Some("ops"), "erp", false)
        .await
        .unwrap();

    let audit = store
        .audit_log(
            &acme,
            &AuditFilter {
                entity_type: Some("connection".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 3);
    let text = format!(
        "{audit:?} {} {created:?} {connections:?}",
        serde_json::to_string(&audit).unwrap()
    );
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(audit.iter().all(|e| e.actor.as_deref() == Some("ops")));
}

#[test]
#[cfg(all(feature = "sap", feature = "netsuite"))]
fn each_kind_comes_with_a_config_schema_whose_secrets_are_write_only() {
    let connections = connections(Arc::new(InMemoryStore::new()));
    let kinds = connections.kinds();
    let names: Vec<&str> = kinds.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(names, ["loopback", "netsuite", "sap"]);
    let netsuite = &kinds[1].1;
    for secret in ["consumerSecret", "tokenSecret"] {
        assert_eq!(
            netsuite["properties"][secret]["writeOnly"], true,
            "{secret}"
        );
    }
    let sap = &kinds[2].1;
    let auth = &sap["properties"]["auth"]["oneOf"];
    for (variant, secret) in [(0, "password"), (1, "clientSecret")] {
        let field = &auth[variant]["properties"][secret];
        assert_eq!(field["type"], "string", "{sap}");
        assert_eq!(field["writeOnly"], true, "{sap}");
    }
}

/// A rotation running while connections are deactivated and given new
/// configs reverts none of it, and a connection no key opens is skipped,
/// named in the report, while every other is resealed.
#[tokio::test]
async fn rotation_never_reverts_a_change_made_meanwhile_and_names_what_it_skips() {
    let (store, _dir) = sqlite().await;
    let conns = connections(store.clone());
    let acme = TenantId::new("acme");
    for i in 0..40 {
        let id = format!("erp-{i}");
        conns
            .create(
                &acme,
                None,
                NewConnection::new(&id, "loopback", &config(&format!("v1-{i}"))).unwrap(),
            )
            .await
            .unwrap();
    }
    let mut broken = store.connection(&acme, "erp-0").await.unwrap().unwrap();
    broken.sealed_config[20] ^= 0xff;
    store.save_connection(&broken).await.unwrap();
    conns.set_keys(
        ring()
            .with_key("2026-12", [2u8; 32])
            .unwrap()
            .activate("2026-12")
            .unwrap(),
    );

    let writer = async {
        for i in (1..40).step_by(2) {
            let id = format!("erp-{i}");
            if i % 4 == 1 {
                conns
                    .set_active(&acme, Some("ops"), &id, false)
                    .await
                    .unwrap();
            } else {
                conns
                    .update_config(&acme, Some("ops"), &id, &config(&format!("v2-{i}")))
                    .await
                    .unwrap();
            }
            tokio::task::yield_now().await;
        }
    };
    let (report, ()) = tokio::join!(conns.reseal_all(3), writer);
    let report = report.unwrap();
    assert_eq!(
        report
            .skipped
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec!["erp-0"],
        "{report:?}"
    );
    assert!(!report.skipped[0].reason.contains(PASSWORD));
    // Rows a writer changed under the old key in the meantime: the next pass.
    let again = conns.reseal_all(3).await.unwrap();
    assert_eq!(again.skipped.len(), 1);

    for i in 1..40 {
        let id = format!("erp-{i}");
        let stored = conns.get(&acme, &id).await.unwrap();
        assert_eq!(stored.key_id, "2026-12", "{id} is resealed");
        if i % 4 == 1 {
            assert!(!stored.active, "{id} stays deactivated");
            continue;
        }
        let expected = if i % 2 == 1 {
            format!("v2-{i}")
        } else {
            format!("v1-{i}")
        };
        let check = opened_check(&conns, &acme, &id).await;
        assert_eq!(check.system, expected, "{id} keeps its latest config");
    }
    assert_eq!(conns.get(&acme, "erp-0").await.unwrap().key_id, "2026-01");
}

/// A connection whose integrity hash was written before HKDF (its HMAC key
/// the SHA-256 of a label and the sealing key) still opens, and a rotation
/// writes its hash the new way.
#[tokio::test]
async fn a_config_hashed_the_earlier_way_opens_and_rotation_rehashes_it() {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let (store, _dir) = sqlite().await;
    let conns = connections(store.clone());
    let acme = TenantId::new("acme");
    conns
        .create(
            &acme,
            None,
            NewConnection::new("erp", "loopback", &config("legacy")).unwrap(),
        )
        .await
        .unwrap();
    let mut stored = store.connection(&acme, "erp").await.unwrap().unwrap();
    assert!(
        stored.config_hash.starts_with("hkdf-sha256:"),
        "{}",
        stored.config_hash
    );
    let mut derive = Sha256::new();
    derive.update(b"concertmaster/config-hash\0");
    derive.update([1u8; 32]);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&derive.finalize()).unwrap();
    mac.update(config("legacy").to_string().as_bytes());
    stored.config_hash = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    store.save_connection(&stored).await.unwrap();

    let check = opened_check(&conns, &acme, "erp").await;
    assert_eq!(check.system, "legacy", "the earlier hash still checks");
    conns.set_keys(
        ring()
            .with_key("2026-12", [2u8; 32])
            .unwrap()
            .activate("2026-12")
            .unwrap(),
    );
    assert_eq!(conns.reseal_all(10).await.unwrap().resealed, 1);
    let rotated = store.connection(&acme, "erp").await.unwrap().unwrap();
    assert!(
        rotated.config_hash.starts_with("hkdf-sha256:"),
        "{}",
        rotated.config_hash
    );
    let only_new = Connections::new(store.clone(), KeyRing::new("2026-12", [2u8; 32]).unwrap())
        .with_connector(LoopbackFactory);
    let check = opened_check(&only_new, &acme, "erp").await;
    assert_eq!(check.system, "legacy");
}

/// A third kind of connector, `acme`, that brings its own export node: it
/// posts each record as JSON to `{url}/{table}` of a small HTTP service.
struct AcmeFactory;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AcmeConfig {
    /// Where the service listens.
    url: String,
}

struct AcmeConnector {
    connection: String,
    url: String,
    client: reqwest::Client,
}

impl ConnectorFactory for AcmeFactory {
    fn kind(&self) -> &str {
        "acme"
    }

    fn config_schema(&self) -> Value {
        concertmaster_core::connector::config_schema::<AcmeConfig>()
    }

    fn export_node(&self) -> Option<concertmaster_core::connector::ExportNode> {
        Some(
            concertmaster_core::connector::ExportNode::new("acme_export", "Acme export")
                .icon("factory")
                .entity_field("table", "Acme table")
                .examples("suppliers", "supplierNo", "name"),
        )
    }

    fn open(&self, connection: &str, config: &[u8]) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config: AcmeConfig =
            serde_json::from_slice(config).map_err(|err| ConnectorError::Config {
                connection: connection.into(),
                message: err.to_string(),
            })?;
        Ok(Arc::new(AcmeConnector {
            connection: connection.into(),
            url: config.url,
            client: reqwest::Client::new(),
        }))
    }
}

#[async_trait::async_trait]
impl Connector for AcmeConnector {
    async fn validate_connection(&self) -> Result<ConnectionCheck, ConnectorError> {
        Ok(ConnectionCheck {
            system: "Acme".into(),
            identity: None,
        })
    }

    async fn write(
        &self,
        table: &str,
        _: WriteMode,
        records: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError> {
        let mut outcomes = Vec::new();
        for record in records {
            let url = format!("{}/{table}", self.url);
            let unreachable = |err: reqwest::Error| ConnectorError::Unreachable {
                connection: self.connection.clone(),
                url: url.clone(),
                message: err.to_string(),
            };
            let answer: Value = self
                .client
                .post(&url)
                .header("Idempotency-Key", &record.key)
                .json(&record.fields)
                .send()
                .await
                .map_err(unreachable)?
                .json()
                .await
                .map_err(unreachable)?;
            outcomes.push(Ok(concertmaster_core::connector::Written {
                key: record.key.clone(),
                id: answer["id"].as_str().unwrap_or_default().to_string(),
                created: true,
                etag: None,
            }));
        }
        Ok(outcomes)
    }

    async fn read(&self, _: &str, _: &ReadQuery, _: Option<&str>) -> Result<Page, ConnectorError> {
        Ok(Page {
            records: Vec::new(),
            next: None,
        })
    }
}

/// A local HTTP service standing in for Acme's: answers every POST with
/// `201 {"id": "acme-<n>"}` and keeps what it was sent (path, body).
async fn acme_stand_in() -> (String, Arc<std::sync::Mutex<Vec<(String, Value)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Reads the head, then as much body as it announces.
                let (head_end, length) = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while request.len() < head_end + length {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&request[..head_end]).to_string();
                let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                let body: Value =
                    serde_json::from_slice(&request[head_end..]).unwrap_or(Value::Null);
                let id = {
                    let mut kept = kept.lock().unwrap();
                    kept.push((path, body));
                    format!("acme-{}", kept.len())
                };
                let answer = json!({ "id": id }).to_string();
                let response = format!(
                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, received)
}

#[tokio::test]
async fn a_third_connector_brings_its_own_export_node() {
    let (url, received) = acme_stand_in().await;
    let store: Arc<dyn Backend> = Arc::new(InMemoryStore::new());
    let connections = Connections::new(store.clone(), ring()).with_connector(AcmeFactory);
    let mut registry = concertmaster_core::NodeRegistry::new();
    connections.register_nodes(&mut registry).unwrap();
    let descriptor = registry
        .descriptors()
        .find(|d| d.type_id == "acme_export")
        .expect("the factory's export node is registered");
    assert_eq!(descriptor.label, "Acme export");
    assert_eq!(descriptor.icon, "factory");
    let schema = &descriptor.config_schema;
    assert_eq!(schema["properties"]["table"]["title"], "Acme table");
    assert_eq!(
        schema["properties"]["keyField"]["examples"],
        json!(["supplierNo"])
    );
    assert!(schema["properties"].get("entity").is_none(), "{schema}");
    assert!(schema["required"]
        .as_array()
        .unwrap()
        .contains(&json!("table")));
    assert_eq!(
        concertmaster_core::testing::check_config_examples(&registry),
        Vec::<String>::new()
    );

    let engine = concertmaster_core::Engine::builder()
        .shared_store(store)
        .registry(registry)
        .build()
        .await
        .unwrap();
    connections.attach(&engine);
    let tenant = TenantId::new("acme");
    add(
        &connections,
        &tenant,
        "acme-prod",
        "acme",
        &json!({ "url": url }),
    )
    .await;
    // The destination under the connector's own name; `entity` is not it.
    let workflow = |table_field: &str| {
        concertmaster_core::WorkflowDefinition::from_value(json!({
            "id": "to-acme", "name": "to-acme",
            "nodes": [{ "id": "export", "type": "acme_export", "config": {
                "connection": "acme-prod", table_field: "suppliers",
                "keyField": "supplierNo",
                "mapping": { "supplierNo": "/id", "name": "/name" }
            }}]
        }))
        .unwrap()
    };
    let refused = engine
        .publish(&tenant, workflow("entity"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("entity"), "{refused}");
    let published = engine.publish(&tenant, workflow("table")).await.unwrap();
    let run = engine
        .start(
            &published,
            json!([{ "id": "S-1", "name": "Müller GmbH" }, { "id": "S-2", "name": "Acme AG" }]),
        )
        .await
        .unwrap();
    assert_eq!(
        engine.finished(&tenant, run).await.unwrap().status,
        concertmaster_core::RunStatus::Succeeded
    );
    let detail = engine.run(&tenant, run).await.unwrap();
    let ok = detail.output("export").unwrap().get("ok");
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0]["erp"]["id"], "acme-1");
    let received = received.lock().unwrap().clone();
    assert_eq!(
        received,
        vec![
            (
                "/suppliers".to_string(),
                json!({ "supplierNo": "S-1", "name": "Müller GmbH" })
            ),
            (
                "/suppliers".to_string(),
                json!({ "supplierNo": "S-2", "name": "Acme AG" })
            ),
        ]
    );
}

#[cfg(all(feature = "sap", feature = "netsuite"))]
#[test]
fn the_built_in_export_nodes_agree_with_their_config_on_their_documented_examples() {
    let connections = Connections::new(Arc::new(InMemoryStore::new()), ring());
    let mut registry = concertmaster_core::NodeRegistry::new();
    connections.register_nodes(&mut registry).unwrap();
    let types: Vec<_> = registry.descriptors().map(|d| d.type_id.clone()).collect();
    assert_eq!(types, ["netsuite_sync", "sap_export"]);
    let netsuite = registry
        .descriptors()
        .find(|d| d.type_id == "netsuite_sync")
        .unwrap();
    let order = netsuite.config_schema["x-order"].as_array().unwrap();
    assert_eq!(order[..2], [json!("connection"), json!("recordType")]);
    assert_eq!(
        concertmaster_core::testing::check_config_examples(&registry),
        Vec::<String>::new()
    );
}
