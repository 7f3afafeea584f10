//! Test support: the store conformance suite and helpers for node authors.
//!
//! Enabled by the `testing` feature; meant for `[dev-dependencies]`.
//!
//! A store implementation proves itself by running the conformance suite,
//! one test per case:
//!
//! ```
//! // In tests/it/store.rs of a store crate:
//! concertmaster_core::store_conformance!(async { concertmaster_core::InMemoryStore::new() });
//! ```

pub mod conformance;

use std::future::Future;

/// Runs `future` to completion on a fresh multi-threaded tokio runtime.
///
/// The conformance macro uses it so that a store crate needs no tokio
/// test attribute of its own.
pub fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(err) => panic!("could not start a tokio runtime for the test: {err}"),
    }
}

/// Expands to one `#[test]` per store conformance case, each on a fresh
/// store made by `$make` (an expression evaluating to a future of a store).
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            workflow_versions_are_immutable,
            latest_versions_are_listed_per_workflow,
            runs_round_trip_and_filter_newest_first,
            inserting_a_run_twice_conflicts,
            updating_an_unknown_run_is_not_found,
            node_executions_are_replaced_per_node,
            runs_in_flight_span_tenants,
            a_wait_is_taken_once,
            wait_keys_are_unique_per_tenant,
            due_waits_come_in_time_order,
            ending_a_run_stops_its_nodes_and_waits,
            audit_entries_filter_newest_first,
            tenants_never_see_each_other
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::block_on(async {
                    let store = ($make).await;
                    $crate::testing::conformance::$case(&store).await;
                });
            }
        )+
    };
}
