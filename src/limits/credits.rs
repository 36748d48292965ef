//! Credits: a prepaid balance of a key or an account, spent by the route cost of
//! each admitted request (row 16), with an optional refill on a calendar (every
//! UTC day, or every month on a day, the month's last day when it has no such
//! day). A refill sets the balance to its amount (what was left does not carry
//! over). Time is passed in; arithmetic only.
//!
//! A request's credits are taken at admission, with its reservation, and given
//! back when it is not charged — unless a refill or a `set` came in between:
//! what it took was from a balance that no longer exists.

use crate::error::ApiError;
use crate::time_fmt::{retry_after, to_rfc3339};
use chrono::{DateTime, Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The largest balance or amount: what a JSON number holds exactly.
pub const MAX_CREDITS: u64 = 9_007_199_254_740_991;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    pub amount: u64,
    pub interval: Interval,
    /// The day of the month of a monthly refill (1–31; none: the 1st).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u8>,
}

/// A balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credits {
    pub remaining: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
    /// When the balance was last refilled or set (Unix ms): credits taken before
    /// it are not given back, and the next refill is the first after it.
    pub since: i64,
    /// The balance of that refill or set, which `CREDIT_ALERT_PERCENTS` measure.
    pub baseline: u64,
    /// The percents announced since, until the balance climbs back above them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerted: Vec<u32>,
}

/// `POST …/credits`: what to do with the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Increment,
    Decrement,
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub op: Op,
    pub amount: u64,
}

impl Credits {
    pub fn new(remaining: u64, refill: Option<Refill>, now: i64) -> Self {
        Credits {
            remaining,
            refill,
            since: now,
            baseline: remaining,
            alerted: Vec::new(),
        }
    }

    /// When the next refill is due, if there is one.
    pub fn next_refill_at(&self) -> Option<i64> {
        self.refill.map(|r| next_boundary(r, self.since))
    }

    /// Refills the balance when a refill fell due at or before `now`: whether it did.
    pub fn refill(&mut self, now: i64) -> bool {
        let Some(r) = self.refill else { return false };
        if now < next_boundary(r, self.since) {
            return false;
        }
        self.since = last_boundary(r, now);
        self.remaining = r.amount;
        self.baseline = r.amount;
        self.alerted.clear();
        true
    }

    /// Takes `cost` for a request admitted at `now`; when the balance cannot pay,
    /// row 16 with the seconds to the next refill.
    pub fn spend(&mut self, cost: u64, now: i64) -> Result<(), ApiError> {
        if self.remaining < cost {
            return Err(self.exhausted(now));
        }
        self.remaining -= cost;
        Ok(())
    }

    /// Whether `cost` more could be paid now (nothing is taken).
    pub fn covers(&self, cost: u64) -> bool {
        self.remaining >= cost
    }

    pub fn exhausted(&self, now: i64) -> ApiError {
        ApiError::CreditsExhausted {
            retry_after: self.next_refill_at().map(|at| retry_after(at - now)),
        }
    }

    /// Gives back what a request admitted at `at` took, unless the balance was
    /// refilled or set since.
    pub fn refund(&mut self, at: i64, cost: u64) {
        if at >= self.since {
            self.remaining = self.remaining.saturating_add(cost).min(MAX_CREDITS);
        }
    }

    /// An admin's change. `decrement` stops at 0 (a balance is never negative).
    pub fn apply(&mut self, change: Change, now: i64) -> Result<(), ApiError> {
        match change.op {
            Op::Set => {
                self.remaining = change.amount;
                self.baseline = change.amount;
                self.since = now;
                self.alerted.clear();
            }
            Op::Increment => {
                self.remaining = self
                    .remaining
                    .checked_add(change.amount)
                    .filter(|r| *r <= MAX_CREDITS)
                    .ok_or_else(|| {
                        // A well-formed amount the balance cannot take: its state refuses.
                        ApiError::Conflict {
                            reason: format!("the increment takes the balance past {MAX_CREDITS}"),
                        }
                    })?;
            }
            Op::Decrement => self.remaining = self.remaining.saturating_sub(change.amount),
        }
        Ok(())
    }

