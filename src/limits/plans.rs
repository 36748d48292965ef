//! A plan change at any size. `PUT /accounts/{id}` records the new plan and its
//! version in the account's object and answers at once; the object's alarm then
//! brings every key that existed at the change to that version, a batch per run
//! (each run within a Worker's subrequest limit), walking its index in id order.
//!
//! Until its copy is updated a key is never admitted under a superseded plan: the
//! account's object answers every admission with the current version, and a key
//! whose copy is older is brought to it inside that same request before anything
//! is admitted (see `edge::gate`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The account's plan, as its keys copy it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCopy {
    pub plan: String,
    pub version: u64,
}

/// Progress of the latest change through the keys that existed when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Propagation {
    pub version: u64,
    /// The newest key id at the change: later keys are born with the new plan.
    pub upto: Option<String>,
    /// The last key id already updated.
    pub after: Option<String>,
    pub keys_total: u64,
    pub keys_updated: u64,
}

impl Propagation {
    pub fn start(version: u64, upto: Option<String>, keys_total: u64) -> Self {
        Propagation {
            version,
            upto,
            after: None,
            keys_total,
            keys_updated: 0,
        }
    }

    pub fn complete(&self) -> bool {
        self.keys_updated >= self.keys_total || self.upto.is_none()
    }

    /// Records the outcome of one batch, `batch` being the ids asked for (in id
    /// order, at most `size`) and `ok` whether each took the plan. Progress moves
    /// over the leading run of successes; a failure is retried from there.
    pub fn record(&mut self, batch: &[String], ok: &[bool], size: usize) {
        let done = ok.iter().take_while(|b| **b).count();
        if let Some(last) = done.checked_sub(1).and_then(|i| batch.get(i)) {
            self.after = Some(last.clone());
        }
        self.keys_updated = (self.keys_updated + done as u64).min(self.keys_total);
        // A short batch read every key left: whatever the count says (keys deleted
        // meanwhile), the change has reached them all.
        if done == batch.len() && batch.len() < size {
            self.keys_updated = self.keys_total;
        }
    }
}

/// Limits that apply across all keys of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub api_access: bool,
    /// Per-key limits a key inherits where it sets none of its own.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// Account-wide limits.
    #[serde(default)]
    pub account_limits: AccountLimits,
}

impl Plan {
    /// The smallest limit the plan sets, per key or account-wide.
    pub fn tightest_limit(&self) -> Option<u64> {
        let r = self.rate_limits;
        let a = self.account_limits;
        [
            r.per_second,
            r.per_minute,
            r.per_day,
            a.per_second,
            a.per_minute,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn zero_limit(&self) -> Option<()> {
        (self.tightest_limit() == Some(0)).then_some(())
    }
}

/// The plans shipped by default, as in the seed product's tiers.
pub fn default_plans() -> BTreeMap<String, Plan> {
    let plan = |api_access, per_minute, per_day| Plan {
        api_access,
        rate_limits: RateLimits {
            per_second: None,
            per_minute,
            per_day,
        },
        account_limits: AccountLimits::default(),
    };
    BTreeMap::from([
        ("free".to_string(), plan(false, None, None)),
        ("pro".to_string(), plan(true, Some(500), Some(50_000))),
        (
            "business".to_string(),
            plan(true, Some(2_000), Some(500_000)),
        ),
    ])
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: std::ops::Range<u32>) -> Vec<String> {
        r.map(|i| format!("key_{i:03}")).collect()
    }

    #[test]
    fn a_change_walks_every_key_in_batches() {
        let mut p = Propagation::start(2, Some("key_009".into()), 10);
        p.record(&ids(0..4), &[true; 4], 4);
        assert_eq!((p.keys_updated, p.after.as_deref()), (4, Some("key_003")));
        assert!(!p.complete());
        p.record(&ids(4..8), &[true; 4], 4);
        p.record(&ids(8..10), &[true; 2], 4);
        assert!(p.complete());
        assert_eq!(p.keys_updated, 10);
    }

    #[test]
    fn a_failure_is_retried_from_the_first_key_not_updated() {
        let mut p = Propagation::start(2, Some("key_009".into()), 10);
        p.record(&ids(0..4), &[true, false, true, true], 4);
        assert_eq!((p.keys_updated, p.after.as_deref()), (1, Some("key_000")));
        p.record(&ids(1..5), &[false, true, true, true], 4);
        assert_eq!((p.keys_updated, p.after.as_deref()), (1, Some("key_000")));
    }

    #[test]
    fn keys_deleted_meanwhile_do_not_keep_a_change_open() {
        let mut p = Propagation::start(3, Some("key_009".into()), 10);
        p.record(&ids(0..4), &[true; 4], 4);
        p.record(&ids(5..7), &[true; 2], 4);
        assert!(p.complete());
        assert_eq!(p.keys_updated, p.keys_total);
    }

    #[test]
    fn an_account_without_keys_is_done_at_once() {
        assert!(Propagation::start(1, None, 0).complete());
    }
}
