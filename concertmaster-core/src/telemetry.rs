//! Metric names and recording, through the `metrics` facade.
//!
//! Nothing is recorded unless the host installs a recorder (for example
//! `metrics-exporter-prometheus`); without one these calls cost next to nothing.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, SharedString};

use crate::ids::{TenantId, WorkflowId};
use crate::run::RunStatus;

/// Counter of runs that ended, labelled `workflow_id`, `status`, `tenant_id`.
pub const WORKFLOW_EXECUTIONS_TOTAL: &str = "workflow_executions_total";
/// Histogram of run durations in seconds (creation to end, waits included),
/// labelled `workflow_id`, `tenant_id`.
pub const WORKFLOW_EXECUTION_DURATION_SECONDS: &str = "workflow_execution_duration_seconds";
/// Gauge of runs being driven right now (not waiting), labelled `tenant_id`.
pub const ACTIVE_WORKFLOWS: &str = "active_workflows";
/// Histogram of node attempt durations in seconds, labelled `node_type`, `tenant_id`.
pub const NODE_EXECUTION_DURATION_SECONDS: &str = "node_execution_duration_seconds";
/// Counter of writes the store refused because the writing engine's lease
/// on the run was no longer current (another engine took the run over
/// while this one stalled), labelled `tenant_id`. Each stops a driver.
pub const FENCED_WRITES_TOTAL: &str = "fenced_writes_total";
/// Counter of runs whose lease an engine found lost when it renewed its
/// leases (it stalled past the lease, and another engine took the run),
/// labelled `tenant_id`. Each stops a driver.
pub const LEASES_LOST_TOTAL: &str = "leases_lost_total";

/// Per node type of `types`, the key of its attempt-duration histogram for
/// `tenant`. Built once per workflow version and tenant: a key hashes and
/// allocates its labels, which every node execution would otherwise pay
/// for, also with no recorder installed.
pub(crate) fn node_duration_keys(types: &[Arc<str>], tenant: &TenantId) -> Arc<[Key]> {
    types
        .iter()
        .map(|node_type| node_duration_key(node_type, tenant))
        .collect()
}

pub(crate) fn node_duration_key(node_type: &Arc<str>, tenant: &TenantId) -> Key {
    Key::from_parts(
        NODE_EXECUTION_DURATION_SECONDS,
        vec![
            Label::new(
                "node_type",
                SharedString::from_shared(Arc::clone(node_type)),
            ),
            Label::new("tenant_id", SharedString::from_shared(tenant.shared())),
        ],
    )
}

/// Records an attempt's duration under `key` (see [`node_duration_key`]).
pub(crate) fn node_finished(key: &Key, took: Duration) {
    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
    metrics::with_recorder(|recorder| {
        recorder
            .register_histogram(key, &METADATA)
            .record(took.as_secs_f64())
    });
}

pub(crate) fn lease_lost(tenant: &TenantId) {
    metrics::counter!(LEASES_LOST_TOTAL, "tenant_id" => SharedString::from_shared(tenant.shared()))
        .increment(1);
}

pub(crate) fn write_fenced(tenant: &TenantId) {
    metrics::counter!(FENCED_WRITES_TOTAL, "tenant_id" => SharedString::from_shared(tenant.shared()))
        .increment(1);
}

pub(crate) fn run_driven(tenant: &TenantId, delta: f64) {
    metrics::gauge!(ACTIVE_WORKFLOWS, "tenant_id" => SharedString::from_shared(tenant.shared()))
        .increment(delta);
}

pub(crate) fn run_ended(
    workflow: &WorkflowId,
    tenant: &TenantId,
    status: RunStatus,
    took: Duration,
) {
    metrics::counter!(
        WORKFLOW_EXECUTIONS_TOTAL,
        "workflow_id" => SharedString::from_shared(workflow.shared()),
        "status" => status.as_str(),
        "tenant_id" => SharedString::from_shared(tenant.shared()),
    )
    .increment(1);
    metrics::histogram!(
        WORKFLOW_EXECUTION_DURATION_SECONDS,
        "workflow_id" => SharedString::from_shared(workflow.shared()),
        "tenant_id" => SharedString::from_shared(tenant.shared()),
    )
    .record(took.as_secs_f64());
}
