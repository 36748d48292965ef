//! Exact rolling-window counting with bounded memory: per-resolution buckets of
//! credits consumed. A window of length W at time `now` counts every bucket that
//! may hold a credit inside `(now - W, now]`, so the count is never below the true
//! one and a limit is never exceeded in any window of length W. A bucket's last
//! possible credit is its last millisecond or the ledger's latest credit, whichever
//! is earlier: every credit counted now leaves every window of length W within W.
//! `time_until_fits` is the exact moment the oldest counted buckets leave the
//! window: the Retry-After.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One resolution: buckets of `granularity` ms, kept for `retention` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub granularity: i64,
    pub retention: i64,
}

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// What a key keeps: enough for per-second up to 30-day windows and the breaker.
pub const KEY_LEVELS: [Level; 5] = [
    Level {
        granularity: 100,
        retention: SECOND,
    },
    Level {
        granularity: SECOND,
        retention: 2 * MINUTE,
    },
    Level {
        granularity: MINUTE,
        retention: DAY,
    },
    Level {
        granularity: 10 * MINUTE,
        retention: 7 * DAY,
    },
    Level {
        granularity: HOUR,
        retention: 30 * DAY,
    },
];

/// What an account keeps: per-second and per-minute plan limits.
pub const ACCOUNT_LEVELS: [Level; 2] = [
    Level {
        granularity: 100,
        retention: SECOND,
    },
    Level {
        granularity: SECOND,
        retention: MINUTE,
    },
];

/// A bucket as storage keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBucket {
    pub level: usize,
    pub start: i64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Buckets {
    level: Level,
    /// (start, credits), oldest first.
    queue: VecDeque<(i64, u64)>,
    /// Sum of `queue`, so whole-level windows cost no scan.
    sum: u64,
}

impl Buckets {
    /// The last millisecond the bucket starting at `s` can hold a credit from.
    fn last(&self, s: i64, latest: Option<i64>) -> i64 {
        let end = s + self.level.granularity - 1;
        latest.map_or(end, |l| end.min(l))
    }

    /// Credits in buckets that may hold one in `(now - window, now]`. A window
    /// short against the level's retention is summed from the newest end; a long
    /// one is the level's sum less the few stale buckets at the front.
    fn count(&self, now: i64, window: i64, latest: Option<i64>) -> u64 {
        if window * 2 < self.level.retention {
            return self
                .queue
                .iter()
                .rev()
                .skip_while(|(s, _)| *s > now)
                .take_while(|(s, _)| self.last(*s, latest) > now - window)
                .map(|(_, c)| c)
                .sum();
        }
        let stale: u64 = self
            .queue
            .iter()
            .take_while(|(s, _)| self.last(*s, latest) <= now - window)
            .map(|(_, c)| c)
            .sum();
        let future: u64 = self
            .queue
            .iter()
            .rev()
            .take_while(|(s, _)| *s > now)
            .map(|(_, c)| c)
            .sum();
        self.sum.saturating_sub(stale + future)
    }

    /// Buckets counted in `(now - window, now]`, oldest first, with their last
    /// possible credit's time.
    fn in_window(
        &self,
        now: i64,
        window: i64,
        latest: Option<i64>,
    ) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.queue
            .iter()
            .skip_while(move |(s, _)| self.last(*s, latest) <= now - window)
            .take_while(move |(s, _)| *s <= now)
            .map(move |(s, c)| (self.last(*s, latest), *c))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    levels: Vec<Buckets>,
    /// All-time credits (never pruned).
    pub total: u64,
    /// When the newest credit was added; `None` before the first one, and after a
    /// restore from storage that did not keep it (each bucket's end stands then).
    pub latest: Option<i64>,
}

impl Ledger {
    pub fn new(levels: &[Level]) -> Self {
        Ledger {
            levels: levels
                .iter()
                .map(|l| Buckets {
                    level: *l,
                    queue: VecDeque::new(),
                    sum: 0,
                })
                .collect(),
            total: 0,
            latest: None,
        }
    }

    /// Rebuilds from storage; buckets of unknown levels are ignored. Without a
    /// stored `latest`, each bucket's last millisecond stands for it.
    pub fn restore(
        levels: &[Level],
        total: u64,
        latest: Option<i64>,
        mut buckets: Vec<StoredBucket>,
    ) -> Self {
        let mut ledger = Ledger::new(levels);
        ledger.total = total;
        ledger.latest = latest;
        buckets.sort_by_key(|b| (b.level, b.start));
        for b in buckets {
            if let Some(l) = ledger.levels.get_mut(b.level) {
                l.queue.push_back((b.start, b.count));
                l.sum = l.sum.saturating_add(b.count);
            }
        }
        ledger
    }

