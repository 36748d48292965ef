//! Validation of management input. Every rejection names the field; nothing is
//! written unless the whole body is valid.

use crate::error::ApiError;
use crate::key::lifecycle::KeyPatch;
use crate::key::names::{identifier, is_permission, is_project_id};
use crate::key::record::Environment;
use crate::limits::plans::Quotas;
use crate::limits::plans::RateLimits;
use crate::request::regions::{self, Region};

use crate::request::cidr::Cidr;
use crate::time_fmt::from_rfc3339;
use serde_json::{Map, Value};

const DAY_MS: i64 = 86_400_000;
const MAX_LIST: usize = 100;
/// Metadata follows Stripe's rules: up to 50 keys of up to 40 characters, each
/// holding a string of up to 500.
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY_CHARS: usize = 40;
const MAX_METADATA_VALUE_CHARS: usize = 500;
/// The largest limit or quota accepted.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// A validated `POST /keys` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub account: Option<String>,
    pub environment: Option<Environment>,
    /// The key it is carved from (`KeyRecord::parents`).
    pub parent: Option<String>,
    pub settings: KeyPatch,
}

const PATCH_FIELDS: [&str; 12] = [
    "name",
    "alias",
    "category",
    "permissions",
    "projects",
    "expires_at",
    "expires_in_days",
    "rate_limits",
    "quotas",
    "ip_allowlist",
    "metadata",
    "credits",
];

pub fn parse_create(body: &Value, now: i64) -> Result<NewKey, ApiError> {
    let obj = as_object(body)?;
    reject_unknown(
        obj,
        &[&PATCH_FIELDS[..], &["account", "environment", "parent"]].concat(),
    )?;
    let account = match obj.get("account") {
        None => None,
        Some(v) => Some(account_id(v, "account")?),
    };
    let environment = match obj.get("environment") {
        None => None,
        Some(v) => Some(v.as_str().and_then(Environment::parse).ok_or_else(|| {
            ApiError::field("environment", "must be production, staging or development")
        })?),
    };
    let parent = match obj.get("parent") {
        None | Some(Value::Null) => None,
        Some(v) => Some(crate::key::names::key_id(v, "parent")?),
    };
    let settings = parse_settings(obj, now)?;
    if settings.name.is_none() {
        return Err(ApiError::field("name", "is required"));
    }
    Ok(NewKey {
        account,
        environment,
        parent,
        settings,
    })
}

pub fn parse_patch(body: &Value, now: i64) -> Result<KeyPatch, ApiError> {
    let obj = as_object(body)?;
    for fixed in [
        "account",
        "environment",
        "id",
        "key",
        "prefix",
        "status",
        "parent",
    ] {
        if obj.contains_key(fixed) {
            return Err(ApiError::field(fixed, "cannot be changed"));
        }
    }
    reject_unknown(obj, &PATCH_FIELDS)?;
    let patch = parse_settings(obj, now)?;
    if patch == KeyPatch::default() {
        return Err(ApiError::InvalidBody {
            reason: "nothing to change".into(),
        });
    }
    Ok(patch)
}

/// `POST /keys/{id}/rotate` takes an optional grace period, in seconds (≤ 7 days).
pub fn parse_grace_seconds(body: Option<&Value>) -> Result<u64, ApiError> {
    let Some(body) = body else { return Ok(0) };
    let obj = as_object(body)?;
    reject_unknown(obj, &["grace_period_seconds"])?;
    match obj.get("grace_period_seconds") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => whole_number(v).filter(|s| *s <= 7 * 86_400).ok_or_else(|| {
            ApiError::field(
                "grace_period_seconds",
                "must be a whole number of seconds from 0 to 604800",
            )
        }),
    }
}

/// `PUT /accounts/{id}`: `{"plan": "<name>"}`, the name one of `plans`.
/// `PUT /accounts/{id}`'s body: the plan, and what it says of the region (absent:
/// unchanged; null: none; else one of the regions' names).
pub fn parse_account<'a>(
    body: &Value,
    plans: impl Iterator<Item = &'a String>,
) -> Result<(String, Option<Option<Region>>), ApiError> {
    let region = match as_object(body)?.get("region") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => Some(Some(v.as_str().and_then(Region::parse).ok_or_else(
            || {
                ApiError::field(
                    "region",
                    format!("must be one of {} or null", regions::names()),
                )
            },
        )?)),
    };
    Ok((parse_plan(body, plans)?, region))
}

