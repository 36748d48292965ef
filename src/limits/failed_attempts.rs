//! Failed-attempt IP blocking: N invalid keys from one address within a window
//! block it for a cooldown. Kept per address in its own Durable Object.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The unit failed attempts are counted in: an IPv4 address, or an IPv6 /64 (one
/// subscriber's allocation, so its 2^64 addresses are one client). An IPv4-mapped
/// IPv6 address counts as its IPv4; anything unparseable shares one bucket.
pub fn address_bucket(ip: &str) -> String {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
        Err(_) => "unparseable".into(),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureWindow {
    /// Times of recent failures, oldest first; at most `threshold` are kept.
    pub failures: Vec<i64>,
    pub blocked_until: Option<i64>,
}

/// The outcome of one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureOutcome {
    /// The address was already blocked when this attempt came: answer row 2.
    pub was_blocked: bool,
    pub blocked_until: Option<i64>,
}

impl FailureWindow {
    pub fn blocked_at(&self, now: i64) -> Option<i64> {
        self.blocked_until.filter(|u| *u > now)
    }

    /// When this state stops mattering (no failure left in the window, no block):
    /// its storage can then be deleted.
    pub fn idle_at(&self, cfg: &IpBlockConfig) -> i64 {
        let window_end = self.failures.last().map_or(0, |t| t + cfg.window_ms);
        window_end.max(self.blocked_until.unwrap_or(0))
    }

    pub fn record_failure(&mut self, cfg: &IpBlockConfig, now: i64) -> FailureOutcome {
        if let Some(until) = self.blocked_at(now) {
            return FailureOutcome {
                was_blocked: true,
                blocked_until: Some(until),
            };
        }
        self.failures.retain(|t| *t > now - cfg.window_ms);
        self.failures.push(now);
        let keep = cfg.threshold.max(1) as usize;
        if self.failures.len() > keep {
            self.failures.drain(..self.failures.len() - keep);
        }
        if cfg.threshold > 0 && self.failures.len() >= cfg.threshold as usize {
            self.blocked_until = Some(now + cfg.cooldown_ms);
            self.failures.clear();
        }
        FailureOutcome {
            was_blocked: false,
            blocked_until: self.blocked_at(now),
        }
    }
}

/// Failed-attempt IP blocking: `threshold` invalid keys within `window_ms` block
/// the address for `cooldown_ms`. A threshold of 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpBlockConfig {
    pub threshold: u32,
    pub window_ms: i64,
    pub cooldown_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: IpBlockConfig = IpBlockConfig {
        threshold: 3,
        window_ms: 10_000,
        cooldown_ms: 60_000,
    };

    #[test]
    fn n_failures_in_the_window_block_for_the_cooldown() {
        let mut w = FailureWindow::default();
        assert_eq!(w.record_failure(&CFG, 0).blocked_until, None);
        assert_eq!(w.record_failure(&CFG, 1_000).blocked_until, None);
        let third = w.record_failure(&CFG, 2_000);
        assert_eq!(
            third,
            FailureOutcome {
                was_blocked: false,
                blocked_until: Some(62_000)
            }
        );
        assert!(w.record_failure(&CFG, 3_000).was_blocked);
        assert_eq!(w.blocked_at(61_999), Some(62_000));
        assert_eq!(w.blocked_at(62_000), None);
        // After the cooldown the count starts again.
        assert_eq!(w.record_failure(&CFG, 62_000).blocked_until, None);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut w = FailureWindow::default();
        w.record_failure(&CFG, 0);
        w.record_failure(&CFG, 5_000);
        assert_eq!(
            w.record_failure(&CFG, 10_000).blocked_until,
            None,
            "the first one left the window"
        );
        assert!(w.record_failure(&CFG, 11_000).blocked_until.is_some());
    }

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(address_bucket("203.0.113.9"), "203.0.113.9");
        assert_eq!(address_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            address_bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            address_bucket("2001:0DB8:0001:0002::7")
        );
        assert_ne!(
            address_bucket("2001:db8:1:3::1"),
            address_bucket("2001:db8:1:2::1")
        );
        assert_eq!(address_bucket("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(address_bucket("not an address"), address_bucket("also not"));
    }

    #[test]
    fn idle_once_the_window_and_the_block_are_over() {
        let mut w = FailureWindow::default();
        assert_eq!(w.idle_at(&CFG), 0);
        w.record_failure(&CFG, 1_000);
        assert_eq!(w.idle_at(&CFG), 11_000);
        w.record_failure(&CFG, 2_000);
        w.record_failure(&CFG, 3_000);
        assert_eq!(w.idle_at(&CFG), 63_000);
    }

    #[test]
    fn threshold_zero_never_blocks() {
        let off = IpBlockConfig {
            threshold: 0,
            ..CFG
        };
        let mut w = FailureWindow::default();
        for t in 0..100 {
            assert_eq!(w.record_failure(&off, t).blocked_until, None);
        }
        assert!(w.failures.len() <= 1);
    }
}
