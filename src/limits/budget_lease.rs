//! Budget leases (in the sense of Gray & Cheriton, 1989): a key's object lends a
//! hot isolate a slice of the key's credits until a time, and the isolate admits
//! from it without a call. The key's object keeps every lease in its own ledger,
//! so nothing the leases admit can take any window past a limit:
//!
//! - granted at `t0` until `until`: the slice is added to the ledger at `t0`,
//!   as if all of it were used at once. A window of length W read at any moment
//!   `now` of the lease holds `t0` (now − t0 ≤ until − t0 < W, `duration` keeps
//!   leases shorter than every window), so it counts the whole slice;
//! - lapsed without a report (at `until`): the slice moves to `until`, the latest
//!   moment any of it can have been used, so every later window holding a use
//!   holds `until` too;
//! - reported (the isolate retired it and every request it admitted is settled):
//!   the slice leaves the ledger and what it charged is added at the report's
//!   time (no later than `until`), again no earlier than any use. The rest of the
//!   slice is free again at once.
//!
//! A slice whose holder never reports (the isolate died) stays counted at `until`
//! and leaves each window as time passes: for a total quota it is gone for good.

use super::ledger::{Ledger, StoredBucket};
use super::plan_lease;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One lease as its key's object keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lent {
    pub credits: u64,
    pub granted_at: i64,
    pub until: i64,
    /// Past `until` without a report: the slice is counted at `until`.
    #[serde(default)]
    pub lapsed: bool,
}

impl Lent {
    pub fn new(credits: u64, granted_at: i64, until: i64) -> Self {
        Lent {
            credits,
            granted_at,
            until,
            lapsed: false,
        }
    }

    /// Where the slice is in the ledger.
    fn counted_at(&self) -> i64 {
        if self.lapsed {
            self.until
        } else {
            self.granted_at
        }
    }
}

/// The leases a key's object has outstanding, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBook {
    pub lent: BTreeMap<u64, Lent>,
}

/// How long a lease lasts: `configured`, and shorter than the shortest window the
/// key is limited by (so every window read during the lease counts it whole).
pub fn duration(configured: i64, shortest_window: Option<i64>) -> i64 {
    match shortest_window {
        Some(w) => configured.min(w - 1).max(0),
        None => configured,
    }
}

/// How many credits to lend: what the isolate asks for, at most half of what
/// every limit has left (`headroom`), so other isolates find credits too; at
/// least one when anything is left.
pub fn size(want: u64, headroom: u64) -> u64 {
    if headroom == 0 {
        return 0;
    }
    want.min((headroom / 2).max(1))
}

/// A lease as its holder counts it: its term, the credits it took and did not
/// give back, whether it retired (no more admissions) and was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    term: Lent,
    pub used: u64,
    pub retired: bool,
    pub reported: bool,
}

/// What holds a lease (a key's or an account's, in an isolate).
pub trait Holder {
    fn id(&self) -> u64;
    fn holding(&self) -> &Holding;
    fn holding_mut(&mut self) -> &mut Holding;
}

impl Holding {
    pub fn new(credits: u64, granted_at: i64, until: i64) -> Self {
        Holding {
            term: Lent::new(credits, granted_at, until),
            used: 0,
            retired: false,
            reported: false,
        }
    }

    /// Whether it may still admit at the holder's `now` (`plan_lease::MARGIN_MS`
    /// early, for clocks that differ).
    pub fn live(&self, now: i64) -> bool {
        !self.retired && plan_lease::holds(self.term.until, now)
    }

    /// Past half its time or half its credits: time to ask for the next one.
    pub fn wants_renewal(&self, now: i64) -> bool {
        let t = &self.term;
        let half_time = t.until - now < (t.until - t.granted_at) / 2;
        half_time || self.used * 2 >= t.credits
    }

    /// Takes `cost` credits when it is live and has them; what is left after.
    pub fn take(&mut self, cost: u64, now: i64) -> Option<u64> {
        if !self.live(now) || cost == 0 || self.used + cost > self.term.credits {
            return None;
        }
        self.used += cost;
        Some(self.term.credits - self.used)
    }

    /// Credits of a request that was not charged come back.
    pub fn give_back(&mut self, cost: u64) {
        self.used = self.used.saturating_sub(cost);
    }
}

/// How long the book remembers a lease that lapsed without a report: a report
/// later than this (its holder died) is not awaited any more; its slice stays
/// counted at its end.
pub const FORGET_MS: i64 = 600_000;

