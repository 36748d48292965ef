//! `usage.reported` (`USAGE_REPORT_INTERVAL`): after each hour or UTC day, the
//! account's alarm asks its keys, a batch at a time, what they were charged in
//! it (their own usage hours, so exact), and queues one webhook for the account
//! and period with each key's totals, an `idempotency_key` and the fields a
//! Stripe meter event needs (`admin::billing`). A period is reported once its
//! last request can have been settled: `ORIGIN_TIMEOUT_SECONDS` and
//! `SETTLE_LINGER_MS` after its end, and a few seconds more.

use super::*;
use crate::admin::billing::{self, KeyTotal};

/// Slack past a period's end beyond the slowest settlement.
const SLACK_MS: i64 = 2_000;

/// How far the reports of an account got (in its meta).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporting {
    /// The start of the next period to report.
    pub next: i64,
    /// In that period: the last key asked, and the totals so far.
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub totals: Vec<KeyTotal>,
}

/// The period due for a report: its start and end, and the key to ask after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub period: (i64, i64),
    pub after: Option<String>,
}

fn settled_after(cfg: &Config) -> i64 {
    cfg.origin_timeout_ms + i64::from(cfg.settle_linger_ms) + SLACK_MS
}

/// When the report of `r`'s next period falls due (none: reports are off).
pub fn due_at(r: &Reporting, cfg: &Config) -> Option<i64> {
    let resolution = cfg.usage_report?;
    Some(r.next + resolution.step(cfg.usage_hour_ms) + settled_after(cfg))
}

/// The period to report now, if one is due; an account seen for the first time
/// starts with the current period (and says so: its meta is to be stored).
pub fn due(state: &mut AccountState, cfg: &Config, now: i64) -> (Option<Due>, bool) {
    let Some(resolution) = cfg.usage_report else {
        return (None, false);
    };
    let started = state.meta.reporting.is_none();
    let r = state.meta.reporting.get_or_insert_with(|| Reporting {
        next: billing::period_of(now, resolution, cfg.usage_hour_ms).0,
        ..Default::default()
    });
    let Some(at) = due_at(r, cfg) else {
        return (None, started);
    };
    let due = (now >= at).then(|| Due {
        period: (r.next, r.next + resolution.step(cfg.usage_hour_ms)),
        after: r.after.clone(),
    });
    (due, started)
}

/// What a batch of keys (ids in order, `more` when the index has more after the
/// last) was charged in the due period. When the period is done: the webhook's
/// data, if any key had use; the next period is due after it.
pub fn record(
    state: &mut AccountState,
    cfg: &Config,
    ids: &[String],
    totals: Vec<KeyTotal>,
    more: bool,
) -> Option<Value> {
    let resolution = cfg.usage_report?;
    let account = state.meta.account.clone().unwrap_or_default();
    let r = state.meta.reporting.as_mut()?;
    r.totals.extend(
        totals
            .into_iter()
            .filter(|t| t.requests > 0 || t.credits > 0),
    );
    if more {
        r.after = ids.last().cloned();
        return None;
    }
    let period = (r.next, r.next + resolution.step(cfg.usage_hour_ms));
    let keys = std::mem::take(&mut r.totals);
    r.after = None;
    r.next = period.1;
    (!keys.is_empty())
        .then(|| billing::report(&account, period, resolution, &cfg.usage_report_event, &keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const H: i64 = 1_800_000_000_000; // on the hour

    fn cfg() -> Config {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("ORIGIN_URL", "http://o"),
            ("USAGE_REPORT_INTERVAL", "hour"),
            ("ORIGIN_TIMEOUT_SECONDS", "2"),
        ]);
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    fn total(id: &str, credits: u64) -> KeyTotal {
        KeyTotal {
            key_id: id.into(),
            requests: credits,
            credits,
        }
    }

    #[test]
    fn each_period_is_reported_once_after_its_settlements_and_batch_by_batch() {
        let cfg = cfg();
        let mut s = AccountState::empty();
        s.meta.account = Some("acme".into());
        let (due0, started) = due(&mut s, &cfg, H + 10);
        assert!(due0.is_none() && started, "the current hour is the first");
        let wait = 2_000 + 1_000 + SLACK_MS;
        assert!(due(&mut s, &cfg, H + 3_600_000 + wait - 1).0.is_none());
        let d = due(&mut s, &cfg, H + 3_600_000 + wait).0.unwrap();
        assert_eq!(
            d,
            Due {
                period: (H, H + 3_600_000),
                after: None
            }
        );
        let ids = ["key_a".to_string(), "key_b".to_string()];
        assert!(record(
            &mut s,
            &cfg,
            &ids,
            vec![total("key_a", 3), total("key_b", 0)],
            true
        )
        .is_none());
        assert_eq!(
            due(&mut s, &cfg, H + 3_700_000).0.unwrap().after.as_deref(),
            Some("key_b")
        );
        let data = record(
            &mut s,
            &cfg,
            &["key_c".into()],
            vec![total("key_c", 2)],
            false,
        )
        .unwrap();
        assert_eq!(
            data["idempotency_key"],
            "acme:hour:2027-01-15T08:00:00.000Z"
        );
        let keys: Vec<&str> = data["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key_id"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["key_a", "key_c"], "keys without use are left out");
        assert_eq!(data["credits"], 5);
        assert!(
            due(&mut s, &cfg, H + 3_700_000).0.is_none(),
            "the next hour is not over"
        );
        // A period without use sends nothing, and moves on.
        let d = due(&mut s, &cfg, H + 2 * 3_600_000 + wait).0.unwrap();
        assert_eq!(d.period.0, H + 3_600_000);
        assert!(record(&mut s, &cfg, &[], vec![], false).is_none());
        assert_eq!(s.meta.reporting.as_ref().unwrap().next, H + 2 * 3_600_000);
    }
}