    /// Adds `n` credits at time `at`; returns the buckets to write.
    pub fn add(&mut self, at: i64, n: u64) -> Vec<StoredBucket> {
        self.total = self.total.saturating_add(n);
        // Credits are added at the object's present: none stored is later.
        self.latest = Some(self.latest.map_or(at, |l| l.max(at)));
        self.change(at, |c| c.saturating_add(n))
    }

    /// Takes back `n` credits added at `at` (a refund); returns the buckets to write.
    /// A level whose bucket for `at` was already pruned has nothing to give back:
    /// no empty bucket is recreated in the past.
    pub fn remove(&mut self, at: i64, n: u64) -> Vec<StoredBucket> {
        self.total = self.total.saturating_sub(n);
        let mut out = Vec::with_capacity(self.levels.len());
        for (i, l) in self.levels.iter_mut().enumerate() {
            let g = l.level.granularity;
            let start = at.div_euclid(g) * g;
            let Some((_, c)) = l.queue.iter_mut().rev().find(|(s, _)| *s == start) else {
                continue;
            };
            let old = *c;
            *c = old.saturating_sub(n);
            l.sum = l.sum.saturating_sub(old - *c);
            out.push(StoredBucket {
                level: i,
                start,
                count: *c,
            });
        }
        out
    }

    fn change(&mut self, at: i64, f: impl Fn(u64) -> u64) -> Vec<StoredBucket> {
        let mut out = Vec::with_capacity(self.levels.len());
        for (i, l) in self.levels.iter_mut().enumerate() {
            let g = l.level.granularity;
            let start = at.div_euclid(g) * g;
            // Nearly always the newest bucket: search from the back.
            let pos = l.queue.len()
                - l.queue
                    .iter()
                    .rev()
                    .take_while(|(s, _)| *s >= start)
                    .count();
            let (old, new) = match l.queue.get_mut(pos) {
                Some((s, c)) if *s == start => {
                    let old = *c;
                    *c = f(old);
                    (old, *c)
                }
                _ => {
                    l.queue.insert(pos, (start, f(0)));
                    (0, f(0))
                }
            };
            l.sum = l.sum.saturating_sub(old).saturating_add(new);
            out.push(StoredBucket {
                level: i,
                start,
                count: new,
            });
        }
        out
    }

    /// Live buckets across all levels.
    pub fn bucket_count(&self) -> usize {
        self.levels.iter().map(|l| l.queue.len()).sum()
    }

    /// Drops buckets past their level's retention at `now`; returns, per level, the
    /// bucket start below which storage may delete.
    pub fn prune(&mut self, now: i64) -> Vec<(usize, i64)> {
        let mut cut = Vec::new();
        for (i, l) in self.levels.iter_mut().enumerate() {
            let oldest_kept = now - l.level.retention - l.level.granularity;
            let before = l.queue.len();
            while let Some(&(s, c)) = l.queue.front() {
                if s >= oldest_kept {
                    break;
                }
                l.sum = l.sum.saturating_sub(c);
                l.queue.pop_front();
            }
            if l.queue.len() != before {
                cut.push((i, oldest_kept));
            }
        }
        cut
    }

    /// The finest level that keeps a whole window of `window` ms.
    fn level_for(&self, window: i64) -> Option<&Buckets> {
        self.levels.iter().find(|l| l.level.retention >= window)
    }

    /// Credits counted in the rolling window of `window` ms ending at `now`.
    pub fn count(&self, now: i64, window: i64) -> u64 {
        self.level_for(window)
            .map_or(0, |l| l.count(now, window, self.latest))
    }

    /// Credits in buckets overlapping `[from, to)`, read at the finest level that
    /// still keeps `from` at `now`. A bucket straddling `from` counts whole: the
    /// requests of a key's first moments are not lost to bucket alignment.
    pub fn count_between(&self, now: i64, from: i64, to: i64) -> u64 {
        let Some(l) = self.level_for(now - from) else {
            return 0;
        };
        let g = l.level.granularity;
        let before: u64 = l
            .queue
            .iter()
            .take_while(|(s, _)| *s + g <= from)
            .map(|(_, c)| c)
            .sum();
        let after: u64 = l
            .queue
            .iter()
            .rev()
            .take_while(|(s, _)| *s >= to)
            .map(|(_, c)| c)
            .sum();
        l.sum.saturating_sub(before + after)
    }

