//! The management API's OpenAPI document, and the routes the router serves. A unit
//! test holds the two equal; the router recognises routes from this list; an
//! end-to-end test calls every documented operation.

pub const DOCUMENT: &str = include_str!("../../openapi.json");

use crate::error::ApiError;
use serde_json::Value;

/// The document as served: the plans and the prefix are the deployment's.
pub fn document<'a>(plans: impl Iterator<Item = &'a String>, admin_prefix: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(DOCUMENT) else {
        return DOCUMENT.to_string();
    };
    if let Some(e) = doc.pointer_mut("/components/schemas/Plan/enum") {
        *e = Value::Array(plans.map(|p| Value::String(p.clone())).collect());
    }
    if let Some(url) = doc.pointer_mut("/servers/0/url") {
        *url = Value::String(admin_prefix.to_string());
    }
    doc.to_string()
}

/// The management operations: each route names exactly one, and nothing else is
/// served (no fall-through from one action to another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ListKeys,
    CreateKey,
    GetKey,
    UpdateKey,
    DeleteKey,
    RotateKey,
    DeactivateKey,
    ActivateKey,
    RevokeKey,
    KeyLogs,
    KeyUsage,
    KeyCredits,
    AccountCredits,
    AccountUsage,
    ListEvents,
    GetAccount,
    PutAccount,
    Verify,
    ReportLeak,
    GithubLeaks,
    Me,
    Document,
}

/// Every management route: (method, path template under the admin prefix, operation).
pub const ROUTES: &[(&str, &str, Operation)] = &[
    ("GET", "/keys", Operation::ListKeys),
    ("POST", "/keys", Operation::CreateKey),
    ("GET", "/keys/{id}", Operation::GetKey),
    ("PATCH", "/keys/{id}", Operation::UpdateKey),
    ("DELETE", "/keys/{id}", Operation::DeleteKey),
    ("POST", "/keys/{id}/rotate", Operation::RotateKey),
    ("POST", "/keys/{id}/deactivate", Operation::DeactivateKey),
    ("POST", "/keys/{id}/activate", Operation::ActivateKey),
    ("POST", "/keys/{id}/revoke", Operation::RevokeKey),
    ("GET", "/keys/{id}/logs", Operation::KeyLogs),
    ("GET", "/keys/{id}/usage", Operation::KeyUsage),
    ("POST", "/keys/{id}/credits", Operation::KeyCredits),
    ("GET", "/events", Operation::ListEvents),
    ("GET", "/accounts/{id}", Operation::GetAccount),
    ("PUT", "/accounts/{id}", Operation::PutAccount),
    ("POST", "/accounts/{id}/credits", Operation::AccountCredits),
    ("GET", "/accounts/{id}/usage", Operation::AccountUsage),
    ("POST", "/verify", Operation::Verify),
    ("POST", "/leaks", Operation::ReportLeak),
    ("POST", "/leaks/github", Operation::GithubLeaks),
    ("GET", "/me", Operation::Me),
    ("GET", "/openapi.json", Operation::Document),
];

/// The path parameter when `template` matches `route` segment for segment, exactly.
fn matches<'a>(template: &str, route: &[&'a str]) -> Option<Option<&'a str>> {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() != route.len() {
        return None;
    }
    let mut param = None;
    for (p, s) in parts.iter().zip(route) {
        if p.starts_with('{') {
            param = Some(*s);
        } else if p != s {
            return None;
        }
    }
    Some(param)
}

/// The operation `method` on `route` (the canonical path under the admin prefix)
/// names, with its path parameter: an unknown path is 404, a known path with
/// another method 405 with `Allow`. Paths match exactly: case, a trailing slash
/// or an extra segment make another (unknown) path.
pub fn route<'a>(method: &str, route: &'a str) -> Result<(Operation, Option<&'a str>), ApiError> {
    let not_found = || ApiError::NotFound {
        what: "route".into(),
    };
    if route.len() > 1 && route.ends_with('/') {
        return Err(not_found());
    }
    let segs: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let mut allow = Vec::new();
    for (m, template, op) in ROUTES {
        if let Some(param) = matches(template, &segs) {
            if *m == method {
                return Ok((*op, param));
            }
            allow.push(m.to_string());
            if *m == "GET" {
                allow.push("HEAD".into());
            }
        }
    }
    if allow.is_empty() {
        Err(not_found())
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    #[test]
    fn the_document_lists_exactly_the_routes() {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, _) in item.as_object().expect("path item") {
                if method != "parameters" {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served);
    }

    /// Names and categories: not blank, no control characters and nothing of
    /// `unicode_tables::INVISIBLE`, as `input` checks them (regenerate the four
    /// patterns from the table if this fails).
    #[test]
    fn display_text_patterns_exclude_exactly_the_invisible_table() {
        let mut class = String::from("\\x00-\\x1f\\x7f-\\x9f");
        for &(lo, hi) in crate::request::unicode_tables::INVISIBLE {
            let ch = |c| char::from_u32(c).expect("a scalar value");
            class.push(ch(lo));
            if hi > lo {
                class.push('-');
                class.push(ch(hi));
            }
        }
        let want = format!("^[^{class}]*[^\\s{class}][^{class}]*$");
        let doc: Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        for schema in ["KeyCreate", "KeyUpdate"] {
            for field in ["name", "category"] {
                let pointer = format!("/components/schemas/{schema}/properties/{field}/pattern");
                assert_eq!(
                    doc.pointer(&pointer).and_then(Value::as_str),
                    Some(want.as_str()),
                    "{pointer}"
                );
            }
        }
    }

    #[test]
    fn the_served_document_names_the_deployment_s_plans() {
        let plans = ["gold".to_string()];
        let doc: Value = serde_json::from_str(&document(plans.iter(), "/manage")).unwrap();
        assert_eq!(
            doc["components"]["schemas"]["Plan"]["enum"],
            serde_json::json!(["gold"])
        );
        assert_eq!(doc["servers"][0]["url"], "/manage");
    }

    #[test]
    fn every_reference_resolves() {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        let pointer = r.trim_start_matches('#');
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                    }
                    o.values().for_each(|x| walk(x, doc));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc)),
                _ => {}
            }
        }
        walk(&doc, &doc);
    }

    #[test]
    fn each_route_names_one_operation_and_nothing_falls_through() {
        assert_eq!(route("GET", "/keys"), Ok((Operation::ListKeys, None)));
        assert_eq!(
            route("POST", "/keys/key_1/revoke"),
            Ok((Operation::RevokeKey, Some("key_1")))
        );
        assert_eq!(
            route("GET", "/accounts/acme"),
            Ok((Operation::GetAccount, Some("acme")))
        );
        let code = |m, p| route(m, p).err().map(|e| e.status());
        // A known path with another method: 405, with the methods it serves.
        assert_eq!(code("POST", "/keys/key_1/logs"), Some(405));
        assert_eq!(
            route("POST", "/keys/key_1").err().map(|e| e.headers()),
            Some(vec![("Allow", "GET, HEAD, PATCH, DELETE".to_string())])
        );
        assert_eq!(code("HEAD", "/keys"), Some(405));
        assert_eq!(code("get", "/keys"), Some(405));
        // Mutated action names and shapes are unknown paths.
        for p in [
            "/keys/key_1/explode",
            "/keys/key_1/Revoke",
            "/keys/key_1/revoke/",
            "/keys/key_1/revoke/x",
            "/KEYS",
            "/keys/",
            "/",
            "",
            "/nothing",
        ] {
            assert_eq!(code("POST", p), Some(404), "{p}");
        }
    }
}
