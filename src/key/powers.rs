//! "Is A no freer than B", over every power of a key (OWASP API1 and API5). An admin
//! key reaches only keys of its own account that are no freer than itself — keys
//! beyond that do not exist for it (404) — and creates, patches or rotates a key
//! only into one no freer than itself (403 naming the excess).
//!
//! A key's powers are read from its record by `Powers::of`, which names every field
//! of `KeyRecord` and says whether it is a power: a field added to the record
//! without a decision here does not compile, and `every_field_of_a_key_is_decided`
//! fails when the record's wire form has a field `DECIDED` does not list.

use crate::limits::plans::Plan;

use crate::key::record::{Environment, KeyRecord};
use crate::key::spend::credits_excess;
pub use crate::key::spend::Spend;
use crate::limits::plans::Quotas;
use crate::limits::plans::RateLimits;

use crate::limits::admission::effective_rate_limits;
use crate::request::cidr::Cidr;
use crate::request::policy;
use crate::time_fmt::to_rfc3339;
use serde::{Deserialize, Serialize};

/// Every power of a key. Kept with each audit event (as its `scope`), so events
/// written before a power existed lack it: a power not recorded (`None`) is not
/// compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Powers {
    /// Whose keys it is (and so whose keys it reaches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Which deployments accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    pub permissions: Vec<String>,
    /// Empty: every project.
    pub projects: Vec<String>,
    /// None: it never expires.
    pub expires_at: Option<i64>,
    /// Until when a secret it was rotated away from is still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<i64>,
    /// Empty: every address.
    pub ip_allowlist: Vec<String>,
    /// Its rate limits as they apply: its own, else its plan's (a limit of None:
    /// unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    /// What it may spend: none recorded (`None`), unlimited, or a balance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<Spend>,
}

/// How `Powers::of` treats a field of `KeyRecord`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Compared by `excess`.
    Power,
    /// Not a power: identity, display, history or state that grants nothing.
    Neutral,
}

/// Every field of a key's record (its wire names) and its decision; kept equal to
/// `Powers::of` by a test.
pub const DECIDED: [(&str, Decision); 29] = [
    ("id", Decision::Neutral),
    ("account", Decision::Power),
    ("name", Decision::Neutral),
    ("alias", Decision::Neutral),
    ("category", Decision::Neutral),
    ("environment", Decision::Power),
    ("permissions", Decision::Power),
    ("projects", Decision::Power),
    ("created_at", Decision::Neutral),
    ("expires_at", Decision::Power),
    // A state the admin sets; never more than the key already could do.
    ("status", Decision::Neutral),
    ("rate_limits", Decision::Power),
    ("quotas", Decision::Power),
    ("ip_allowlist", Decision::Power),
    ("metadata", Decision::Neutral),
    ("prefix", Decision::Neutral),
    ("usage_count", Decision::Neutral),
    ("last_used_at", Decision::Neutral),
    ("hash", Decision::Neutral),
    ("previous_hash", Decision::Neutral),
    ("previous_hash_until", Decision::Power),
    ("updated_at", Decision::Neutral),
    // The account's plan: the same for every key of the account (its limits are
    // in `rate_limits` as they apply).
    ("plan", Decision::Neutral),
    ("plan_version", Decision::Neutral),
    // The circuit breaker's state: it only ever refuses.
    ("suspended_until", Decision::Neutral),
    ("revision", Decision::Neutral),
    ("alerts", Decision::Neutral),
    ("credits", Decision::Power),
    // Fixed at creation (from a parent the creator reaches and is no freer than):
    // each ancestor admits every request too, so it only ever binds.
    ("parents", Decision::Neutral),
];

