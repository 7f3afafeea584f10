//! The JSON API under `/api`. Every handler works in the caller's tenant
//! and checks the caller's role first; ids of another tenant are simply
//! not found.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use concertmaster_core::{
    form::{FormId, FormResponse, FormSchema, ResponseFilter, ResponseId, ReviewStatus},
    run::{NodeStatus, RerunBatch, RerunFrom, RerunVersion, RunFilter},
    store::{AuditAction, AuditEntry, AuditFilter},
    workflow::Migration,
    NodeId, RunId, RunStatus, WorkflowDefinition, WorkflowId,
};
use concertmaster_erp::NewConnection;
use concertmaster_nodes::forms::Decision;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Action, Caller, Role};
use crate::doc::{self, BearerKeys};
use crate::error::ApiError;
use crate::keys::{KeyRecord, Revocation};
use crate::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// The OpenAPI document of the API, generated from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ConcertMaster example service", description = "Workflows, runs, forms, reviews, ERP connections and the audit log of one tenant per API key."),
    paths(
        list_workflows, publish_workflow, validate_workflow, get_workflow, workflow_versions,
        start_run, list_runs, get_run, cancel_run, rerun_run, rerun_batch, migrate_run,
        publish_form, get_form, list_responses, review_response,
        list_connections, create_connection, test_connection,
        list_keys, issue_key, revoke_key, audit_log
    ),
    modifiers(&BearerKeys),
    tags(
        (name = "workflows", description = "Publish, validate and read workflow versions (editor)"),
        (name = "runs", description = "Start, follow and cancel runs (editor)"),
        (name = "forms", description = "Form schemas, responses and reviews (reviewer)"),
        (name = "connections", description = "ERP connections, sealed at rest (admin)"),
        (name = "keys", description = "API keys of the tenant: issued, listed, revoked, each audited (admin)"),
        (name = "audit", description = "Who did what (admin)")
    )
)]
pub(crate) struct ApiDoc;

/// The `/api` routes (authentication is layered on by the caller).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list_workflows).post(publish_workflow))
        .route("/workflows/validate", post(validate_workflow))
        .route("/workflows/{id}", get(get_workflow))
        .route("/workflows/{id}/versions", get(workflow_versions))
        .route("/workflows/{id}/runs", post(start_run))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/rerun", post(rerun_run))
        .route("/runs/{id}/migrate", post(migrate_run))
        .route("/reruns", post(rerun_batch))
        .route("/forms", post(publish_form))
        .route("/forms/{id}", get(get_form))
        .route("/forms/{id}/responses", get(list_responses))
        .route("/responses/{id}/review", post(review_response))
        .route(
            "/connections",
            get(list_connections).post(create_connection),
        )
        .route("/connections/{id}/test", post(test_connection))
        .route("/keys", get(list_keys).post(issue_key))
        .route("/keys/{id}", axum::routing::delete(revoke_key))
        .route("/audit", get(audit_log))
}

/// Version `version` (the latest when `None`) of the caller's workflow `id`.
async fn published(
    state: &AppState,
    caller: &Caller,
    id: &str,
    version: Option<u32>,
) -> ApiResult<concertmaster_core::workflow::PublishedWorkflow> {
    Ok(state
        .engine
        .workflow(&caller.tenant, &WorkflowId::from(id), version)
        .await?)
}

fn workflow_summary(def: &WorkflowDefinition) -> Value {
    json!({ "id": def.id, "name": def.name, "version": def.version, "description": def.description, "tags": def.tags })
}

#[utoipa::path(get, path = "/api/workflows", tag = "workflows", responses((status = 200, description = "The latest version of each workflow", body = doc::WorkflowList)), security(("api_key" = [])))]
async fn list_workflows(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "read workflows")?;
    let workflows = state.engine.store().workflows(&caller.tenant).await?;
    Ok(Json(
        json!({ "workflows": workflows.iter().map(workflow_summary).collect::<Vec<_>>() }),
    ))
}

