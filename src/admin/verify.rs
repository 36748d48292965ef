//! `POST /admin/v1/verify`: the gate's rows 2–15 for a service that receives a key
//! itself (a queue consumer, a second API, a WebSocket server). The body names the
//! request the key is presented for; the answer says whether the gate would admit
//! it, in the gate's own words.

use crate::admin::input::{whole_number, MAX_LIMIT};
use crate::key::names::is_permission;
use crate::key::names::is_project_id;

use crate::config::Config;
use crate::error::ApiError;
use crate::key::identity::Identity;
use crate::limits::admission::LimitState;
use crate::request::canonical_path::canonicalize;
use crate::request::inbound::is_token;
use crate::request::policy::{self, Needs};
use serde_json::{json, Value};
use std::net::IpAddr;

/// The longest `key` read; anything longer is no key of ours.
const MAX_KEY_CHARS: usize = 512;

/// A validated verify body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCall {
    pub key: String,
    pub method: String,
    /// As given; whether it is a path the gate would take is part of the answer.
    pub path: String,
    pub permission: Option<String>,
    pub project: Option<String>,
    pub cost: Option<u64>,
    pub ip: Option<String>,
}

pub fn parse(body: &Value) -> Result<VerifyCall, ApiError> {
    let obj = body.as_object().ok_or_else(|| ApiError::InvalidBody {
        reason: "expected a JSON object".into(),
    })?;
    const FIELDS: [&str; 7] = [
        "key",
        "method",
        "path",
        "permission",
        "project",
        "cost",
        "ip",
    ];
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(k, "is not a known field"));
    }
    let text =
        |name: &str, ok: &dyn Fn(&str) -> bool, why: &str| -> Result<Option<String>, ApiError> {
            match obj.get(name) {
                None => Ok(None),
                Some(Value::String(s)) if ok(s) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::field(name, why)),
            }
        };
    let key = text(
        "key",
        &|s| !s.is_empty() && s.chars().count() <= MAX_KEY_CHARS,
        "must be the key as presented: a string of 1 to 512 characters",
    )?
    .ok_or_else(|| ApiError::field("key", "is required"))?;
    let method = text("method", &is_token, "must be an HTTP method such as GET")?;
    let path = text(
        "path",
        &|s| s.len() <= 8192,
        "must be a string of at most 8192 bytes",
    )?;
    let permission = text(
        "permission",
        &is_permission,
        "must be a permission such as read:all",
    )?;
    let project = text(
        "project",
        &is_project_id,
        "must be a project id: [A-Za-z0-9._:-]{1,128}",
    )?;
    let ip = text(
        "ip",
        &|s| s.parse::<IpAddr>().is_ok(),
        "must be an IPv4 or IPv6 address",
    )?;
    let cost = match obj.get("cost") {
        None => None,
        Some(v) => Some(
            whole_number(v)
                .filter(|c| (1..=MAX_LIMIT).contains(c))
                .ok_or_else(|| {
                    ApiError::field("cost", "must be a whole number from 1 to 1000000000000")
                })?,
        ),
    };
    Ok(VerifyCall {
        key,
        method: method.unwrap_or_else(|| "GET".into()),
        path: path.unwrap_or_else(|| "/".into()),
        permission,
        project,
        cost,
        ip,
    })
}

impl VerifyCall {
    /// What the presented key must hold: the permission, project and cost given,
    /// else what the gate derives from the method and path (the same rules). A path
    /// the gate would refuse is refused here, as the gate words it.
    pub fn needs(&self, cfg: &Config) -> Result<(String, Needs), ApiError> {
        let path = canonicalize(&self.path).map_err(|e| ApiError::InvalidPath {
            reason: e.to_string(),
        })?;
        let derived = policy::needs(
            &cfg.route_rules,
            &cfg.route_costs,
            &cfg.project_segment,
            &[self.method.as_str()],
            &path,
        );
        let needs = Needs {
            permissions: match &self.permission {
                Some(p) => vec![p.clone()],
                None => derived.permissions,
            },
            projects: match &self.project {
                Some(p) => vec![p.clone()],
                None => derived.projects,
            },
            cost: self.cost.unwrap_or(derived.cost),
            spends: true,
        };
        Ok((path, needs))
    }
}

/// The answer for an admitted key.
pub fn valid(id: &Identity, limit: Option<&LimitState>) -> Value {
    json!({
        "valid": true,
        "key_id": id.key_id,
        "account": id.account,
        "environment": id.environment,
        "permissions": id.permissions,
        "projects": id.projects,
        "metadata": id.metadata.clone().unwrap_or_default(),
        "limit": limit,
    })
}

