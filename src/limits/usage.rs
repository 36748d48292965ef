//! A key's usage over time, for the dashboard's chart and billing: admitted
//! requests and the credits they cost, per UTC hour, kept 30 days. Read as 24
//! hours or 30 days, or as the hours or days of a range. (Tests shorten the hour:
//! `TEST_USAGE_HOUR_SECONDS`; a day is always 24 of them.)

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;
/// How long hours are kept.
pub const RETENTION: i64 = 30 * DAY;

/// What one hour holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub requests: u64,
    pub credits: u64,
}

/// A key's hours, keyed by their start (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    hours: BTreeMap<i64, Tally>,
    /// The length of an hour (ms): `HOUR` but under test.
    hour: i64,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            hours: BTreeMap::new(),
            hour: HOUR,
        }
    }
}

/// The two views of `GET /keys/{id}/usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// The last 24 hours, hour by hour.
    Hour,
    /// The last 30 days, day by day (UTC).
    Day,
}

impl Resolution {
    /// The length of one bucket, for an hour of `hour` ms.
    pub fn step(self, hour: i64) -> i64 {
        match self {
            Resolution::Hour => hour,
            Resolution::Day => 24 * hour,
        }
    }

    /// `resolution` of the query: `hour` (the default) or `day`.
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v {
            None | Some("hour") => Ok(Resolution::Hour),
            Some("day") => Ok(Resolution::Day),
            Some(_) => Err(ApiError::field("resolution", "must be hour or day")),
        }
    }
}

/// One point of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub start: i64,
    pub requests: u64,
    pub credits: u64,
}

impl Usage {
    pub fn restore(rows: impl IntoIterator<Item = (i64, Tally)>) -> Self {
        Usage {
            hours: rows.into_iter().collect(),
            ..Usage::default()
        }
    }

    /// Counts in hours of `hour` ms (the configuration's).
    pub fn set_hour(&mut self, hour: i64) {
        self.hour = hour.max(1);
    }

    fn hour_of(&self, at: i64) -> i64 {
        at.div_euclid(self.hour) * self.hour
    }

    /// Counts one admitted request of `credits` at `at`; returns the hour's row.
    pub fn add(&mut self, at: i64, credits: u64) -> (i64, Tally) {
        let hour = self.hour_of(at);
        let t = self.hours.entry(hour).or_default();
        t.requests += 1;
        t.credits += credits;
        (hour, *t)
    }

    /// Takes back a request counted at `at` (a refund); returns the hour's row.
    pub fn remove(&mut self, at: i64, credits: u64) -> (i64, Tally) {
        let hour = self.hour_of(at);
        let t = self.hours.entry(hour).or_default();
        t.requests = t.requests.saturating_sub(1);
        t.credits = t.credits.saturating_sub(credits);
        (hour, *t)
    }

    /// Drops hours older than the retention; returns the cut-off when any went.
    pub fn prune(&mut self, now: i64) -> Option<i64> {
        let cutoff = self.hour_of(now - RETENTION / HOUR * self.hour);
        let stale = self.hours.keys().next().is_some_and(|h| *h < cutoff);
        if stale {
            self.hours = self.hours.split_off(&cutoff);
            Some(cutoff)
        } else {
            None
        }
    }

    /// The buckets (hours or UTC days) starting in `[from, to)` that hold any use,
    /// oldest first; `from` is taken back to the start of its bucket.
    pub fn between(&self, from: i64, to: i64, resolution: Resolution) -> Vec<Point> {
        let step = resolution.step(self.hour);
        let first = from.div_euclid(step) * step;
        let mut out: Vec<Point> = Vec::new();
        for (hour, t) in self.hours.range(first..to.max(first)) {
            let start = hour.div_euclid(step) * step;
            match out.last_mut() {
                Some(p) if p.start == start => {
                    p.requests += t.requests;
                    p.credits += t.credits;
                }
                _ => out.push(Point {
                    start,
                    requests: t.requests,
                    credits: t.credits,
                }),
            }
        }
        out.retain(|p| p.requests > 0 || p.credits > 0);
        out
    }