#[utoipa::path(post, path = "/api/workflows", tag = "workflows", request_body = doc::WorkflowDocument, responses((status = 201, description = "Published as the next version", body = doc::WorkflowSummary), (status = 422, description = "Publishing found problems", body = doc::ErrorBody), (status = 403, description = "The role may not publish", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn publish_workflow(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Action::Design, "publish workflows")?;
    let def = WorkflowDefinition::from_json(&body.to_string())
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let published = state.engine.publish(&caller.tenant, def).await?;
    Ok((
        StatusCode::CREATED,
        Json(workflow_summary(published.definition())),
    ))
}

#[utoipa::path(post, path = "/api/workflows/validate", tag = "workflows", request_body = doc::WorkflowDocument, responses((status = 200, description = "Every problem publishing would find", body = doc::ValidationResult)), security(("api_key" = [])))]
async fn validate_workflow(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "validate workflows")?;
    let def = WorkflowDefinition::from_json(&body.to_string())
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let issues = concertmaster_core::validate::diagnose(&def, state.engine.registry());
    Ok(Json(
        json!({ "valid": issues.is_empty(), "issues": issues }),
    ))
}

#[derive(Debug, Deserialize)]
struct VersionQuery {
    version: Option<u32>,
}

#[utoipa::path(get, path = "/api/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "Workflow id"), ("version" = Option<u32>, Query, description = "A version; the latest when absent")), responses((status = 200, description = "The definition", body = doc::WorkflowDocument), (status = 404, description = "No such workflow", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn get_workflow(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<VersionQuery>,
) -> ApiResult<Json<WorkflowDefinition>> {
    caller.require(Action::Read, "read workflows")?;
    let workflow = published(&state, &caller, &id, query.version).await?;
    Ok(Json(workflow.definition().clone()))
}

#[utoipa::path(get, path = "/api/workflows/{id}/versions", tag = "workflows", params(("id" = String, Path, description = "Workflow id")), responses((status = 200, description = "Its published versions", body = doc::VersionList), (status = 404, description = "No such workflow", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn workflow_versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "read workflows")?;
    let versions = state
        .engine
        .versions(&caller.tenant, &WorkflowId::from(id.as_str()))
        .await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("workflow {id}")));
    }
    Ok(Json(json!({ "id": id, "versions": versions })))
}

#[utoipa::path(post, path = "/api/workflows/{id}/runs", tag = "runs", params(("id" = String, Path, description = "Workflow id"), ("version" = Option<u32>, Query, description = "A version; the latest when absent")), request_body(content = doc::Trigger, description = "Trigger data: an object or an array of objects"), responses((status = 202, description = "Started", body = doc::StartedRun)), security(("api_key" = [])))]
async fn start_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<VersionQuery>,
    body: Option<Json<Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Action::Operate, "start runs")?;
    let workflow = published(&state, &caller, &id, query.version).await?;
    let trigger = body.map(|Json(v)| v).unwrap_or_else(|| json!({}));
    let run = state.engine.start(&workflow, trigger).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run, "workflow": id, "version": workflow.version() })),
    ))
}

#[derive(Debug, Deserialize)]
struct RunQuery {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/runs", tag = "runs", params(("status" = Option<String>, Query, description = "Comma-separated statuses"), ("workflow" = Option<String>, Query, description = "Workflow id"), ("limit" = Option<usize>, Query, description = "At most this many (100, at most 1000)")), responses((status = 200, description = "Runs, newest first", body = doc::RunList)), security(("api_key" = [])))]
async fn list_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<RunQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "read runs")?;
    let mut filter = RunFilter::all();
    if let Some(status) = &query.status {
        for name in status.split(',') {
            let status: RunStatus = serde_json::from_value(json!(name))
                .map_err(|_| ApiError::bad_request(format!("{name:?} is not a run status")))?;
            filter.statuses.push(status);
        }
    }
    if let Some(workflow) = &query.workflow {
        filter = filter.workflow(workflow.as_str());
    }
    filter.limit = Some(query.limit.unwrap_or(100).min(1000));
    let runs = state.engine.runs(&caller.tenant, &filter).await?;
    let runs: Vec<Value> = runs.iter().map(|r| run_view(r, &caller)).collect();
    Ok(Json(json!({ "runs": runs })))
}

