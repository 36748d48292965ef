//! Usage for billing (issue 22 §5): `GET /accounts/{id}/usage`'s query, and the
//! `usage.reported` webhook of one account and period, shaped so that a receiver
//! can forward each key's total to a Stripe meter unchanged. Pure: the edge
//! reads the keys' usage hours and sends.

use crate::error::ApiError;
use crate::limits::usage::Resolution;
use crate::time_fmt::{from_rfc3339, to_rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Keys per page of `GET /accounts/{id}/usage` (each with its buckets).
pub const DEFAULT_KEYS: u32 = 20;
pub const MAX_KEYS: u32 = 100;
/// The widest range one call reads: the usage hours a key keeps.
pub const MAX_RANGE_MS: i64 = crate::limits::usage::RETENTION + crate::limits::usage::DAY;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    pub from: i64,
    pub to: i64,
    pub resolution: Resolution,
    /// The last key id of the previous page.
    pub after: Option<String>,
    pub limit: u32,
}

/// `from` and `to` (RFC 3339; defaults: the last 24 hours), `resolution`
/// (`hour` | `day`, default `hour`), `cursor`, `limit` (keys per page).
pub fn parse_query<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    now: i64,
) -> Result<UsageQuery, ApiError> {
    let (mut from, mut to, mut resolution, mut after, mut limit) = (None, None, None, None, None);
    let time = |field: &str, v: &str| {
        from_rfc3339(v).ok_or_else(|| ApiError::field(field, "must be an RFC 3339 date-time"))
    };
    for (k, v) in pairs {
        match k {
            "from" => from = Some(time("from", v)?),
            "to" => to = Some(time("to", v)?),
            "resolution" => resolution = Some(Resolution::parse(Some(v))?),
            "cursor" if v.is_empty() => {}
            "cursor" => {
                let ok = v.len() <= 64
                    && v.starts_with("key_")
                    && v[4..].bytes().all(|b| b.is_ascii_alphanumeric());
                if !ok {
                    return Err(ApiError::field("cursor", "is not a cursor this route gave"));
                }
                after = Some(v.to_string());
            }
            "limit" => {
                limit = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_KEYS).contains(n))
                        .ok_or_else(|| {
                            ApiError::field(
                                "limit",
                                format!("must be a whole number from 1 to {MAX_KEYS}"),
                            )
                        })?,
                )
            }
            other => return Err(ApiError::field(other, "is not a known parameter")),
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - crate::limits::usage::DAY);
    // An empty range (`to` not after `from`) holds nothing.
    let from = from.min(to);
    Ok(UsageQuery {
        // Nothing older is kept: a longer range reads what there is.
        from: from.max(to - MAX_RANGE_MS),
        to,
        resolution: resolution.unwrap_or(Resolution::Hour),
        after,
        limit: limit.unwrap_or(DEFAULT_KEYS),
    })
}

/// The period (an hour or a UTC day, of hours of `hour` ms) holding `at`.
pub fn period_of(at: i64, resolution: Resolution, hour: i64) -> (i64, i64) {
    let step = resolution.step(hour);
    let start = at.div_euclid(step) * step;
    (start, start + step)
}

/// The `idempotency_key` of an account's report for the period starting at `start`.
pub fn idempotency_key(account: &str, start: i64, resolution: Resolution) -> String {
    let r = match resolution {
        Resolution::Hour => "hour",
        Resolution::Day => "day",
    };
    format!("{account}:{r}:{}", to_rfc3339(start))
}

/// One key's total in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyTotal {
    pub key_id: String,
    pub requests: u64,
    pub credits: u64,
}