    /// The series ending with the current hour (24 points) or day (30 points).
    pub fn series(&self, now: i64, resolution: Resolution) -> Vec<Point> {
        let step = resolution.step(self.hour);
        let points = match resolution {
            Resolution::Hour => 24,
            Resolution::Day => 30,
        };
        let last = now.div_euclid(step) * step;
        (0..points)
            .map(|i| {
                let start = last - (points - 1 - i) * step;
                let (requests, credits) = self
                    .hours
                    .range(start..start + step)
                    .fold((0, 0), |(r, c), (_, t)| (r + t.requests, c + t.credits));
                Point {
                    start,
                    requests,
                    credits,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2027-01-15T10:20:00Z
    const NOW: i64 = 1_800_000_000_000 - 1_800_000_000_000 % DAY + 10 * HOUR + 20 * 60_000;

    #[test]
    fn between_lists_the_used_buckets_of_a_range() {
        let mut u = Usage::default();
        u.add(NOW, 1);
        u.add(NOW - 60_000, 5);
        u.add(NOW - 2 * HOUR, 2);
        u.add(NOW - 3 * DAY, 7);
        let hours = u.between(NOW - 3 * HOUR, NOW + 1, Resolution::Hour);
        let hour = NOW - NOW % HOUR;
        let point = |start, requests, credits| Point {
            start,
            requests,
            credits,
        };
        assert_eq!(hours, vec![point(hour - 2 * HOUR, 1, 2), point(hour, 2, 6)]);
        let days = u.between(NOW - 4 * DAY, NOW + 1, Resolution::Day);
        assert_eq!(days.iter().map(|p| p.requests).sum::<u64>(), 4);
        assert_eq!(days.len(), 2);
        assert!(u
            .between(NOW + HOUR, NOW + 2 * HOUR, Resolution::Hour)
            .is_empty());
        assert!(
            u.between(NOW, NOW - DAY, Resolution::Hour).is_empty(),
            "an empty range"
        );
    }

    #[test]
    fn hours_add_up_and_series_end_now() {
        let mut u = Usage::default();
        u.add(NOW, 1);
        u.add(NOW - 60_000, 5);
        u.add(NOW - 2 * HOUR, 2);
        u.add(NOW - 3 * DAY, 7);
        let hours = u.series(NOW, Resolution::Hour);
        assert_eq!(hours.len(), 24);
        let last = hours.last().copied().unwrap();
        assert_eq!(
            (last.start, last.requests, last.credits),
            (NOW - 20 * 60_000, 2, 6)
        );
        assert_eq!(hours[21].requests, 1, "two hours ago");
        assert_eq!(
            hours.iter().map(|p| p.requests).sum::<u64>(),
            3,
            "3 days ago is outside"
        );
        let days = u.series(NOW, Resolution::Day);
        assert_eq!(days.len(), 30);
        assert_eq!(days.last().unwrap().start, NOW - 10 * HOUR - 20 * 60_000);
        assert_eq!((days[29].requests, days[29].credits), (3, 8));
        assert_eq!((days[26].requests, days[26].credits), (1, 7));
    }

    #[test]
    fn refunds_and_pruning() {
        let mut u = Usage::default();
        u.add(NOW, 3);
        assert_eq!(u.remove(NOW, 3).1, Tally::default());
        u.add(NOW - RETENTION - 2 * HOUR, 1);
        assert_eq!(u.prune(NOW), Some(u.hour_of(NOW - RETENTION)));
        assert_eq!(u.prune(NOW), None);
        assert_eq!(
            u.series(NOW, Resolution::Day)
                .iter()
                .map(|p| p.requests)
                .sum::<u64>(),
            0
        );
    }

    #[test]
    fn resolution_is_named_when_wrong() {
        assert_eq!(Resolution::parse(None), Ok(Resolution::Hour));
        assert_eq!(Resolution::parse(Some("day")), Ok(Resolution::Day));
        assert!(matches!(
            Resolution::parse(Some("minute")),
            Err(ApiError::InvalidField { field, .. }) if field == "resolution"
        ));
    }
}
