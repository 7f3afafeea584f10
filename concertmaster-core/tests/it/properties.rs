//! Property tests over random DAGs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use concertmaster_core::{
    run::{NodeStatus, RunDetail},
    Engine, Ports, RunStatus, TenantId, WorkflowDefinition,
};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::support::{registry, Log};

/// A random DAG: node i is `pass`, `branch` (taking `true` or `false`) or
/// `hold`; edges only go from lower to higher index, so it is acyclic.
#[derive(Debug, Clone)]
struct Dag {
    kinds: Vec<Kind>,
    /// (source, source port, target)
    edges: Vec<(usize, &'static str, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Pass,
    Branch(bool),
    Hold,
}

fn dag() -> impl Strategy<Value = Dag> {
    (2usize..18)
        .prop_flat_map(|n| {
            let kinds = prop::collection::vec(
                prop_oneof![
                    4 => Just(Kind::Pass),
                    2 => any::<bool>().prop_map(Kind::Branch),
                    1 => Just(Kind::Hold),
                ],
                n,
            );
            let pairs = prop::collection::vec((0..n, 0..n, any::<bool>()), 0..(n * 2));
            (kinds, pairs)
        })
        .prop_map(|(mut kinds, pairs)| {
            let pairs: Vec<(usize, usize, bool)> = pairs
                .into_iter()
                .map(|(a, b, port)| (a.min(b), a.max(b), port))
                .filter(|(s, t, _)| s != t)
                .collect();
            // Nodes without inputs are triggers, which have only `main`.
            for (i, kind) in kinds.iter_mut().enumerate() {
                if !pairs.iter().any(|&(_, t, _)| t == i) {
                    *kind = Kind::Pass;
                }
            }
            let mut seen = std::collections::HashSet::new();
            let mut edges = Vec::new();
            for (s, t, port) in pairs {
                let port = match kinds[s] {
                    Kind::Branch(_) => {
                        if port {
                            "true"
                        } else {
                            "false"
                        }
                    }
                    _ => "main",
                };
                if seen.insert((s, port, t)) {
                    edges.push((s, port, t));
                }
            }
            Dag { kinds, edges }
        })
}

impl Dag {
    fn definition(&self, holds: bool) -> WorkflowDefinition {
        let nodes: Vec<Value> = self
            .kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let incoming = self.edges.iter().any(|&(_, _, t)| t == i);
                match kind {
                    _ if !incoming => json!({"id": format!("n{i}"), "type": "start"}),
                    Kind::Branch(take) => {
                        json!({"id": format!("n{i}"), "type": "branch", "config": {"take": take.to_string()}})
                    }
                    Kind::Hold if holds => json!({"id": format!("n{i}"), "type": "hold"}),
                    _ => json!({"id": format!("n{i}"), "type": "pass"}),
                }
            })
            .collect();
        let edges: Vec<Value> = self
            .edges
            .iter()
            .map(|(s, p, t)| json!({"source": format!("n{s}"), "sourcePort": p, "target": format!("n{t}")}))
            .collect();
        WorkflowDefinition::from_value(
            json!({"id": "random", "name": "random", "nodes": nodes, "edges": edges}),
        )
        .expect("generated workflow parses")
    }

    /// Which nodes execute, by the rules: a root executes; any other node
    /// executes when some edge into it comes from an executed node's taken port.
    fn expected_to_run(&self) -> Vec<bool> {
        let n = self.kinds.len();
        let mut runs = vec![false; n];
        for i in 0..n {
            let incoming: Vec<_> = self.edges.iter().filter(|&&(_, _, t)| t == i).collect();
            runs[i] = incoming.is_empty()
                || incoming.iter().any(|&&(s, port, _)| {
                    runs[s]
                        && match self.kinds[s] {
                            Kind::Branch(take) => port == if take { "true" } else { "false" },
                            _ => port == "main",
                        }
                });
        }
        runs
    }
}

async fn run_to_end(engine: &Engine, tenant: &TenantId, def: WorkflowDefinition) -> RunDetail {
    let wf = engine.publish(tenant, def).await.expect("publishes");
    let run = engine.start(&wf, json!({"seed": 1})).await.expect("starts");
    loop {
        let settled = engine.settled(tenant, run).await.expect("settles");
        if settled.status != RunStatus::Waiting {
            break;
        }
        let detail = engine.run(tenant, run).await.expect("detail");
        for key in detail.waiting_on() {
            engine
                .resume(tenant, key, json!(null))
                .await
                .expect("resumes");
        }
    }
    engine.run(tenant, run).await.expect("detail")
}

fn outputs(detail: &RunDetail) -> BTreeMap<String, Option<Ports>> {
    detail
        .nodes
        .iter()
        .map(|n| (n.node_id.to_string(), n.output.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn every_node_runs_once_after_its_predecessors_and_unchosen_branches_never_run(dag in dag()) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let log = Arc::new(Log::default());
            let engine = Engine::builder().registry(registry(&log)).build().await.expect("builds");
            let tenant = TenantId::new("prop");
            let detail = run_to_end(&engine, &tenant, dag.definition(false)).await;
            assert_eq!(detail.run.status, RunStatus::Succeeded, "{:?}", detail.run);

            let order = log.order();
            let mut position = HashMap::new();
            for (at, node) in order.iter().enumerate() {
                assert!(position.insert(node.clone(), at).is_none(), "{node} ran twice: {order:?}");
            }
            let expected = dag.expected_to_run();
            for (i, should_run) in expected.iter().enumerate() {
                let id = format!("n{i}");
                let status = detail.node(&id).map(|n| n.status);
                if *should_run {
                    assert_eq!(status, Some(NodeStatus::Succeeded), "{id} should run; {dag:?}");
                    for &(s, _, _) in dag.edges.iter().filter(|&&(_, _, t)| t == i) {
                        if let Some(&before) = position.get(&format!("n{s}")) {
                            assert!(before < position[&id], "n{s} must run before {id}: {order:?}");
                        }
                    }
                } else {
                    assert_eq!(status, Some(NodeStatus::Skipped), "{id} is behind an unchosen branch; {dag:?}");
                    assert!(!position.contains_key(&id), "{id} must not run");
                }
            }
        });
    }

    #[test]
    fn suspended_then_resumed_runs_match_uninterrupted_ones(dag in dag()) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let log = Arc::new(Log::default());
            let engine = Engine::builder().registry(registry(&log)).build().await.expect("builds");
            let straight = run_to_end(&engine, &TenantId::new("straight"), dag.definition(false)).await;
            let held = run_to_end(&engine, &TenantId::new("held"), dag.definition(true)).await;
            assert_eq!(held.run.status, straight.run.status);
            assert_eq!(outputs(&held), outputs(&straight), "{dag:?}");
        });
    }
}
