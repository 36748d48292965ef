//! Deployment configuration, read from wrangler vars. Parsing is pure: the edge hands
//! in a lookup function, so tests need no runtime.

use crate::key::format::valid_product_prefix;
use crate::key::record::Environment;
use crate::limits::admission::BreakerConfig;
use crate::limits::failed_attempts::IpBlockConfig;
use crate::limits::plans::{default_plans, Plan};
use crate::request::regions::{self, Region};

use crate::request::policy::{CostRule, RouteRule};
mod rules;

use rules::{check_cost_rule, check_pattern, check_route_rule, list_of};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub key_prefix: String,
    pub environment: Environment,
    pub allow_http: bool,
    pub origin_url: String,
    pub public_paths: Vec<String>,
    /// Header names, lowercased, that carry a key as-is beside `Authorization:
    /// Bearer` (`KEY_HEADERS`, default none).
    pub key_headers: Vec<String>,
    pub route_rules: Vec<RouteRule>,
    pub admin_prefix: String,
    pub project_segment: String,
    pub plans: BTreeMap<String, Plan>,
    pub default_plan: String,
    /// Seconds an edge location may cache a hash → key id lookup. Safe to cache:
    /// status lives in the key's Durable Object, consulted on every request.
    pub kv_cache_ttl: u64,
    /// Credits a route costs (default 1).
    pub route_costs: Vec<CostRule>,
    pub breaker: BreakerConfig,
    pub ip_block: IpBlockConfig,
    pub logs: LogRetention,
    /// Where suspension notices are POSTed, and the key they are signed with.
    pub webhook: Option<Webhook>,
    /// What a leak report does to a live key (`LEAK_ACTION`, default revoke).
    pub leak_action: crate::key::leaks::LeakAction,
    /// GitHub's secret scanning signing keys (`GITHUB_SECRET_SCANNING_KEYS`).
    pub github_keys: Vec<crate::key::leaks::GithubKey>,
    /// `EXPIRY_NOTICE_DAYS` and `QUOTA_ALERT_PERCENTS` (see `alerts`).
    pub alerts: AlertConfig,
    /// How long audit events are kept (`AUDIT_RETENTION_DAYS`, default 400; a
    /// fraction of a day is allowed, for tests).
    pub audit_retention_ms: i64,
    /// Keys brought to a new plan per alarm run of the account's object
    /// (`PLAN_UPDATE_BATCH`, default 50): one subrequest each.
    pub plan_update_batch: usize,
    /// How long an account's object promises an isolate its plan stays as it is
    /// (`PLAN_LEASE_SECONDS`, default 5; 0: none): a plan without account-wide
    /// limits is then not asked on each request, and a plan change answers once
    /// the leases have lapsed (`limits::plan_lease`).
    pub plan_lease_ms: i64,
    /// `OBJECT_STATS=true`: every Durable Object counts the calls it serves, for
    /// `make scale` (one more SQLite write per call; off by default).
    pub object_stats: bool,
    /// What a client is charged for (`CHARGE_ON`, default `forwarded`).
    pub charge_on: crate::limits::reservation::ChargeOn,
    /// How long a budget lease lends a hot isolate a slice of a key's credits
    /// (`KEY_LEASE_MS`, 2000; 0: never; `limits::budget_lease`).
    pub key_lease_ms: i64,
    /// How soon a key's object may move again after a move, nearer its clients
    /// (`KEY_MOVE_EVERY_SECONDS`, 600; 0: keys never move;
    /// `objects::key::placement`).
    pub key_move_every_ms: i64,
    /// How long a settlement waits for the next admission's call to the same
    /// object before it goes alone (`SETTLE_LINGER_MS`, 1000; 0: at once).
    pub settle_linger_ms: u32,
    /// How long an admitted request's credits stay reserved without a settlement
    /// before the key's alarm releases them (`RESERVATION_TIMEOUT_SECONDS`, 30).
    pub reservation_timeout_ms: i64,
    /// Test-only (`TEST_HOLD_PLAN_UPDATES`, refused in production): the account's
    /// alarm does not carry plan changes to the keys, so a test can observe keys
    /// whose copy is older than the account's plan.
    pub test_hold_plan_updates: bool,
    /// Test-only (`TEST_FAIL_INLINE_COPIES`, refused in production): management
    /// routes skip writing copies themselves, so the outbox repairs every one.
    pub test_fail_inline_copies: bool,
    /// Test-only (`TEST_KV_HIDE_WRITES_SECONDS`, refused in production): the KV
    /// index answers "not found" for entries younger than this, as a location KV
    /// has not reached yet would (0: off).
    pub test_kv_hide_writes_ms: i64,
    /// Keys an account may hold (`MAX_KEYS_PER_ACCOUNT`, default 10,000): a create
    /// past it is 409.
    pub max_keys_per_account: u64,
    /// Refused management attempts recorded in the audit trail per client address
    /// and hour (`AUDIT_REFUSALS_PER_HOUR`, default 10; 0: none).
    pub audit_refusals_per_hour: u32,
    /// How long a Durable Object or KV call may take before the request is refused
    /// (`STORAGE_TIMEOUT_SECONDS`, default 5): 503 with `Retry-After`.
    pub storage_timeout_ms: i64,
    /// How long the origin may take to answer (`ORIGIN_TIMEOUT_SECONDS`, default
    /// 30): 504 with `Retry-After`, the request's reservation released.
    pub origin_timeout_ms: i64,
    /// Test-only (`TEST_FAULTS`, refused in production): a request's
    /// `X-Keyward-Test-Fault` header makes chosen calls fail or stall
    /// (`request::faults`).
    pub test_faults: bool,
    /// Test-only (`TEST_GEO`, a region name; refused in production): geography
    /// simulated. A request's `X-Keyward-Test-Region` (else this region) is where
    /// its client is; every object call waits the round trip to the object's
    /// region, the region of its first call (`request::regions`).
    pub test_geo: Option<Region>,
    /// `key.shared_suspected` past this many client networks in an hour, or from
    /// a new country (`SHARING_NETWORKS_PER_HOUR`, default 20; 0: off).
    pub sharing_networks_per_hour: u32,
    /// `SHARING_ACTION`: `notify` (default) or `deactivate`.
    pub sharing_action: crate::key::sharing::Action,
    /// Test-only (`TEST_COUNTRY_HEADER`, refused in production): a request's
    /// `X-Keyward-Test-Country` is its client's country (`request.cf.country`).
    pub test_country_header: bool,
    /// `USAGE_REPORT_INTERVAL` (`hour` | `day`; none by default): each account's
    /// `usage.reported` webhook, one per period with use.
    pub usage_report: Option<crate::limits::usage::Resolution>,
    /// The Stripe meter's event name in those reports (`USAGE_REPORT_EVENT_NAME`).
    pub usage_report_event: String,
    /// The length of a usage hour (ms): an hour, but `TEST_USAGE_HOUR_SECONDS`
    /// (test-only, refused in production) shortens it.
    pub usage_hour_ms: i64,
}