fn parse_plan<'a>(
    body: &Value,
    plans: impl Iterator<Item = &'a String>,
) -> Result<String, ApiError> {
    let obj = as_object(body)?;
    reject_unknown(obj, &["plan", "region"])?;
    let plan = obj
        .get("plan")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::field("plan", "is required"))?;
    let known: Vec<&String> = plans.collect();
    if known.iter().any(|p| *p == plan) {
        Ok(plan.to_string())
    } else {
        let names: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
        Err(ApiError::field(
            "plan",
            format!("must be one of {}", names.join(", ")),
        ))
    }
}

fn parse_settings(obj: &Map<String, Value>, now: i64) -> Result<KeyPatch, ApiError> {
    let mut p = KeyPatch::default();
    if let Some(v) = obj.get("name") {
        p.name = Some(shown_text(v, "name", 100)?);
    }
    if let Some(v) = obj.get("alias") {
        p.alias = Some(nullable(v, |v| identifier(v, "alias"))?);
    }
    if let Some(v) = obj.get("category") {
        p.category = Some(nullable(v, |v| shown_text(v, "category", 64))?);
    }
    if let Some(v) = obj.get("permissions") {
        p.permissions = Some(list(v, "permissions", |s| {
            is_permission(s).then_some(()).ok_or(
                "must be 1-64 lowercase letters, digits, '.', '_', ':' or '-', such as 'read:all'",
            )
        })?);
    }
    if let Some(v) = obj.get("projects") {
        p.projects = Some(list(v, "projects", |s| {
            is_project_id(s)
                .then_some(())
                .ok_or("must be 1-128 letters, digits, '.', '_', ':' or '-'")
        })?);
    }
    match (obj.get("expires_at"), obj.get("expires_in_days")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "expires_at",
                "give expires_at or expires_in_days, not both",
            ))
        }
        (Some(v), None) => {
            p.expires_at = Some(nullable(v, |v| {
                // A time already past is allowed: the key is expired from then on
                // (the way to end a key at once without revoking it).
                v.as_str()
                    .and_then(from_rfc3339)
                    .ok_or_else(|| ApiError::field("expires_at", "must be an RFC 3339 date-time"))
            })?)
        }
        (None, Some(v)) => {
            p.expires_at = Some(nullable(v, |v| match whole_number(v) {
                Some(d @ (30 | 60 | 90 | 365)) => Ok(now + d as i64 * DAY_MS),
                _ => Err(ApiError::field(
                    "expires_in_days",
                    "must be 30, 60, 90 or 365",
                )),
            })?)
        }
        (None, None) => {}
    }
    if let Some(v) = obj.get("rate_limits") {
        let [per_second, per_minute, per_day] =
            limits_object(v, "rate_limits", ["per_second", "per_minute", "per_day"])?;
        p.rate_limits = Some(RateLimits {
            per_second,
            per_minute,
            per_day,
        });
    }
    if let Some(v) = obj.get("quotas") {
        let [total, daily, weekly, monthly] =
            limits_object(v, "quotas", ["total", "daily", "weekly", "monthly"])?;
        p.quotas = Some(Quotas {
            total,
            daily,
            weekly,
            monthly,
        });
    }
    if let Some(v) = obj.get("ip_allowlist") {
        let list = list(v, "ip_allowlist", |s| {
            Cidr::parse(s)
                .map(|_| ())
                .map_err(|_| "must be IP addresses or CIDR blocks such as 203.0.113.0/24")
        })?;
        p.ip_allowlist = Some(list);
    }
    if let Some(v) = obj.get("metadata") {
        p.metadata = Some(metadata(v)?);
    }
    if let Some(v) = obj.get("credits") {
        p.credits = Some(nullable(v, |v| crate::limits::credits::parse(v, now))?);
    }
    Ok(p)
}

fn as_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| ApiError::InvalidBody {
        reason: "expected a JSON object".into(),
    })
}

fn reject_unknown(obj: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::field(k, "is not a known field")),
        None => Ok(()),
    }
}

fn nullable<T>(
    v: &Value,
    parse: impl FnOnce(&Value) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    if v.is_null() {
        Ok(None)
    } else {
        parse(v).map(Some)
    }
}

