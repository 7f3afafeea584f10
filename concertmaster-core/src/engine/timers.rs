//! The engine's background loop: wakes nodes whose time has come, renews
//! the leases of the runs it drives, and picks up runs in flight that no
//! engine moves.

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
    let mut last_renewal = std::time::Instant::now();
    loop {
        let sleep_for = {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            if let Err(err) = inner.fire_due_timers().await {
                tracing::warn!(error = %err, "durable timers could not be checked; retrying");
            }
            let renew_every = inner.limits.lease_ttl / 3;
            if last_renewal.elapsed() >= renew_every {
                last_renewal = std::time::Instant::now();
                if let Err(err) = inner.renew_leases().await {
                    tracing::warn!(error = %err, "leases could not be renewed; retrying");
                }
            }
            let backlog = inner
                .backlog
                .swap(false, std::sync::atomic::Ordering::SeqCst);
            if backlog || last_recovery.elapsed() >= inner.limits.recovery_interval {
                last_recovery = std::time::Instant::now();
                if let Err(err) = inner.pick_up_stranded().await {
                    tracing::warn!(error = %err, "runs in flight could not be listed; retrying");
                }
            }
            let poll = inner
                .limits
                .timer_poll_interval
                .min(inner.limits.recovery_interval)
                .min(renew_every);
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
