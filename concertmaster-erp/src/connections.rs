//! `Connections`: a tenant's ERP connections, their configs sealed at rest,
//! opened into connectors only while active.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use concertmaster_core::{
    clock::{Clock, SystemClock},
    connector::{ConnectionCheck, Connector, ConnectorError, ConnectorFactory, ExportNode},
    node::RegistryError,
    store::ConnectionStore,
    store::{AuditAction, AuditEntry, StoreError, StoredConnection},
    Engine, NodeRegistry, TenantId,
};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::Instrument;
use zeroize::Zeroizing;

use crate::keyring::{CryptoError, KeyRing, Sealed};
use crate::secret::Secret;

/// Longest connection id.
const MAX_ID_LEN: usize = 64;

/// Why a connections call was refused. A refused call changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// No connection with that id for the tenant.
    #[error("connection {id:?} does not exist for tenant {tenant}")]
    NotFound {
        /// The tenant.
        tenant: TenantId,
        /// The id asked for.
        id: String,
    },
    /// A connection with that id exists already.
    #[error("connection {id:?} exists already for tenant {tenant}; update its config instead")]
    AlreadyExists {
        /// The tenant.
        tenant: TenantId,
        /// The id.
        id: String,
    },
    /// The id is not usable.
    #[error("connection id {id:?} is not valid: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No connector of that kind is registered.
    #[error("connection {id:?} is of kind {kind:?}, which no registered connector makes (known: {known})")]
    UnknownKind {
        /// The connection.
        id: String,
        /// Its kind.
        kind: String,
        /// The kinds registered.
        known: String,
    },
    /// The connection was deactivated; it is not used until activated.
    #[error(
        "connection {id:?} of tenant {tenant} is inactive; activate it before workflows use it"
    )]
    Inactive {
        /// The tenant.
        tenant: TenantId,
        /// The connection.
        id: String,
    },
    /// The stored config could not be opened or sealed.
    #[error("connection {id:?}: {source}")]
    Crypto {
        /// The connection.
        id: String,
        /// Why.
        #[source]
        source: CryptoError,
    },
    /// The stored config opened but does not match its integrity hash.
    #[error("connection {id:?}: the stored config does not match its integrity hash; it was altered outside ConcertMaster")]
    Integrity {
        /// The connection.
        id: String,
    },
    /// The config is not JSON.
    #[error("connection {id:?}: the config is not valid JSON: {message}")]
    ConfigNotJson {
        /// The connection.
        id: String,
        /// The parser's message (it never quotes the input).
        message: String,
    },
    /// The connector refused the config, or failed to reach the system.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A connection about to be created: its id, display name, kind and config.
/// The config is held as a [`Secret`], so this value prints no secret.
pub struct NewConnection {
    id: String,
    name: String,
    kind: String,
    config: Secret<String>,
}

impl NewConnection {
    /// Connection `id` of `kind` (`sap`, `netsuite`) with `config`, which
    /// may be a typed config ([`SapConfig`](crate::SapConfig)) or JSON.
    pub fn new(
        id: impl Into<String>,
        kind: impl Into<String>,
        config: &impl Serialize,
    ) -> Result<Self, ConnectionError> {
        let id = id.into();
        let config =
            serde_json::to_string(config).map_err(|err| ConnectionError::ConfigNotJson {
                id: id.clone(),
                message: err.to_string(),
            })?;
        Ok(Self {
            name: id.clone(),
            id,
            kind: kind.into(),
            config: Secret::new(config),
        })
    }

    /// With a display name (the id otherwise).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewConnection")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &self.config)
            .finish()
    }
}

