//! Runs: start, list, inspect, cancel, re-run, move to a new version.

use super::*;

#[utoipa::path(post, path = "/api/workflows/{id}/runs", tag = "runs", params(("id" = String, Path, description = "Workflow id"), ("version" = Option<u32>, Query, description = "A version; the latest when absent")), request_body(content = doc::Trigger, description = "Trigger data: an object or an array of objects"), responses((status = 202, description = "Started", body = doc::StartedRun)), security(("api_key" = [])))]
pub(super) async fn start_run(
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
pub(super) struct RunQuery {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/runs", tag = "runs", params(("status" = Option<String>, Query, description = "Comma-separated statuses"), ("workflow" = Option<String>, Query, description = "Workflow id"), ("limit" = Option<usize>, Query, description = "At most this many (100, at most 1000)")), responses((status = 200, description = "Runs, newest first", body = doc::RunList)), security(("api_key" = [])))]
pub(super) async fn list_runs(
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
pub(super) async fn get_run(
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
pub(super) struct CancelBody {
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", params(("id" = String, Path, description = "Run id")), request_body = doc::CancelRequest, responses((status = 200, description = "Cancelled", body = doc::RunView)), security(("api_key" = [])))]
pub(super) async fn cancel_run(
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
pub(super) struct RerunBody {
    /// `failed` (the default), `trigger`, or the node ids to restart from.
    #[serde(default)]
    from: Option<RerunFromBody>,
    /// `pinned` (the default) or `latest`.
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RerunFromBody {
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
pub(super) async fn rerun_run(
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
pub(super) struct RerunBatchBody {
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
pub(super) async fn rerun_batch(
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
pub(super) struct MigrateBody {
    to_version: u32,
    /// Node ids that changed, old to new.
    #[serde(default)]
    renames: std::collections::BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/api/runs/{id}/migrate", tag = "runs", params(("id" = String, Path, description = "The waiting run")), request_body = doc::MigrateRequest, responses((status = 200, description = "Moved", body = doc::RunView), (status = 409, description = "It cannot move: every reason", body = doc::ErrorBody)), security(("api_key" = [])))]
pub(super) async fn migrate_run(
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
