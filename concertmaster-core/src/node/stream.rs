//! The two ends of a node's streams, beside [`NodeContext`](crate::NodeContext):
//! the [`Outlet`] that [`NodeContext::emit`](crate::NodeContext::emit) sends
//! into and the [`Inlet`] that
//! [`NodeContext::next_item`](crate::NodeContext::next_item) reads. The
//! engine's driver builds them for a run's streaming edges and launches
//! consumers as they announce their first item; a node called outside an
//! engine gets an outlet that only keeps what it emits and an inlet of
//! given items. Concrete types rather than traits: an item passes through
//! both once per item, and a boxed future each way cost a streamed edge a
//! sixth of its throughput.
//!
//! Streaming edges: a producer and the node after it running at once,
//! through a bounded queue.
//!
//! An edge streams when its target's join is [`Join::Stream`](crate::node::Join).
//! The producer sends with [`NodeContext::emit`](crate::NodeContext::emit)
//! and waits while the edge's queue is full; the consumer is launched when
//! the first item is sent and reads with
//! [`NodeContext::next_item`](crate::NodeContext::next_item). Items sent
//! down a port whose every edge streams are not recorded, so a producer and
//! the consumers it feeds (a *stream group*) succeed, fail, retry and
//! recover as one unit; the driver holds that invariant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::ids::NodeId;
use crate::item::{Item, Ports};
use crate::node::NodeError;

/// What travels through an edge's queue. A queue whose senders are gone
/// without an `End` broke off: its producer stopped before it finished.
pub(crate) enum Flow {
    Item(Item),
    End,
}

/// Where a node's emitted items go during one attempt: the queues of its
/// streaming edges, and a list of what is recorded as its output.
pub(crate) struct Outlet {
    /// Per port with a streaming edge, its queues, sorted by port name.
    streams: Vec<PortStreams>,
    /// Emitted items kept for the record: on ports with an edge that does
    /// not stream, or with no edge at all.
    kept: Mutex<Ports>,
    /// Told `(edge, generation)` the first time an item goes down a
    /// streaming edge, so that the driver launches its consumer then.
    announce: Option<mpsc::UnboundedSender<(usize, u32)>>,
    generation: u32,
}

struct PortStreams {
    port: Arc<str>,
    /// Whether every edge leaving the port streams: then what goes down
    /// it is not recorded.
    only: bool,
    /// Set once the port is marked taken in `kept`, so that later items
    /// skip the lock.
    taken: AtomicBool,
    edges: Vec<EdgeSender>,
}

/// The sending end of one streaming edge.
pub(crate) struct EdgeSender {
    edge: usize,
    tx: mpsc::Sender<Flow>,
    announced: AtomicBool,
}

impl EdgeSender {
    pub(crate) fn new(edge: usize, tx: mpsc::Sender<Flow>) -> Self {
        Self {
            edge,
            tx,
            announced: AtomicBool::new(false),
        }
    }
}

impl Outlet {
    /// An outlet that only keeps what is emitted: a node whose edges do
    /// not stream, or a node called outside an engine.
    pub(crate) fn keeping() -> Self {
        Self {
            streams: Vec::new(),
            kept: Mutex::new(Ports::new()),
            announce: None,
            generation: 0,
        }
    }