/// A tenant's connections to external systems, stored with their configs
/// sealed by a [`KeyRing`] (AES-256-GCM, bound to tenant, id and kind),
/// and opened into [`Connector`]s by the factory of their kind.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use concertmaster_core::{InMemoryStore, TenantId};
/// use concertmaster_erp::{Connections, KeyRing, NewConnection};
/// use serde_json::json;
///
/// let keys = KeyRing::new("2026-11", [7u8; 32])?;
/// let connections = Connections::new(Arc::new(InMemoryStore::new()), keys);
/// let tenant = TenantId::new("acme");
/// let config = json!({
///     "serviceUrl": "https://s4.example.com/sap/opu/odata/sap/API_BUSINESS_PARTNER",
///     "version": "v2",
///     "auth": { "type": "basic", "username": "CM_USER", "password": "s3cret" }
/// });
/// let created = connections
///     .create(&tenant, Some("admin"), NewConnection::new("sap-prod", "sap", &config)?)
///     .await?;
/// assert_eq!(created.key_id, "2026-11");
/// assert!(!format!("{created:?}").contains("s3cret"));
///
/// connections.set_active(&tenant, Some("admin"), "sap-prod", false).await?;
/// assert!(connections.open(&tenant, "sap-prod").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ConnectionStore>,
    batcher: Arc<crate::nodes::Batcher>,
    keys: RwLock<KeyRing>,
    factories: BTreeMap<String, Arc<dyn ConnectorFactory>>,
    clock: Arc<dyn Clock>,
}

