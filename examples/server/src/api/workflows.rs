//! Workflows: publish, validate, read versions.

use super::*;

#[utoipa::path(get, path = "/api/workflows", tag = "workflows", responses((status = 200, description = "The latest version of each workflow", body = doc::WorkflowList)), security(("api_key" = [])))]
pub(super) async fn list_workflows(
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
pub(super) async fn publish_workflow(
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
pub(super) async fn validate_workflow(
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

#[utoipa::path(get, path = "/api/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "Workflow id"), ("version" = Option<u32>, Query, description = "A version; the latest when absent")), responses((status = 200, description = "The definition", body = doc::WorkflowDocument), (status = 404, description = "No such workflow", body = doc::ErrorBody)), security(("api_key" = [])))]
pub(super) async fn get_workflow(
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
pub(super) async fn workflow_versions(
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

#[utoipa::path(get, path = "/api/node-types", tag = "workflows", responses((status = 200, description = "The node types of the service's registry, as node descriptors: what the editor's model is loaded with (`Model.load(descriptors)`)", body = doc::NodeTypes)), security(("api_key" = [])))]
pub(super) async fn node_types(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "read node types")?;
    let descriptors: Vec<_> = state.engine.registry().descriptors().collect();
    Ok(Json(json!(descriptors)))
}
