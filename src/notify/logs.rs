//! Request logs: what is kept of each request made with a key, and how they are
//! queried. Storage (SQLite in the key's object) is the edge's business.

use crate::error::ApiError;
use crate::paging::MAX_CURSOR;
use crate::time_fmt::from_rfc3339;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Unix milliseconds when the request arrived.
    pub at: i64,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The refusal's code, for requests keyward answered itself.
    pub code: Option<String>,
    /// Time to the first byte of the answer, in milliseconds.
    pub duration_ms: u32,
    pub ip: Option<String>,
    /// Credits charged: the route's cost when admitted, 0 when refused.
    pub credits: u64,
    /// Whether the request came through the gate or `POST /verify`.
    #[serde(default)]
    pub via: Via,
    #[serde(default)]
    pub state: LogState,
    /// The reservation of an admitted request: its settlement completes this row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<u64>,
}

/// Where a row stands: written `pending` in the step that admits the request,
/// `completed` by its settlement, `abandoned` when none came in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogState {
    Pending,
    #[default]
    Completed,
    Abandoned,
}

impl LogState {
    pub fn as_str(self) -> &'static str {
        match self {
            LogState::Pending => "pending",
            LogState::Completed => "completed",
            LogState::Abandoned => "abandoned",
        }
    }
}

/// A change to the row of reservation `reservation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogUpdate {
    Settle {
        reservation: u64,
        state: LogState,
        status: u16,
        code: Option<String>,
        duration_ms: u32,
        credits: u64,
    },
    /// The admission was undone and decided again: its row goes.
    Discard { reservation: u64 },
}

/// Where a checked request came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A request to the protected API, forwarded when admitted.
    #[default]
    Gate,
    /// A service's `POST /admin/v1/verify` on a key it received.
    Verify,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Gate => "gate",
            Via::Verify => "verify",
        }
    }
}

/// The request facts the key's object needs to log a request it refuses itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFacts {
    pub method: String,
    pub path: String,
    pub ip: Option<String>,
    #[serde(default)]
    pub via: Via,
    /// The client's country (`request.cf.country`), for sharing detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl RequestFacts {
    pub fn refused(&self, at: i64, err: &ApiError) -> LogEntry {
        LogEntry {
            at,
            method: self.method.clone(),
            path: self.path.clone(),
            status: err.status(),
            code: Some(err.code().to_string()),
            duration_ms: 0,
            ip: self.ip.clone(),
            credits: 0,
            via: self.via,
            state: LogState::Completed,
            reservation: None,
        }
    }

    /// The row of a request admitted at `at`, until its settlement completes it.
    pub fn pending(&self, at: i64, credits: u64, reservation: u64) -> LogEntry {
        LogEntry {
            at,
            method: self.method.clone(),
            path: self.path.clone(),
            status: 0,
            code: None,
            duration_ms: 0,
            ip: self.ip.clone(),
            credits,
            via: self.via,
            state: LogState::Pending,
            reservation: Some(reservation),
        }
    }
}

/// `GET /keys/{id}/logs` filters: `status` (`429` or a class `4xx`), `from`/`to`
/// (RFC 3339), `cursor`, `limit` (1–100, default 50).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    pub status_min: Option<u16>,
    pub status_max: Option<u16>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// `(at, row id)` of the last row of the previous page: the page continues
    /// with older rows. Rows are ordered by request time, since admitted requests'
    /// rows arrive in batches after refusals decided later.
    pub cursor: Option<(i64, i64)>,
    pub limit: u32,
}

pub fn parse_log_query<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<LogQuery, ApiError> {
    let mut q = LogQuery {
        limit: crate::paging::DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k {
            "status" => {
                let (min, max) = parse_status(v).ok_or_else(|| {
                    ApiError::field(
                        "status",
                        "must be a status such as 429 or a class such as 4xx",
                    )
                })?;
                q.status_min = Some(min);
                q.status_max = Some(max);
            }
            "from" | "to" => {
                let t = from_rfc3339(v)
                    .ok_or_else(|| ApiError::field(k, "must be an RFC 3339 date-time"))?;
                if k == "from" {
                    q.from = Some(t)
                } else {
                    q.to = Some(t)
                }
            }
            "cursor" => {
                let digits =
                    |d: &str| (1..=19).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit());
                let parsed = v
                    .split_once('.')
                    .filter(|(at, id)| digits(at) && digits(id))
                    .and_then(|(at, id)| Some((at.parse::<u64>().ok()?, id.parse::<u64>().ok()?)))
                    .map(|(at, id)| (clamp(at), clamp(id)));
                q.cursor = Some(parsed.ok_or_else(|| {
                    ApiError::field("cursor", "is not a cursor from this listing")
                })?)
            }
            "limit" => q.limit = crate::paging::parse_limit(v)?,
            other => return Err(ApiError::field(other, "is not a known filter")),
        }
    }
    Ok(q)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX).min(MAX_CURSOR)
}

fn parse_status(v: &str) -> Option<(u16, u16)> {
    if let [d, b'x' | b'X', b'x' | b'X'] = v.as_bytes() {
        let class = u16::from(d.checked_sub(b'0')?);
        return (1..=5)
            .contains(&class)
            .then_some((class * 100, class * 100 + 99));
    }
    if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let s: u16 = v.parse().ok()?;
    (100..=599).contains(&s).then_some((s, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_query() {
        let q = parse_log_query(
            [
                ("status", "4xx"),
                ("from", "2026-01-01T00:00:00Z"),
                ("limit", "10"),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!((q.status_min, q.status_max), (Some(400), Some(499)));
        assert_eq!(q.from, Some(1_767_225_600_000));
        assert_eq!(q.limit, 10);
        let q = parse_log_query([("status", "429"), ("cursor", "1767225600000.17")].into_iter())
            .unwrap();
        assert_eq!(
            (q.status_min, q.status_max, q.cursor),
            (Some(429), Some(429), Some((1_767_225_600_000, 17)))
        );
        let far = parse_log_query([("cursor", "9999999999999999999.1")].into_iter()).unwrap();
        assert_eq!(far.cursor, Some((crate::paging::MAX_CURSOR, 1)));
        for (k, v) in [
            ("status", "9xx"),
            ("status", "abc"),
            ("from", "yesterday"),
            ("cursor", "x"),
            ("cursor", "17"),
            ("cursor", "+1.2"),
            ("cursor", "1.99999999999999999999"),
            ("cursor", "1.-2"),
            ("status", "+429"),
            ("status", "0429"),
            ("limit", "0"),
            ("sort", "asc"),
        ] {
            match parse_log_query([(k, v)].into_iter()) {
                Err(ApiError::InvalidField { field, .. }) => assert_eq!(field, k),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
    }

    #[test]
    fn refusals_are_logged_with_their_code() {
        let facts = RequestFacts {
            method: "GET".into(),
            path: "/x".into(),
            ip: Some("10.0.0.1".into()),
            via: Via::Verify,
            country: None,
        };
        let e = facts.refused(5, &ApiError::RateLimited { retry_after: 1 });
        assert_eq!(
            (e.status, e.code.as_deref(), e.credits, e.via),
            (429, Some("rate_limited"), 0, Via::Verify)
        );
    }
}
