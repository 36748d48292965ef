//! What keyward reads of an incoming request besides its path and key: the methods
//! the origin may run, and which client headers must never reach it.

use crate::error::ApiError;

use crate::request::canonical_path;
use crate::request::url;

/// What keyward decides on, read once at the start of the request: the method as
/// the client sent it, the canonical path, and the query exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
}

/// Row 1, then the canonical path of the runtime's URL. (The method is judged by
/// whoever serves it: the gate refuses what cannot be forwarded, the management
/// router answers 405 with `Allow`.)
pub fn request_line(method: &str, url: &str, allow_http: bool) -> Result<RequestLine, ApiError> {
    let u = url::split(url);
    check_transport(u.scheme, allow_http)?;
    let path = canonical_path::canonicalize(u.path).map_err(|e| ApiError::InvalidPath {
        reason: e.to_string(),
    })?;
    Ok(RequestLine {
        method: method.to_string(),
        path,
        query: u.query.map(String::from),
    })
}

impl RequestLine {
    /// The path and query the origin receives.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// `_method` query parameters: overrides some frameworks honour.
    pub fn override_params(&self) -> Vec<(String, String)> {
        url::query_pairs(self.query.as_deref())
            .into_iter()
            .filter(|(k, _)| k == OVERRIDE_PARAM)
            .collect()
    }
}

/// Headers through which frameworks let a POST run as another method.
pub const OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query parameter Symfony, Laravel and Rails read as a method override.
pub const OVERRIDE_PARAM: &str = "_method";

/// Methods `fetch` refuses to send; refused here (405) rather than failing at the origin.
const UNSENDABLE: [&str; 3] = ["CONNECT", "TRACE", "TRACK"];

/// RFC 9110 `token`: what a method name may be.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a method can be forwarded at all.
pub fn check_method(method: &str) -> Result<(), ApiError> {
    if is_token(method) && !UNSENDABLE.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        Ok(())
    } else {
        // Every method but these is forwarded: `Allow` names the common ones.
        let allow = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        Err(ApiError::MethodNotAllowed {
            allow: allow.map(String::from).to_vec(),
        })
    }
}

/// The methods the origin may run for this request: its own, then the one a method
/// override names (header or `_method` query parameter), which is forwarded as sent
/// and so must be checked too. Overrides that disagree, or are not one method,
/// are refused.
pub fn methods<'a>(
    method: &str,
    overrides: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<String>, ApiError> {
    let mut out = vec![method.to_string()];
    let mut named: Option<(String, String)> = None;
    for (source, value) in overrides {
        let value = value.trim();
        if !is_token(value) {
            return Err(ApiError::InvalidHeader {
                name: source.to_string(),
                reason: "must name one HTTP method".into(),
            });
        }
        // Frameworks upper-case the override before they route on it.
        let upper = value.to_ascii_uppercase();
        match &named {
            Some((_, m)) if *m != upper => {
                return Err(ApiError::InvalidHeader {
                    name: source.to_string(),
                    reason: "contradicts another method override".into(),
                })
            }
            Some(_) => {}
            None => named = Some((source.to_string(), upper)),
        }
    }
    if let Some((_, m)) = named {
        check_method(&m)?;
        if m != method {
            out.push(m);
        }
    }
    Ok(out)
}

/// A header name as servers that fold `_` into `-` read it.
fn folded(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Whether a client header is a method override, in any spelling a server reads as one.
pub fn is_override_header(name: &str) -> bool {
    OVERRIDE_HEADERS.contains(&folded(name).as_str())
}

/// Headers through which proxies tell an origin who the client is and what it asked
/// for (address, host, scheme, port, path): a client's own are never forwarded, so
/// an origin behind keyward can trust what keyward sets (`X-Forwarded-For`).
pub const PROXY_HEADERS: [&str; 29] = [
    "forwarded",
    "x-forwarded",
    "forwarded-for",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-uri",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "fastly-client-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-http-host-override",
    "x-url-scheme",
    "front-end-https",
];

/// Whether a client header is one of `PROXY_HEADERS`, in any spelling a server
/// folds into one (case, `_` for `-`).
pub fn is_proxy_header(name: &str) -> bool {
    PROXY_HEADERS.contains(&folded(name).as_str())
}

/// Whether a client header names keyward's own identity headers: case-folded, with
/// `_` read as `-` (servers that fold one into the other would read it as identity).
pub fn is_reserved_header(name: &str) -> bool {
    const RESERVED: &[u8] = b"x-keyward-";
    name.len() >= RESERVED.len()
        && name.bytes().zip(RESERVED).all(|(b, r)| {
            (if b == b'_' {
                b'-'
            } else {
                b.to_ascii_lowercase()
            }) == *r
        })
}

/// Headers the origin needs as the client sent them, or that the runtime owns:
/// never a key header (`KEY_HEADERS`).
const NOT_KEY_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "cookie",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "cf-connecting-ip",
];

