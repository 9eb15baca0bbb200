//! Rate limits: token buckets (GCRA, `governor`) per client address and per key for each route
//! group, and the hard limit on failed authentications per address.
//!
//! An address whose failed attempts empty its bucket is refused outright (any credential)
//! until the bucket refills, so a key cannot be guessed by brute force. Refusals are counted
//! per address and go on the audit trail once a minute, one record per address (a flood does
//! not flood the trail).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sovereign_core::access::{Group, Rate};

use super::settings::{GroupLimit, RateLimits};
use crate::support::lock;

/// A refusal: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

type Keyed<K> = DefaultKeyedRateLimiter<K>;

struct Buckets {
    per_address: Option<Keyed<IpAddr>>,
    per_key: Option<Keyed<String>>,
}

/// What was refused from one address since the last record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refusals {
    pub count: u64,
    pub reasons: BTreeMap<&'static str, u64>,
}

pub(super) struct Limiters {
    loopback: bool,
    groups: Vec<Buckets>,
    failed: Keyed<IpAddr>,
    /// Addresses refused outright after too many failures, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// Whether `blocked` may hold anyone: the common case reads one atomic, not the lock.
    any_blocked: AtomicBool,
    refused: Mutex<HashMap<IpAddr, Refusals>>,
    clock: DefaultClock,
}

