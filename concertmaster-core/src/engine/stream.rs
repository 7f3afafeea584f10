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
use crate::node::stream::{ItemSink, ItemSource, StreamFuture};
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

impl ItemSink for Outlet {
    fn emit<'a>(&'a self, port: &'a str, item: Item) -> StreamFuture<'a, ()> {
        Box::pin(Outlet::emit(self, port, item))
    }

    fn finish(&self, returned: Ports) -> StreamFuture<'_, Ports> {
        Box::pin(Outlet::finish(self, returned))
    }

    fn emitted_any(&self) -> bool {
        Outlet::emitted_any(self)
    }

    fn take_kept(&self) -> Ports {
        Outlet::take_kept(self)
    }
}

impl ItemSource for Inlet {
    fn next(&self) -> StreamFuture<'_, Result<Option<Item>, NodeError>> {
        Box::pin(Inlet::next(self))
    }
}
