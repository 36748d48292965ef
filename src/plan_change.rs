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