impl Clone for Inner {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            batcher: Arc::clone(&self.batcher),
            keys: RwLock::new(
                self.keys
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone(),
            ),
            factories: self.factories.clone(),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("kinds", &self.inner.factories.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Connections kept in `store`, sealed with `keys`' active key, with the
    /// connectors of this crate's enabled features registered.
    pub fn new(store: Arc<dyn ConnectionStore>, keys: KeyRing) -> Self {
        #[allow(unused_mut)]
        let mut factories: BTreeMap<String, Arc<dyn ConnectorFactory>> = BTreeMap::new();
        #[cfg(feature = "sap")]
        factories.insert("sap".into(), Arc::new(crate::sap::SapFactory));
        #[cfg(feature = "netsuite")]
        factories.insert(
            "netsuite".into(),
            Arc::new(crate::netsuite::NetSuiteFactory),
        );
        Self {
            inner: Arc::new(Inner {
                store,
                batcher: Arc::new(crate::nodes::Batcher::new()),
                keys: RwLock::new(keys),
                factories,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// With `factory`'s kind of connector as well (or instead of the
    /// built-in one of the same kind).
    pub fn with_connector(mut self, factory: impl ConnectorFactory + 'static) -> Self {
        self.inner_mut()
            .factories
            .insert(factory.kind().to_string(), Arc::new(factory));
        self
    }

    /// Reading time from `clock` (tests use a `ManualClock`).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.inner_mut().clock = Arc::new(clock);
        self
    }

    /// This value's own state to change; clones already handed out keep
    /// theirs.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Registers the `sap_export` and `netsuite_sync` nodes, which write
    /// items through these connections.
    pub fn register_nodes(&self, registry: &mut NodeRegistry) -> Result<(), RegistryError> {
        crate::nodes::register(registry, self, &self.inner.batcher)
    }

    /// Lets batch-mode export nodes resume their runs once their records
    /// are written; call it after building the engine.
    pub fn attach(&self, engine: &Engine) {
        self.inner.batcher.attach(engine);
    }

    /// The export node of each kind of connector that brings one, with
    /// its kind.
    pub(crate) fn export_nodes(&self) -> Vec<(String, ExportNode)> {
        self.inner
            .factories
            .iter()
            .filter_map(|(kind, factory)| Some((kind.clone(), factory.export_node()?)))
            .collect()
    }

    /// The kinds of connector registered, each with its config's JSON
    /// Schema (for the editor's connection form).
    pub fn kinds(&self) -> Vec<(String, Value)> {
        self.inner
            .factories
            .iter()
            .map(|(kind, factory)| (kind.clone(), factory.config_schema()))
            .collect()
    }

    /// Replaces the key ring, for a rotation: a ring holding the old keys
    /// and the new one as active; then [`Connections::reseal_all`].
    pub fn set_keys(&self, keys: KeyRing) {
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    }

    fn factory(&self, id: &str, kind: &str) -> Result<&Arc<dyn ConnectorFactory>, ConnectionError> {
        self.inner
            .factories
            .get(kind)
            .ok_or_else(|| ConnectionError::UnknownKind {
                id: id.into(),
                kind: kind.into(),
                known: self
                    .inner
                    .factories
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn with_keys<T>(&self, f: impl FnOnce(&KeyRing) -> T) -> T {
        f(&self
            .inner
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Seals `config` for connection `id` with the active key and hashes it.
    fn seal(
        &self,
        tenant: &TenantId,
        id: &str,
        kind: &str,
        config: &Secret<String>,
    ) -> Result<(Sealed, String), ConnectionError> {
        let parsed: Value = serde_json::from_str(config.expose()).map_err(|err| {
            ConnectionError::ConfigNotJson {
                id: id.into(),
                // The category and place only: serde's own message may quote
                // the input, which holds secrets.
                message: format!(
                    "{:?} error at line {} column {}",
                    err.classify(),
                    err.line(),
                    err.column()
                ),
            }
        })?;
        // The connector checks the config now, so a bad one is refused at
        // creation rather than at the first run.
        self.factory(id, kind)?
            .open(id, config.expose().as_bytes())?;
        let crypto = |source| ConnectionError::Crypto {
            id: id.into(),
            source,
        };
        self.with_keys(|keys| {
            let sealed = keys
                .seal(config.expose().as_bytes(), &record(tenant, id, kind))
                .map_err(crypto)?;
            let hash = keys.config_hash(&sealed.key_id, &parsed).map_err(crypto)?;
            Ok((sealed, hash))
        })
    }

    /// Creates connection `new` for `tenant`, checking its config with the
    /// connector of its kind (without calling the system).
    pub async fn create(
        &self,
        tenant: &TenantId,
        actor: Option<&str>,
        new: NewConnection,
    ) -> Result<StoredConnection, ConnectionError> {
        check_id(&new.id)?;
        if self
            .inner
            .store
            .connection(tenant, &new.id)
            .await?
            .is_some()
        {
            return Err(ConnectionError::AlreadyExists {
                tenant: tenant.clone(),
                id: new.id,
            });
        }
        let (sealed, config_hash) = self.seal(tenant, &new.id, &new.kind, &new.config)?;
        let now = self.inner.clock.now();
        let connection = StoredConnection {
            tenant: tenant.clone(),
            id: new.id,
            name: new.name,
            kind: new.kind,
            key_id: sealed.key_id,
            sealed_config: sealed.bytes,
            config_hash,
            active: true,
            last_tested_at: None,
            created_at: now,
            updated_at: now,
        };
        self.inner.store.save_connection(&connection).await?;
        self.audit(
            &connection,
            actor,
            AuditAction::Create,
            json!({ "kind": connection.kind, "name": connection.name, "configHash": connection.config_hash }),
        )
        .await;
        Ok(connection)
    }

    /// Replaces connection `id`'s config. The last test time is cleared: the
    /// new config has not been tested.
    pub async fn update_config(
        &self,
        tenant: &TenantId,
        actor: Option<&str>,
        id: &str,
        config: &impl Serialize,
    ) -> Result<StoredConnection, ConnectionError> {
        let (before, connection) = self
            .change(tenant, id, |connection| {
                let config = NewConnection::new(id, connection.kind.clone(), config)?.config;
                let (sealed, hash) = self.seal(tenant, id, &connection.kind, &config)?;
                connection.key_id = sealed.key_id;
                connection.sealed_config = sealed.bytes;
                connection.config_hash = hash;
                connection.last_tested_at = None;
                connection.updated_at = self.inner.clock.now();
                Ok(true)
            })
            .await?;
        let before = before.config_hash;
        self.audit(
            &connection,
            actor,
            AuditAction::Update,
            json!({ "configHash": { "before": before, "after": connection.config_hash } }),
        )
        .await;
        Ok(connection)
    }

    /// Activates or deactivates connection `id`. An inactive connection
    /// refuses [`Connections::open`] and so every workflow step using it.
    pub async fn set_active(
        &self,
        tenant: &TenantId,
        actor: Option<&str>,
        id: &str,
        active: bool,
    ) -> Result<StoredConnection, ConnectionError> {
        let (before, connection) = self
            .change(tenant, id, |connection| {
                if connection.active == active {
                    return Ok(false);
                }
                connection.active = active;
                connection.updated_at = self.inner.clock.now();
                Ok(true)
            })
            .await?;
        if before.active != active {
            self.audit(
                &connection,
                actor,
                AuditAction::Update,
                json!({ "active": { "before": !active, "after": active } }),
            )
            .await;
        }
        Ok(connection)
    }

    /// Connection `id` as stored (its config stays sealed).
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<StoredConnection, ConnectionError> {
        self.inner
            .store
            .connection(tenant, id)
            .await?
            .ok_or_else(|| ConnectionError::NotFound {
                tenant: tenant.clone(),
                id: id.into(),
            })
    }

    /// The tenant's connections, ordered by id.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<StoredConnection>, ConnectionError> {
        Ok(self.inner.store.connections(tenant).await?)
    }

    /// A connector for active connection `id`: its config opened, checked
    /// against its integrity hash, and handed to the connector of its kind.
    pub async fn open(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Arc<dyn Connector>, ConnectionError> {
        let span = tracing::debug_span!("connections.open", tenant = %tenant, connection = %id);
        async {
            let connection = self.get(tenant, id).await?;
            if !connection.active {
                return Err(ConnectionError::Inactive {
                    tenant: tenant.clone(),
                    id: id.into(),
                });
            }
            self.open_stored(&connection)
        }
        .instrument(span)
        .await
    }

    fn open_stored(
        &self,
        connection: &StoredConnection,
    ) -> Result<Arc<dyn Connector>, ConnectionError> {
        let id = &connection.id;
        let factory = self.factory(id, &connection.kind)?;
        let (config, _) = self.with_keys(|keys| unseal(keys, connection))?;
        Ok(factory.open(id, &config)?)
    }

    /// Tests connection `id` against its system (the editor's "test
    /// connection") and records the time when it succeeds. An inactive
    /// connection can be tested, so it can be checked before activation.
    pub async fn test(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<ConnectionCheck, ConnectionError> {
        let span = tracing::info_span!("connections.test", tenant = %tenant, connection = %id);
        async {
            let connection = self.get(tenant, id).await?;
            let check = self.open_stored(&connection)?.validate_connection().await?;
            self.inner
                .store
                .mark_tested(tenant, id, self.inner.clock.now())
                .await?;
            Ok(check)
        }
        .instrument(span)
        .await
    }

    /// Reads connection `id`, applies `apply` (which answers whether it
    /// changed anything) and stores the result only while nothing else
    /// changed the connection since the read (a rotation, another update);
    /// otherwise reads it again. Answers the connection before and after.
    async fn change(
        &self,
        tenant: &TenantId,
        id: &str,
        mut apply: impl FnMut(&mut StoredConnection) -> Result<bool, ConnectionError>,
    ) -> Result<(StoredConnection, StoredConnection), ConnectionError> {
        const TRIES: usize = 8;
        for _ in 0..TRIES {
            let before = self.get(tenant, id).await?;
            let mut after = before.clone();
            if !apply(&mut after)? {
                return Ok((before, after));
            }
            if self.inner.store.replace_connection(&after, &before).await? {
                return Ok((before, after));
            }
        }
        Err(ConnectionError::Store(StoreError::Conflict {
            entity: "connection",
            id: id.to_string(),
            message: format!("changed by other writers {TRIES} times in a row; try again"),
        }))
    }

    /// Seals every connection not sealed with the active key again with it,
    /// `batch` at a time. Each is replaced only while it is stored as read,
    /// so a connection updated or deactivated meanwhile keeps that change
    /// (it is read again); one that cannot be opened (a key missing from
    /// the ring, a tampered row) is skipped and named in the report, and
    /// the others are resealed all the same. Once the report lists none,
    /// keys other than the active one can leave the ring.
    pub async fn reseal_all(&self, batch: usize) -> Result<ResealReport, ConnectionError> {
        let (active, others) = self.with_keys(|keys| {
            (
                keys.active_key().to_string(),
                keys.key_ids()
                    .filter(|k| *k != keys.active_key())
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            )
        });
        let mut report = ResealReport::default();
        for old in others {
            // Rows skipped stay sealed with `old`: asked for past them.
            let mut skipped: std::collections::HashSet<(TenantId, String)> = Default::default();
            loop {
                let page = self
                    .inner
                    .store
                    .connections_sealed_with(&old, batch.max(1) + skipped.len())
                    .await?;
                let page: Vec<StoredConnection> = page
                    .into_iter()
                    .filter(|c| !skipped.contains(&(c.tenant.clone(), c.id.clone())))
                    .collect();
                if page.is_empty() {
                    break;
                }
                for read in page {
                    let mut connection = read.clone();
                    let aad = record(&connection.tenant, &connection.id, &connection.kind);
                    let crypto = |source| ConnectionError::Crypto {
                        id: connection.id.clone(),
                        source,
                    };
                    let resealed = self.with_keys(|keys| -> Result<_, ConnectionError> {
                        let (config, parsed) = unseal(keys, &connection)?;
                        let sealed = keys.seal(&config, &aad).map_err(crypto)?;
                        let hash = keys.config_hash(&active, &parsed).map_err(crypto)?;
                        Ok((sealed, hash))
                    });
                    let (sealed, hash) = match resealed {
                        Ok(resealed) => resealed,
                        Err(err) => {
                            tracing::warn!(tenant = %read.tenant, connection = %read.id, error = %err, "connection not resealed");
                            skipped.insert((read.tenant.clone(), read.id.clone()));
                            report.skipped.push(ResealSkip {
                                tenant: read.tenant.clone(),
                                id: read.id.clone(),
                                reason: err.to_string(),
                            });
                            continue;
                        }
                    };
                    connection.key_id = sealed.key_id;
                    connection.sealed_config = sealed.bytes;
                    connection.config_hash = hash;
                    if self
                        .inner
                        .store
                        .replace_connection(&connection, &read)
                        .await?
                    {
                        report.resealed += 1;
                    }
                    // Otherwise it changed since the read: the next page has
                    // it again if it is still sealed with `old`.
                }
            }
        }
        Ok(report)
    }

    async fn audit(
        &self,
        connection: &StoredConnection,
        actor: Option<&str>,
        action: AuditAction,
        details: Value,
    ) {
        let entry = AuditEntry {
            tenant: connection.tenant.clone(),
            at: self.inner.clock.now(),
            actor: actor
                .map(str::to_string)
                .or_else(concertmaster_core::run::current_actor),
            action,
            entity_type: "connection".into(),
            entity_id: connection.id.clone(),
            details,
        };
        if let Err(err) = self.inner.store.append_audit(&entry).await {
            tracing::error!(error = %err, connection = %connection.id, "audit entry could not be stored");
        }
    }
}

/// What [`Connections::reseal_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Connections now sealed with the active key.
    pub resealed: usize,
    /// Connections left as they were, and why: the old keys they need must
    /// stay in the ring until they are fixed or deleted.
    pub skipped: Vec<ResealSkip>,
}

/// A connection [`Connections::reseal_all`] could not reseal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealSkip {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its id.
    pub id: String,
    /// Why (the error, which never quotes the config).
    pub reason: String,
}

/// The config of `connection` in the clear, and parsed, after checking it
/// against its integrity hash.
fn unseal(
    keys: &KeyRing,
    connection: &StoredConnection,
) -> Result<(Zeroizing<Vec<u8>>, Value), ConnectionError> {
    let id = &connection.id;
    let crypto = |source| ConnectionError::Crypto {
        id: id.clone(),
        source,
    };
    let sealed = Sealed {
        key_id: connection.key_id.clone(),
        bytes: connection.sealed_config.clone(),
    };
    let config = keys
        .open(&sealed, &record(&connection.tenant, id, &connection.kind))
        .map_err(crypto)?;
    let integrity = || ConnectionError::Integrity { id: id.clone() };
    let parsed: Value = serde_json::from_slice(&config).map_err(|_| integrity())?;
    if !keys
        .config_hash_matches(&connection.key_id, &parsed, &connection.config_hash)
        .map_err(crypto)?
    {
        return Err(integrity());
    }
    Ok((config, parsed))
}

/// What a sealed config is bound to: moving it to another tenant, id or
/// kind makes it fail to open.
fn record(tenant: &TenantId, id: &str, kind: &str) -> Vec<u8> {
    format!("connection\0{tenant}\0{id}\0{kind}").into_bytes()
}

fn check_id(id: &str) -> Result<(), ConnectionError> {
    let invalid = |reason| ConnectionError::InvalidId {
        id: id.into(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("it is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid("it is longer than 64 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid("use letters, digits, '-', '_' and '.' only"));
    }
    Ok(())
}
