//! Schemas of the OpenAPI document: what the handlers take and answer.
//! Core types travel as JSON objects (`Object`), described in prose.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToSchema};

/// Adds the API key scheme: `Authorization: Bearer <key>`.
pub(crate) struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key of the tenant, with its role"))
                    .build(),
            ),
        );
    }
}

/// An error: a stable code and what to do.
#[derive(ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// The error's code and message.
#[derive(ToSchema)]
pub(crate) struct ErrorDetail {
    /// `unauthenticated`, `forbidden`, `not_found`, `invalid`, `conflict`, ...
    code: String,
    /// What went wrong, naming the offending id or field.
    message: String,
}

/// A workflow definition, as the engine publishes and runs it.
#[derive(ToSchema)]
#[schema(example = json!({"id": "hello", "name": "Hello", "nodes": [{"id": "start", "type": "manual"}], "edges": []}))]
pub(crate) struct WorkflowDocument {
    /// Shared by every version.
    id: String,
    /// Display name.
    name: String,
    /// What it is for.
    description: Option<String>,
    /// Nodes: `{id, type, config, retry, timeoutMs, position, ui}`.
    #[schema(value_type = Vec<Object>)]
    nodes: Vec<Value>,
    /// Edges: `{id, source, sourcePort, target, targetPort}`.
    #[schema(value_type = Vec<Object>)]
    edges: Vec<Value>,
    /// Labels.
    tags: Vec<String>,
}

/// A workflow version, briefly.
#[derive(ToSchema)]
pub(crate) struct WorkflowSummary {
    id: String,
    name: String,
    version: u32,
    description: Option<String>,
    tags: Vec<String>,
}

/// The tenant's workflows.
#[derive(ToSchema)]
pub(crate) struct WorkflowList {
    workflows: Vec<WorkflowSummary>,
}

/// A workflow's versions.
#[derive(ToSchema)]
pub(crate) struct VersionList {
    id: String,
    versions: Vec<u32>,
}

/// The node types of the registry: a JSON array of node descriptors
/// (`typeId`, `category`, `label`, `icon`, `description`, `configSchema`,
/// `inputs`, `outputs`, ...).
#[derive(ToSchema)]
#[schema(value_type = Vec<Object>)]
pub(crate) struct NodeTypes(Vec<Value>);

/// What validation found.
#[derive(ToSchema)]
pub(crate) struct ValidationResult {
    valid: bool,
    /// `{kind, node, edge, pointer, message}` each.
    #[schema(value_type = Vec<Object>)]
    issues: Vec<Value>,
}

/// Trigger data: a JSON object, or an array of them (one item each).
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct Trigger(Value);

/// A started run.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartedRun {
    run_id: String,
    workflow: String,
    version: u32,
}

/// Runs.
#[derive(ToSchema)]
pub(crate) struct RunList {
    /// `{id, workflowId, workflowVersion, status, createdAt, endedAt, error}` each.
    #[schema(value_type = Vec<Object>)]
    runs: Vec<Value>,
}

/// A run with its node timeline.
#[derive(ToSchema)]
pub(crate) struct RunView {
    #[schema(value_type = Object)]
    run: Value,
    /// `{node, type, status, attempt, startedAt, endedAt, error, waiting}` each.
    #[schema(value_type = Vec<Object>)]
    timeline: Vec<Value>,
    /// Node executions with their input and output items: only for roles
    /// that may read personal data (admin); others get `itemsHidden`.
    #[schema(value_type = Vec<Object>)]
    nodes: Vec<Value>,
    /// Set when the items were left out for the caller's role.
    #[schema(rename = "itemsHidden")]
    items_hidden: Option<bool>,
}

/// Why a run is cancelled.
#[derive(ToSchema)]
pub(crate) struct CancelRequest {
    reason: Option<String>,
}

/// Where a re-run starts (`failed`, `trigger`, or node ids) and on which
/// version (`pinned` or `latest`).
#[derive(ToSchema)]
pub(crate) struct RerunRequest {
    #[schema(value_type = Option<Object>)]
    from: Option<Value>,
    version: Option<String>,
}

/// The new run and the run it re-runs.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rerun {
    run_id: String,
    rerun_of: String,
}

/// Which ended runs to re-run: `workflow`, `workflowVersion`, `status`,
/// `createdFrom`, `createdBefore`, `errorContains`; `from`, `version` as
/// for one run; `atMost` (100, at most 1000); `key`, to re-run each once.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct RerunBatchRequest(Value);

/// `{rerun: [{run, rerun}], doneBefore: [{run, rerun}], refused: [{run, reason}], more}`.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct RerunReport(Value);

/// `{toVersion, renames: {old: new}}`.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct MigrateRequest(Value);

/// A form schema: `{id, title, schema, uiSchema, retentionDays}`.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct FormDocument(Value);

/// Form responses.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResponseList {
    #[schema(value_type = Vec<Object>)]
    responses: Vec<Value>,
    /// Whether personal fields were masked for this role.
    personal_data_masked: bool,
}

/// A reviewer's decision.
#[derive(ToSchema)]
pub(crate) struct ReviewRequest {
    /// `approved` or `rejected`.
    decision: String,
    comment: Option<String>,
}

/// The decided response.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReviewResult {
    response: String,
    review_status: String,
    #[schema(value_type = Object)]
    review: Value,
}

/// A connection to create.
#[derive(ToSchema)]
pub(crate) struct ConnectionRequest {
    id: String,
    name: Option<String>,
    /// `sap` or `netsuite`.
    kind: String,
    /// The connector's config, secrets included; stored sealed, never shown again.
    #[schema(value_type = Object)]
    config: Value,
}

/// A connection, without its config.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionSummary {
    id: String,
    name: String,
    kind: String,
    active: bool,
    key_id: String,
    config_hash: String,
    last_tested_at: Option<String>,
}

/// Connections.
#[derive(ToSchema)]
pub(crate) struct ConnectionList {
    connections: Vec<ConnectionSummary>,
}

/// What "test connection" found.
#[derive(ToSchema)]
pub(crate) struct ConnectionTest {
    ok: bool,
    system: String,
    identity: Option<String>,
}

/// A key to issue.
#[derive(ToSchema)]
pub(crate) struct KeyRequest {
    /// Names the key as the actor in audit entries: 1 to 100 characters.
    name: String,
    /// `admin`, `editor`, `reviewer` or `viewer`.
    role: String,
}

/// A key, without the key.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeySummary {
    /// The key's public part, which revocation names.
    id: String,
    name: String,
    role: String,
    created_at: String,
}

/// A key just issued.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IssuedKey {
    id: String,
    name: String,
    role: String,
    created_at: String,
    /// The key itself (`Authorization: Bearer <key>`), shown this once.
    key: String,
}

/// The tenant's keys.
#[derive(ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeySummary>,
}

/// Audit entries.
#[derive(ToSchema)]
pub(crate) struct AuditList {
    /// `{at, actor, action, entityType, entityId, details}` each.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<Value>,
}