    /// The percents of `CREDIT_ALERT_PERCENTS` the balance has fallen to since
    /// they were last announced (each once until the balance climbs back above it).
    pub fn crossed(&mut self, percents: &[u32]) -> Vec<u32> {
        let at_or_below =
            |p: u32| u128::from(self.remaining) * 100 <= u128::from(self.baseline) * u128::from(p);
        self.alerted.retain(|p| at_or_below(*p));
        if self.baseline == 0 {
            return Vec::new();
        }
        let new: Vec<u32> = percents
            .iter()
            .copied()
            .filter(|p| at_or_below(*p) && !self.alerted.contains(p))
            .collect();
        self.alerted.extend(&new);
        new
    }

    /// What `GET` shows.
    pub fn view(&self) -> Value {
        json!({
            "remaining": self.remaining,
            "refill": self.refill,
            "next_refill_at": self.next_refill_at().map(to_rfc3339),
        })
    }

    /// Audit details and `credits.low` data.
    pub fn details(&self) -> Value {
        json!({
            "remaining": self.remaining,
            "baseline": self.baseline,
            "next_refill_at": self.next_refill_at().map(to_rfc3339),
        })
    }
}

/// The first refill time after `after`.
fn next_boundary(r: Refill, after: i64) -> i64 {
    match r.interval {
        Interval::Day => after.div_euclid(DAY_MS) * DAY_MS + DAY_MS,
        Interval::Month => {
            let (y, m) = year_month(after);
            let here = month_boundary(y, m, r.day);
            if here > after {
                here
            } else {
                let (y, m) = next_month(y, m);
                month_boundary(y, m, r.day)
            }
        }
    }
}

/// The latest refill time at or before `now`.
fn last_boundary(r: Refill, now: i64) -> i64 {
    match r.interval {
        Interval::Day => now.div_euclid(DAY_MS) * DAY_MS,
        Interval::Month => {
            let (y, m) = year_month(now);
            let here = month_boundary(y, m, r.day);
            if here <= now {
                here
            } else {
                let (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
                month_boundary(y, m, r.day)
            }
        }
    }
}

fn year_month(ms: i64) -> (i32, u32) {
    let d = DateTime::from_timestamp_millis(ms).unwrap_or_default();
    (d.year(), d.month())
}

fn next_month(y: i32, m: u32) -> (i32, u32) {
    if m == 12 {
        (y + 1, 1)
    } else {
        (y, m + 1)
    }
}

/// Midnight UTC of `day` in the month (its last day when it has fewer).
fn month_boundary(y: i32, m: u32, day: Option<u8>) -> i64 {
    let (ny, nm) = next_month(y, m);
    let last = NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day());
    let day = u32::from(day.unwrap_or(1)).clamp(1, last);
    NaiveDate::from_ymd_opt(y, m, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

/// A whole number, also when sent as `5.0`.
fn whole(v: &Value, field: &str, min: u64) -> Result<u64, ApiError> {
    let whole = v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_CREDITS as f64)
            .map(|f| f as u64)
    });
    whole
        .filter(|n| (min..=MAX_CREDITS).contains(n))
        .ok_or_else(|| {
            ApiError::field(
                field,
                format!("must be a whole number from {min} to {MAX_CREDITS}"),
            )
        })
}

fn object<'a>(
    v: &'a Value,
    field: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::field(field, "must be an object"))?;
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::field(
            &format!("{field}.{k}"),
            "is not a known field",
        ));
    }
    Ok(obj)
}

/// A key's or account's `credits` as given: `{"remaining", "refill": {"amount",
/// "interval", "day"}}` (`refill` optional or null).
pub fn parse(v: &Value, now: i64) -> Result<Credits, ApiError> {
    let obj = object(v, "credits", &["remaining", "refill"])?;
    let remaining = whole(
        obj.get("remaining").unwrap_or(&Value::Null),
        "credits.remaining",
        0,
    )?;
    let refill = match obj.get("refill") {
        None | Some(Value::Null) => None,
        Some(r) => Some(parse_refill(r)?),
    };
    Ok(Credits::new(remaining, refill, now))
}