/// `null` clears; otherwise an object of string values (see the limits above).
fn metadata(v: &Value) -> Result<Map<String, Value>, ApiError> {
    let m = match v {
        Value::Null => return Ok(Map::new()),
        Value::Object(m) => m,
        _ => return Err(ApiError::field("metadata", "must be an object")),
    };
    if m.len() > MAX_METADATA_KEYS {
        return Err(ApiError::field(
            "metadata",
            format!("may hold at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    for (k, value) in m {
        if k.is_empty() || k.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(ApiError::field(
                "metadata",
                format!("keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
            ));
        }
        match value.as_str() {
            Some(s) if s.chars().count() <= MAX_METADATA_VALUE_CHARS => {}
            _ => {
                return Err(ApiError::field(
                    &format!("metadata.{k}"),
                    format!("must be a string of at most {MAX_METADATA_VALUE_CHARS} characters"),
                ))
            }
        }
    }
    Ok(m.clone())
}

/// A text that is stored and shown (a name, a category): `text`, and nothing
/// invisible or direction-changing (a name that reads as another, or is shown
/// reordered: `unicode_tables::INVISIBLE`).
fn shown_text(v: &Value, field: &str, max: usize) -> Result<String, ApiError> {
    let invisible = v.as_str().and_then(|s| {
        s.chars().find(|c| {
            crate::request::canonical_path::in_table(crate::request::unicode_tables::INVISIBLE, *c)
        })
    });
    if let Some(c) = invisible {
        return Err(ApiError::field(
            field,
            format!(
                "must not contain invisible or direction-changing characters (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    text(v, field, max)
}

/// A text: 1 to `max` characters, not blank, no control characters; kept without
/// surrounding whitespace.
pub fn text(v: &Value, field: &str, max: usize) -> Result<String, ApiError> {
    match v.as_str() {
        Some(s)
            if s.chars().count() <= max
                && !s.trim().is_empty()
                && !s.chars().any(char::is_control) =>
        {
            Ok(s.trim().to_string())
        }
        _ => Err(ApiError::field(
            field,
            format!(
                "must be a string of 1 to {max} characters, not blank, without control characters"
            ),
        )),
    }
}

/// An account a key or a plan may be given: an identifier, but not the name of
/// the deployment's own audit trail (`audit::DEPLOYMENT_TRAIL`).
pub fn account_id(v: &Value, field: &str) -> Result<String, ApiError> {
    let id = identifier(v, field)?;
    if id == crate::notify::audit::DEPLOYMENT_TRAIL {
        return Err(ApiError::field(
            field,
            format!("'{id}' is reserved for keyward's own audit trail"),
        ));
    }
    Ok(id)
}

fn list(
    v: &Value,
    field: &str,
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<Vec<String>, ApiError> {
    let items = v
        .as_array()
        .ok_or_else(|| ApiError::field(field, "must be an array of strings"))?;
    if items.len() > MAX_LIST {
        return Err(ApiError::field(
            field,
            format!("may hold at most {MAX_LIST} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let s = item
            .as_str()
            .ok_or_else(|| ApiError::field(field, "must be an array of strings"))?;
        check(s).map_err(|reason| ApiError::field(field, format!("'{s}' is invalid: {reason}")))?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// A JSON number that is a whole non-negative number (`5` or `5.0`).
pub fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_LIMIT as f64)
            .map(|f| f as u64)
    })
}

fn limits_object<const N: usize>(
    v: &Value,
    field: &str,
    names: [&str; N],
) -> Result<[Option<u64>; N], ApiError> {
    let mut out = [None; N];
    let obj = match v {
        Value::Null => return Ok(out),
        Value::Object(o) => o,
        _ => return Err(ApiError::field(field, "must be an object")),
    };
    if let Some(k) = obj.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(ApiError::field(
            &format!("{field}.{k}"),
            "is not a known field",
        ));
    }
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(x) => Some(
                whole_number(x)
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::field(
                            &format!("{field}.{name}"),
                            "must be a whole number from 1 to 1000000000000",
                        )
                    })?,
            ),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    fn field_of(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        match r {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn full_create_body() {
        let k = parse_create(
            &json!({
                "name": "ci", "alias": "ci-1", "account": "acme", "environment": "staging",
                "category": "staging", "permissions": ["read:all", "license:manage", "read:all"],
                "projects": ["p1"], "expires_in_days": 30,
                "rate_limits": {"per_minute": 10}, "quotas": {"daily": 100, "total": null},
                "ip_allowlist": ["10.0.0.0/8", "::1"], "metadata": {"team": "x"}
            }),
            NOW,
        )
        .unwrap();
        assert_eq!(k.account.as_deref(), Some("acme"));
        assert_eq!(k.environment, Some(Environment::Staging));
        let s = k.settings;
        assert_eq!(s.permissions.unwrap(), vec!["read:all", "license:manage"]);
        assert_eq!(s.expires_at, Some(Some(NOW + 30 * DAY_MS)));
        assert_eq!(s.rate_limits.unwrap().per_minute, Some(10));
        assert_eq!(s.quotas.unwrap().daily, Some(100));
        assert_eq!(s.alias, Some(Some("ci-1".into())));
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |body: Value| field_of(parse_create(&body, NOW));
        assert_eq!(bad(json!({})), "name");
        assert_eq!(bad(json!({"name": ""})), "name");
        assert_eq!(bad(json!({"name": 5})), "name");
        assert_eq!(bad(json!({"name": "a", "alias": "a b"})), "alias");
        assert_eq!(bad(json!({"name": "a", "account": "a/b"})), "account");
        assert_eq!(bad(json!({"name": "a", "account": null})), "account");
        assert_eq!(
            bad(json!({"name": "a", "environment": null})),
            "environment"
        );
        assert_eq!(
            bad(json!({"name": "a", "environment": "prod"})),
            "environment"
        );
        assert_eq!(
            bad(json!({"name": "a", "permissions": "read:all"})),
            "permissions"
        );
        assert_eq!(
            bad(json!({"name": "a", "permissions": ["Read All"]})),
            "permissions"
        );
        assert_eq!(bad(json!({"name": "a", "projects": ["a/b"]})), "projects");
        for hostile in [
            "p1\r\nX-Keyward-Account: other",
            "p 1",
            "p,1",
            "p;1",
            "p%2F1",
            "",
        ] {
            assert_eq!(bad(json!({"name": "a", "projects": [hostile]})), "projects");
        }
        for hostile in ["admin\r\nx: y", "read:all,admin", "a b", "*", "Admin"] {
            assert_eq!(
                bad(json!({"name": "a", "permissions": [hostile]})),
                "permissions"
            );
        }
        assert_eq!(
            bad(json!({"name": "a", "expires_in_days": 31})),
            "expires_in_days"
        );
        assert_eq!(
            bad(json!({"name": "a", "expires_at": "soon"})),
            "expires_at"
        );
        assert_eq!(
            bad(json!({"name": "a", "expires_at": "2099-01-01T00:00:00Z", "expires_in_days": 30})),
            "expires_at"
        );
        assert_eq!(
            bad(json!({"name": "a", "rate_limits": {"per_minute": 0}})),
            "rate_limits.per_minute"
        );
        assert_eq!(
            bad(json!({"name": "a", "rate_limits": {"per_hour": 1}})),
            "rate_limits.per_hour"
        );
        assert_eq!(
            bad(json!({"name": "a", "quotas": {"daily": -1}})),
            "quotas.daily"
        );
        assert_eq!(
            bad(json!({"name": "a", "ip_allowlist": ["10.0.0.0/40"]})),
            "ip_allowlist"
        );
        assert_eq!(bad(json!({"name": "a", "metadata": [1]})), "metadata");
        assert_eq!(
            bad(json!({"name": "a", "metadata": {"x": "y".repeat(501)}})),
            "metadata.x"
        );
        assert_eq!(
            bad(json!({"name": "a", "metadata": {"x": 1}})),
            "metadata.x"
        );
        assert_eq!(
            bad(json!({"name": "a", "metadata": {"k".repeat(41): "v"}})),
            "metadata"
        );
        let many: Map<String, Value> = (0..51).map(|i| (i.to_string(), json!("v"))).collect();
        assert_eq!(bad(json!({"name": "a", "metadata": many})), "metadata");
        assert_eq!(bad(json!({"name": "\u{1c}"})), "name");
        assert_eq!(bad(json!({"name": "a\nb"})), "name");
        assert_eq!(bad(json!({"name": "   "})), "name");
        for hidden in [
            "\u{200B}",
            "a\u{202E}gpj.exe",
            "\u{2066}x\u{2069}",
            "\u{FEFF}",
            "\u{3164}",
            "\u{2800}",
            "a\u{2028}b",
            "\u{180E}",
        ] {
            assert_eq!(bad(json!({ "name": hidden })), "name", "{hidden:?}");
            assert_eq!(
                bad(json!({ "name": "a", "category": hidden })),
                "category",
                "{hidden:?}"
            );
        }
        assert_eq!(
            bad(json!({"name": format!(" {} ", "n".repeat(100))})),
            "name"
        );
        assert_eq!(
            bad(json!({"name": "a", "quotas": {"total": 1_000_000_000_001u64}})),
            "quotas.total"
        );
        assert_eq!(bad(json!({"name": "a", "colour": "red"})), "colour");
        assert!(matches!(
            parse_create(&json!([1]), NOW),
            Err(ApiError::InvalidBody { .. })
        ));
    }

    #[test]
    fn whole_numbers_and_past_expiry_are_accepted() {
        let k = parse_create(
            &json!({"name": " ci ", "rate_limits": {"per_minute": 10.0}, "expires_at": "2000-01-01T00:00:00Z"}),
            NOW,
        )
        .unwrap();
        assert_eq!(k.settings.name.as_deref(), Some("ci"));
        assert_eq!(k.settings.rate_limits.unwrap().per_minute, Some(10));
        assert_eq!(k.settings.expires_at, Some(Some(946_684_800_000)));
    }

    #[test]
    fn patch_clears_with_null_and_refuses_fixed_fields() {
        let p = parse_patch(
            &json!({"alias": null, "expires_at": null, "permissions": ["admin"]}),
            NOW,
        )
        .unwrap();
        assert_eq!(p.alias, Some(None));
        assert_eq!(p.expires_at, Some(None));
        assert_eq!(p.permissions, Some(vec!["admin".into()]));
        assert_eq!(
            field_of(parse_patch(&json!({"environment": "staging"}), NOW)),
            "environment"
        );
        assert_eq!(
            field_of(parse_patch(&json!({"account": "x"}), NOW)),
            "account"
        );
        assert!(matches!(
            parse_patch(&json!({}), NOW),
            Err(ApiError::InvalidBody { .. })
        ));
    }

    #[test]
    fn patch_survives_the_wire_with_clears_intact() {
        let p = parse_patch(&json!({"alias": null, "category": "x", "name": "n"}), NOW).unwrap();
        let back: KeyPatch = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.alias, Some(None));
        assert_eq!(back.expires_at, None);
    }

    #[test]
    fn grace_and_plan() {
        assert_eq!(parse_grace_seconds(None), Ok(0));
        assert_eq!(
            parse_grace_seconds(Some(&json!({"grace_period_seconds": 60}))),
            Ok(60)
        );
        assert_eq!(
            field_of(parse_grace_seconds(Some(
                &json!({"grace_period_seconds": -1})
            ))),
            "grace_period_seconds"
        );
        let plans = ["free".to_string(), "pro".to_string()];
        assert_eq!(
            parse_plan(&json!({"plan": "pro"}), plans.iter()),
            Ok("pro".into())
        );
        assert_eq!(
            field_of(parse_plan(&json!({"plan": "gold"}), plans.iter())),
            "plan"
        );
        assert_eq!(field_of(parse_plan(&json!({}), plans.iter())), "plan");
        let (plan, region) =
            parse_account(&json!({"plan": "pro", "region": "oc"}), plans.iter()).unwrap();
        assert_eq!(
            (plan.as_str(), region),
            ("pro", Some(Some(crate::request::regions::Region::Oc)))
        );
        let (_, region) =
            parse_account(&json!({"plan": "pro", "region": null}), plans.iter()).unwrap();
        assert_eq!(region, Some(None));
        let (_, region) = parse_account(&json!({"plan": "pro"}), plans.iter()).unwrap();
        assert_eq!(region, None);
        for bad in [
            json!("OC"),
            json!("mars"),
            json!(""),
            json!(5),
            json!(["oc"]),
        ] {
            let body = json!({"plan": "pro", "region": bad});
            assert_eq!(
                field_of(parse_account(&body, plans.iter())),
                "region",
                "{body}"
            );
        }
    }
}
