//! The shape of a validated workflow, indexed for scheduling.

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::ids::NodeId;
use crate::item::ERROR_PORT;
use crate::workflow::WorkflowDefinition;

/// Node and edge indexes of a workflow whose edges all join known nodes.
///
/// Nodes and edges are referred to by their position in the definition, so
/// the executor's bookkeeping is plain vectors.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) index: HashMap<NodeId, usize>,
    /// Per node, the edges arriving at it.
    pub(crate) incoming: Vec<Vec<usize>>,
    /// Per node, the edges leaving it.
    pub(crate) outgoing: Vec<Vec<usize>>,
    /// Per edge, (source node, target node).
    pub(crate) ends: Vec<(usize, usize)>,
    /// Per node, whether an edge leaves its `error` port.
    pub(crate) routes_errors: Vec<bool>,
    /// Nodes in an order where every edge goes forward; empty if cyclic.
    pub(crate) topo: Vec<usize>,
    /// Per node, its type id, shared with every execution's context.
    pub(crate) types: Vec<std::sync::Arc<str>>,
}

impl Plan {
    /// Indexes `def`, leaving out edges whose ends are not nodes of it.
    pub(crate) fn new(def: &WorkflowDefinition) -> Self {
        let mut index = HashMap::with_capacity(def.nodes.len());
        for (i, node) in def.nodes.iter().enumerate() {
            index.entry(node.id.clone()).or_insert(i);
        }
        let n = def.nodes.len();
        let mut incoming = vec![Vec::new(); n];
        let mut outgoing = vec![Vec::new(); n];
        let mut routes_errors = vec![false; n];
        let mut ends = Vec::with_capacity(def.edges.len());
        let mut graph = DiGraph::<usize, usize>::with_capacity(n, def.edges.len());
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        for (e, edge) in def.edges.iter().enumerate() {
            let (Some(&s), Some(&t)) = (index.get(&edge.source), index.get(&edge.target)) else {
                ends.push((usize::MAX, usize::MAX));
                continue;
            };
            ends.push((s, t));
            outgoing[s].push(e);
            incoming[t].push(e);
            if edge.source_port == ERROR_PORT {
                routes_errors[s] = true;
            }
            graph.add_edge(nodes[s], nodes[t], e);
        }
        let topo = petgraph::algo::toposort(&graph, None)
            .map(|order| order.into_iter().map(|ix| graph[ix]).collect())
            .unwrap_or_default();
        Self {
            types: def
                .nodes
                .iter()
                .map(|n| std::sync::Arc::from(n.node_type.as_str()))
                .collect(),
            index,
            incoming,
            outgoing,
            ends,
            routes_errors,
            topo,
        }
    }

    /// The sets of nodes that lie on a cycle, each in definition order.
    pub(crate) fn cycles(&self) -> Vec<Vec<usize>> {
        let n = self.incoming.len();
        let mut graph = DiGraph::<usize, ()>::with_capacity(n, self.ends.len());
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        for &(s, t) in &self.ends {
            if s != usize::MAX {
                graph.add_edge(nodes[s], nodes[t], ());
            }
        }
        let mut cycles: Vec<Vec<usize>> = petgraph::algo::tarjan_scc(&graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
            .map(|scc| {
                let mut members: Vec<usize> = scc.into_iter().map(|ix| graph[ix]).collect();
                members.sort_unstable();
                members
            })
            .collect();
        cycles.sort();
        cycles
    }

    /// Nodes no edge arrives at.
    pub(crate) fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.incoming
            .iter()
            .enumerate()
            .filter(|(_, edges)| edges.is_empty())
            .map(|(i, _)| i)
    }
}
