//! The two ends of a node's item streams, as [`NodeContext`] sees them:
//! where [`NodeContext::emit`] sends items and what
//! [`NodeContext::next_item`] reads. The engine implements both with the
//! queues of a run's streaming edges; the plain implementations here serve
//! a node whose edges do not stream and a node called outside an engine.
//!
//! [`NodeContext`]: crate::NodeContext
//! [`NodeContext::emit`]: crate::NodeContext::emit
//! [`NodeContext::next_item`]: crate::NodeContext::next_item

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::item::{Item, Ports};
use crate::node::NodeError;

/// A future a stream end returns; boxed so the ends can be trait objects.
pub(crate) type StreamFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a node's emitted items go during one attempt.
pub(crate) trait ItemSink: Send + Sync {
    /// Sends `item` down `port`, waiting while a queue it goes into is
    /// full.
    fn emit<'a>(&'a self, port: &'a str, item: Item) -> StreamFuture<'a, ()>;

    /// Ends the attempt's output: the output to record, what was emitted
    /// before what the node `returned`.
    fn finish(&self, returned: Ports) -> StreamFuture<'_, Ports>;

    /// Whether anything was emitted in this attempt.
    fn emitted_any(&self) -> bool;

    /// What was emitted and kept for the record so far, taken out.
    fn take_kept(&self) -> Ports;
}

/// What a streaming node reads, item by item.
pub(crate) trait ItemSource: Send + Sync {
    /// The next item; `None` once the producer finished and everything it
    /// sent was read.
    fn next(&self) -> StreamFuture<'_, Result<Option<Item>, NodeError>>;
}

/// Emitted items kept as the node's output: for a node none of whose
/// edges stream, and for a node called outside an engine.
#[derive(Default)]
pub(crate) struct Kept(Mutex<Ports>);

impl Kept {
    fn kept(&self) -> std::sync::MutexGuard<'_, Ports> {
        // A node that panicked while holding the lock left a complete list
        // behind: pushes do not leave it half-changed.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ItemSink for Kept {
    fn emit<'a>(&'a self, port: &'a str, item: Item) -> StreamFuture<'a, ()> {
        self.kept().push(port, item);
        Box::pin(std::future::ready(()))
    }

    fn finish(&self, mut returned: Ports) -> StreamFuture<'_, Ports> {
        let mut output = self.take_kept();
        if !output.is_empty() {
            let ports: Vec<String> = returned.port_names().map(str::to_owned).collect();
            for port in ports {
                let items = returned.take(&port);
                output.extend(&port, items);
            }
            returned = output;
        }
        Box::pin(std::future::ready(returned))
    }

    fn emitted_any(&self) -> bool {
        !self.kept().is_empty()
    }

    fn take_kept(&self) -> Ports {
        std::mem::take(&mut *self.kept())
    }
}

/// Items given in advance, then the end: what
/// [`NodeContext::with_stream`](crate::NodeContext::with_stream) streams.
pub(crate) struct Given(Mutex<VecDeque<Item>>);

impl Given {
    pub(crate) fn new(items: Vec<Item>) -> Self {
        Self(Mutex::new(items.into()))
    }
}

impl ItemSource for Given {
    fn next(&self) -> StreamFuture<'_, Result<Option<Item>, NodeError>> {
        let item = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        Box::pin(std::future::ready(Ok(item)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(n: i64) -> Item {
        json!({ "n": n }).as_object().cloned().unwrap_or_default()
    }

    #[tokio::test]
    async fn kept_items_come_before_the_returned_ones() {
        let kept = Kept::default();
        assert!(!kept.emitted_any());
        kept.emit("main", item(1)).await;
        assert!(kept.emitted_any());
        let mut returned = Ports::new();
        returned.extend("main", vec![item(2)]);
        returned.extend("other", vec![item(3)]);
        let output = kept.finish(returned).await;
        let on = |port: &str| output.items(port).cloned().collect::<Vec<_>>();
        assert_eq!(on("main"), [item(1), item(2)]);
        assert_eq!(on("other"), [item(3)]);
        assert!(!kept.emitted_any(), "finishing takes what was kept");
    }

    #[tokio::test]
    async fn given_items_are_read_in_order_then_the_end() {
        let given = Given::new(vec![item(1), item(2)]);
        assert_eq!(given.next().await.unwrap(), Some(item(1)));
        assert_eq!(given.next().await.unwrap(), Some(item(2)));
        assert_eq!(given.next().await.unwrap(), None);
        assert_eq!(given.next().await.unwrap(), None);
    }
}
