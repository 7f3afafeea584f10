//! Who waits for which run. A run's event goes to the waiters of that run
//! only: with one channel for all runs, every event woke every waiter, and
//! a host awaiting 200 runs at once paid 200 wake-ups per run that ended.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::HashMap;
use crate::ids::RunId;
use crate::run::Run;

/// A run stopped moving here: its driver settled it or retired.
#[derive(Debug, Clone)]
pub(crate) struct RunEvent {
    /// The run as its driver last stored it, when the driver knows; a
    /// waiter reads the store otherwise.
    pub(crate) stored: Option<Arc<Run>>,
}

type Waiters = Vec<(u64, oneshot::Sender<RunEvent>)>;

#[derive(Default)]
pub(crate) struct Watchers {
    next: AtomicU64,
    waiting: Mutex<HashMap<RunId, Waiters>>,
}

impl Watchers {
    fn waiting(&self) -> MutexGuard<'_, HashMap<RunId, Waiters>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers interest in the next event of run `id`. Register before
    /// looking at the run, so that an event after the look is not missed.
    pub(crate) fn watch(&self, id: RunId) -> Watch<'_> {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().entry(id).or_default().push((token, tx));
        Watch {
            watchers: self,
            id,
            token,
            event: rx,
        }
    }

    /// Hands `event` to everyone watching run `id`.
    pub(crate) fn announce(&self, id: RunId, event: RunEvent) {
        let Some(waiters) = self.waiting().remove(&id) else {
            return;
        };
        for (_, waiter) in waiters {
            // A waiter that gave up has nothing to be told.
            let _ = waiter.send(event.clone());
        }
    }
}

/// Interest in one event of one run; dropping it withdraws the interest.
pub(crate) struct Watch<'a> {
    watchers: &'a Watchers,
    id: RunId,
    token: u64,
    event: oneshot::Receiver<RunEvent>,
}

impl Watch<'_> {
    /// The run's next event.
    pub(crate) async fn event(&mut self) -> RunEvent {
        // The sender is only dropped unsent by `announce`'s caller going
        // away mid-loop, which does not happen; an empty event makes the
        // waiter read the store, which is right either way.
        (&mut self.event).await.unwrap_or(RunEvent { stored: None })
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut waiting = self.watchers.waiting();
        if let Some(waiters) = waiting.get_mut(&self.id) {
            waiters.retain(|(token, _)| *token != self.token);
            if waiters.is_empty() {
                waiting.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_reaches_the_watchers_of_its_run_only() {
        let watchers = Watchers::default();
        let (a, b) = (RunId::new(), RunId::new());
        let mut on_a = watchers.watch(a);
        let mut also_on_a = watchers.watch(a);
        let mut on_b = watchers.watch(b);
        watchers.announce(a, RunEvent { stored: None });
        on_a.event().await;
        also_on_a.event().await;
        assert!(
            futures_util::FutureExt::now_or_never(on_b.event()).is_none(),
            "b's watcher is not woken by a's event"
        );
        drop((on_a, also_on_a));
        assert_eq!(watchers.waiting().len(), 1, "only b is watched");
    }

    #[test]
    fn a_dropped_watch_leaves_nothing_behind() {
        let watchers = Watchers::default();
        let id = RunId::new();
        let first = watchers.watch(id);
        let second = watchers.watch(id);
        drop(first);
        assert_eq!(watchers.waiting()[&id].len(), 1);
        drop(second);
        assert!(watchers.waiting().is_empty());
    }
}