/// A `KEY_HEADERS` name, checked and lowercased: a header token, not one the
/// origin or the runtime needs, not keyward's own, not a proxy header.
pub fn key_header_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let lower = name.to_ascii_lowercase();
    if !is_token(&lower) || lower.len() > 64 {
        return Err(format!("'{name}' is not a header name"));
    }
    if NOT_KEY_HEADERS.contains(&folded(&lower).as_str())
        || is_reserved_header(&lower)
        || is_proxy_header(&lower)
        || is_override_header(&lower)
    {
        return Err(format!("'{name}' cannot carry a key"));
    }
    Ok(lower)
}

/// Whether a client header is one of the key headers (`KEY_HEADERS`, lowercased),
/// in any spelling a server folds into one: such a header is keyward's, stripped
/// before forwarding, like `Authorization`.
pub fn is_key_header(key_headers: &[String], name: &str) -> bool {
    let name = folded(name);
    key_headers.iter().any(|k| folded(k) == name)
}

/// The credential a request presents: the `Authorization: Bearer` token, or the
/// value of one of the key headers (`(name, value)`, as sent). Two different ones
/// — a Bearer token and another key, two key headers, or another `Authorization`
/// scheme beside a key header — are 400 naming the second header; the same key
/// twice is that key. A key in the query string is never read.
pub fn credential<'a>(
    authorization: Option<&'a str>,
    key_headers: &[(&str, Option<&'a str>)],
) -> Result<Option<&'a str>, ApiError> {
    let mut found: Option<(&str, &'a str)> = authorization.map(|a| {
        let value = bearer_token(Some(a)).unwrap_or(a.trim());
        ("authorization", value)
    });
    for (name, value) in key_headers {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        match found {
            Some((first, seen)) if seen != value => {
                return Err(ApiError::InvalidHeader {
                    name: name.to_string(),
                    reason: format!("a second, different credential ({first} carries one)"),
                })
            }
            Some(_) => {}
            None => found = Some((name, value)),
        }
    }
    Ok(match found {
        Some(("authorization", _)) => bearer_token(authorization),
        Some((_, value)) => Some(value),
        None => None,
    })
}

/// Row 1: plain HTTP passes only where configuration allows it.
pub fn check_transport(scheme: &str, allow_http: bool) -> Result<(), ApiError> {
    if scheme == "https" || allow_http {
        Ok(())
    } else {
        Err(ApiError::HttpsRequired)
    }
}