    /// An outlet feeding `streams` (per port: whether every edge of it
    /// streams, and its edges' senders); `announce` hears of each edge's
    /// first item, tagged with `generation`.
    pub(crate) fn streaming(
        mut streams: Vec<(Arc<str>, bool, Vec<EdgeSender>)>,
        announce: mpsc::UnboundedSender<(usize, u32)>,
        generation: u32,
    ) -> Self {
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            streams: streams
                .into_iter()
                .map(|(port, only, edges)| PortStreams {
                    port,
                    only,
                    taken: AtomicBool::new(false),
                    edges,
                })
                .collect(),
            kept: Mutex::new(Ports::new()),
            announce: Some(announce),
            generation,
        }
    }

    fn port_streams(&self, port: &str) -> Option<&PortStreams> {
        self.streams
            .binary_search_by(|s| (*s.port).cmp(port))
            .ok()
            .map(|i| &self.streams[i])
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Ports> {
        // A node that panicked while holding the lock left a complete
        // list behind: pushes do not leave it half-changed.
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `item` down `port`: into each streaming edge's queue, waiting
    /// while it is full, and into the record where the port has an edge
    /// that does not stream.
    pub(crate) async fn emit(&self, port: &str, item: Item) {
        let Some(streams) = self.port_streams(port) else {
            self.kept().push(port, item);
            return;
        };
        if streams.only {
            // Taken, with nothing recorded: the edges carry data.
            if !streams.taken.swap(true, Ordering::AcqRel) {
                self.take_port(port);
            }
        } else {
            self.kept().push(port, item.clone());
        }
        let last = streams.edges.len().saturating_sub(1);
        let mut item = Some(item);
        for (n, edge) in streams.edges.iter().enumerate() {
            self.announce(edge);
            let sent = if n == last {
                item.take().unwrap_or_default()
            } else {
                item.clone().unwrap_or_default()
            };
            // A consumer that finished without reading the rest no longer
            // wants it; one that failed ends the group, and the driver
            // stops this producer.
            let _ = edge.tx.send(Flow::Item(sent)).await;
        }
    }

    /// Marks `port` taken in the record, keeping what it holds.
    fn take_port(&self, port: &str) {
        let mut kept = self.kept();
        if !kept.is_taken(port) {
            kept.extend(port, Vec::new());
        }
    }

    fn announce(&self, edge: &EdgeSender) {
        if !edge.announced.swap(true, Ordering::AcqRel) {
            if let Some(announce) = &self.announce {
                let _ = announce.send((edge.edge, self.generation));
            }
        }
    }

    /// Ends the attempt's output: the items returned on streaming ports
    /// are sent down them too, every taken streaming port's queues are
    /// told the stream ended, and the output to record is returned, what
    /// was emitted before what was returned.
    pub(crate) async fn finish(&self, mut returned: Ports) -> Ports {
        let mut output = std::mem::take(&mut *self.kept());
        if output.is_empty() && self.streams.is_empty() {
            return returned;
        }
        let ports: Vec<String> = returned.port_names().map(str::to_owned).collect();
        for port in ports {
            let items = returned.take(&port);
            if self.port_streams(&port).is_some() {
                for item in items {
                    self.emit(&port, item).await;
                }
                // Emitting nothing still takes the port.
                self.take_port(&port);
            } else {
                output.extend(&port, items);
            }
        }
        let streamed = std::mem::take(&mut *self.kept());
        for (port, items) in streamed.iter() {
            output.extend(port, items.to_vec());
        }
        for streams in &self.streams {
            if !output.is_taken(&streams.port) {
                continue;
            }
            for edge in &streams.edges {
                self.announce(edge);
                let _ = edge.tx.send(Flow::End).await;
            }
        }
        output
    }

    /// Whether anything was emitted in this attempt.
    pub(crate) fn emitted_any(&self) -> bool {
        !self.kept().is_empty()
            || self
                .streams
                .iter()
                .any(|s| s.edges.iter().any(|e| e.announced.load(Ordering::Acquire)))
    }

    /// What was emitted and kept, taken out.
    pub(crate) fn take_kept(&self) -> Ports {
        std::mem::take(&mut *self.kept())
    }
}

/// The receiving end of a streaming edge, read by its consumer.
pub(crate) struct Inlet {
    rx: tokio::sync::Mutex<mpsc::Receiver<Flow>>,
    ended: AtomicBool,
    /// The producer, named when the stream breaks off.
    from: NodeId,
}

impl Inlet {
    pub(crate) fn new(rx: mpsc::Receiver<Flow>, from: NodeId) -> Self {
        Self {
            rx: tokio::sync::Mutex::new(rx),
            ended: AtomicBool::new(false),
            from,
        }
    }

    /// An inlet holding `items`, then the end: for calling a node directly.
    pub(crate) fn of(items: Vec<Item>) -> Self {
        let (tx, rx) = mpsc::channel(items.len() + 1);
        for item in items {
            let _ = tx.try_send(Flow::Item(item));
        }
        let _ = tx.try_send(Flow::End);
        Self::new(rx, NodeId::new("test"))
    }

    pub(crate) async fn next(&self) -> Result<Option<Item>, NodeError> {
        if self.ended.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some(Flow::Item(item)) => Ok(Some(item)),
            Some(Flow::End) => {
                self.ended.store(true, Ordering::Release);
                Ok(None)
            }
            // Fatal: should the producer be retried, the driver restarts
            // this consumer with it and this error is never seen.
            None => Err(NodeError::fatal(format!(
                "the stream from node {} broke off: it stopped before it finished",
                self.from
            ))
            .with_details(serde_json::json!({ "producer": self.from }))),
        }
    }
}