fn run_id(id: &str) -> ApiResult<RunId> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("run {id}")))
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run id")), responses((status = 200, description = "The run and its node timeline", body = doc::RunView), (status = 404, description = "No such run", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn get_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "read runs")?;
    let detail = state.engine.run(&caller.tenant, run_id(&id)?).await?;
    let timeline: Vec<Value> = detail
        .nodes
        .iter()
        .map(|n| {
            json!({
                "node": n.node_id, "type": n.node_type, "status": n.status, "attempt": n.attempt,
                "startedAt": n.started_at, "endedAt": n.ended_at,
                "error": n.error.as_ref().map(|e| e.message().to_string()),
                "waiting": n.status == NodeStatus::Waiting,
            })
        })
        .collect();
    // Items carry whatever flowed through the run (answers with personal
    // data among them) without a schema to mask by: only roles that may
    // read personal data see them.
    if caller.role.allows(Action::ReadPersonalData) {
        Ok(Json(
            json!({ "run": detail.run, "timeline": timeline, "nodes": detail.nodes }),
        ))
    } else {
        Ok(Json(
            json!({ "run": run_view(&detail.run, &caller), "timeline": timeline, "itemsHidden": true }),
        ))
    }
}

/// A run as `caller` may see it: its trigger items only for roles that may
/// read personal data.
fn run_view(run: &concertmaster_core::Run, caller: &Caller) -> Value {
    let mut value = serde_json::to_value(run).unwrap_or(Value::Null);
    if !caller.role.allows(Action::ReadPersonalData) {
        if let Value::Object(map) = &mut value {
            map.remove("trigger");
        }
    }
    value
}

#[derive(Debug, Deserialize, Default)]
struct CancelBody {
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", params(("id" = String, Path, description = "Run id")), request_body = doc::CancelRequest, responses((status = 200, description = "Cancelled", body = doc::RunView)), security(("api_key" = [])))]
async fn cancel_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<Json<CancelBody>>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Operate, "cancel runs")?;
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| format!("cancelled by {}", caller.name));
    let run = state
        .engine
        .cancel(&caller.tenant, run_id(&id)?, &reason)
        .await?;
    Ok(Json(json!({ "run": run_view(&run, &caller) })))
}

/// Where a re-run starts and on which version, as the API takes it.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RerunBody {
    /// `failed` (the default), `trigger`, or the node ids to restart from.
    #[serde(default)]
    from: Option<RerunFromBody>,
    /// `pinned` (the default) or `latest`.
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RerunFromBody {
    Named(String),
    Nodes(Vec<String>),
}

impl RerunBody {
    fn from(&self) -> ApiResult<RerunFrom> {
        match &self.from {
            None => Ok(RerunFrom::Failed),
            Some(RerunFromBody::Named(name)) => match name.as_str() {
                "failed" => Ok(RerunFrom::Failed),
                "trigger" => Ok(RerunFrom::Trigger),
                other => Err(ApiError::bad_request(format!(
                    "from: {other:?} is neither \"failed\", \"trigger\" nor a list of node ids"
                ))),
            },
            Some(RerunFromBody::Nodes(nodes)) => {
                Ok(RerunFrom::Nodes(nodes.iter().map(NodeId::new).collect()))
            }
        }
    }

    fn version(&self) -> ApiResult<RerunVersion> {
        match self.version.as_deref() {
            None | Some("pinned") => Ok(RerunVersion::Pinned),
            Some("latest") => Ok(RerunVersion::Latest),
            Some(other) => Err(ApiError::bad_request(format!(
                "version: {other:?} is neither \"pinned\" nor \"latest\""
            ))),
        }
    }
}

#[utoipa::path(post, path = "/api/runs/{id}/rerun", tag = "runs", params(("id" = String, Path, description = "The ended run")), request_body = doc::RerunRequest, responses((status = 202, description = "The new run", body = doc::Rerun), (status = 409, description = "It cannot be re-run as asked", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn rerun_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<Json<RerunBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Action::Operate, "re-run runs")?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let run = state
        .engine
        .rerun(&caller.tenant, run_id(&id)?, body.from()?, body.version()?)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run, "rerunOf": id })),
    ))
}

