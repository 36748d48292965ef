//! Failed-attempt IP blocking: N invalid keys from one address within a window
//! block it for a cooldown. Kept per address in its own Durable Object.

use crate::config::IpBlockConfig;
use serde::{Deserialize, Serialize};

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
