//! Test support: the store conformance suite, [`TestEngine`] for node and
//! workflow authors (a run with a virtual clock), and [`FaultyStore`] for
//! hosts testing that their workflows ride out a failing database.
//!
//! Enabled by the `testing` feature; meant for `[dev-dependencies]`.
//!
//! A store implementation proves itself by running the conformance suite,
//! one test per case:
//!
//! ```
//! // In tests/it/store.rs of a store crate keeping everything:
//! concertmaster_core::backend_conformance!(async { concertmaster_core::InMemoryStore::new() });
//! // A store for the engine alone runs its part:
//! // concertmaster_core::store_conformance!(async { MyStore::new() });
//! ```

mod config_examples;
pub mod conformance;
mod faulty;

pub use crate::engine::hooks::{SuspensionHook, SuspensionPoint};
pub use config_examples::check_config_examples;
pub use faulty::{Chaos, FaultReport, FaultyStore};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::{
    clock::ManualClock, run::RunDetail, workflow::PublishedWorkflow, Engine, InMemoryStore,
    NodeRegistry, Result, Run, RunId, Store, TenantId, WorkflowDefinition,
};

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

/// Expands to one `#[test]` per conformance case of the engine's traits
/// ([`Store`]: workflows, runs, waits, leases, the audit log), each on a
/// fresh store made by `$make` (an expression evaluating to a future of a
/// store). A backend that keeps more runs the suites of the traits it
/// implements beside it ([`form_store_conformance!`](crate::form_store_conformance),
/// [`dataset_store_conformance!`](crate::dataset_store_conformance),
/// [`connection_store_conformance!`](crate::connection_store_conformance),
/// [`content_store_conformance!`](crate::content_store_conformance)), or all
/// of them with [`backend_conformance!`](crate::backend_conformance).
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            workflow_versions_are_immutable,
            latest_versions_are_listed_per_workflow,
            runs_round_trip_and_filter_newest_first,
            runs_filter_by_version_time_error_parent_and_page,
            a_waiting_run_migrates_once_with_its_nodes_renamed,
            inserting_a_run_twice_conflicts,
            updating_an_unknown_run_is_not_found,
            starting_a_run_stores_it_leased_and_audited,
            settling_a_run_stores_it_and_frees_the_lease,
            settling_a_run_saves_its_steps_in_the_same_change,
            node_executions_are_replaced_per_node,
            runs_in_flight_span_tenants,
            a_wait_is_taken_once,
            wait_keys_are_unique_per_tenant,
            due_waits_come_in_time_order,
            ending_a_run_stops_its_nodes_and_waits,
            audit_entries_filter_newest_first,
            tenants_never_see_each_other,
            tenants_stay_apart_under_random_calls,
            leases_are_exclusive_until_they_expire,
            lease_epochs_grow_on_every_takeover,
            a_stale_epoch_is_fenced_for_every_write,
            node_records_only_move_forward,
            a_wakeup_that_comes_first_is_held_for_the_suspension,
            a_delivery_takes_a_stored_wait,
            held_wakeups_expire_and_stay_listed_until_discarded,
            claim_runs_takes_each_free_run_once,
            claim_runs_shares_a_claim_between_tenants,
            an_ended_run_takes_no_more_writes,
            concurrent_node_writes_each_get_their_own_answer,
            concurrent_run_writes_each_get_their_own_answer,
            concurrent_starts_and_settles_each_get_their_own_answer,
            concurrent_deliveries_each_get_their_own_answer
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

/// The conformance cases of [`FormStore`](crate::store::FormStore), for a
/// store that also implements [`Store`] (a form answer wakes a run).
#[macro_export]
macro_rules! form_store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            form_answers_and_reviews_carry_their_wakeups,
            form_versions_are_immutable,
            a_form_link_is_used_once,
            a_link_keeps_one_draft_until_it_is_used,
            responses_filter_and_are_reviewed_once,
            responses_are_erased_and_purged
        );
    };
}

/// The conformance cases of [`DatasetStore`](crate::store::DatasetStore),
/// for a store that also implements [`Store`].
#[macro_export]
macro_rules! dataset_store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make; datasets_replace_per_node_and_filter);
    };
}

/// The conformance cases of
/// [`ConnectionStore`](crate::store::ConnectionStore).
#[macro_export]
macro_rules! connection_store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            connections_round_trip_per_tenant,
            connections_are_replaced_only_as_read
        );
    };
}