impl Powers {
    /// The powers of `rec` under its account's `plan`.
    pub fn of(rec: &KeyRecord, plan: Option<&Plan>) -> Self {
        // Every field named: a new one must be decided here (and in `DECIDED`).
        let KeyRecord {
            id: _,
            account,
            name: _,
            alias: _,
            category: _,
            environment,
            permissions,
            projects,
            created_at: _,
            expires_at,
            status: _,
            rate_limits,
            quotas,
            ip_allowlist,
            metadata: _,
            prefix: _,
            usage_count: _,
            last_used_at: _,
            hash: _,
            previous_hash,
            previous_hash_until,
            updated_at: _,
            plan: _,
            plan_version: _,
            suspended_until: _,
            revision: _,
            alerts: _,
            credits,
            parents: _,
        } = rec;
        Powers {
            account: Some(account.clone()),
            environment: Some(*environment),
            permissions: permissions.clone(),
            projects: projects.clone(),
            expires_at: *expires_at,
            previous_secret_until: previous_hash.as_ref().and(*previous_hash_until),
            ip_allowlist: ip_allowlist.clone(),
            rate_limits: Some(effective_rate_limits(rate_limits, plan)),
            quotas: Some(*quotas),
            credits: Some(Spend::of(credits.as_ref())),
        }
    }

    /// The powers a key's ancestor also decides on each of its requests (`Carve`):
    /// its rate limits, quotas and credits are left out (not compared), since the
    /// ancestor's own hold whatever the key's say.
    pub fn carved(self) -> Powers {
        Powers {
            rate_limits: None,
            quotas: None,
            credits: None,
            ..self
        }
    }

    /// The wider of two keys' powers: what either one holds (for an event about a
    /// change, which both the key before and after it may see).
    pub fn widest(a: &Powers, b: &Powers) -> Powers {
        fn union(x: &[String], y: &[String]) -> Vec<String> {
            // An empty list means "unrestricted": it absorbs the other.
            if x.is_empty() || y.is_empty() {
                return Vec::new();
            }
            let mut out = x.to_vec();
            out.extend(y.iter().filter(|v| !x.contains(v)).cloned());
            out
        }
        let later = |x: Option<i64>, y: Option<i64>| x.zip(y).map(|(x, y)| x.max(y));
        let looser = |x: Option<u64>, y: Option<u64>| x.zip(y).map(|(x, y)| x.max(y));
        let mut permissions = a.permissions.clone();
        permissions.extend(
            b.permissions
                .iter()
                .filter(|p| !a.permissions.contains(p))
                .cloned(),
        );
        Powers {
            account: a.account.clone().filter(|x| b.account.as_ref() == Some(x)),
            environment: a.environment.filter(|x| b.environment == Some(*x)),
            permissions,
            projects: union(&a.projects, &b.projects),
            expires_at: later(a.expires_at, b.expires_at),
            previous_secret_until: a.previous_secret_until.max(b.previous_secret_until),
            ip_allowlist: union(&a.ip_allowlist, &b.ip_allowlist),
            rate_limits: a.rate_limits.zip(b.rate_limits).map(|(a, b)| RateLimits {
                per_second: looser(a.per_second, b.per_second),
                per_minute: looser(a.per_minute, b.per_minute),
                per_day: looser(a.per_day, b.per_day),
            }),
            quotas: a.quotas.zip(b.quotas).map(|(a, b)| Quotas {
                total: looser(a.total, b.total),
                daily: looser(a.daily, b.daily),
                weekly: looser(a.weekly, b.weekly),
                monthly: looser(a.monthly, b.monthly),
            }),
            credits: a.credits.zip(b.credits).map(|(x, y)| x.wider(y)),
        }
    }
}