impl LeaseBook {
    pub fn is_empty(&self) -> bool {
        self.lent.is_empty()
    }

    pub fn len(&self) -> usize {
        self.lent.len()
    }

    /// Lends `credits` from `now` until `until` as lease `id`.
    pub fn grant(
        &mut self,
        ledger: &mut Ledger,
        id: u64,
        credits: u64,
        now: i64,
        until: i64,
    ) -> Vec<StoredBucket> {
        self.lent.insert(
            id,
            Lent {
                credits,
                granted_at: now,
                until,
                lapsed: false,
            },
        );
        ledger.add(now, credits)
    }

    /// Moves the slice of every lease past its end without a report to its end,
    /// and forgets those lapsed `FORGET_MS` ago. Returns the buckets to write and whether the book changed.
    pub fn lapse(&mut self, ledger: &mut Ledger, now: i64) -> (Vec<StoredBucket>, bool) {
        let mut buckets = Vec::new();
        let mut changed = false;
        for lent in self.lent.values_mut() {
            if !lent.lapsed && lent.until <= now {
                buckets.extend(ledger.remove(lent.granted_at, lent.credits));
                buckets.extend(ledger.add(lent.until, lent.credits));
                lent.lapsed = true;
                changed = true;
            }
        }
        let held = self.lent.len();
        self.lent
            .retain(|_, l| !(l.lapsed && l.until + FORGET_MS <= now));
        (buckets, changed || self.lent.len() != held)
    }

    /// Lease `id` reported: `charged` of its slice were used. `None` when it is
    /// not outstanding (reported already): nothing is counted twice.
    pub fn settle(
        &mut self,
        ledger: &mut Ledger,
        id: u64,
        charged: u64,
        now: i64,
    ) -> Option<Vec<StoredBucket>> {
        let lent = self.lent.remove(&id)?;
        let mut buckets = ledger.remove(lent.counted_at(), lent.credits);
        if charged > 0 {
            buckets.extend(ledger.add(now.min(lent.until), charged.min(lent.credits)));
        }
        Some(buckets)
    }

