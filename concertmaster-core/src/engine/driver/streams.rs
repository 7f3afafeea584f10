//! Stream groups: a producer and the nodes it streams to, ended, restarted
//! and resolved as one.

use super::*;

impl RunDriver {
    /// The stream ends of node `i` of stream group `group`, launched as
    /// `attempt`, and the attempt it runs as: a producer makes its edges'
    /// queues and sets its group's attempt, a consumer takes its queue and
    /// runs as its group's attempt.
    pub(super) fn stream_ends(
        &mut self,
        i: usize,
        group: usize,
        attempt: u32,
    ) -> (Box<StreamEnds>, u32) {
        let plan = &self.workflow.plan;
        let def = &self.workflow.definition;
        let capacity = self.inner.limits.edge_capacity;
        let Some(streams) = self.streams.as_mut() else {
            unreachable!("a workflow with stream groups has stream state");
        };
        let head = plan.groups[group][0] == i;
        let attempt = if head {
            streams.attempts[group] = attempt;
            attempt
        } else {
            streams.attempts[group]
        };
        let inlet = plan.stream_in(i).map(|e| {
            streams.inlets[i].take().unwrap_or_else(|| {
                // Not made by a producer in this generation: a stream
                // that broke off before it started.
                let (_, rx) = mpsc::channel::<Flow>(1);
                Arc::new(Inlet::new(rx, def.edges[e].source.clone()))
            })
        });
        let mut ports: Vec<(Arc<str>, bool, Vec<EdgeSender>)> = Vec::new();
        for &e in &plan.outgoing[i] {
            if !plan.streams[e] {
                continue;
            }
            let edge = &def.edges[e];
            let (tx, rx) = mpsc::channel(capacity);
            let target = plan.ends[e].1;
            streams.inlets[target] = Some(Arc::new(Inlet::new(rx, def.nodes[i].id.clone())));
            let sender = EdgeSender::new(e, tx);
            match ports.iter_mut().find(|(p, ..)| **p == *edge.source_port) {
                Some((_, _, senders)) => senders.push(sender),
                None => {
                    let only = plan.outgoing[i]
                        .iter()
                        .all(|&o| plan.streams[o] || def.edges[o].source_port != edge.source_port);
                    ports.push((Arc::from(edge.source_port.as_str()), only, vec![sender]));
                }
            }
        }
        let outlet = (!ports.is_empty()).then(|| {
            Arc::new(Outlet::streaming(
                ports,
                streams.announce.clone(),
                streams.generations[i],
            ))
        });
        let pause = if head {
            streams.pauses[group].take()
        } else {
            None
        };
        (
            Box::new(StreamEnds {
                outlet,
                inlet,
                pause,
            }),
            attempt,
        )
    }

    /// The first item went down streaming edge `edge` of the producer's
    /// `generation`: its consumer starts now, if that is still current.
    pub(super) fn announced(&mut self, edge: usize, generation: u32) {
        let (source, target) = self.workflow.plan.ends[edge];
        let current = self
            .streams
            .as_ref()
            .is_some_and(|s| s.generations[source] == generation);
        if current && self.slots[target] == Slot::Unresolved {
            self.slots[target] = Slot::Ready;
            self.urgent.push(target);
        }
    }

    /// Acts on the end of node `i` of stream group `group`: what its
    /// edges carry is resolved only once the whole group ended, as any of
    /// it failing may run the group again.
    pub(super) async fn finish_streaming(
        &mut self,
        i: usize,
        group: usize,
        generation: u32,
        finish: Finish,
    ) {
        let current = self
            .streams
            .as_ref()
            .is_some_and(|s| s.generations[i] == generation);
        if !current {
            return;
        }
        if let Some(streams) = self.streams.as_mut() {
            streams.aborts[i] = None;
        }
        match finish {
            Finish::Succeeded(ports)
            | Finish::Failed {
                routed: Some(ports),
                ..
            } => {
                let plan = Arc::clone(&self.workflow.plan);
                for &e in &plan.outgoing[i] {
                    let target = plan.ends[e].1;
                    let port = &self.workflow.definition.edges[e].source_port;
                    // Its end waits in its queue: a consumer whose first
                    // item was not announced yet starts now.
                    if plan.streams[e]
                        && self.slots[target] == Slot::Unresolved
                        && ports.is_taken(port)
                    {
                        self.slots[target] = Slot::Ready;
                        self.urgent.push(target);
                    }
                }
                self.outputs[i] = Some(ports);
                self.slots[i] = Slot::Done;
                let busy = plan.groups[group]
                    .iter()
                    .any(|&m| matches!(self.slots[m], Slot::Ready | Slot::Running));
                if !busy {
                    for &m in &plan.groups[group] {
                        if self.slots[m] == Slot::Done {
                            self.resolve(m).await;
                        }
                    }
                }
            }
            Finish::Restart { error, pause, .. } => self.restart_group(group, error, pause),
            Finish::Aborted => {}
            other => self.finish_node(i, other).await,
        }
    }