/// The answer for a refused key, in the gate's words: for the check table's rows
/// and a path the gate would refuse. Anything else (storage unavailable) is not an
/// answer about the key and stays an error.
pub fn invalid(e: &ApiError) -> Option<Value> {
    let about_the_request =
        (2..=16).contains(&e.row()) || matches!(e, ApiError::InvalidPath { .. });
    about_the_request.then(|| {
        let retry_after = e
            .headers()
            .into_iter()
            .find(|(name, _)| *name == "Retry-After")
            .and_then(|(_, v)| v.parse::<u64>().ok());
        json!({ "valid": false, "code": e.code(), "error": e.message(), "retry_after": retry_after })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg() -> Config {
        let vars = HashMap::from([
            ("ORIGIN_URL", "http://o"),
            (
                "ROUTE_PERMISSIONS",
                r#"[{"method":"POST","path":"/licenses/**","permission":"license:manage"}]"#,
            ),
            ("ROUTE_COSTS", r#"[{"path":"/reports/**","cost":5}]"#),
        ]);
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    fn field_of(v: Value) -> String {
        match parse(&v) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_derived_needs() {
        let call = parse(&json!({"key": "kw_x"})).unwrap();
        assert_eq!((call.method.as_str(), call.path.as_str()), ("GET", "/"));
        let (_, n) = call.needs(&cfg()).unwrap();
        assert_eq!(
            (n.permissions, n.projects, n.cost),
            (vec!["read:all".to_string()], vec![], 1)
        );
        let call =
            parse(&json!({"key": "k", "method": "POST", "path": "//Licenses/../licenses/1"}))
                .unwrap();
        let (path, n) = call.needs(&cfg()).unwrap();
        assert_eq!(
            (path.as_str(), n.permissions[0].as_str()),
            ("/licenses/1", "license:manage")
        );
        let call = parse(&json!({"key": "k", "path": "/projects/p2/x"})).unwrap();
        assert_eq!(
            call.needs(&cfg()).unwrap().1.projects,
            vec!["p2".to_string()]
        );
        let call = parse(&json!({"key": "k", "path": "/reports/x"})).unwrap();
        assert_eq!(call.needs(&cfg()).unwrap().1.cost, 5);
    }

    #[test]
    fn what_is_given_wins() {
        let call = parse(&json!({"key": "k", "path": "/projects/p2/reports/x", "permission": "customer:read", "project": "p9", "cost": 3, "ip": "2001:db8::1"})).unwrap();
        let (_, n) = call.needs(&cfg()).unwrap();
        assert_eq!(
            (n.permissions, n.projects, n.cost),
            (vec!["customer:read".to_string()], vec!["p9".to_string()], 3)
        );
        assert_eq!(call.ip.as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn bad_fields_are_named_and_bad_paths_answered_as_the_gate_would() {
        assert_eq!(field_of(json!({})), "key");
        assert_eq!(field_of(json!({"key": ""})), "key");
        assert_eq!(field_of(json!({"key": 5})), "key");
        assert_eq!(field_of(json!({"key": "k", "method": "GE T"})), "method");
        assert_eq!(
            field_of(json!({"key": "k", "permission": "Admin"})),
            "permission"
        );
        assert_eq!(field_of(json!({"key": "k", "project": "a/b"})), "project");
        assert_eq!(field_of(json!({"key": "k", "cost": 0})), "cost");
        assert_eq!(field_of(json!({"key": "k", "cost": 1.5})), "cost");
        assert_eq!(
            parse(&json!({"key": "k", "cost": 4.0})).unwrap().cost,
            Some(4)
        );
        assert_eq!(field_of(json!({"key": "k", "ip": "10.0.0.300"})), "ip");
        assert_eq!(field_of(json!({"key": "k", "extra": 1})), "extra");
        let call = parse(&json!({"key": "k", "path": "/docs/..;/internal"})).unwrap();
        let e = call.needs(&cfg()).unwrap_err();
        assert_eq!(invalid(&e).unwrap()["code"], "invalid_request");
    }

    #[test]
    fn answers_carry_the_gate_s_code_message_and_retry_after() {
        let v = invalid(&ApiError::RateLimited { retry_after: 7 }).unwrap();
        assert_eq!(
            v,
            json!({"valid": false, "code": "rate_limited", "error": "Rate limit exceeded", "retry_after": 7})
        );
        let v = invalid(&ApiError::KeyRevoked).unwrap();
        assert_eq!(
            (v["code"].as_str(), v["retry_after"].is_null()),
            (Some("key_revoked"), true)
        );
        assert!(invalid(&ApiError::Unavailable { retry_after: 1 }).is_none());
        assert!(invalid(&ApiError::HttpsRequired).is_none());
    }
}
