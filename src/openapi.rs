//! The management API's OpenAPI document, and the routes the router serves. A unit
//! test holds the two equal; the router recognises routes from this list; an
//! end-to-end test calls every documented operation.

pub const DOCUMENT: &str = include_str!("../openapi.json");

/// Every management route, as (method, path template under the admin prefix).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/keys"),
    ("POST", "/keys"),
    ("GET", "/keys/{id}"),
    ("PATCH", "/keys/{id}"),
    ("DELETE", "/keys/{id}"),
    ("POST", "/keys/{id}/rotate"),
    ("POST", "/keys/{id}/deactivate"),
    ("POST", "/keys/{id}/activate"),
    ("POST", "/keys/{id}/revoke"),
    ("GET", "/keys/{id}/logs"),
    ("GET", "/events"),
    ("GET", "/accounts/{id}"),
    ("PUT", "/accounts/{id}"),
    ("GET", "/openapi.json"),
];

fn template_matches(template: &str, segments: &[&str]) -> bool {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    parts.len() == segments.len()
        && parts
            .iter()
            .zip(segments)
            .all(|(p, s)| (p.starts_with('{') && p.ends_with('}')) || p == s)
}

/// Whether some route serves this path (with any method): unknown paths are 404,
/// known paths with another method 405.
pub fn is_known(segments: &[&str]) -> bool {
    ROUTES.iter().any(|(_, t)| template_matches(t, segments))
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
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served);
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
    fn known_paths() {
        assert!(is_known(&["keys"]));
        assert!(is_known(&["keys", "key_1", "logs"]));
        assert!(is_known(&["accounts", "acme"]));
        assert!(!is_known(&["keys", "key_1", "explode"]));
        assert!(!is_known(&["nothing"]));
        assert!(!is_known(&[]));
    }
}