    /// Runs stream group `group` again from its producer, as its next
    /// attempt, after `pause`: its nodes still going are stopped where
    /// they are, and what they did is forgotten.
    pub(super) fn restart_group(
        &mut self,
        group: usize,
        error: NodeError,
        pause: std::time::Duration,
    ) {
        let plan = Arc::clone(&self.workflow.plan);
        let head = plan.groups[group][0];
        let Some(streams) = self.streams.as_mut() else {
            return;
        };
        for &m in &plan.groups[group] {
            if let Some(abort) = streams.aborts[m].take() {
                abort.abort();
            }
            streams.generations[m] = streams.generations[m].wrapping_add(1);
            streams.inlets[m] = None;
            self.slots[m] = Slot::Unresolved;
            self.outputs[m] = None;
        }
        self.ready.retain(|n| plan.group_of[*n] != Some(group));
        self.urgent.retain(|n| plan.group_of[*n] != Some(group));
        streams.pauses[group] = Some(pause);
        let attempt = streams.attempts[group];
        self.records[head] = Some(Box::new(NodeExecution {
            run_id: self.run.id,
            node_id: self.workflow.definition.nodes[head].id.clone(),
            node_type: Arc::clone(&plan.types[head]),
            status: NodeStatus::Running,
            attempt,
            input: self.input_of(head),
            output: None,
            error: Some(error),
            wait: None,
            resumed: None,
            started_at: None,
            ended_at: None,
        }));
        self.slots[head] = Slot::Ready;
        self.urgent.push(head);
    }
}