/// How `target` is freer than `granter`, in words; `None` when it is no freer.
pub fn excess(granter: &Powers, target: &Powers) -> Option<String> {
    // Every power named: a new one must be compared here.
    let Powers {
        account,
        environment,
        permissions,
        projects,
        expires_at,
        previous_secret_until,
        ip_allowlist,
        rate_limits,
        quotas,
        credits,
    } = target;
    if let (Some(mine), Some(theirs)) = (&granter.account, account) {
        if mine != theirs {
            return Some(format!("account '{theirs}', not this admin key's"));
        }
    }
    if let (Some(mine), Some(theirs)) = (granter.environment, environment) {
        if mine != *theirs {
            return Some(format!(
                "environment '{}', while this admin key is a {} key",
                theirs.as_str(),
                mine.as_str()
            ));
        }
    }
    if let Some(p) = permissions
        .iter()
        .find(|p| !policy::holds(&granter.permissions, p))
    {
        return Some(format!("permission '{p}', which this admin key lacks"));
    }
    if !granter.projects.is_empty() {
        if projects.is_empty() {
            return Some("access to all projects, beyond this admin key's scope".into());
        }
        if let Some(p) = projects.iter().find(|p| !granter.projects.contains(p)) {
            return Some(format!("project '{p}', outside this admin key's scope"));
        }
    }
    if let Some(limit) = granter.expires_at {
        match expires_at {
            None => {
                return Some(format!(
                    "no expiry, while this admin key expires at {}",
                    to_rfc3339(limit)
                ))
            }
            Some(at) if *at > limit => {
                return Some(format!(
                    "an expiry after this admin key's ({})",
                    to_rfc3339(limit)
                ))
            }
            Some(_) => {}
        }
        if let Some(until) = previous_secret_until.filter(|u| *u > limit) {
            return Some(format!(
                "a grace period until {}, past this admin key's expiry ({})",
                to_rfc3339(until),
                to_rfc3339(limit)
            ));
        }
    }
    if !granter.ip_allowlist.is_empty() {
        if ip_allowlist.is_empty() {
            return Some("no IP allowlist, while this admin key has one".into());
        }
        let outer: Vec<Cidr> = granter
            .ip_allowlist
            .iter()
            .filter_map(|c| Cidr::parse(c).ok())
            .collect();
        if let Some(c) = ip_allowlist
            .iter()
            .find(|c| Cidr::parse(c).map_or(true, |inner| !outer.iter().any(|o| inner.within(o))))
        {
            return Some(format!(
                "IP range '{c}', outside this admin key's allowlist"
            ));
        }
    }
    let mut limits = Vec::with_capacity(7);
    if let (Some(g), Some(t)) = (&granter.rate_limits, rate_limits) {
        limits.extend([
            ("rate_limits.per_second", g.per_second, t.per_second),
            ("rate_limits.per_minute", g.per_minute, t.per_minute),
            ("rate_limits.per_day", g.per_day, t.per_day),
        ]);
    }
    if let (Some(g), Some(t)) = (&granter.quotas, quotas) {
        limits.extend([
            ("quotas.total", g.total, t.total),
            ("quotas.daily", g.daily, t.daily),
            ("quotas.weekly", g.weekly, t.weekly),
            ("quotas.monthly", g.monthly, t.monthly),
        ]);
    }
    for (name, mine, theirs) in limits {
        match (mine, theirs) {
            (Some(mine), None) => {
                return Some(format!("no {name}, while this admin key's is {mine}"))
            }
            (Some(mine), Some(theirs)) if theirs > mine => {
                return Some(format!("{name} of {theirs}, above this admin key's {mine}"))
            }
            _ => {}
        }
    }
    match (&granter.credits, credits) {
        (Some(g), Some(t)) => credits_excess(g, t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::credits::{Credits, Interval, Refill};

    const T: i64 = 1_800_000_000_000;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| x.to_string()).collect()
    }

    fn admin() -> Powers {
        Powers {
            account: Some("acme".into()),
            environment: Some(Environment::Production),
            permissions: s(&["admin"]),
            projects: s(&["p1", "p2"]),
            expires_at: Some(T),
            previous_secret_until: None,
            ip_allowlist: s(&["10.0.0.0/8", "2001:db8::/32"]),
            rate_limits: Some(RateLimits {
                per_minute: Some(100),
                ..Default::default()
            }),
            quotas: Some(Quotas {
                daily: Some(1_000),
                ..Default::default()
            }),
            credits: Some(Spend::Balance {
                remaining: 500,
                refill: Some(Refill {
                    amount: 500,
                    interval: Interval::Month,
                    day: None,
                }),
            }),
        }
    }

    fn rate(o: &mut Powers) -> &mut RateLimits {
        o.rate_limits.get_or_insert_with(Default::default)
    }

    fn quota(o: &mut Powers) -> &mut Quotas {
        o.quotas.get_or_insert_with(Default::default)
    }

    /// The admin's own powers, changed by `f`.
    fn target(f: impl Fn(&mut Powers)) -> Powers {
        let mut o = admin();
        f(&mut o);
        o
    }

    #[test]
    fn the_same_or_less_is_within() {
        let check = |t: Powers| excess(&admin(), &t);
        assert_eq!(check(admin()), None);
        assert_eq!(
            check(target(|o| {
                o.permissions = s(&["read:all"]);
                o.projects = s(&["p2"]);
                o.expires_at = Some(T - 1);
                o.previous_secret_until = Some(T);
                o.ip_allowlist = s(&["10.1.0.0/16", "2001:db8:5::1"]);
                rate(o).per_minute = Some(10);
                rate(o).per_second = Some(1);
                quota(o).daily = Some(5);
                quota(o).total = Some(50);
                o.credits = Some(Spend::Balance {
                    remaining: 7,
                    refill: None,
                });
            })),
            None
        );
    }

    #[test]
    fn each_way_of_being_freer_is_named() {
        let cases: Vec<(Powers, &str)> = vec![
            (
                target(|o| o.account = Some("other".into())),
                "account 'other'",
            ),
            (
                target(|o| o.environment = Some(Environment::Development)),
                "environment 'development'",
            ),
            (
                target(|o| o.permissions.push("license:manage".into())),
                "license:manage",
            ),
            (target(|o| o.projects.clear()), "all projects"),
            (target(|o| o.projects = s(&["p3"])), "project 'p3'"),
            (target(|o| o.expires_at = None), "no expiry"),
            (target(|o| o.expires_at = Some(T + 1)), "an expiry after"),
            (
                target(|o| o.previous_secret_until = Some(T + 1)),
                "a grace period until",
            ),
            (target(|o| o.ip_allowlist.clear()), "no IP allowlist"),
            (
                target(|o| o.ip_allowlist = s(&["11.0.0.0/8"])),
                "'11.0.0.0/8'",
            ),
            (
                target(|o| o.ip_allowlist = s(&["10.0.0.0/7"])),
                "'10.0.0.0/7'",
            ),
            (
                target(|o| rate(o).per_minute = None),
                "no rate_limits.per_minute",
            ),
            (
                target(|o| rate(o).per_minute = Some(101)),
                "rate_limits.per_minute of 101, above this admin key's 100",
            ),
            (target(|o| quota(o).daily = None), "no quotas.daily"),
            (
                target(|o| quota(o).daily = Some(1_001)),
                "quotas.daily of 1001",
            ),
            (
                target(|o| o.credits = Some(Spend::Unlimited)),
                "unlimited credits",
            ),
            (
                target(|o| {
                    o.credits = Some(Spend::Balance {
                        remaining: 501,
                        refill: None,
                    })
                }),
                "credits.remaining of 501",
            ),
            (
                target(|o| {
                    o.credits = Some(Spend::Balance {
                        remaining: 5,
                        refill: Some(Refill {
                            amount: 501,
                            interval: Interval::Month,
                            day: Some(3),
                        }),
                    })
                }),
                "credits.refill.amount of 501",
            ),
            (
                target(|o| {
                    o.credits = Some(Spend::Balance {
                        remaining: 5,
                        refill: Some(Refill {
                            amount: 5,
                            interval: Interval::Day,
                            day: None,
                        }),
                    })
                }),
                "a daily credits refill",
            ),
        ];
        for (t, word) in cases {
            let why = excess(&admin(), &t).expect(word);
            assert!(why.contains(word), "{why} lacks {word}");
        }
    }

    #[test]
    fn an_unconfined_admin_reaches_everything_it_holds() {
        let root_like = Powers {
            permissions: s(&["admin"]),
            ..Default::default()
        };
        let mut t = target(|o| o.permissions = s(&["write:all"]));
        assert!(excess(&root_like, &t).is_none());
        t.permissions = s(&["admin", "license:manage"]);
        assert!(excess(&root_like, &t).is_some());
    }

    #[test]
    fn powers_not_recorded_are_not_compared() {
        // An event written before a power existed lacks it.
        let old = Powers {
            permissions: s(&["read:all"]),
            projects: s(&["p1"]),
            expires_at: Some(T - 1),
            ip_allowlist: s(&["10.0.0.1"]),
            ..Default::default()
        };
        assert_eq!(excess(&admin(), &old), None);
    }

    #[test]
    fn every_field_of_a_key_is_decided() {
        let mut rec = crate::key::lifecycle::test_key(T);
        // Every optional field present, so its wire name shows.
        rec.credits = Some(Credits::new(1, None, T));
        rec.parents = vec!["key_0".into()];
        let wire = serde_json::to_value(&rec).unwrap();
        let fields: Vec<&String> = wire.as_object().unwrap().keys().collect();
        for f in &fields {
            assert!(
                DECIDED.iter().any(|(name, _)| name == f),
                "KeyRecord field '{f}' is not decided in confinement::DECIDED"
            );
        }
        assert_eq!(
            fields.len(),
            DECIDED.len(),
            "DECIDED lists a field the record lacks"
        );
    }

    #[test]
    fn every_power_of_a_record_is_read_from_it() {
        let mut rec = crate::key::lifecycle::test_key(T);
        rec.rate_limits.per_second = Some(3);
        rec.quotas.total = Some(9);
        rec.previous_hash = Some("h0".into());
        rec.previous_hash_until = Some(T + 5);
        let plan = crate::limits::plans::default_plans().remove("pro").unwrap();
        let p = Powers::of(&rec, Some(&plan));
        assert_eq!(p.account.as_deref(), Some("acme"));
        assert_eq!(p.environment, Some(Environment::Production));
        assert_eq!(p.previous_secret_until, Some(T + 5));
        // Its own limit, and its plan's where it sets none.
        assert_eq!(
            p.rate_limits,
            Some(RateLimits {
                per_second: Some(3),
                per_minute: Some(500),
                per_day: Some(50_000),
            })
        );
        assert_eq!(p.quotas.map(|q| q.total), Some(Some(9)));
        for (name, decision) in DECIDED {
            if decision == Decision::Power {
                assert!(
                    serde_json::to_value(&p).unwrap().get(name).is_some()
                        || name == "previous_hash_until",
                    "power {name} is not in Powers"
                );
            }
        }
    }

    #[test]
    fn the_widest_reaches_what_either_reaches() {
        let a = target(|o| {
            o.permissions = s(&["read:all"]);
            o.projects = s(&["p1"]);
            o.expires_at = Some(10);
        });
        let b = target(|o| {
            o.permissions = s(&["license:manage"]);
            o.projects = s(&["p2"]);
            o.expires_at = Some(20);
            o.ip_allowlist.clear();
            rate(o).per_minute = None;
            quota(o).daily = Some(5_000);
        });
        let w = Powers::widest(&a, &b);
        assert_eq!(w.permissions, ["read:all", "license:manage"]);
        assert_eq!(w.projects, ["p1", "p2"]);
        assert_eq!(w.expires_at, Some(20));
        assert!(w.ip_allowlist.is_empty(), "b has none: unrestricted");
        assert_eq!(
            w.rate_limits.unwrap().per_minute,
            None,
            "b has none: unlimited"
        );
        assert_eq!(w.quotas.unwrap().daily, Some(5_000));
        assert_eq!(
            Powers::widest(
                &a,
                &Powers {
                    expires_at: None,
                    ..a.clone()
                }
            )
            .expires_at,
            None
        );
        for t in [&a, &b] {
            assert_eq!(excess(&w, t), None, "the widest holds both");
        }
    }
}
