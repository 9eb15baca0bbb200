//! Exponential backoff arithmetic for retrying failed task runs.
//!
//! Only the numbers: how long to wait before retry `n`. It never sleeps, reads the clock or
//! decides *whether* to retry — the engine does that with the task's run policy.

use std::time::Duration;

/// `initial * multiplier^(attempt-1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Growth factor per attempt; 0 behaves like 1 (a constant delay).
    pub multiplier: u32,
}

impl Backoff {
    /// Delay before retry number `attempt` (attempt 1 = first retry; 0 is treated as 1):
    /// `initial * multiplier^(attempt-1)`, capped at `max`. Saturating: any overflow yields `max`,
    /// so the result is non-decreasing in `attempt` and never exceeds `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1);
        let factor = self.multiplier.max(1).checked_pow(exponent);
        factor
            .and_then(|f| self.initial.checked_mul(f))
            .map_or(self.max, |d| d.min(self.max))
    }
}

impl Default for Backoff {
    /// 1s, 2s, 4s, … up to 60s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2,
        }
    }
}
