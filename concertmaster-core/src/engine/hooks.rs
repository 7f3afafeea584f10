//! Test hooks (feature `testing`): points in a node's suspension where a
//! test acts, and the engine waits for it, before it goes on. They let a
//! test deliver a wake-up at every point around a suspension rather than
//! hoping a race lands there.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::run::NodeExecution;

/// Where in a node's suspension a [`SuspensionHook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SuspensionPoint {
    /// The node returned `Suspend`; its wait is not stored yet.
    Suspending,
    /// The store call storing the wait returned; the driver has not acted
    /// on it yet.
    Suspended,
}

/// Called at each [`SuspensionPoint`] with the node's record; the engine
/// waits for the future it returns.
pub type SuspensionHook = Arc<
    dyn Fn(SuspensionPoint, NodeExecution) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// The hooks an engine calls; none unless a test set them.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) suspension: Option<SuspensionHook>,
}

impl Hooks {
    pub(crate) async fn suspending(&self, record: &NodeExecution) {
        self.call(SuspensionPoint::Suspending, record).await;
    }

    pub(crate) async fn suspended(&self, record: &NodeExecution) {
        self.call(SuspensionPoint::Suspended, record).await;
    }

    async fn call(&self, point: SuspensionPoint, record: &NodeExecution) {
        if let Some(hook) = &self.suspension {
            hook(point, record.clone()).await;
        }
    }
}
