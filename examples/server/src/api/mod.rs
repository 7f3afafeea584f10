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

mod admin;
mod forms;
mod runs;
mod workflows;

use admin::*;
use forms::*;
use runs::*;
use workflows::*;

type ApiResult<T> = Result<T, ApiError>;

/// The OpenAPI document of the API, generated from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ConcertMaster example service", description = "Workflows, runs, forms, reviews, ERP connections and the audit log of one tenant per API key."),
    paths(
        workflows::list_workflows, workflows::publish_workflow, workflows::validate_workflow,
        workflows::get_workflow, workflows::workflow_versions, workflows::node_types,
        runs::start_run, runs::list_runs, runs::get_run, runs::cancel_run, runs::rerun_run,
        runs::rerun_batch, runs::migrate_run,
        forms::publish_form, forms::get_form, forms::list_responses, forms::review_response,
        admin::list_connections, admin::create_connection, admin::test_connection,
        admin::list_keys, admin::issue_key, admin::revoke_key, admin::audit_log
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
        .route("/node-types", get(node_types))
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

/// `?version=`: a version of a workflow or form, the latest when absent.
#[derive(Debug, Deserialize)]
pub(super) struct VersionQuery {
    version: Option<u32>,
}