/// Which runs a batch re-runs, as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RerunBatchBody {
    workflow: Option<String>,
    /// Only runs pinned to this version.
    workflow_version: Option<u32>,
    #[serde(default)]
    status: Vec<RunStatus>,
    created_from: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    error_contains: Option<String>,
    /// As for one run.
    from: Option<RerunFromBody>,
    /// As for one run.
    version: Option<String>,
    /// At most this many runs (100 unless given, at most 1000).
    at_most: Option<usize>,
    /// Re-runs each run once per key: the same call again goes on.
    key: Option<String>,
}

#[utoipa::path(post, path = "/api/reruns", tag = "runs", request_body = doc::RerunBatchRequest, responses((status = 200, description = "What was re-run", body = doc::RerunReport)), security(("api_key" = [])))]
async fn rerun_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<RerunBatchBody>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Operate, "re-run runs")?;
    let mut filter = RunFilter::statuses(body.status.iter().copied());
    filter.workflow_id = body.workflow.as_deref().map(WorkflowId::new);
    filter.version = body.workflow_version;
    filter.created_from = body.created_from;
    filter.created_before = body.created_before;
    filter.error_contains = body.error_contains.clone();
    let how = RerunBody {
        from: body.from,
        version: body.version,
    };
    let mut batch = RerunBatch::new(filter, how.from()?, how.version()?)
        .at_most(body.at_most.unwrap_or(100).min(1000));
    if let Some(key) = &body.key {
        batch = batch.once_per(key.as_str());
    }
    // A request that goes away stops the batch between two runs.
    let stop = concertmaster_core::node::CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let report = state
        .engine
        .rerun_batch(&caller.tenant, &batch, &stop)
        .await?;
    let pairs = |pairs: &[(RunId, RunId)]| -> Vec<Value> {
        pairs
            .iter()
            .map(|(old, new)| json!({ "run": old, "rerun": new }))
            .collect()
    };
    Ok(Json(json!({
        "rerun": pairs(&report.rerun),
        "doneBefore": pairs(&report.done_before),
        "refused": report.refused.iter().map(|(run, why)| json!({ "run": run, "reason": why })).collect::<Vec<_>>(),
        "more": report.more,
    })))
}

/// Where a waiting run moves.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MigrateBody {
    to_version: u32,
    /// Node ids that changed, old to new.
    #[serde(default)]
    renames: std::collections::BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/api/runs/{id}/migrate", tag = "runs", params(("id" = String, Path, description = "The waiting run")), request_body = doc::MigrateRequest, responses((status = 200, description = "Moved", body = doc::RunView), (status = 409, description = "It cannot move: every reason", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn migrate_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<MigrateBody>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Operate, "move runs to another version")?;
    let migration = body
        .renames
        .iter()
        .fold(Migration::to_version(body.to_version), |m, (old, new)| {
            m.rename(old.as_str(), new.as_str())
        });
    let run = state
        .engine
        .migrate(&caller.tenant, run_id(&id)?, &migration)
        .await?;
    Ok(Json(json!({ "run": run_view(&run, &caller) })))
}

#[utoipa::path(post, path = "/api/forms", tag = "forms", request_body = doc::FormDocument, responses((status = 201, description = "Published as the next version", body = doc::FormDocument)), security(("api_key" = [])))]
async fn publish_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(form): Json<FormSchema>,
) -> ApiResult<(StatusCode, Json<FormSchema>)> {
    caller.require(Action::Design, "publish forms")?;
    let form = state.forms.publish(&caller.tenant, form).await?;
    Ok((StatusCode::CREATED, Json(form)))
}