    /// Milliseconds from `now` until `cost` more credits fit under `limit` in the
    /// window: 0 if they fit now; `None` if they never can (cost above the limit).
    pub fn time_until_fits(&self, now: i64, window: i64, limit: u64, cost: u64) -> Option<i64> {
        if cost > limit {
            return None;
        }
        let Some(l) = self.level_for(window) else {
            return Some(0);
        };
        let mut count = l.count(now, window, self.latest);
        if count + cost <= limit {
            return Some(0);
        }
        // A bucket whose last credit may be at `last` stops counting once
        // last <= t - window. Never past the window: nothing counted is later
        // than now (the clamp covers a clock read earlier than a stored credit).
        for (last, c) in l.in_window(now, window, self.latest) {
            count -= c.min(count);
            if count + cost <= limit {
                return Some((last + window - now).clamp(1, window));
            }
        }
        Some(window)
    }

    /// Milliseconds until the oldest counted credit leaves the window (0 if none).
    pub fn reset_in(&self, now: i64, window: i64) -> i64 {
        self.level_for(window)
            .and_then(|l| l.in_window(now, window, self.latest).find(|(_, c)| *c > 0))
            .map_or(0, |(last, _)| (last + window - now).clamp(0, window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // a whole minute

    #[test]
    fn counts_inside_the_window_only() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0, 1);
        l.add(T0 + 30 * SECOND, 2);
        assert_eq!(l.count(T0 + 30 * SECOND, MINUTE), 3);
        // The first bucket [T0, T0+1s) may hold a credit up to T0 + 999 ms: it
        // leaves the 60 s window at T0 + 60.999 s.
        assert_eq!(l.count(T0 + 61 * SECOND - 2, MINUTE), 3);
        assert_eq!(l.count(T0 + 61 * SECOND - 1, MINUTE), 2);
        assert_eq!(l.total, 3);
    }

    #[test]
    fn retry_after_is_when_the_oldest_bucket_leaves() {
        let mut l = Ledger::new(&KEY_LEVELS);
        for i in 0..5 {
            l.add(T0 + i * 10 * SECOND, 1);
        }
        let now = T0 + 45 * SECOND;
        assert_eq!(
            l.time_until_fits(now, MINUTE, 5, 1),
            Some(61 * SECOND - 1 - 45 * SECOND)
        );
        // Needing two free slots waits for the second oldest as well.
        assert_eq!(
            l.time_until_fits(now, MINUTE, 5, 2),
            Some(71 * SECOND - 1 - 45 * SECOND)
        );
        assert_eq!(l.time_until_fits(now, MINUTE, 6, 1), Some(0));
        assert_eq!(l.time_until_fits(now, MINUTE, 1, 2), None);
        // At that moment it really fits.
        let at = now + 16 * SECOND - 1;
        assert_eq!(l.time_until_fits(at, MINUTE, 5, 1), Some(0));
        assert_eq!(l.time_until_fits(at - 1, MINUTE, 5, 1), Some(1));
        assert_eq!(l.reset_in(now, MINUTE), 16 * SECOND - 1);
    }

    #[test]
    fn never_admits_more_than_the_limit_in_any_true_window() {
        // Greedy admission at 50 ms steps for 3 minutes under 10/min.
        let mut l = Ledger::new(&KEY_LEVELS);
        let mut admitted: Vec<i64> = Vec::new();
        let mut t = T0 + 7;
        while t < T0 + 3 * MINUTE {
            if l.time_until_fits(t, MINUTE, 10, 1) == Some(0) {
                l.add(t, 1);
                admitted.push(t);
            }
            t += 50;
        }
        for &a in &admitted {
            let in_true_window = admitted
                .iter()
                .filter(|&&b| b > a - MINUTE && b <= a)
                .count();
            assert!(
                in_true_window <= 10,
                "window ending {a} holds {in_true_window}"
            );
        }
        assert_eq!(admitted.len(), 30, "one full limit per minute");
    }

    #[test]
    fn per_second_windows_use_100ms_buckets() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0 + 50, 1);
        l.add(T0 + 150, 1);
        // [T0, T0+100) may hold a credit up to T0 + 99.
        assert_eq!(
            l.time_until_fits(T0 + 200, SECOND, 2, 1),
            Some(T0 + 99 + SECOND - (T0 + 200))
        );
        assert_eq!(l.count(T0 + 1100, SECOND), 1);
    }

    #[test]
    fn long_windows_use_coarse_levels() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0, 3);
        assert_eq!(l.count(T0 + 23 * HOUR, DAY), 3);
        assert_eq!(l.count(T0 + DAY + MINUTE, DAY), 0);
        assert_eq!(l.count(T0 + 6 * DAY, 7 * DAY), 3);
        assert_eq!(l.count(T0 + 29 * DAY, 30 * DAY), 3);
        assert_eq!(l.count(T0 + 30 * DAY + HOUR, 30 * DAY), 0);
        // The minute bucket's only credit is at T0: it leaves a day after that,
        // not a day after the bucket's end.
        assert_eq!(l.count(T0 + DAY - 1, DAY), 3);
        assert_eq!(l.count(T0 + DAY, DAY), 0);
        let wait = l.time_until_fits(T0 + HOUR, DAY, 3, 1).unwrap();
        assert_eq!(wait, DAY - HOUR);
    }

    /// Issue 11: Retry-After is never past the window and never early, for every
    /// window a key or an account has, with credits at any offset in a bucket.
    #[test]
    fn retry_after_never_exceeds_the_window_nor_comes_early() {
        for window in [SECOND, MINUTE, HOUR, DAY, 7 * DAY, 30 * DAY] {
            for offset in [0, 1, 37, 99, 999, 59_999, 3_599_999] {
                let mut l = Ledger::new(&KEY_LEVELS);
                let now = T0 + offset;
                l.add(now, 2);
                for later in [0, 1, window / 3, window - 1] {
                    let t = now + later;
                    let wait = l.time_until_fits(t, window, 2, 1).unwrap();
                    assert!(
                        wait >= 1 && wait <= window,
                        "{window} {offset} {later}: {wait}"
                    );
                    assert_eq!(l.time_until_fits(t + wait, window, 2, 1), Some(0));
                    assert!(l.time_until_fits(t + wait - 1, window, 2, 1) != Some(0));
                    assert!(l.reset_in(t, window) <= window);
                }
            }
        }
    }

    #[test]
    fn refunds_take_back_exactly() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0, 1);
        l.add(T0 + 10, 1);
        l.remove(T0 + 10, 1);
        assert_eq!(l.count(T0 + 20, MINUTE), 1);
        assert_eq!(l.total, 1);
        // A refund of an older time after newer buckets exist.
        l.add(T0 + 5 * SECOND, 1);
        l.remove(T0, 1);
        assert_eq!(l.count(T0 + 5 * SECOND, MINUTE), 1);
    }

    #[test]
    fn prune_and_restore_round_trip() {
        let mut l = Ledger::new(&KEY_LEVELS);
        let mut written = Vec::new();
        written.extend(l.add(T0, 2));
        written.extend(l.add(T0 + 3 * MINUTE, 1));
        let cut = l.prune(T0 + 3 * MINUTE);
        assert!(
            cut.iter().any(|(level, _)| *level == 1),
            "old 1 s buckets dropped"
        );
        // Storage applies the same writes; restoring gives the same counts.
        let mut latest = std::collections::BTreeMap::new();
        for b in written {
            latest.insert((b.level, b.start), b);
        }
        let restored = Ledger::restore(&KEY_LEVELS, 3, l.latest, latest.into_values().collect());
        assert_eq!(
            restored.count(T0 + 3 * MINUTE, DAY),
            l.count(T0 + 3 * MINUTE, DAY)
        );
        assert_eq!(restored.total, 3);
    }

    #[test]
    fn running_sums_match_a_full_scan() {
        let mut l = Ledger::new(&KEY_LEVELS);
        let mut t = T0;
        let mut x: u64 = 1;
        for step in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t += (x >> 33) as i64 % 40_000;
            l.add(t, 1 + (x >> 60));
            if step % 7 == 0 {
                l.remove(t - 500, 1);
            }
            l.prune(t);
            for w in [SECOND, MINUTE, DAY, 7 * DAY, 30 * DAY] {
                let lvl = l.level_for(w).unwrap();
                let g = lvl.level.granularity;
                let scan: u64 = lvl
                    .queue
                    .iter()
                    .filter(|(s, _)| *s + g > t - w && *s <= t)
                    .map(|(_, c)| c)
                    .sum();
                assert_eq!(l.count(t, w), scan, "window {w} at step {step}");
            }
        }
    }

    #[test]
    fn count_between_reads_history() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0, 4);
        l.add(T0 + 10 * MINUTE, 2);
        assert_eq!(l.count_between(T0 + 20 * MINUTE, T0, T0 + 5 * MINUTE), 4);
        assert_eq!(l.count_between(T0 + 20 * MINUTE, T0, T0 + 11 * MINUTE), 6);
        // From the middle of the first bucket: that bucket still counts.
        assert_eq!(
            l.count_between(T0 + 20 * MINUTE, T0 + 30 * SECOND, T0 + 5 * MINUTE),
            4
        );
    }
}