    /// How long a change of the key made at `now` waits before it answers: until
    /// every lease granted under the old record has ended.
    pub fn wait_ms(&self, now: i64) -> i64 {
        self.lent
            .values()
            .map(|l| l.until - now)
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// Credits lent and not yet reported.
    pub fn outstanding(&self) -> u64 {
        self.lent.values().map(|l| l.credits).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::ledger::KEY_LEVELS;

    #[test]
    fn a_lease_is_shorter_than_every_window() {
        assert_eq!(duration(2_000, None), 2_000);
        assert_eq!(duration(2_000, Some(60_000)), 2_000);
        assert_eq!(duration(2_000, Some(1_000)), 999);
        assert_eq!(size(50, 1_000), 50);
        assert_eq!(size(50, 40), 20, "at most half of what is left");
        assert_eq!(size(50, 1), 1);
        assert_eq!(size(50, 0), 0);
    }

    #[test]
    fn a_slice_is_counted_from_its_grant_then_at_its_end_then_as_charged() {
        let mut ledger = Ledger::new(&KEY_LEVELS);
        let mut book = LeaseBook::default();
        book.grant(&mut ledger, 1, 10, 1_000, 3_000);
        assert_eq!(ledger.count(2_999, 60_000), 10);
        assert_eq!(book.wait_ms(1_500), 1_500);
        // Not reported by its end: counted at the end.
        let (_, changed) = book.lapse(&mut ledger, 3_000);
        assert!(changed);
        assert_eq!(ledger.count(3_000, 60_000), 10);
        assert_eq!(
            ledger.count(62_000, 60_000),
            10,
            "still in a window holding its end"
        );
        assert_eq!(ledger.count(63_001, 60_000), 0);
        // Reported late: 4 charged, the rest given back.
        book.settle(&mut ledger, 1, 4, 5_000);
        assert_eq!(ledger.count(5_000, 60_000), 4);
        assert_eq!(ledger.total, 4);
        assert!(book.settle(&mut ledger, 1, 4, 5_000).is_none(), "once");
        assert_eq!(book.wait_ms(5_000), 0);
    }

    #[test]
    fn a_lease_never_reported_is_forgotten_and_stays_counted_at_its_end() {
        let mut ledger = Ledger::new(&KEY_LEVELS);
        let mut book = LeaseBook::default();
        book.grant(&mut ledger, 1, 10, 1_000, 3_000);
        book.lapse(&mut ledger, 3_000);
        assert_eq!(
            book.lapse(&mut ledger, 3_000 + FORGET_MS - 1),
            (vec![], false)
        );
        assert_eq!(book.len(), 1);
        assert!(book.lapse(&mut ledger, 3_000 + FORGET_MS).1, "forgotten");
        assert!(book.is_empty());
        assert_eq!(ledger.total, 10, "its slice stays used");
        assert!(book.settle(&mut ledger, 1, 0, 3_000 + FORGET_MS).is_none());
    }

    #[test]
    fn a_holder_takes_what_is_left_until_its_margin_and_renews_past_half() {
        let mut h = Holding::new(10, 0, 2_000);
        assert!(!h.wants_renewal(1_000));
        assert_eq!(h.take(4, 1_000), Some(6));
        assert_eq!(h.take(7, 1_000), None, "more than is left");
        assert_eq!(h.take(0, 1_000), None, "nothing to take");
        assert!(!h.wants_renewal(1_000));
        assert_eq!(h.take(1, 1_000), Some(5));
        assert!(h.wants_renewal(1_000), "half its credits");
        h.give_back(3);
        assert_eq!(h.used, 2);
        assert!(
            Holding::new(10, 0, 2_000).wants_renewal(1_001),
            "half its time"
        );
        assert_eq!(h.take(1, 2_000 - plan_lease::MARGIN_MS), None, "its margin");
        h.retired = true;
        assert_eq!(h.take(1, 1_000), None, "retired");
    }

    /// Random traffic from several holders and the key's own object against a
    /// limit: in every window, the credits really used never exceed it.
    #[test]
    fn random_traffic_never_over_admits_in_any_window() {
        for start in 1..=20_u64 {
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(start);
            let mut rand = move |n: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % n.max(1)
            };
            for (window, limit) in [(1_000, 20), (10_000, 50), (60_000, 200)] {
                let lease_ms = duration(2_000, Some(window));
                let mut ledger = Ledger::new(&KEY_LEVELS);
                let mut book = LeaseBook::default();
                // (id, slice, used, until, reports at)
                let mut holders: Vec<(u64, u64, u64, i64, Option<i64>)> = Vec::new();
                let mut uses: Vec<i64> = Vec::new();
                let mut next_id = 1;
                let mut now = 0;
                while now < 20 * window {
                    now += 1 + rand(window as u64 / 50) as i64;
                    let _ = book.lapse(&mut ledger, now);
                    // Holders report the leases whose report is due.
                    holders.retain(|&(id, _, used, _, report)| match report {
                        Some(at) if at <= now => {
                            book.settle(&mut ledger, id, used, now);
                            false
                        }
                        _ => true,
                    });
                    match rand(4) {
                        // The key's own object admits a few.
                        0 => {
                            for _ in 0..=rand(4) {
                                if ledger.time_until_fits(now, window, limit, 1) == Some(0) {
                                    ledger.add(now, 1);
                                    uses.push(now);
                                }
                            }
                        }
                        // A lease is asked for.
                        1 => {
                            let headroom = limit.saturating_sub(ledger.count(now, window));
                            let credits = size(1 + rand(30), headroom);
                            if credits > 0 {
                                let until = now + lease_ms;
                                book.grant(&mut ledger, next_id, credits, now, until);
                                // Some holders retire theirs early (a renewal), some
                                // report after the end, some never.
                                let at = until - lease_ms / 2 + rand(3_000) as i64;
                                let report = (rand(3) > 0).then_some(at);
                                holders.push((next_id, credits, 0, until, report));
                                next_id += 1;
                            }
                        }
                        // Holders admit from their slices until their end, many of
                        // them only near it (the case that moving a lapsed slice to
                        // its end, and charging at the report, exist for).
                        _ => {
                            for h in holders.iter_mut() {
                                let late = h.0 % 2 == 0 && now < h.3 - lease_ms / 4;
                                if now < h.3 && h.2 < h.1 && !late && rand(2) == 0 {
                                    h.2 += 1;
                                    uses.push(now);
                                }
                            }
                        }
                    }
                    ledger.prune(now);
                }
                uses.sort();
                for (i, &start) in uses.iter().enumerate() {
                    let inside = uses[i..]
                        .iter()
                        .take_while(|&&u| u < start + window)
                        .count() as u64;
                    assert!(
                        inside <= limit,
                        "{inside} used in a window of {window} ms from {start}, limit {limit}"
                    );
                }
                assert!(
                    uses.len() as u64 > limit,
                    "the traffic reached the limit ({} uses)",
                    uses.len()
                );
            }
        }
    }
}
