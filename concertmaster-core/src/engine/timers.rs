//! The engine's background loops: one wakes nodes whose time has come and
//! picks up runs in flight that no engine moves; the other renews the
//! leases of the runs this engine drives, on a schedule of its own.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Inner;

/// Runs until the engine shuts down or is dropped. Holds the engine only
/// while it checks, so dropping every `Engine` handle ends it.
pub(super) async fn timer_loop(
    engine: Weak<Inner>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut last_recovery = std::time::Instant::now();
    loop {
        let sleep_for = {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            if let Err(err) = inner.fire_due_timers().await {
                tracing::warn!(error = %err, "durable timers could not be checked; retrying");
            }
            let backlog = inner
                .backlog
                .swap(false, std::sync::atomic::Ordering::SeqCst);
            if backlog || last_recovery.elapsed() >= inner.limits.recovery_interval {
                last_recovery = std::time::Instant::now();
                if let Err(err) = inner.pick_up_stranded().await {
                    tracing::warn!(error = %err, "runs in flight could not be listed; retrying");
                }
                if let Err(err) = inner.expire_held_wakeups().await {
                    tracing::warn!(error = %err, "held wake-ups could not be expired; retrying");
                }
            }
            let poll = inner
                .limits
                .timer_poll_interval
                .min(inner.limits.recovery_interval);
            match inner.store.next_due().await {
                Ok(Some(at)) => (at - inner.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(poll),
                _ => poll,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep_for) => {}
            () = wake.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Renews the leases of the runs this engine drives every third of the
/// lease's time to live, until the engine shuts down or is dropped. A task
/// of its own: a burst of due timers or a slow recovery sweep in the other
/// loop never holds a renewal back past the lease, which would hand every
/// run this engine drives to another engine.
pub(super) async fn lease_loop(engine: Weak<Inner>, shutdown: CancellationToken) {
    loop {
        let every = match engine.upgrade() {
            Some(inner) => inner.limits.lease_ttl / 3,
            None => return,
        };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        if let Err(err) = inner.renew_leases().await {
            tracing::warn!(error = %err, "leases could not be renewed; retrying");
        }
    }
}