/// The next announcement of a first streamed item; never, for a run
/// without streams.
pub(super) async fn next_announced(
    announced: &mut Option<mpsc::UnboundedReceiver<(usize, u32)>>,
) -> Option<(usize, u32)> {
    match announced {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Makes a recovering driver run every stream group that had not ended
/// when its last engine stopped again from its producer: what went down
/// streaming edges was not recorded. A group ended when its producer and
/// every consumer it fed have ended records; otherwise the records of its
/// nodes are dropped (they run again) and its producer's, if any, is
/// turned back to running, to run as its next attempt.
pub(super) fn restart_unsettled_groups(
    workflow: &ValidatedWorkflow,
    records: &mut Vec<NodeExecution>,
) {
    let plan = &workflow.plan;
    let def = &workflow.definition;
    let ended = |r: &NodeExecution| {
        matches!(
            r.status,
            NodeStatus::Succeeded | NodeStatus::Failed | NodeStatus::Skipped
        )
    };
    for group in &plan.groups {
        let head = group[0];
        let record_of = |i: usize| records.iter().find(|r| r.node_id == def.nodes[i].id);
        // A node of it failed with nothing to route: the run fails on
        // loading, as it would have had the engine not stopped first.
        let failed = group.iter().any(|&m| {
            record_of(m).is_some_and(|r| r.status == NodeStatus::Failed && r.output.is_none())
        });
        let settled = failed
            || group.iter().all(|&m| {
                let record = record_of(m);
                if m == head {
                    return record.is_some_and(ended);
                }
                if record.is_some_and(|r| !ended(r)) {
                    return false;
                }
                // Fed by a producer that ended with the port taken: it ran,
                // and must have ended too.
                let fed = plan.stream_in(m).is_some_and(|e| {
                    let source = plan.ends[e].0;
                    record_of(source).is_some_and(|r| {
                        r.output
                            .as_ref()
                            .is_some_and(|o| o.is_taken(&def.edges[e].source_port))
                    })
                });
                !fed || record.is_some()
            });
        if settled {
            continue;
        }
        records.retain(|r| {
            let member = plan
                .index
                .get(&r.node_id)
                .is_some_and(|&i| plan.group_of[i] == plan.group_of[head]);
            !member || r.node_id == def.nodes[head].id
        });
        if let Some(record) = records.iter_mut().find(|r| r.node_id == def.nodes[head].id) {
            record.status = NodeStatus::Running;
            record.output = None;
            record.resumed = None;
            record.wait = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::node::{Join, Node, NodeContext, NodeOutcome};
    use crate::{node::NodeCategory, NodeDescriptor, NodeRegistry, WorkflowDefinition};

    struct Plain;

    #[async_trait]
    impl Node for Plain {
        async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
            Ok(NodeOutcome::Done(input))
        }
    }

    struct Streams;

    #[async_trait]
    impl Node for Streams {
        async fn execute(&self, _: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
            Ok(NodeOutcome::main(Vec::new()))
        }

        fn join(&self) -> Join {
            Join::Stream
        }
    }

    /// start -> produce -> consume (streams) -> after.
    fn workflow() -> ValidatedWorkflow {
        let mut registry = NodeRegistry::new();
        registry
            .register_node(NodeDescriptor::new("plain", NodeCategory::Transform), Plain)
            .expect("registers");
        registry
            .register_node(
                NodeDescriptor::new("streams", NodeCategory::Transform),
                Streams,
            )
            .expect("registers");
        let def = WorkflowDefinition::from_value(json!({
            "id": "w", "name": "w",
            "nodes": [
                {"id": "start", "type": "plain"},
                {"id": "produce", "type": "plain"},
                {"id": "consume", "type": "streams"},
                {"id": "after", "type": "plain"}
            ],
            "edges": [
                {"source": "start", "target": "produce"},
                {"source": "produce", "target": "consume"},
                {"source": "consume", "target": "after"}
            ]
        }))
        .expect("parses");
        crate::validate::validate(&def, &registry).expect("valid")
    }

    fn record(node: &str, status: NodeStatus, output: Option<Ports>) -> NodeExecution {
        NodeExecution {
            run_id: RunId::new(),
            node_id: node.into(),
            node_type: Arc::from("plain"),
            status,
            attempt: 1,
            input: Ports::new(),
            output,
            error: None,
            wait: None,
            resumed: None,
            started_at: None,
            ended_at: None,
        }
    }

    fn statuses(records: &[NodeExecution]) -> Vec<(String, NodeStatus)> {
        records
            .iter()
            .map(|r| (r.node_id.to_string(), r.status))
            .collect()
    }

    #[test]
    fn a_group_whose_consumer_had_not_ended_runs_again_from_its_producer() {
        let streamed = Some(Ports::new().with("main", Vec::new()));
        let mut records = vec![
            record("start", NodeStatus::Succeeded, Some(Ports::new())),
            record("produce", NodeStatus::Succeeded, streamed.clone()),
            record("consume", NodeStatus::Running, None),
        ];
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(
            statuses(&records),
            [
                ("start".to_string(), NodeStatus::Succeeded),
                ("produce".to_string(), NodeStatus::Running)
            ]
        );
        assert!(records[1].output.is_none(), "its streamed output is gone");

        // Fed, and never recorded: it had not saved anything yet.
        let mut records = vec![record("produce", NodeStatus::Succeeded, streamed)];
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(
            statuses(&records),
            [("produce".to_string(), NodeStatus::Running)]
        );
    }

    #[test]
    fn an_ended_group_a_skipped_consumer_and_a_failed_one_stay_as_they_are() {
        let streamed = Some(Ports::new().with("main", Vec::new()));
        let ended = vec![
            record("produce", NodeStatus::Succeeded, streamed.clone()),
            record("consume", NodeStatus::Succeeded, Some(Ports::new())),
        ];
        let mut records = ended.clone();
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(records, ended);

        // The producer left the port untaken: its consumer is skipped.
        let untaken = vec![record("produce", NodeStatus::Succeeded, Some(Ports::new()))];
        let mut records = untaken.clone();
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(records, untaken);

        // The run was failing when its engine stopped: it fails on loading.
        let failing = vec![
            record("produce", NodeStatus::Running, None),
            record("consume", NodeStatus::Failed, None),
        ];
        let mut records = failing.clone();
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(records, failing);
    }
}
