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
    assert_eq!(c.webhook, None);
    assert_eq!(c.audit_retention_ms, 400 * 86_400_000);
    assert_eq!(c.alerts.expiry_notice_ms, vec![86_400_000, 7 * 86_400_000]);
    assert_eq!(c.alerts.quota_percents, vec![80, 100]);
    assert_eq!(c.plan_update_batch, 50);
    assert!(!c.object_stats);
    assert_eq!(c.max_keys_per_account, 10_000);
    assert_eq!(c.audit_refusals_per_hour, 10);
    assert_eq!((c.storage_timeout_ms, c.origin_timeout_ms), (5_000, 30_000));
    assert!(!c.test_faults);
}

#[test]
fn charging_and_reservation_timeout_are_checked() {
    let with = |k: &str, v: &str| config(&[("ORIGIN_URL", "http://x"), (k, v)]);
    let base = with("X", "").unwrap();
    assert_eq!(
        base.charge_on,
        crate::limits::reservation::ChargeOn::Forwarded
    );
    assert_eq!(base.reservation_timeout_ms, 30_000);
    assert_eq!(
        with("CHARGE_ON", "success").unwrap().charge_on,
        crate::limits::reservation::ChargeOn::Success
    );
    assert_eq!(
        with("RESERVATION_TIMEOUT_SECONDS", "2")
            .unwrap()
            .reservation_timeout_ms,
        2_000
    );
    for (k, bad) in [
        ("CHARGE_ON", "always"),
        ("CHARGE_ON", "SUCCESS"),
        ("RESERVATION_TIMEOUT_SECONDS", "0"),
        ("RESERVATION_TIMEOUT_SECONDS", "1.5"),
        ("RESERVATION_TIMEOUT_SECONDS", "3601"),
    ] {
        let e = with(k, bad).unwrap_err();
        assert!(e.contains(k), "{k}={bad}: {e}");
    }
}

#[test]
fn audit_retention_and_plan_batches_are_checked() {
    let with = |k: &str, v: &str| config(&[("ORIGIN_URL", "http://x"), (k, v)]);
    assert_eq!(
        with("AUDIT_RETENTION_DAYS", "0.0001")
            .unwrap()
            .audit_retention_ms,
        8_640
    );
    for bad in ["0", "-1", "abc", "NaN", "inf", "36501"] {
        let e = with("AUDIT_RETENTION_DAYS", bad).unwrap_err();
        assert!(e.contains("AUDIT_RETENTION_DAYS"), "{bad}: {e}");
    }
    assert_eq!(with("PLAN_UPDATE_BATCH", "7").unwrap().plan_update_batch, 7);
    assert_eq!(
        with("EXPIRY_NOTICE_DAYS", "0.0001, 0.0002")
            .unwrap()
            .alerts
            .expiry_notice_ms,
        vec![8_640, 17_280]
    );
    assert!(with("EXPIRY_NOTICE_DAYS", "")
        .unwrap()
        .alerts
        .expiry_notice_ms
        .is_empty());
    for bad in ["7,x", "0", "-1", "4000"] {
        let e = with("EXPIRY_NOTICE_DAYS", bad).unwrap_err();
        assert!(e.starts_with("EXPIRY_NOTICE_DAYS"), "{bad}: {e}");
    }
    for bad in ["0", "101", "50.5", "80;100"] {
        let e = with("QUOTA_ALERT_PERCENTS", bad).unwrap_err();
        assert!(e.starts_with("QUOTA_ALERT_PERCENTS"), "{bad}: {e}");
    }
    let e = config(&[
        ("ORIGIN_URL", "http://x"),
        ("TEST_HOLD_PLAN_UPDATES", "true"),
    ])
    .unwrap_err();
    assert!(e.contains("TEST_HOLD_PLAN_UPDATES is a test switch"), "{e}");
    let e = config(&[
        ("ORIGIN_URL", "http://x"),
        ("TEST_KV_HIDE_WRITES_SECONDS", "30"),
    ])
    .unwrap_err();
    assert!(
        e.contains("TEST_KV_HIDE_WRITES_SECONDS is a test switch"),
        "{e}"
    );
    assert!(with("TEST_KV_HIDE_WRITES_SECONDS", "x")
        .unwrap_err()
        .starts_with("TEST_KV_HIDE_WRITES_SECONDS"));
    let dev = config(&[
        ("ORIGIN_URL", "http://x"),
        ("ENVIRONMENT", "development"),
        ("TEST_KV_HIDE_WRITES_SECONDS", "30"),
    ]);
    assert_eq!(dev.unwrap().test_kv_hide_writes_ms, 30_000);
    for bad in ["0", "501", "x"] {
        assert!(with("PLAN_UPDATE_BATCH", bad)
            .unwrap_err()
            .contains("PLAN_UPDATE_BATCH"));
    }
}