fn parse_refill(v: &Value) -> Result<Refill, ApiError> {
    let obj = object(v, "credits.refill", &["amount", "interval", "day"])?;
    let amount = whole(
        obj.get("amount").unwrap_or(&Value::Null),
        "credits.refill.amount",
        1,
    )?;
    let interval = match obj.get("interval").and_then(Value::as_str) {
        Some("day") => Interval::Day,
        Some("month") => Interval::Month,
        _ => {
            return Err(ApiError::field(
                "credits.refill.interval",
                "must be \"day\" or \"month\"",
            ))
        }
    };
    let day = match obj.get("day") {
        None | Some(Value::Null) => None,
        Some(_) if interval == Interval::Day => {
            return Err(ApiError::field(
                "credits.refill.day",
                "is only for monthly refills",
            ))
        }
        Some(d) => Some(
            whole(d, "credits.refill.day", 1)
                .ok()
                .filter(|d| (1..=31).contains(d))
                .map(|d| d as u8)
                .ok_or_else(|| {
                    ApiError::field("credits.refill.day", "must be a day from 1 to 31")
                })?,
        ),
    };
    Ok(Refill {
        amount,
        interval,
        day,
    })
}

/// The body of `POST …/credits`: `{"op", "amount"}`.
pub fn parse_change(body: &Value) -> Result<Change, ApiError> {
    let obj = body.as_object().ok_or_else(|| ApiError::InvalidBody {
        reason: "expected a JSON object".into(),
    })?;
    if let Some(k) = obj.keys().find(|k| !["op", "amount"].contains(&k.as_str())) {
        return Err(ApiError::field(k, "is not a known field"));
    }
    let op = match obj.get("op").and_then(Value::as_str) {
        Some("increment") => Op::Increment,
        Some("decrement") => Op::Decrement,
        Some("set") => Op::Set,
        _ => {
            return Err(ApiError::field(
                "op",
                "must be \"increment\", \"decrement\" or \"set\"",
            ))
        }
    };
    let min = if op == Op::Set { 0 } else { 1 };
    let amount = whole(obj.get("amount").unwrap_or(&Value::Null), "amount", min)?;
    Ok(Change { op, amount })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time_fmt::from_rfc3339;

    fn at(s: &str) -> i64 {
        from_rfc3339(s).unwrap()
    }

    fn monthly(day: u8) -> Refill {
        Refill {
            amount: 100,
            interval: Interval::Month,
            day: Some(day),
        }
    }

    #[test]
    fn a_monthly_refill_falls_on_its_day_or_the_months_last() {
        let c = Credits::new(5, Some(monthly(31)), at("2027-01-31T00:00:00Z"));
        assert_eq!(c.next_refill_at(), Some(at("2027-02-28T00:00:00Z")));
        let c = Credits::new(5, Some(monthly(31)), at("2028-02-10T00:00:00Z"));
        assert_eq!(
            c.next_refill_at(),
            Some(at("2028-02-29T00:00:00Z")),
            "leap year"
        );
        let c = Credits::new(5, Some(monthly(15)), at("2027-12-20T10:00:00Z"));
        assert_eq!(c.next_refill_at(), Some(at("2028-01-15T00:00:00Z")));
        let daily = Refill {
            amount: 7,
            interval: Interval::Day,
            day: None,
        };
        let c = Credits::new(5, Some(daily), at("2027-03-01T23:59:59Z"));
        assert_eq!(c.next_refill_at(), Some(at("2027-03-02T00:00:00Z")));
    }

    #[test]
    fn a_refill_sets_the_balance_and_the_next_one_follows_it() {
        let mut c = Credits::new(3, Some(monthly(31)), at("2027-01-05T00:00:00Z"));
        assert!(!c.refill(at("2027-01-30T23:59:59Z")));
        assert_eq!(c.remaining, 3);
        // Unused for months: one refill, dated at the latest boundary.
        assert!(c.refill(at("2027-05-02T00:00:00Z")));
        assert_eq!((c.remaining, c.since), (100, at("2027-04-30T00:00:00Z")));
        assert_eq!(c.next_refill_at(), Some(at("2027-05-31T00:00:00Z")));
        assert!(!c.refill(at("2027-05-30T00:00:00Z")));
    }

    #[test]
    fn spending_is_all_or_nothing_and_names_the_wait_to_a_refill() {
        let now = at("2027-01-01T23:59:00Z");
        let daily = Refill {
            amount: 7,
            interval: Interval::Day,
            day: None,
        };
        let mut c = Credits::new(3, Some(daily), now);
        assert!(c.spend(2, now).is_ok());
        assert_eq!(
            c.spend(2, now),
            Err(ApiError::CreditsExhausted {
                retry_after: Some(60)
            })
        );
        assert_eq!(c.remaining, 1, "nothing taken by the refusal");
        let mut plain = Credits::new(0, None, now);
        assert_eq!(
            plain.spend(1, now),
            Err(ApiError::CreditsExhausted { retry_after: None })
        );
    }

    #[test]
    fn a_refund_never_reaches_a_balance_refilled_or_set_since() {
        let t = at("2027-01-01T10:00:00Z");
        let mut c = Credits::new(10, None, t);
        c.spend(4, t + 1).unwrap();
        c.refund(t + 1, 4);
        assert_eq!(c.remaining, 10);
        c.spend(4, t + 2).unwrap();
        c.apply(
            Change {
                op: Op::Set,
                amount: 50,
            },
            t + 3,
        )
        .unwrap();
        c.refund(t + 2, 4);
        assert_eq!(c.remaining, 50);
    }

    #[test]
    fn changes_and_their_bounds() {
        let t = 0;
        let mut c = Credits::new(10, None, t);
        let ch = |op, amount| Change { op, amount };
        c.apply(ch(Op::Decrement, 25), t).unwrap();
        assert_eq!(c.remaining, 0);
        c.apply(ch(Op::Increment, 5), t).unwrap();
        assert_eq!((c.remaining, c.baseline), (5, 10));
        assert!(c.apply(ch(Op::Increment, MAX_CREDITS), t).is_err());
        assert_eq!(c.remaining, 5, "a refused change changes nothing");
    }

    #[test]
    fn alerts_fire_once_per_crossing_and_rearm_above() {
        let mut c = Credits::new(100, None, 0);
        let percents = [10, 50];
        c.remaining = 60;
        assert!(c.crossed(&percents).is_empty());
        c.remaining = 50;
        assert_eq!(c.crossed(&percents), vec![50]);
        c.remaining = 40;
        assert!(c.crossed(&percents).is_empty());
        c.remaining = 5;
        assert_eq!(c.crossed(&percents), vec![10]);
        c.remaining = 70;
        assert!(c.crossed(&percents).is_empty());
        c.remaining = 45;
        assert_eq!(c.crossed(&percents), vec![50]);
    }

    #[test]
    fn input_is_named_field_by_field() {
        let bad = |v: Value| match parse(&v, 0) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad(json!(5)), "credits");
        assert_eq!(bad(json!({})), "credits.remaining");
        assert_eq!(bad(json!({"remaining": -1})), "credits.remaining");
        assert_eq!(bad(json!({"remaining": 1.5})), "credits.remaining");
        assert_eq!(bad(json!({"remaining": 1, "x": 1})), "credits.x");
        assert_eq!(
            bad(json!({"remaining": 1, "refill": {"amount": 0, "interval": "day"}})),
            "credits.refill.amount"
        );
        assert_eq!(
            bad(json!({"remaining": 1, "refill": {"amount": 1, "interval": "week"}})),
            "credits.refill.interval"
        );
        assert_eq!(
            bad(json!({"remaining": 1, "refill": {"amount": 1, "interval": "day", "day": 3}})),
            "credits.refill.day"
        );
        assert_eq!(
            bad(json!({"remaining": 1, "refill": {"amount": 1, "interval": "month", "day": 32}})),
            "credits.refill.day"
        );
        let ok = parse(
            &json!({"remaining": 5, "refill": {"amount": 9, "interval": "month", "day": 31}}),
            0,
        )
        .unwrap();
        assert_eq!(
            ok.refill,
            Some(Refill {
                amount: 9,
                interval: Interval::Month,
                day: Some(31)
            })
        );
        let change = |v: Value| parse_change(&v);
        assert_eq!(
            change(json!({"op": "set", "amount": 6.0})).unwrap().amount,
            6
        );
        assert!(
            matches!(change(json!({"op": "add", "amount": 1})), Err(ApiError::InvalidField { field, .. }) if field == "op")
        );
        assert!(
            matches!(change(json!({"op": "increment", "amount": 0})), Err(ApiError::InvalidField { field, .. }) if field == "amount")
        );
        assert!(
            matches!(change(json!({"op": "set", "amount": "5"})), Err(ApiError::InvalidField { field, .. }) if field == "amount")
        );
        assert_eq!(
            change(json!({"op": "set", "amount": 0})).unwrap(),
            Change {
                op: Op::Set,
                amount: 0
            }
        );
    }
}
