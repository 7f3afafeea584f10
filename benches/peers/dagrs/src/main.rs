//! dagrs running the workloads of ConcertMaster's peer benchmark, in memory.
//!
//! `dagrs-peer <workload> <runs> <in-flight>` builds one graph per run in
//! flight, runs `runs` runs in all (each graph reset and run again, the
//! cheapest way dagrs re-runs a graph), checks every run's result and prints
//! one JSON line: each run's latency in nanoseconds and the wall time of the
//! whole batch.
//!
//! Workloads, with the same shapes as ConcertMaster's: `three` (a start node
//! and three steps that each add one), `chain40` (a start node and forty such
//! steps), `fanout1000` (a start node, 1,000 parallel steps, one join).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use dagrs::{
    Action, Content, DefaultNode, EnvVar, Graph, InChannels, Node, NodeId, NodeTable, OutChannels,
    Output,
};

/// Adds `add` to the sum of what its predecessors sent (the start node has
/// none and begins at 1), hands the result to its successors.
struct Step {
    add: i64,
}

#[async_trait]
impl Action for Step {
    async fn run(
        &self,
        inputs: &mut InChannels,
        outputs: &mut OutChannels,
        _: Arc<EnvVar>,
    ) -> Output {
        let received: Vec<i64> = inputs
            .map(|content| {
                content
                    .ok()
                    .and_then(|c| c.into_inner::<i64>())
                    .map_or(0, |v| *v)
            })
            .await;
        let value = if received.is_empty() {
            1
        } else {
            received.iter().sum::<i64>()
        } + self.add;
        outputs.broadcast(Content::new(value)).await;
        Output::new(value)
    }
}

struct Workload {
    graph: Graph,
    last: NodeId,
    expected: i64,
}

fn step(name: String, add: i64, table: &mut NodeTable) -> DefaultNode {
    DefaultNode::with_action(name, Step { add }, table)
}

fn chain(steps: usize) -> Workload {
    let mut table = NodeTable::new();
    let mut graph = Graph::new();
    let start = step("start".into(), 0, &mut table);
    let mut previous = start.id();
    graph.add_node(start).expect("start node");
    for i in 0..steps {
        let node = step(format!("step{i}"), 1, &mut table);
        let id = node.id();
        graph.add_node(node).expect("step node");
        graph.add_edge(previous, vec![id]).expect("edge");
        previous = id;
    }
    graph.set_env(EnvVar::new(table));
    Workload {
        graph,
        last: previous,
        expected: 1 + steps as i64,
    }
}

fn fan_out(width: usize) -> Workload {
    let mut table = NodeTable::new();
    let mut graph = Graph::new();
    let start = step("start".into(), 0, &mut table);
    let start_id = start.id();
    graph.add_node(start).expect("start node");
    let join = step("join".into(), 0, &mut table);
    let join_id = join.id();
    graph.add_node(join).expect("join node");
    let mut workers = Vec::with_capacity(width);
    for i in 0..width {
        let node = step(format!("w{i}"), 1, &mut table);
        workers.push(node.id());
        graph.add_node(node).expect("worker node");
    }
    graph
        .add_edge(start_id, workers.clone())
        .expect("fan-out edges");
    for worker in workers {
        graph.add_edge(worker, vec![join_id]).expect("join edge");
    }
    graph.set_env(EnvVar::new(table));
    Workload {
        graph,
        last: join_id,
        expected: 2 * width as i64,
    }
}

fn build(name: &str) -> Workload {
    match name {
        "three" => chain(3),
        "chain40" => chain(40),
        "fanout1000" => fan_out(1000),
        other => {
            eprintln!("unknown workload {other:?}: expected three, chain40 or fanout1000");
            std::process::exit(2);
        }
    }
}

async fn run_once(workload: &mut Workload, first: bool) -> u128 {
    let began = Instant::now();
    if !first {
        workload.graph.reset().await.expect("graph resets");
    }
    workload.graph.async_start().await.expect("graph runs");
    let elapsed = began.elapsed().as_nanos();
    let result = workload
        .graph
        .get_results::<i64>()
        .get(&workload.last)
        .cloned()
        .flatten();
    assert_eq!(
        result.as_deref(),
        Some(&workload.expected),
        "dagrs computed the wrong result"
    );
    elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, workload, runs, in_flight] = args.as_slice() else {
        eprintln!("usage: dagrs-peer <three|chain40|fanout1000> <runs> <in-flight>");
        std::process::exit(2);
    };
    let (Ok(runs), Ok(in_flight)) = (runs.parse::<usize>(), in_flight.parse::<usize>()) else {
        eprintln!("runs and in-flight are whole numbers");
        std::process::exit(2);
    };
    let in_flight = in_flight.clamp(1, runs.max(1));
    // Graphs are built before the clock starts: a run is what is timed.
    let workloads: Vec<Workload> = (0..in_flight).map(|_| build(workload)).collect();
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(in_flight);
    for (lane, mut workload) in workloads.into_iter().enumerate() {
        let share = runs / in_flight + usize::from(lane < runs % in_flight);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for i in 0..share {
                latencies.push(run_once(&mut workload, i == 0).await);
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(runs);
    for task in tasks {
        latencies.extend(task.await.expect("run task"));
    }
    let elapsed = began.elapsed().as_nanos();
    let latencies: Vec<String> = latencies.iter().map(u128::to_string).collect();
    println!(
        "{{\"latencies_ns\":[{}],\"elapsed_ns\":{elapsed}}}",
        latencies.join(",")
    );
}