/// The `usage.reported` data: the period, each key's totals, and one Stripe meter
/// event per key (`event_name`, `payload.stripe_customer_id` — the account — and
/// `payload.value` — its credits —, `timestamp`, `identifier`), so a receiver can
/// post each to `/v1/billing/meter_events` as it is.
pub fn report(
    account: &str,
    (start, end): (i64, i64),
    resolution: Resolution,
    event_name: &str,
    keys: &[KeyTotal],
) -> Value {
    let key = idempotency_key(account, start, resolution);
    // Stripe's timestamp is in seconds and must lie inside the period.
    let timestamp = (end - 1) / 1000;
    let meter_events: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "event_name": event_name,
                "identifier": format!("{key}:{}", k.key_id),
                "timestamp": timestamp,
                "payload": {
                    "stripe_customer_id": account,
                    "value": k.credits.to_string(),
                    "key_id": k.key_id,
                },
            })
        })
        .collect();
    json!({
        "account": account,
        "idempotency_key": key,
        "period": { "start": to_rfc3339(start), "end": to_rfc3339(end), "resolution": resolution },
        "keys": keys,
        "requests": keys.iter().map(|k| k.requests).sum::<u64>(),
        "credits": keys.iter().map(|k| k.credits).sum::<u64>(),
        "event_name": event_name,
        "customer": account,
        "value": keys.iter().map(|k| k.credits).sum::<u64>(),
        "timestamp": timestamp,
        "meter_events": meter_events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn q(s: &[(&str, &str)]) -> Result<UsageQuery, ApiError> {
        parse_query(s.iter().copied(), NOW)
    }

    fn field(r: Result<UsageQuery, ApiError>) -> String {
        match r {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_query_and_its_defaults() {
        let d = q(&[]).unwrap();
        assert_eq!(
            (d.from, d.to, d.resolution, d.limit),
            (NOW - 86_400_000, NOW, Resolution::Hour, DEFAULT_KEYS)
        );
        let r = q(&[
            ("from", "2026-11-01T00:00:00Z"),
            ("to", "2026-11-02T00:00:00Z"),
            ("resolution", "day"),
            ("limit", "5"),
        ])
        .unwrap();
        assert_eq!((r.resolution, r.limit), (Resolution::Day, 5));
        assert_eq!(field(q(&[("from", "yesterday")])), "from");
        assert_eq!(field(q(&[("to", "2026-13-01T00:00:00Z")])), "to");
        let empty = q(&[
            ("from", "2026-11-02T00:00:00Z"),
            ("to", "2026-11-01T00:00:00Z"),
        ])
        .unwrap();
        assert_eq!(empty.from, empty.to, "an empty range");
        let long = q(&[
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-11-01T00:00:00Z"),
        ])
        .unwrap();
        assert_eq!(
            long.to - long.from,
            MAX_RANGE_MS,
            "a long range reads the kept days"
        );
        assert_eq!(q(&[("cursor", "")]).unwrap().after, None);
        assert_eq!(field(q(&[("resolution", "week")])), "resolution");
        assert_eq!(field(q(&[("limit", "0")])), "limit");
        assert_eq!(field(q(&[("limit", "101")])), "limit");
        assert_eq!(field(q(&[("cursor", "../x")])), "cursor");
        assert_eq!(field(q(&[("account", "x")])), "account");
    }

    #[test]
    fn a_report_carries_what_a_stripe_meter_event_needs() {
        let start = 1_799_996_400_000; // on the hour
        let keys = vec![
            KeyTotal {
                key_id: "key_a".into(),
                requests: 3,
                credits: 5,
            },
            KeyTotal {
                key_id: "key_b".into(),
                requests: 1,
                credits: 1,
            },
        ];
        let period = period_of(start + 5, Resolution::Hour, 3_600_000);
        assert_eq!(period, (start, start + 3_600_000));
        let r = report("acme", period, Resolution::Hour, "api_requests", &keys);
        assert_eq!(r["idempotency_key"], "acme:hour:2027-01-15T07:00:00.000Z");
        assert_eq!(r["period"]["end"], "2027-01-15T08:00:00.000Z");
        assert_eq!(
            (r["requests"].as_u64(), r["credits"].as_u64()),
            (Some(4), Some(6))
        );
        let e = &r["meter_events"][0];
        assert_eq!(e["event_name"], "api_requests");
        assert_eq!(e["payload"]["stripe_customer_id"], "acme");
        assert_eq!(e["payload"]["value"], "5");
        assert_eq!(
            e["timestamp"].as_i64(),
            Some((start + 3_600_000 - 1) / 1000)
        );
        assert_eq!(e["identifier"], "acme:hour:2027-01-15T07:00:00.000Z:key_a");
    }
}