#[utoipa::path(get, path = "/api/forms/{id}", tag = "forms", params(("id" = String, Path, description = "Form id"), ("version" = Option<u32>, Query, description = "A version; the latest when absent")), responses((status = 200, description = "The form schema", body = doc::FormDocument)), security(("api_key" = [])))]
async fn get_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<VersionQuery>,
) -> ApiResult<Json<FormSchema>> {
    caller.require(Action::Read, "read forms")?;
    Ok(Json(
        state
            .forms
            .form(&caller.tenant, &FormId::from(id.as_str()), query.version)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct ResponseQuery {
    status: Option<String>,
    limit: Option<usize>,
}

/// A response as `caller` may see it: personal fields masked unless the
/// role may read personal data.
fn shown(response: FormResponse, form: Option<&FormSchema>, caller: &Caller) -> Value {
    let mut value = serde_json::to_value(&response).unwrap_or(Value::Null);
    if !caller.role.allows(Action::ReadPersonalData) {
        // Without its form nothing says which fields are personal: all are.
        let Some(form) = form else {
            value["data"] = json!("***");
            return value;
        };
        for field in form.pii_fields() {
            // A field may name the roles that see it anyway:
            // `"x-pii-readers": ["reviewer"]` for the data they judge by.
            if !readers(&form.schema, &field.pointer).contains(&caller.role.as_str()) {
                mask(&mut value["data"], &field.pointer);
            }
        }
    }
    value
}

/// The roles a personal field's schema lets read it unmasked.
fn readers<'a>(schema: &'a Value, pointer: &str) -> Vec<&'a str> {
    let mut at = schema;
    for token in pointer.split('/').skip(1) {
        let next = if token == "*" {
            at.get("items")
        } else {
            at.get("properties")
                .and_then(|p| p.get(token.replace("~1", "/").replace("~0", "~")))
        };
        match next {
            Some(next) => at = next,
            None => return Vec::new(),
        }
    }
    at.get("x-pii-readers")
        .and_then(Value::as_array)
        .map(|roles| roles.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Replaces the value at `pointer` (`*` for every element) with `"***"`.
fn mask(value: &mut Value, pointer: &str) {
    fn walk(value: &mut Value, tokens: &[&str]) {
        let Some((first, rest)) = tokens.split_first() else {
            if !value.is_null() {
                *value = json!("***");
            }
            return;
        };
        match (value, *first) {
            (Value::Array(items), "*") => items.iter_mut().for_each(|v| walk(v, rest)),
            (Value::Object(map), key) => {
                let key = key.replace("~1", "/").replace("~0", "~");
                if let Some(v) = map.get_mut(&key) {
                    walk(v, rest);
                }
            }
            _ => {}
        }
    }
    let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
    walk(value, &tokens);
}

#[utoipa::path(get, path = "/api/forms/{id}/responses", tag = "forms", params(("id" = String, Path, description = "Form id"), ("status" = Option<String>, Query, description = "pending, approved or rejected"), ("limit" = Option<usize>, Query, description = "At most this many")), responses((status = 200, description = "Responses; personal fields masked unless the role may read them. Reading is recorded in the audit log.", body = doc::ResponseList)), security(("api_key" = [])))]
async fn list_responses(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<ResponseQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "read form responses")?;
    let form_id = FormId::from(id.as_str());
    let mut filter = ResponseFilter::all();
    filter.form_id = Some(form_id.clone());
    if let Some(status) = &query.status {
        filter.review_status = Some(
            serde_json::from_value::<ReviewStatus>(json!(status))
                .map_err(|_| ApiError::bad_request(format!("{status:?} is not a review status")))?,
        );
    }
    filter.limit = Some(query.limit.unwrap_or(100).min(1000));
    let responses = state
        .forms
        .responses(&caller.tenant, &filter, &caller.name)
        .await?;
    // Each response is masked by the version of the form it answered.
    let mut versions: std::collections::HashMap<u32, Option<FormSchema>> =
        std::collections::HashMap::new();
    let mut shown_responses = Vec::with_capacity(responses.len());
    for response in responses {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            versions.entry(response.form_version)
        {
            let form = state
                .forms
                .form(&caller.tenant, &form_id, Some(response.form_version))
                .await
                .ok();
            slot.insert(form);
        }
        let form = versions
            .get(&response.form_version)
            .and_then(Option::as_ref);
        shown_responses.push(shown(response, form, &caller));
    }
    let responses = shown_responses;
    Ok(Json(
        json!({ "responses": responses, "personalDataMasked": !caller.role.allows(Action::ReadPersonalData) }),
    ))
}

#[derive(Debug, Deserialize)]
struct ReviewBody {
    decision: ReviewStatus,
    comment: Option<String>,
}

#[utoipa::path(post, path = "/api/responses/{id}/review", tag = "forms", params(("id" = String, Path, description = "Response id")), request_body = doc::ReviewRequest, responses((status = 200, description = "Decided; the waiting run continues", body = doc::ReviewResult), (status = 409, description = "Decided already", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn review_response(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Review, "review form responses")?;
    let id: ResponseId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("form response {id}")))?;
    let comment = body.comment.unwrap_or_default();
    let decision = match body.decision {
        ReviewStatus::Approved if comment.is_empty() => Decision::approve(&caller.name),
        ReviewStatus::Approved => Decision::approve(&caller.name).with_comment(comment),
        ReviewStatus::Rejected => Decision::reject(&caller.name, comment),
        _ => return Err(ApiError::bad_request("decide approved or rejected")),
    };
    let response = state
        .forms
        .review(&state.engine, &caller.tenant, id, decision)
        .await?;
    Ok(Json(
        json!({ "response": response.id, "reviewStatus": response.review_status, "review": response.review }),
    ))
}