fn quota(rate: Rate, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_nanos(rate.interval_nanos()))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limiters {
    pub(super) fn new(settings: &RateLimits) -> Limiters {
        let groups = settings
            .groups
            .iter()
            .map(|g: &GroupLimit| Buckets {
                per_address: g.per_address.map(|r| Keyed::keyed(quota(r, g.burst))),
                per_key: g.per_key.map(|r| Keyed::keyed(quota(r, g.burst))),
            })
            .collect();
        Limiters {
            loopback: settings.loopback,
            groups,
            failed: Keyed::keyed(quota(settings.failed_auth, settings.failed_burst)),
            blocked: Mutex::new(HashMap::new()),
            any_blocked: AtomicBool::new(false),
            refused: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    fn wait(&self, not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Limited {
        Limited {
            retry_after: not_until.wait_time_from(self.clock.now()),
        }
    }

    /// Spend one request of `group` from `address` (and refuse a blocked address).
    pub(super) fn admit_address(&self, group: Group, address: IpAddr) -> Result<(), Limited> {
        let until = if self.any_blocked.load(Ordering::Acquire) {
            lock(&self.blocked).get(&address).copied()
        } else {
            None
        };
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                self.count(address, "blocked_after_failures");
                return Err(Limited {
                    retry_after: until - now,
                });
            }
        }
        if address.is_loopback() && !self.loopback {
            return Ok(());
        }
        let Some(bucket) = &self.groups[group.index()].per_address else {
            return Ok(());
        };
        bucket.check_key(&address).map_err(|n| {
            self.count(address, "rate_limited");
            self.wait(n)
        })
    }

    /// Spend one request of `group` by the key or session named by `name` (asked only when
    /// the group limits keys at all).
    pub(super) fn admit_key(
        &self,
        group: Group,
        name: impl FnOnce() -> String,
        address: IpAddr,
    ) -> Result<(), Limited> {
        let Some(bucket) = &self.groups[group.index()].per_key else {
            return Ok(());
        };
        bucket.check_key(&name()).map_err(|n| {
            self.count(address, "rate_limited");
            self.wait(n)
        })
    }

    /// A failed authentication from `address`: counted, and once the address has failed
    /// too often, it is blocked until its bucket refills.
    pub(super) fn failed(&self, address: IpAddr, reason: &'static str) {
        self.count(address, reason);
        if let Err(n) = self.failed.check_key(&address) {
            let wait = self.wait(n).retry_after;
            lock(&self.blocked).insert(address, Instant::now() + wait);
            self.any_blocked.store(true, Ordering::Release);
        }
    }

    fn count(&self, address: IpAddr, reason: &'static str) {
        let mut refused = lock(&self.refused);
        let r = refused.entry(address).or_default();
        r.count += 1;
        *r.reasons.entry(reason).or_default() += 1;
    }

    /// The refusals since the last call, per address; forgets buckets gone back to full.
    pub(super) fn take_refusals(&self) -> Vec<(IpAddr, Refusals)> {
        let now = Instant::now();
        {
            let mut blocked = lock(&self.blocked);
            blocked.retain(|_, until| *until > now);
            self.any_blocked
                .store(!blocked.is_empty(), Ordering::Release);
        }
        for g in &self.groups {
            if let Some(b) = &g.per_address {
                b.retain_recent();
            }
            if let Some(b) = &g.per_key {
                b.retain_recent();
            }
        }
        self.failed.retain_recent();
        let mut taken: Vec<_> = lock(&self.refused).drain().collect();
        taken.sort_by_key(|(a, _)| *a);
        taken
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(per_address: u32, burst: u32) -> RateLimits {
        let mut l = RateLimits::default();
        for g in &mut l.groups {
            g.per_address = Some(Rate {
                count: per_address,
                per_secs: 60,
            });
            g.burst = burst;
        }
        l.failed_auth = Rate {
            count: 3,
            per_secs: 3600,
        };
        l.failed_burst = 3;
        l
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let l = Limiters::new(&limits(1, 3));
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            assert!(l.admit_address(Group::Trade, a).is_ok());
        }
        let refused = l.admit_address(Group::Trade, a).unwrap_err();
        assert!(refused.retry_after > Duration::from_secs(30), "{refused:?}");
        // Another address and another group have their own buckets.
        assert!(l
            .admit_address(Group::Trade, "203.0.113.8".parse().unwrap())
            .is_ok());
        assert!(l.admit_address(Group::Read, a).is_ok());
        let taken = l.take_refusals();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.count, 1);
        assert_eq!(taken[0].1.reasons.get("rate_limited"), Some(&1));
        assert!(l.take_refusals().is_empty(), "taken once");
    }

    #[test]
    fn keys_have_their_own_budget_when_one_is_set() {
        let mut set = limits(1000, 2);
        set.groups[Group::Trade.index()].per_key = Some(Rate {
            count: 1,
            per_secs: 60,
        });
        let l = Limiters::new(&set);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let name = || "key:desk".to_string();
        assert!(l.admit_key(Group::Trade, name, a).is_ok());
        assert!(l.admit_key(Group::Trade, name, a).is_ok());
        assert!(
            l.admit_key(Group::Trade, name, a).is_err(),
            "past the burst of 2"
        );
        assert!(l.admit_key(Group::Trade, || "key:other".into(), a).is_ok());
        let asked = std::cell::Cell::new(false);
        let unlimited = || {
            asked.set(true);
            String::new()
        };
        assert!(l.admit_key(Group::Read, unlimited, a).is_ok());
        assert!(
            !asked.get(),
            "a group without a per-key limit never names the key"
        );
    }

    #[test]
    fn loopback_is_limited_by_address_only_when_asked() {
        let l = Limiters::new(&limits(1, 1));
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..10 {
            assert!(l.admit_address(Group::Trade, me).is_ok());
        }
        let mut strict = limits(1, 1);
        strict.loopback = true;
        let l = Limiters::new(&strict);
        assert!(l.admit_address(Group::Trade, me).is_ok());
        assert!(l.admit_address(Group::Trade, me).is_err());
    }

    #[test]
    fn too_many_failures_block_the_address_for_every_group() {
        let l = Limiters::new(&limits(1000, 1000));
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..3 {
            l.failed(a, "unknown_key");
            assert!(
                l.admit_address(Group::Read, a).is_ok(),
                "within the failure burst"
            );
        }
        l.failed(a, "unknown_key");
        let blocked = l.admit_address(Group::Public, a).unwrap_err();
        assert!(blocked.retry_after > Duration::from_secs(60));
        let taken = l.take_refusals();
        assert_eq!(taken[0].1.reasons.get("unknown_key"), Some(&4));
        assert_eq!(taken[0].1.reasons.get("blocked_after_failures"), Some(&1));
    }
}
