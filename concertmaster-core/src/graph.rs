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
    /// Per edge, whether it streams (its target's join is `Stream`).
    pub(crate) streams: Vec<bool>,
    /// The stream groups: a producer and every node reachable from it
    /// through streaming edges, the producer first, in topological order.
    pub(crate) groups: Vec<Vec<usize>>,
    /// Per node, the group it belongs to.
    pub(crate) group_of: Vec<Option<usize>>,
    /// Per node, whether its type's descriptor declares side effects: its
    /// `running` record is committed before it executes.
    pub(crate) side_effects: Vec<bool>,
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
            streams: vec![false; def.edges.len()],
            groups: Vec::new(),
            group_of: vec![None; n],
            side_effects: vec![false; n],
        }
    }

    /// Marks the edges into the nodes `streaming` names as streaming, and
    /// gathers the stream groups. Each streaming node has one incoming
    /// edge (validation checks it), so a group is a tree from its head.
    pub(crate) fn mark_streams(&mut self, streaming: impl Fn(usize) -> bool) {
        for (e, &(_, t)) in self.ends.iter().enumerate() {
            self.streams[e] = t != usize::MAX && streaming(t);
        }
        let mut member = vec![false; self.incoming.len()];
        let mut consumer = vec![false; self.incoming.len()];
        for (e, &(s, t)) in self.ends.iter().enumerate() {
            if self.streams[e] {
                member[s] = true;
                member[t] = true;
                consumer[t] = true;
            }
        }
        for &head in &self.topo {
            if !member[head] || consumer[head] {
                continue;
            }
            let group = self.groups.len();
            let mut reach = vec![head];
            let mut at = 0;
            while let Some(&n) = reach.get(at) {
                at += 1;
                for &e in &self.outgoing[n] {
                    if self.streams[e] {
                        reach.push(self.ends[e].1);
                    }
                }
            }
            for &n in &reach {
                self.group_of[n] = Some(group);
            }
            let ordered = self
                .topo
                .iter()
                .copied()
                .filter(|&n| self.group_of[n] == Some(group))
                .collect();
            self.groups.push(ordered);
        }
    }

    /// The node a stream group restarts from: `i`'s group's producer, or
    /// `i` itself outside any group.
    pub(crate) fn stream_head(&self, i: usize) -> usize {
        self.group_of[i].map_or(i, |g| self.groups[g][0])
    }

    /// The streaming edge into `i`, if `i` streams its input.
    pub(crate) fn stream_in(&self, i: usize) -> Option<usize> {
        self.incoming[i].iter().copied().find(|&e| self.streams[e])
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