/// The conformance cases of [`ContentStore`](crate::store::ContentStore).
#[macro_export]
macro_rules! content_store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make; content_is_chunked_per_tenant_and_written_once);
    };
}

/// Every conformance case, for a [`Backend`](crate::store::Backend): a
/// store implementing every store trait.
#[macro_export]
macro_rules! backend_conformance {
    ($make:expr) => {
        $crate::store_conformance!($make);
        $crate::form_store_conformance!($make);
        $crate::dataset_store_conformance!($make);
        $crate::connection_store_conformance!($make);
        $crate::content_store_conformance!($make);
    };
}

/// An engine for testing nodes and workflows: in-memory store, a manual
/// clock that moves only when told, one tenant.
///
/// ```
/// # use concertmaster_core::node::{NodeCategory, Suspend};
/// # use concertmaster_core::{*, testing::TestEngine, workflow::NodeSpec};
/// # use async_trait::async_trait;
/// /// Waits a day, durably.
/// struct OneDay;
///
/// #[async_trait]
/// impl Node for OneDay {
///     async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
///         if ctx.resumed().is_some() {
///             return Ok(NodeOutcome::Done(input));
///         }
///         Ok(NodeOutcome::suspend(Suspend::until_time(ctx.now() + chrono::Duration::days(1))))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut registry = NodeRegistry::new();
/// registry.register_node(NodeDescriptor::new("one_day", NodeCategory::Logic), OneDay)?;
/// let test = TestEngine::new(registry).await?;
/// let workflow = test
///     .publish(WorkflowDefinition::new("w", "W").node(NodeSpec::new("wait", "one_day")))
///     .await?;
/// let run = test.engine.start(&workflow, serde_json::json!({})).await?;
/// assert_eq!(test.settled(run).await?.status, RunStatus::Waiting);
///
/// test.advance(std::time::Duration::from_secs(86_400)).await?;
/// assert_eq!(test.settled(run).await?.status, RunStatus::Succeeded);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TestEngine {
    /// The engine under test.
    pub engine: Engine,
    /// Its clock; [`advance`](Self::advance) moves it and fires what came due.
    pub clock: ManualClock,
    /// The tenant the helpers act as.
    pub tenant: TenantId,
}

impl TestEngine {
    /// An engine on `registry` with an in-memory store and a manual clock,
    /// acting as tenant `test`.
    pub async fn new(registry: NodeRegistry) -> Result<Self> {
        Self::on(
            registry,
            Arc::new(InMemoryStore::new()),
            ManualClock::default(),
        )
        .await
    }

    /// An engine on `registry` over `store` with `clock`, acting as tenant
    /// `test`: for a store shared with the host's other parts (forms,
    /// connections), a [`FaultyStore`], or a clock those parts read too.
    pub async fn on(
        registry: NodeRegistry,
        store: Arc<dyn Store>,
        clock: ManualClock,
    ) -> Result<Self> {
        let engine = Engine::builder()
            .registry(registry)
            .shared_store(store)
            .clock(clock.clone())
            // Timers fire when the test advances the clock, not on their own.
            .timer_poll_interval(Duration::from_secs(3600))
            .build()
            .await?;
        Ok(Self {
            engine,
            clock,
            tenant: TenantId::new("test"),
        })
    }

    /// Publishes `def` as the test tenant.
    pub async fn publish(&self, def: WorkflowDefinition) -> Result<PublishedWorkflow> {
        self.engine.publish(&self.tenant, def).await
    }

    /// Publishes `def`, starts it with `trigger` and waits until it settles.
    pub async fn run(&self, def: WorkflowDefinition, trigger: Value) -> Result<RunDetail> {
        let workflow = self.publish(def).await?;
        let run = self.engine.start(&workflow, trigger).await?;
        self.settled(run).await?;
        self.engine.run(&self.tenant, run).await
    }

    /// Waits until `run` settles.
    pub async fn settled(&self, run: RunId) -> Result<Run> {
        self.engine.settled(&self.tenant, run).await
    }

    /// Moves the clock forward by `by` and wakes every node whose time came;
    /// returns how many woke.
    pub async fn advance(&self, by: Duration) -> Result<usize> {
        self.clock.advance(by);
        self.engine.fire_due_timers().await
    }
}
