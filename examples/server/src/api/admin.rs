//! Administration: ERP connections, API keys, the audit log.

use super::*;

fn connection_summary(c: &concertmaster_core::store::StoredConnection) -> Value {
    json!({
        "id": c.id, "name": c.name, "kind": c.kind, "active": c.active, "keyId": c.key_id,
        "configHash": c.config_hash, "lastTestedAt": c.last_tested_at, "createdAt": c.created_at, "updatedAt": c.updated_at
    })
}

#[utoipa::path(get, path = "/api/connections", tag = "connections", responses((status = 200, description = "Connections, configs never shown", body = doc::ConnectionList)), security(("api_key" = [])))]
pub(super) async fn list_connections(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Administer, "read connections")?;
    let list = state.connections.list(&caller.tenant).await?;
    Ok(Json(
        json!({ "connections": list.iter().map(connection_summary).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
pub(super) struct ConnectionBody {
    id: String,
    #[serde(default)]
    name: Option<String>,
    kind: String,
    config: Value,
}

#[utoipa::path(post, path = "/api/connections", tag = "connections", request_body = doc::ConnectionRequest, responses((status = 201, description = "Created; the config is sealed", body = doc::ConnectionSummary), (status = 422, description = "The connector refused the config", body = doc::ErrorBody)), security(("api_key" = [])))]
pub(super) async fn create_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Action::Administer, "create connections")?;
    let mut new = NewConnection::new(body.id.as_str(), body.kind.as_str(), &body.config)?;
    if let Some(name) = body.name {
        new = new.named(name);
    }
    let created = state
        .connections
        .create(&caller.tenant, Some(&caller.name), new)
        .await?;
    Ok((StatusCode::CREATED, Json(connection_summary(&created))))
}

#[utoipa::path(post, path = "/api/connections/{id}/test", tag = "connections", params(("id" = String, Path, description = "Connection id")), responses((status = 200, description = "The system answered and accepted the credentials", body = doc::ConnectionTest), (status = 502, description = "The system refused or did not answer", body = doc::ErrorBody)), security(("api_key" = [])))]
pub(super) async fn test_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Administer, "test connections")?;
    let check = state.connections.test(&caller.tenant, &id).await?;
    Ok(Json(
        json!({ "ok": true, "system": check.system, "identity": check.identity }),
    ))
}

fn key_summary(key: &KeyRecord) -> Value {
    json!({ "id": key.id, "name": key.name, "role": key.role, "createdAt": key.created_at })
}

/// Longest key name: it is the actor of every audit entry the key makes.
const MAX_KEY_NAME: usize = 100;

#[utoipa::path(get, path = "/api/keys", tag = "keys", responses((status = 200, description = "The tenant's keys, oldest first; never the keys themselves", body = doc::KeyList)), security(("api_key" = [])))]
pub(super) async fn list_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Administer, "read API keys")?;
    let keys = state
        .keys
        .list(caller.tenant.as_str())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "keys": keys.iter().map(key_summary).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyBody {
    name: String,
    role: Role,
}

/// The audit entry of something done to key `key`.
fn key_audit(caller: &Caller, action: AuditAction, key: &KeyRecord) -> AuditEntry {
    AuditEntry {
        tenant: caller.tenant.clone(),
        at: Utc::now(),
        actor: Some(caller.name.clone()),
        action,
        entity_type: "api_key".into(),
        entity_id: key.id.clone(),
        details: json!({ "name": key.name, "role": key.role }),
    }
}

#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = doc::KeyRequest, responses((status = 201, description = "Issued and audited. `key` is shown this once: only its hash is kept", body = doc::IssuedKey), (status = 400, description = "No name, a name too long or holding control characters, or an unknown role", body = doc::ErrorBody)), security(("api_key" = [])))]
pub(super) async fn issue_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<KeyBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Action::Administer, "issue API keys")?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "a key's name is 1 to {MAX_KEY_NAME} characters without control characters (it names the key in the audit log); got {:?}",
            body.name
        )));
    }
    let issued = state
        .keys
        .issue(caller.tenant.as_str(), name, body.role)
        .await
        .map_err(ApiError::internal)?;
    let entry = key_audit(&caller, AuditAction::Create, &issued.record);
    if let Err(err) = state.engine.store().append_audit(&entry).await {
        // No key in use that the audit log does not know of.
        let _ = state
            .keys
            .revoke(caller.tenant.as_str(), &issued.record.id)
            .await;
        return Err(ApiError::from(err));
    }
    let mut shown = key_summary(&issued.record);
    shown["key"] = json!(issued.key);
    Ok((StatusCode::CREATED, Json(shown)))
}

#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys", params(("id" = String, Path, description = "Key id (`cm_<id>_...`)")), responses((status = 204, description = "Revoked and audited: the key authenticates nothing from now on"), (status = 404, description = "The tenant has no such key", body = doc::ErrorBody), (status = 409, description = "The tenant's last admin key: issue another admin key first", body = doc::ErrorBody)), security(("api_key" = [])))]
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Action::Administer, "revoke API keys")?;
    let revoked = match state
        .keys
        .revoke(caller.tenant.as_str(), &id)
        .await
        .map_err(ApiError::internal)?
    {
        Revocation::Revoked(record) => record,
        Revocation::Unknown => return Err(ApiError::not_found(format!("API key {id}"))),
        Revocation::LastAdmin => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "API key {id} is the tenant's last admin key; issue another admin key first"
                ),
            ))
        }
    };
    let entry = key_audit(&caller, AuditAction::Delete, &revoked);
    if let Err(err) = state.engine.store().append_audit(&entry).await {
        // Revoked all the same: a key that should not work must not.
        tracing::error!(key = %revoked.id, error = %err, "API key revoked, but its audit entry was not written");
        return Err(ApiError::from(err));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuditQuery {
    entity_type: Option<String>,
    entity_id: Option<String>,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(("entityType" = Option<String>, Query, description = "Kind of record"), ("entityId" = Option<String>, Query, description = "Record id"), ("since" = Option<String>, Query, description = "RFC 3339 time"), ("limit" = Option<usize>, Query, description = "At most this many")), responses((status = 200, description = "Entries, newest first", body = doc::AuditList)), security(("api_key" = [])))]
pub(super) async fn audit_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Audit, "read the audit log")?;
    let filter = AuditFilter {
        entity_type: query.entity_type,
        entity_id: query.entity_id,
        since: query.since,
        limit: Some(query.limit.unwrap_or(100).min(1000)),
    };
    let entries: Vec<AuditEntry> = state
        .engine
        .store()
        .audit_log(&caller.tenant, &filter)
        .await?;
    Ok(Json(json!({ "entries": entries })))
}
