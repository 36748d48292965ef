//! Host micro-benchmark of the pure core on the request path: the request line
//! (canonical path), key parse and checksum, SHA-256, route policy, rows 3–11, and
//! the admission arithmetic (rate limits, quotas, breaker) over a ledger with a day
//! of history.
//! Run: `cargo bench --bench core_check`.

use keyward::key::lifecycle::KeyPatch;

use keyward::config::Config;
use keyward::key::check::{check_key, AccessRequest};
use keyward::key::format::{build_key, parse_key};
use keyward::key::lifecycle::{create, Birth};
use keyward::key::record::Environment;
use keyward::limits::plans::Quotas;
use keyward::limits::plans::RateLimits;

use keyward::limits::admission::{decide, effective_rate_limits, KeyAdmission, Verdict};
use keyward::limits::ledger::{Ledger, KEY_LEVELS};
use keyward::request::inbound::request_line;
use keyward::request::policy;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let cfg = Config::from_lookup(|k| match k {
        "ORIGIN_URL" => Some("http://origin".into()),
        "ROUTE_PERMISSIONS" => Some(
            r#"[{"method":"POST","path":"/licenses/**","permission":"license:manage"}]"#.into(),
        ),
        _ => None,
    })
    .expect("config");
    let (key, prefix) = build_key(
        "kw",
        Environment::Production,
        &[7u8; 20],
        Some("03573Y5or993DOSqmhIN7M"),
    );
    let parsed = parse_key("kw", &key).expect("key");
    let now: i64 = 1_800_000_000_000;
    let mut rec = create(
        Birth {
            id: "key_03573Y5or993DOSqmhIN7M".into(),
            account: "acme".into(),
            environment: Environment::Production,
            hash: parsed.hash.clone(),
            prefix,
            now: now - 86_400_000,
            plan: Some("pro".into()),
            plan_version: 0,
        },
        &KeyPatch::default(),
    );
    rec.rate_limits = RateLimits {
        per_second: Some(1_000),
        per_minute: Some(50_000),
        per_day: Some(10_000_000),
    };
    rec.quotas = Quotas {
        total: Some(u64::MAX / 2),
        daily: Some(1 << 40),
        weekly: Some(1 << 41),
        monthly: Some(1 << 42),
    };
    rec.projects = vec!["p1".into(), "p2".into()];
    // A busy, steady key: ten requests a second for the past 24 h (every bucket of
    // every level populated), so the breaker admits and every sum is full-length.
    let mut ledger = Ledger::new(&KEY_LEVELS);
    let mut t = now - 86_400_000;
    while t < now {
        ledger.add(t, 1);
        t += 100;
    }
    ledger.prune(now);
    let plan = cfg.plan(rec.plan.as_deref()).1;

    let one = |i: i64| {
        let parsed = parse_key(&cfg.key_prefix, black_box(&key)).expect("key");
        let line = request_line(
            "GET",
            black_box("https://api.example.com/projects/p1/tasks?page=2"),
            false,
        )
        .expect("line");
        let needs = policy::needs(
            &cfg.route_rules,
            &cfg.route_costs,
            &cfg.project_segment,
            &[line.method.as_str()],
            &line.path,
        );
        let cost = needs.cost;
        let request = AccessRequest {
            hash: parsed.hash,
            deployment_env: Environment::Production,
            client_ip: Some("203.0.113.7".into()),
            permissions: needs.permissions,
            projects: needs.projects,
            grace: true,
        };
        let identity = check_key(&rec, &request, plan, now + i).expect("admitted");
        let admission = KeyAdmission {
            ledger: &ledger,
            rate: effective_rate_limits(&rec.rate_limits, plan),
            quotas: rec.quotas,
            breaker: cfg.breaker,
            suspended_until: None,
            created_at: rec.created_at,
        };
        let verdict = decide(&admission, now + i, cost);
        assert!(matches!(verdict, Verdict::Admit(_)), "{verdict:?}");
        black_box((identity, verdict));
    };

    for i in 0..20_000 {
        one(i % 1000);
    }
    let mut samples = Vec::new();
    for _ in 0..5 {
        let n = 100_000;
        let start = Instant::now();
        for i in 0..n {
            one(i % 1000);
        }
        samples.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let median = samples[samples.len() / 2];
    // The SHA-256 alone, to show what the rest costs.
    let start = Instant::now();
    for _ in 0..100_000 {
        black_box(keyward::key::format::sha256_hex(black_box(&key)));
    }
    let sha = start.elapsed().as_nanos() as f64 / 100_000.0;
    println!(
        "CORE_JSON {{\"ns_per_check\":{median:.0},\"sha256_ns\":{sha:.0},\"buckets\":{}}}",
        ledger_size(&ledger)
    );
}

fn ledger_size(l: &Ledger) -> usize {
    // Count of live buckets across levels, for the record.
    l.bucket_count()
}
