//! Deployment configuration, read from wrangler vars. Parsing is pure: the edge hands
//! in a lookup function, so tests need no runtime.

use crate::key_format::valid_product_prefix;
use crate::limits::BreakerConfig;
use crate::model::{Environment, RateLimits};
use crate::policy::{CostRule, RouteRule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits that apply across all keys of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub key_prefix: String,
    pub environment: Environment,
    pub allow_http: bool,
    pub origin_url: String,
    pub public_paths: Vec<String>,
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
    /// Where suspension notices are POSTed (signed with the `WEBHOOK_SECRET` secret).
    pub webhook_url: Option<String>,
}

/// Failed-attempt IP blocking: `threshold` invalid keys within `window_ms` block
/// the address for `cooldown_ms`. A threshold of 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpBlockConfig {
    pub threshold: u32,
    pub window_ms: i64,
    pub cooldown_ms: i64,
}

/// How long request logs are kept, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRetention {
    pub max_age_ms: i64,
    pub max_rows: u32,
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

impl Config {
    /// Builds the configuration from named variables; an error names the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());

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
        let route_rules: Vec<RouteRule> = serde_json::from_str(&text("ROUTE_PERMISSIONS", "[]"))
            .map_err(|e| format!("ROUTE_PERMISSIONS is not a list of rules: {e}"))?;
        let plans = match get("PLANS") {
            None => default_plans(),
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| format!("PLANS is not a map of plans: {e}"))?,
        };
        let default_plan = text("DEFAULT_PLAN", "pro");
        if !plans.contains_key(&default_plan) {
            return Err(format!("DEFAULT_PLAN '{default_plan}' is not among PLANS"));
        }
        let admin_prefix = text("ADMIN_PREFIX", "/admin/v1")
            .trim_end_matches('/')
            .to_string();
        if !admin_prefix.starts_with('/') || admin_prefix.len() < 2 {
            return Err("ADMIN_PREFIX must be a path like /admin/v1".into());
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
            enabled: text("BREAKER_ENABLED", "true") == "true",
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
        let route_costs: Vec<CostRule> = serde_json::from_str(&text("ROUTE_COSTS", "[]"))
            .map_err(|e| format!("ROUTE_COSTS is not a list of rules: {e}"))?;
        let webhook_url = get("WEBHOOK_URL").filter(|u| !u.is_empty());
        if webhook_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err("WEBHOOK_URL must be an http(s) URL".into());
        }

        Ok(Config {
            key_prefix,
            environment,
            allow_http: text("ALLOW_HTTP", "false") == "true",
            origin_url: origin_url.trim_end_matches('/').to_string(),
            public_paths: text("PUBLIC_PATHS", "/health")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            route_rules,
            admin_prefix,
            project_segment: text("PROJECT_SEGMENT", "projects"),
            plans,
            default_plan,
            kv_cache_ttl,
            route_costs,
            breaker,
            ip_block,
            logs,
            webhook_url,
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[("ORIGIN_URL", "http://127.0.0.1:9/")]).unwrap();
        assert_eq!(c.key_prefix, "kw");
        assert_eq!(c.environment, Environment::Production);
        assert!(!c.allow_http);
        assert_eq!(c.origin_url, "http://127.0.0.1:9");
        assert_eq!(c.public_paths, vec!["/health"]);
        assert_eq!(c.admin_prefix, "/admin/v1");
        assert_eq!(c.default_plan, "pro");
        assert!(!c.plans["free"].api_access);
        assert_eq!(c.plans["pro"].rate_limits.per_minute, Some(500));
        assert_eq!(c.plans["business"].rate_limits.per_day, Some(500_000));
        assert_eq!(c.breaker.window_ms, 300_000);
        assert_eq!(c.breaker.cooldown_ms, 900_000);
        assert_eq!(c.breaker.factor, 3.0);
        assert_eq!(c.ip_block.threshold, 10);
        assert_eq!(c.logs.max_age_ms, 30 * 86_400_000);
        assert_eq!(c.webhook_url, None);
    }

    #[test]
    fn errors_name_the_variable() {
        assert!(config(&[]).unwrap_err().contains("ORIGIN_URL"));
        let bad = |k, v| config(&[("ORIGIN_URL", "http://o"), (k, v)]).unwrap_err();
        assert!(bad("ENVIRONMENT", "prod").contains("ENVIRONMENT"));
        assert!(bad("KEY_PREFIX", "k_w").contains("KEY_PREFIX"));
        assert!(bad("ROUTE_PERMISSIONS", "{").contains("ROUTE_PERMISSIONS"));
        assert!(bad("PLANS", "[]").contains("PLANS"));
        assert!(bad("DEFAULT_PLAN", "gold").contains("DEFAULT_PLAN"));
        assert!(bad("KV_CACHE_TTL", "5").contains("KV_CACHE_TTL"));
        assert!(bad("BREAKER_FACTOR", "0.5").contains("BREAKER_FACTOR"));
        assert!(bad("BREAKER_WINDOW_SECONDS", "0").contains("BREAKER_WINDOW_SECONDS"));
        assert!(bad("BREAKER_HISTORY_SECONDS", "400").contains("BREAKER_HISTORY_SECONDS"));
        assert!(bad("IP_BLOCK_THRESHOLD", "-1").contains("IP_BLOCK_THRESHOLD"));
        assert!(bad("ROUTE_COSTS", "{}").contains("ROUTE_COSTS"));
        assert!(bad("WEBHOOK_URL", "ftp://x").contains("WEBHOOK_URL"));
    }

    #[test]
    fn custom_plans_and_rules() {
        let c = config(&[
            ("ORIGIN_URL", "https://api.example"),
            (
                "PLANS",
                r#"{"basic":{"api_access":true,"account_limits":{"per_second":5}}}"#,
            ),
            ("DEFAULT_PLAN", "basic"),
            (
                "ROUTE_PERMISSIONS",
                r#"[{"path":"/licenses/**","permission":"license:manage"}]"#,
            ),
            ("PUBLIC_PATHS", "/health, /docs/**"),
        ])
        .unwrap();
        assert_eq!(c.plans["basic"].account_limits.per_second, Some(5));
        assert_eq!(c.route_rules[0].method, "*");
        assert_eq!(c.public_paths, vec!["/health", "/docs/**"]);
        assert_eq!(c.plan(Some("nope")).0, "basic");
    }
}
