//! Rate limits of the public form portal, per client address and per form
//! link: a burst at once, then one request per interval (the generic cell
//! rate algorithm, one instant per key). A request over the limit gets
//! `429 Too Many Requests` with `Retry-After`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many requests one key may make: `burst` at once, then one per
/// `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed at once, at least 1.
    pub burst: u32,
    /// The interval after which one more request is allowed.
    pub every: Duration,
}

impl RateLimit {
    /// `per_minute` requests a minute on average, up to `burst` at once.
    ///
    /// # Panics
    /// If `per_minute` is 0: use no limit (`None`) instead.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        assert!(per_minute > 0, "a rate limit of 0 a minute allows nothing");
        Self {
            burst: burst.max(1),
            every: Duration::from_secs(60) / per_minute,
        }
    }
}

/// The portal's limits; `None` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalLimits {
    /// Per client address (after trusted proxies): what one office or one
    /// attacker may send, across all links, including links that do not
    /// exist (guessing).
    pub per_client: Option<RateLimit>,
    /// Per form link: what one link may take, from any number of addresses.
    pub per_link: Option<RateLimit>,
}

impl Default for PortalLimits {
    /// 60 requests a minute per address (bursts of 30: a colleague behind
    /// the same NAT, a form saved as a draft several times), 20 a minute per
    /// link (bursts of 10).
    fn default() -> Self {
        Self {
            per_client: Some(RateLimit::per_minute(60, 30)),
            per_link: Some(RateLimit::per_minute(20, 10)),
        }
    }
}

/// Keys remembered at most, per limiter. A flood of new keys beyond it is
/// refused rather than allowed to grow the map without end.
const CAPACITY: usize = 100_000;

/// One limit over many keys.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    limit: RateLimit,
    capacity: usize,
    /// Each key's theoretical arrival time: when its bucket is empty again.
    due: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash> Limiter<K> {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, CAPACITY)
    }

    fn with_capacity(limit: RateLimit, capacity: usize) -> Self {
        Self {
            limit,
            capacity,
            due: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `key` at `now`: `Err(wait)` if it is over the
    /// limit, `wait` being how long until one more is allowed.
    pub(crate) fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let every = self.limit.every;
        // A burst of 0 set by hand allows one, as `per_minute` makes it.
        let tolerance = every * self.limit.burst.saturating_sub(1);
        // A poisoned lock only means another request panicked mid-count;
        // the map itself is always whole.
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        if due.len() >= self.capacity && !due.contains_key(&key) {
            due.retain(|_, at| *at > now);
            if due.len() >= self.capacity {
                return Err(every);
            }
        }
        let at = due.get(&key).copied().filter(|at| *at > now).unwrap_or(now);
        let allowed_from = at.checked_sub(tolerance).unwrap_or(now);
        if allowed_from > now {
            return Err(allowed_from - now);
        }
        due.insert(key, at + every);
        Ok(())
    }
}

/// The portal's limiters.
#[derive(Debug)]
pub(crate) struct PortalLimiter {
    per_client: Option<Limiter<IpAddr>>,
    per_link: Option<Limiter<String>>,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Client(Duration),
    Link(Duration),
}

impl PortalLimiter {
    pub(crate) fn new(limits: PortalLimits) -> Self {
        Self {
            per_client: limits.per_client.map(Limiter::new),
            per_link: limits.per_link.map(Limiter::new),
        }
    }

    /// Counts a request from `client` (if known) through link `token`.
    pub(crate) fn check(&self, client: Option<IpAddr>, token: &str) -> Result<(), Refused> {
        let now = Instant::now();
        if let (Some(limiter), Some(client)) = (&self.per_client, client) {
            limiter.check(client, now).map_err(Refused::Client)?;
        }
        if let Some(limiter) = &self.per_link {
            limiter
                .check(token.to_string(), now)
                .map_err(Refused::Link)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_then_one_per_interval() {
        let limiter = Limiter::new(RateLimit {
            burst: 3,
            every: SECOND,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()));
        }
        assert_eq!(limiter.check("a", t0), Err(SECOND));
        // Another key has its own budget.
        assert_eq!(limiter.check("b", t0), Ok(()));
        // Half an interval on: still half to wait.
        assert_eq!(limiter.check("a", t0 + SECOND / 2), Err(SECOND / 2));
        // One interval on: exactly one more.
        assert_eq!(limiter.check("a", t0 + SECOND), Ok(()));
        assert!(limiter.check("a", t0 + SECOND).is_err());
        // Long idle: the whole burst again, not more.
        let later = t0 + 60 * SECOND;
        for _ in 0..3 {
            assert_eq!(limiter.check("a", later), Ok(()));
        }
        assert!(limiter.check("a", later).is_err());
    }

    #[test]
    fn a_refused_request_does_not_count() {
        let limiter = Limiter::new(RateLimit {
            burst: 1,
            every: SECOND,
        });
        let t0 = Instant::now();
        assert_eq!(limiter.check(1, t0), Ok(()));
        for _ in 0..10 {
            assert!(limiter.check(1, t0).is_err());
        }
        assert_eq!(limiter.check(1, t0 + SECOND), Ok(()));
    }

    #[test]
    fn a_full_table_forgets_idle_keys_and_refuses_a_flood() {
        let limiter = Limiter::with_capacity(
            RateLimit {
                burst: 1,
                every: SECOND,
            },
            2,
        );
        let t0 = Instant::now();
        assert_eq!(limiter.check(1, t0), Ok(()));
        assert_eq!(limiter.check(2, t0), Ok(()));
        // Full, and both keys still counting: a third is refused.
        assert_eq!(limiter.check(3, t0), Err(SECOND));
        // Known keys go on as before.
        assert!(limiter.check(1, t0).is_err());
        // Once the first two are idle, their places are free.
        assert_eq!(limiter.check(3, t0 + SECOND), Ok(()));
        assert_eq!(limiter.check(4, t0 + SECOND), Ok(()));
    }

    #[test]
    fn a_burst_of_zero_set_by_hand_allows_one() {
        let limiter = Limiter::new(RateLimit {
            burst: 0,
            every: SECOND,
        });
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", t0), Ok(()));
        assert_eq!(limiter.check("a", t0), Err(SECOND));
    }

    #[test]
    fn per_minute_spreads_the_minute() {
        assert_eq!(
            RateLimit::per_minute(60, 0),
            RateLimit {
                burst: 1,
                every: SECOND
            }
        );
    }
}