#[test]
fn geography_is_a_region_and_a_test_switch() {
    let dev = |v: &str| {
        config(&[
            ("ORIGIN_URL", "http://o"),
            ("ENVIRONMENT", "development"),
            ("TEST_GEO", v),
        ])
    };
    assert_eq!(dev("").unwrap().test_geo, None);
    assert_eq!(dev("weur").unwrap().test_geo, Some(Region::Weur));
    assert!(dev("europe")
        .unwrap_err()
        .contains("TEST_GEO must be a region"));
    let prod = config(&[("ORIGIN_URL", "http://o"), ("TEST_GEO", "oc")]).unwrap_err();
    assert!(prod.contains("TEST_GEO is a test switch"), "{prod}");
}

#[test]
fn errors_name_the_variable() {
    assert!(config(&[]).unwrap_err().contains("ORIGIN_URL"));
    let bad = |k, v| config(&[("ORIGIN_URL", "http://o"), (k, v)]).unwrap_err();
    assert!(bad("ENVIRONMENT", "prod").contains("ENVIRONMENT"));
    assert!(bad("KEY_PREFIX", "k_w").contains("KEY_PREFIX"));
    assert!(bad("PLAN_LEASE_SECONDS", "61").contains("PLAN_LEASE_SECONDS"));
    assert!(bad("PLAN_LEASE_SECONDS", "-1").contains("PLAN_LEASE_SECONDS"));
    assert!(bad("SETTLE_LINGER_MS", "10001").contains("SETTLE_LINGER_MS"));
    assert!(bad("KEY_LEASE_MS", "10001").contains("KEY_LEASE_MS"));
    assert!(bad("KEY_LEASE_MS", "-5").contains("KEY_LEASE_MS"));
    assert!(bad("KEY_MOVE_EVERY_SECONDS", "86401").contains("KEY_MOVE_EVERY_SECONDS"));
    assert!(bad("KEY_MOVE_EVERY_SECONDS", "soon").contains("KEY_MOVE_EVERY_SECONDS"));
    assert!(bad("KEY_HEADERS", "X-API-Key, Authorization")
        .contains("KEY_HEADERS: 'Authorization' cannot carry a key"));
    assert!(bad("KEY_HEADERS", "x api").contains("KEY_HEADERS"));
    assert!(bad("SHARING_NETWORKS_PER_HOUR", "many").contains("SHARING_NETWORKS_PER_HOUR"));
    assert!(bad("SHARING_NETWORKS_PER_HOUR", "100001").contains("SHARING_NETWORKS_PER_HOUR"));
    assert!(bad("SHARING_ACTION", "revoke").contains("SHARING_ACTION"));
    assert!(bad("CREDIT_ALERT_PERCENTS", "101").contains("CREDIT_ALERT_PERCENTS"));
    let prod = [
        ("ENVIRONMENT", "production"),
        ("TEST_COUNTRY_HEADER", "true"),
    ];
    let e = config(&[&[("ORIGIN_URL", "http://o")][..], &prod].concat()).unwrap_err();
    assert!(e.contains("TEST_COUNTRY_HEADER is a test switch"), "{e}");
    let kh = config(
        &[
            &[("ORIGIN_URL", "http://o")][..],
            &[("KEY_HEADERS", "X-API-Key, apikey,x-api-key")],
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(kh.key_headers, ["x-api-key", "apikey"]);
    assert!(bad("SETTLE_LINGER_MS", "1s").contains("SETTLE_LINGER_MS"));
    let short = [
        ("RESERVATION_TIMEOUT_SECONDS", "1"),
        ("SETTLE_LINGER_MS", "600"),
    ];
    let e = config(&[&[("ORIGIN_URL", "http://o")][..], &short].concat()).unwrap_err();
    assert!(e.contains("SETTLE_LINGER_MS"), "{e}");
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
fn malformed_settings_are_loud_never_defaulted() {
    let bad = |vars: &[(&str, &str)]| {
        let mut all = vec![("ORIGIN_URL", "http://o")];
        all.extend_from_slice(vars);
        config(&all).unwrap_err()
    };
    // A webhook without its secret would be signed with an empty key.
    assert!(bad(&[("WEBHOOK_URL", "https://hooks.example")]).contains("WEBHOOK_SECRET"));
    assert!(
        bad(&[("WEBHOOK_URL", "https://h"), ("WEBHOOK_SECRET", "short")])
            .contains("WEBHOOK_SECRET")
    );
    assert!(bad(&[("ALLOW_HTTP", "yes")]).contains("ALLOW_HTTP"));
    assert!(bad(&[("LEAK_ACTION", "delete")]).contains("LEAK_ACTION"));
    assert!(bad(&[("GITHUB_SECRET_SCANNING_KEYS", "[{}]")]).contains("GITHUB_SECRET_SCANNING_KEYS"));
    assert!(
        bad(&[("TEST_FAIL_INLINE_COPIES", "true")]).contains("refused when ENVIRONMENT=production")
    );
    assert!(bad(&[("BREAKER_ENABLED", "TRUE")]).contains("BREAKER_ENABLED"));
    let rules = |json: &str| bad(&[("ROUTE_PERMISSIONS", json)]);
    assert!(rules(r#"[{"path":"/a","permision":"x"}]"#).contains("ROUTE_PERMISSIONS"));
    assert!(rules(r#"[{"path":"/a/**/b","permission":"x"}]"#).contains("'**'"));
    assert!(rules(r#"[{"path":"/a%2Fb","permission":"x"}]"#).contains("/a%2Fb"));
    assert!(rules(r#"[{"path":"a","permission":"x"}]"#).contains("ROUTE_PERMISSIONS"));
    assert!(rules(r#"[{"path":"/a","permission":"x\r\ny"}]"#).contains("permission"));
    assert!(rules(r#"[{"method":"GE T","path":"/a","permission":"x"}]"#).contains("GE T"));
    let costs = |json: &str| bad(&[("ROUTE_COSTS", json)]);
    assert!(costs(r#"[{"path":"/r","cost":0}]"#).contains("at least 1"));
    assert!(costs(r#"[{"path":"/r","cost":2001}]"#).contains("exceeds every plan"));
    assert!(bad(&[("PUBLIC_PATHS", "/docs/;x")]).contains("PUBLIC_PATHS"));
    assert!(bad(&[("PROJECT_SEGMENT", "a/b")]).contains("PROJECT_SEGMENT"));
    assert!(bad(&[("ADMIN_PREFIX", "/admin/../x")]).contains("ADMIN_PREFIX"));
    assert!(bad(&[
        (
            "PLANS",
            r#"{"p":{"api_access":true,"rate_limits":{"per_minute":0}}}"#
        ),
        ("DEFAULT_PLAN", "p")
    ])
    .contains("limit of 0"));
    assert!(bad(&[
        (
            "PLANS",
            r#"{"p":{"api_access":true,"rate_limits":{"per_hour":5}}}"#
        ),
        ("DEFAULT_PLAN", "p")
    ])
    .contains("PLANS"));
}

#[test]
fn patterns_are_kept_canonical_and_secrets_never_printed() {
    let c = config(&[
        ("ORIGIN_URL", "http://o"),
        ("PUBLIC_PATHS", "/docs/./x//**"),
        ("ROUTE_COSTS", r#"[{"path":"/r","cost":2000}]"#),
        ("WEBHOOK_URL", "https://hooks.example"),
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        (
            "WEBHOOK_SECRET_PREVIOUS",
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    ])
    .unwrap();
    assert_eq!(c.public_paths, vec!["/docs/x/**"]);
    assert_eq!(c.route_costs[0].cost, 2000, "fits the business plan");
    assert_eq!(c.webhook.as_ref().map(|w| w.secrets.len()), Some(2));
    assert!(!format!("{c:?}").contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
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