/// `WEBHOOK_URL` and its signing secrets — `WEBHOOK_SECRET`, then
/// `WEBHOOK_SECRET_PREVIOUS` while a secret rotates, decoded from `whsec_<base64>`.
/// A URL is never set without a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secrets", &format!("<{} redacted>", self.secrets.len()))
            .finish()
    }
}

/// When alerts are sent: expiry notices this long before a key expires (ms), and
/// quota alerts at these percentages of a quota.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertConfig {
    pub expiry_notice_ms: Vec<i64>,
    pub quota_percents: Vec<u32>,
    /// `credits.low` when a balance falls to these percentages of its last
    /// refill or set (`CREDIT_ALERT_PERCENTS`, default 10).
    #[serde(default)]
    pub credit_percents: Vec<u32>,
}

/// How long request logs are kept, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRetention {
    pub max_age_ms: i64,
    pub max_rows: u32,
}

impl Config {
    /// Builds the configuration from named variables and secrets; an error names
    /// the variable. Nothing malformed falls back to a default silently.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        let flag = |name: &str, default: bool| match get(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(format!("{name} must be true or false")),
        };

        let key_prefix = text("KEY_PREFIX", "kw");
        if !valid_product_prefix(&key_prefix) {
            return Err("KEY_PREFIX must be 1-12 lowercase letters or digits".into());
        }
        let environment = Environment::parse(&text("ENVIRONMENT", "production"))
            .ok_or("ENVIRONMENT must be production, staging or development")?;
        let origin_url = get("ORIGIN_URL").ok_or("ORIGIN_URL is not set")?;
        if !(origin_url.starts_with("http://") || origin_url.starts_with("https://")) {
            return Err("ORIGIN_URL must be an http(s) URL".into());
        }
        let plans: BTreeMap<String, Plan> = match get("PLANS") {
            None => default_plans(),
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| format!("PLANS is not a map of plans: {e}"))?,
        };
        if let Some(name) = plans
            .iter()
            .find_map(|(name, p)| p.zero_limit().map(|_| name))
        {
            return Err(format!(
                "PLANS: plan '{name}' has a limit of 0 (leave it out for none)"
            ));
        }
        let default_plan = text("DEFAULT_PLAN", "pro");
        if !plans.contains_key(&default_plan) {
            return Err(format!("DEFAULT_PLAN '{default_plan}' is not among PLANS"));
        }
        let route_rules: Vec<RouteRule> = serde_json::from_str(&text("ROUTE_PERMISSIONS", "[]"))
            .map_err(|e| format!("ROUTE_PERMISSIONS is not a list of rules: {e}"))?;
        let route_rules = route_rules
            .into_iter()
            .map(|r| check_route_rule(r).map_err(|e| format!("ROUTE_PERMISSIONS: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let route_costs: Vec<CostRule> = serde_json::from_str(&text("ROUTE_COSTS", "[]"))
            .map_err(|e| format!("ROUTE_COSTS is not a list of rules: {e}"))?;
        let route_costs = route_costs
            .into_iter()
            .map(|r| check_cost_rule(r, &plans).map_err(|e| format!("ROUTE_COSTS: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let public_paths = text("PUBLIC_PATHS", "/health")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|p| check_pattern(p).map_err(|e| format!("PUBLIC_PATHS: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut key_headers = Vec::new();
        for name in text("KEY_HEADERS", "")
            .split(',')
            .filter(|n| !n.trim().is_empty())
        {
            let name = crate::request::inbound::key_header_name(name)
                .map_err(|e| format!("KEY_HEADERS: {e}"))?;
            if !key_headers.contains(&name) {
                key_headers.push(name);
            }
        }
        if key_headers.len() > 8 {
            return Err("KEY_HEADERS: at most 8 header names".into());
        }
        let admin_prefix = text("ADMIN_PREFIX", "/admin/v1")
            .trim_end_matches('/')
            .to_string();
        if admin_prefix.len() < 2
            || crate::request::canonical_path::canonicalize(&admin_prefix).as_deref()
                != Ok(&admin_prefix)
            || admin_prefix.contains('*')
        {
            return Err("ADMIN_PREFIX must be a canonical path like /admin/v1".into());
        }
        let project_segment = text("PROJECT_SEGMENT", "projects");
        if !crate::key::names::is_project_id(&project_segment) {
            return Err(
                "PROJECT_SEGMENT must be a path segment of letters, digits, '.', '_', ':' or '-'"
                    .into(),
            );
        }
        let kv_cache_ttl = text("KV_CACHE_TTL", "60")
            .parse::<u64>()
            .ok()
            .filter(|t| *t >= 30)
            .ok_or("KV_CACHE_TTL must be a whole number of seconds, at least 30")?;

        let number = |name: &str, default: u64, min: u64| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or_else(|| format!("{name} must be a whole number, at least {min}")),
            }
        };
        let seconds = |name: &str, default: u64| number(name, default, 1).map(|s| s as i64 * 1000);
        let factor = text("BREAKER_FACTOR", "3")
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 1.0)
            .ok_or("BREAKER_FACTOR must be a number, at least 1")?;
        let breaker = BreakerConfig {
            enabled: flag("BREAKER_ENABLED", true)?,
            factor,
            window_ms: seconds("BREAKER_WINDOW_SECONDS", 300)?,
            cooldown_ms: seconds("BREAKER_COOLDOWN_SECONDS", 900)?,
            floor: number("BREAKER_FLOOR", 300, 1)?,
            history_ms: seconds("BREAKER_HISTORY_SECONDS", 86_400)?,
        };
        if breaker.history_ms < 2 * breaker.window_ms || breaker.history_ms > 86_400_000 {
            return Err("BREAKER_HISTORY_SECONDS must be at least twice BREAKER_WINDOW_SECONDS and at most 86400".into());
        }
        let ip_block = IpBlockConfig {
            threshold: number("IP_BLOCK_THRESHOLD", 10, 0)?.min(10_000) as u32,
            window_ms: seconds("IP_BLOCK_WINDOW_SECONDS", 60)?,
            cooldown_ms: seconds("IP_BLOCK_COOLDOWN_SECONDS", 600)?,
        };
        let logs = LogRetention {
            max_age_ms: number("LOG_RETENTION_DAYS", 30, 1)? as i64 * 86_400_000,
            max_rows: number("LOG_MAX_ROWS", 10_000, 1)?.min(1_000_000) as u32,
        };
        let charge_on =
            crate::limits::reservation::ChargeOn::parse(text("CHARGE_ON", "forwarded").trim())
                .ok_or("CHARGE_ON must be 'forwarded' or 'success'")?;
        let reservation_timeout_ms = seconds("RESERVATION_TIMEOUT_SECONDS", 30)?;
        if reservation_timeout_ms > 3_600_000 {
            return Err("RESERVATION_TIMEOUT_SECONDS must be at most 3600".into());
        }
        let webhook_url = get("WEBHOOK_URL").filter(|u| !u.is_empty());
        if webhook_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err("WEBHOOK_URL must be an http(s) URL".into());
        }
        // A notice signed with an empty key proves nothing: no URL without a secret.
        let secret = |name: &str| -> Result<Option<Vec<u8>>, String> {
            match get(name).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => crate::notify::webhook::parse_secret(&s)
                    .map(Some)
                    .map_err(|e| format!("{name} {e}")),
            }
        };
        let webhook = match (webhook_url, secret("WEBHOOK_SECRET")?) {
            (None, _) => None,
            (Some(url), Some(current)) => {
                let mut secrets = vec![current];
                secrets.extend(secret("WEBHOOK_SECRET_PREVIOUS")?);
                Some(Webhook { url, secrets })
            }
            (Some(_), None) => {
                return Err(
                    "WEBHOOK_SECRET must be set (whsec_<base64>) when WEBHOOK_URL is".into(),
                )
            }
        };

        let leak_action = crate::key::leaks::LeakAction::parse(&text("LEAK_ACTION", "revoke"))
            .ok_or("LEAK_ACTION must be revoke, deactivate or notify")?;
        let github_keys = match get("GITHUB_SECRET_SCANNING_KEYS").filter(|s| !s.trim().is_empty())
        {
            None => Vec::new(),
            Some(json) => crate::key::leaks::parse_github_keys(&json)?,
        };
        let audit_days = text("AUDIT_RETENTION_DAYS", "400")
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|d| d.is_finite() && *d > 0.0 && *d <= 36_500.0)
            .ok_or("AUDIT_RETENTION_DAYS must be a number of days, above 0 and at most 36500")?;
        let audit_retention_ms = ((audit_days * 86_400_000.0) as i64).max(1);
        let plan_update_batch = number("PLAN_UPDATE_BATCH", 50, 1)?;
        let mut expiry_notice_ms = list_of(
            "EXPIRY_NOTICE_DAYS",
            &text("EXPIRY_NOTICE_DAYS", "7,1"),
            |s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && *d > 0.0 && *d <= 3650.0)
                    .map(|d| ((d * 86_400_000.0) as i64).max(1))
            },
            "a number of days above 0 and at most 3650",
        )?;
        expiry_notice_ms.sort_unstable();
        expiry_notice_ms.dedup();
        let mut quota_percents = list_of(
            "QUOTA_ALERT_PERCENTS",
            &text("QUOTA_ALERT_PERCENTS", "80,100"),
            |s| s.parse::<u32>().ok().filter(|p| (1..=100).contains(p)),
            "a whole percentage from 1 to 100",
        )?;
        quota_percents.sort_unstable();
        quota_percents.dedup();
        let mut credit_percents = list_of(
            "CREDIT_ALERT_PERCENTS",
            &text("CREDIT_ALERT_PERCENTS", "10"),
            |s| s.parse::<u32>().ok().filter(|p| *p <= 100),
            "a whole percentage from 0 to 100",
        )?;
        credit_percents.sort_unstable_by(|a, b| b.cmp(a));
        credit_percents.dedup();
        if plan_update_batch > 500 {
            return Err("PLAN_UPDATE_BATCH must be at most 500 (one subrequest per key)".into());
        }
        let test_fail_inline_copies = flag("TEST_FAIL_INLINE_COPIES", false)?;
        let test_hold_plan_updates = flag("TEST_HOLD_PLAN_UPDATES", false)?;
        let test_faults = flag("TEST_FAULTS", false)?;
        let test_geo = match text("TEST_GEO", "").trim() {
            "" => None,
            name => Some(Region::parse(name).ok_or_else(|| {
                format!(
                    "TEST_GEO must be a region ({}), not '{name}'",
                    regions::names()
                )
            })?),
        };
        let test_country_header = flag("TEST_COUNTRY_HEADER", false)?;
        let usage_report = match text("USAGE_REPORT_INTERVAL", "").trim() {
            "" | "none" => None,
            "hour" => Some(crate::limits::usage::Resolution::Hour),
            "day" => Some(crate::limits::usage::Resolution::Day),
            _ => return Err("USAGE_REPORT_INTERVAL must be hour, day or empty".into()),
        };
        let usage_report_event = text("USAGE_REPORT_EVENT_NAME", "api_credits");
        let valid_event = (1..=100).contains(&usage_report_event.len())
            && usage_report_event
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_event {
            return Err("USAGE_REPORT_EVENT_NAME must be 1-100 letters, digits, '_' or '-'".into());
        }
        let test_usage_hour_s = number("TEST_USAGE_HOUR_SECONDS", 0, 0)?.min(3600) as i64;
        let sharing_networks_per_hour = number("SHARING_NETWORKS_PER_HOUR", 20, 0)?;
        if sharing_networks_per_hour > 100_000 {
            return Err("SHARING_NETWORKS_PER_HOUR must be at most 100000".into());
        }
        let sharing_action =
            crate::key::sharing::Action::parse(text("SHARING_ACTION", "notify").trim())
                .ok_or("SHARING_ACTION must be notify or deactivate")?;
        let test_kv_hide_writes_ms =
            number("TEST_KV_HIDE_WRITES_SECONDS", 0, 0)?.min(3600) as i64 * 1000;
        for (name, on) in [
            ("TEST_FAIL_INLINE_COPIES", test_fail_inline_copies),
            ("TEST_HOLD_PLAN_UPDATES", test_hold_plan_updates),
            ("TEST_KV_HIDE_WRITES_SECONDS", test_kv_hide_writes_ms > 0),
            ("TEST_FAULTS", test_faults),
            ("TEST_GEO", test_geo.is_some()),
            ("TEST_COUNTRY_HEADER", test_country_header),
            ("TEST_USAGE_HOUR_SECONDS", test_usage_hour_s > 0),
        ] {
            if on && environment == Environment::Production {
                return Err(format!(
                    "{name} is a test switch: refused when ENVIRONMENT=production"
                ));
            }
        }

        let max_keys_per_account = number("MAX_KEYS_PER_ACCOUNT", 10_000, 1)?;
        if max_keys_per_account > 10_000_000 {
            return Err("MAX_KEYS_PER_ACCOUNT must be at most 10000000".into());
        }
        let audit_refusals_per_hour = number("AUDIT_REFUSALS_PER_HOUR", 10, 0)?.min(1_000) as u32;
        let settle_linger_ms = number("SETTLE_LINGER_MS", 1000, 0)?;
        if settle_linger_ms > 10_000 || settle_linger_ms as i64 * 2 > reservation_timeout_ms {
            return Err(
                "SETTLE_LINGER_MS must be at most 10000 and at most half of RESERVATION_TIMEOUT_SECONDS"
                    .into(),
            );
        }
        let key_lease_ms = number("KEY_LEASE_MS", 2000, 0)? as i64;
        if key_lease_ms > 10_000 {
            return Err("KEY_LEASE_MS must be at most 10000".into());
        }
        let key_move_every_ms = number("KEY_MOVE_EVERY_SECONDS", 600, 0)? as i64 * 1000;
        if key_move_every_ms > 86_400_000 {
            return Err("KEY_MOVE_EVERY_SECONDS must be at most 86400".into());
        }
        let plan_lease_ms = number("PLAN_LEASE_SECONDS", 5, 0)? as i64 * 1000;
        if plan_lease_ms > 60_000 {
            return Err(
                "PLAN_LEASE_SECONDS must be at most 60 (a plan change waits for it)".into(),
            );
        }
        let storage_timeout_ms = seconds("STORAGE_TIMEOUT_SECONDS", 5)?;
        let origin_timeout_ms = seconds("ORIGIN_TIMEOUT_SECONDS", 30)?;
        if storage_timeout_ms > 60_000 || origin_timeout_ms > 600_000 {
            return Err(
                "STORAGE_TIMEOUT_SECONDS must be at most 60 and ORIGIN_TIMEOUT_SECONDS at most 600"
                    .into(),
            );
        }

        Ok(Config {
            key_prefix,
            environment,
            allow_http: flag("ALLOW_HTTP", false)?,
            origin_url: origin_url.trim_end_matches('/').to_string(),
            public_paths,
            key_headers,
            route_rules,
            admin_prefix,
            project_segment,
            plans,
            default_plan,
            kv_cache_ttl,
            route_costs,
            breaker,
            ip_block,
            logs,
            webhook,
            leak_action,
            github_keys,
            alerts: AlertConfig {
                expiry_notice_ms,
                quota_percents,
                credit_percents,
            },
            audit_retention_ms,
            plan_update_batch: plan_update_batch as usize,
            plan_lease_ms,
            settle_linger_ms: settle_linger_ms as u32,
            key_lease_ms,
            key_move_every_ms,
            object_stats: flag("OBJECT_STATS", false)?,
            charge_on,
            reservation_timeout_ms,
            test_hold_plan_updates,
            test_kv_hide_writes_ms,
            test_fail_inline_copies,
            max_keys_per_account,
            audit_refusals_per_hour,
            storage_timeout_ms,
            origin_timeout_ms,
            test_faults,
            test_geo,
            sharing_networks_per_hour: sharing_networks_per_hour as u32,
            sharing_action,
            test_country_header,
            usage_report,
            usage_report_event,
            usage_hour_ms: if test_usage_hour_s > 0 {
                test_usage_hour_s * 1000
            } else {
                crate::limits::usage::HOUR
            },
        })
    }

    /// The plan named `name`, or the default plan for an unknown or unset name.
    pub fn plan(&self, name: Option<&str>) -> (String, Option<&Plan>) {
        match name.and_then(|n| self.plans.get_key_value(n)) {
            Some((n, p)) => (n.clone(), Some(p)),
            None => (
                self.default_plan.clone(),
                self.plans.get(&self.default_plan),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