fn connection_summary(c: &concertmaster_core::store::StoredConnection) -> Value {
    json!({
        "id": c.id, "name": c.name, "kind": c.kind, "active": c.active, "keyId": c.key_id,
        "configHash": c.config_hash, "lastTestedAt": c.last_tested_at, "createdAt": c.created_at, "updatedAt": c.updated_at
    })
}

#[utoipa::path(get, path = "/api/connections", tag = "connections", responses((status = 200, description = "Connections, configs never shown", body = doc::ConnectionList)), security(("api_key" = [])))]
async fn list_connections(
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
struct ConnectionBody {
    id: String,
    #[serde(default)]
    name: Option<String>,
    kind: String,
    config: Value,
}

#[utoipa::path(post, path = "/api/connections", tag = "connections", request_body = doc::ConnectionRequest, responses((status = 201, description = "Created; the config is sealed", body = doc::ConnectionSummary), (status = 422, description = "The connector refused the config", body = doc::ErrorBody)), security(("api_key" = [])))]
async fn create_connection(
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
async fn test_connection(
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
async fn list_keys(
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
struct KeyBody {
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
async fn issue_key(
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
async fn revoke_key(
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
struct AuditQuery {
    entity_type: Option<String>,
    entity_id: Option<String>,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(("entityType" = Option<String>, Query, description = "Kind of record"), ("entityId" = Option<String>, Query, description = "Record id"), ("since" = Option<String>, Query, description = "RFC 3339 time"), ("limit" = Option<usize>, Query, description = "At most this many")), responses((status = 200, description = "Entries, newest first", body = doc::AuditList)), security(("api_key" = [])))]
async fn audit_log(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_personal_field_can_name_the_roles_that_read_it() {
        let schema = json!({ "type": "object", "properties": {
            "vatId": { "type": "string", "x-pii": true, "x-pii-readers": ["reviewer"] },
            "contacts": { "type": "array", "items": { "type": "object", "properties": { "phone": { "x-pii": true } } } }
        } });
        assert_eq!(readers(&schema, "/vatId"), ["reviewer"]);
        assert!(readers(&schema, "/contacts/*/phone").is_empty());
        assert!(readers(&schema, "/missing").is_empty());
    }

    #[test]
    fn masking_follows_pointers_and_array_stars() {
        let mut data =
            json!({ "name": "Ada", "contacts": [{ "phone": "1" }, { "phone": "2" }], "vat": null });
        mask(&mut data, "/name");
        mask(&mut data, "/contacts/*/phone");
        mask(&mut data, "/vat");
        mask(&mut data, "/missing");
        assert_eq!(
            data,
            json!({ "name": "***", "contacts": [{ "phone": "***" }, { "phone": "***" }], "vat": null })
        );
    }
}