/// The credential of `Authorization: Bearer <key>` (scheme case-insensitive).
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_comes_from_bearer_or_a_key_header_never_two_different_ones() {
        let key = |v| [("x-api-key", v)];
        assert_eq!(credential(Some("Bearer k1"), &key(None)), Ok(Some("k1")));
        assert_eq!(credential(None, &key(Some(" k1 "))), Ok(Some("k1")));
        assert_eq!(
            credential(Some("Bearer k1"), &key(Some("k1"))),
            Ok(Some("k1"))
        );
        assert_eq!(credential(None, &key(Some(""))), Ok(None));
        assert_eq!(credential(None, &[]), Ok(None));
        // Another scheme alone is no key (401 later), as before.
        assert_eq!(credential(Some("Basic dXNlcg=="), &key(None)), Ok(None));
        for (auth, value) in [(Some("Bearer k1"), "k2"), (Some("Basic dXNlcg=="), "k1")] {
            let e = credential(auth, &key(Some(value))).unwrap_err();
            assert!(
                matches!(&e, ApiError::InvalidHeader { name, .. } if name == "x-api-key"),
                "{e:?}"
            );
        }
        let two = [("x-api-key", Some("k1")), ("apikey", Some("k2"))];
        assert!(credential(None, &two).is_err());
        let same = [("x-api-key", Some("k1")), ("apikey", Some("k1"))];
        assert_eq!(credential(None, &same), Ok(Some("k1")));
    }

    #[test]
    fn key_header_names_are_checked_and_matched_in_every_folded_spelling() {
        assert_eq!(key_header_name(" X-API-Key "), Ok("x-api-key".to_string()));
        for bad in [
            "",
            "x api key",
            "Authorization",
            "host",
            "Cookie",
            "X-Keyward-Key-Id",
            "X_Forwarded_For",
            "x-http-method-override",
            "content_type",
        ] {
            assert!(key_header_name(bad).is_err(), "{bad}");
        }
        let names = vec!["x-api-key".to_string()];
        for spelling in ["x-api-key", "X-API-KEY", "x_api_key", "X_Api-Key"] {
            assert!(is_key_header(&names, spelling), "{spelling}");
        }
        assert!(!is_key_header(&names, "x-api-keys"));
        assert!(!is_key_header(&[], "x-api-key"));
    }

    #[test]
    fn the_request_line_is_read_once_in_canonical_form() {
        let line =
            request_line("PURGE", "https://h/docs/../x//y?a=%2F&_method=put", false).unwrap();
        assert_eq!(line.method, "PURGE");
        assert_eq!(line.path, "/x/y");
        assert_eq!(line.target(), "/x/y?a=%2F&_method=put");
        assert_eq!(
            line.override_params(),
            [("_method".to_string(), "put".to_string())]
        );
        assert_eq!(
            request_line("GET", "http://h/x", false),
            Err(ApiError::HttpsRequired)
        );
        assert!(matches!(
            request_line("GET", "https://h/docs/..;/internal", false),
            Err(ApiError::InvalidPath { .. })
        ));
    }

    #[test]
    fn tokens_and_unsendable_methods() {
        assert!(check_method("GET").is_ok());
        assert!(check_method("PURGE").is_ok());
        assert!(check_method("PROPFIND").is_ok());
        for bad in ["CONNECT", "trace", "TRACK", "", "GE T", "G\u{e9}T"] {
            assert!(check_method(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overrides_add_the_method_they_name() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(methods("POST", none.into_iter()).unwrap(), ["POST"]);
        let one = [("x-http-method-override", "delete")];
        assert_eq!(
            methods("POST", one.into_iter()).unwrap(),
            ["POST", "DELETE"]
        );
        let same = [("x-http-method", "PUT"), ("_method", "put")];
        assert_eq!(methods("POST", same.into_iter()).unwrap(), ["POST", "PUT"]);
        let redundant = [("x-method-override", "POST")];
        assert_eq!(methods("POST", redundant.into_iter()).unwrap(), ["POST"]);
    }

    #[test]
    fn odd_overrides_are_refused() {
        let refused = |pairs: &[(&'static str, &'static str)]| {
            matches!(
                methods("POST", pairs.iter().copied()),
                Err(ApiError::InvalidHeader { .. } | ApiError::MethodNotAllowed { .. })
            )
        };
        assert!(refused(&[("x-http-method-override", "DELETE, GET")]));
        assert!(refused(&[("x-http-method-override", "")]));
        assert!(refused(&[
            ("x-http-method", "PUT"),
            ("x-method-override", "DELETE")
        ]));
        assert!(refused(&[("x-http-method-override", "TRACE")]));
    }

    #[test]
    fn override_headers_in_every_spelling() {
        for name in [
            "X-HTTP-Method-Override",
            "x_http_method_override",
            "X-Http_Method",
            "x-method-override",
        ] {
            assert!(is_override_header(name), "{name}");
        }
        assert!(!is_override_header("x-http-method-overrides"));
    }

    #[test]
    fn proxy_headers_in_every_spelling() {
        for name in [
            "X-Forwarded-For",
            "x_forwarded_for",
            "X-Forwarded-Host",
            "x-forwarded-proto",
            "Forwarded",
            "X-Real-IP",
            "True-Client-IP",
            "X-Original-URL",
            "x_rewrite_url",
        ] {
            assert!(is_proxy_header(name), "{name}");
        }
        for name in [
            "x-request-id",
            "forwarded-x",
            "cf-connecting-ip",
            "authorization",
        ] {
            assert!(!is_proxy_header(name), "{name}");
        }
    }

    #[test]
    fn reserved_headers_in_every_spelling() {
        for name in [
            "x-keyward-key-id",
            "X-Keyward-Account",
            "X-Keyward_Key-Id",
            "X_Keyward_Account",
            "x_keyward_permissions",
            "x-keyward-",
        ] {
            assert!(is_reserved_header(name), "{name}");
        }
        for name in [
            "x-keyward",
            "x-keywardz-a",
            "keyward-key-id",
            "x-request-id",
        ] {
            assert!(!is_reserved_header(name), "{name}");
        }
    }

    #[test]
    fn transport_and_bearer() {
        assert_eq!(check_transport("http", false), Err(ApiError::HttpsRequired));
        assert!(check_transport("http", true).is_ok());
        assert!(check_transport("https", false).is_ok());
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("abc")), None);
        assert_eq!(bearer_token(None), None);
    }
}
