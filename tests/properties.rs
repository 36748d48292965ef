//! Property tests of every parser on the request path: the canonicalizer, the request
//! line, the key format, the bearer header, the URL split, CIDR blocks, RFC 3339 and
//! the management input. Nothing panics on any input, and the canonical path is a
//! fixed point with no dot segment, empty segment or encoded slash.
//!
//! `make test` runs 2,000 cases per property; `make fuzz` runs 1,000,000
//! (`PROPTEST_CASES`). No nightly toolchain installs here, so cargo-fuzz cannot run:
//! proptest is the generator.

use keyward::admin::input::{parse_create, parse_patch};
use keyward::admin::listing::parse_list_query;
use keyward::request::inbound::bearer_token;

use keyward::key::format::{build_key, parse_key};
use keyward::key::record::Environment;
use keyward::request::canonical_path::{canonicalize, segments};
use keyward::request::cidr::Cidr;
use keyward::request::inbound::request_line;
use keyward::request::url::{query_pairs, split};
use keyward::time_fmt::{from_rfc3339, to_rfc3339};
use proptest::prelude::*;
use serde_json::Value;

const NOW: i64 = 1_800_000_000_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Paths built from the pieces attacks are made of, more often than chance would.
fn hostile_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%2f".to_string()),
        Just("%5C".to_string()),
        Just("\\".to_string()),
        Just(";".to_string()),
        Just("%3b".to_string()),
        Just("%25".to_string()),
        Just("%".to_string()),
        Just("%00".to_string()),
        Just("%c3%a9".to_string()),
        Just("%C0%AE".to_string()),
        Just("%7e".to_string()),
        Just("projects".to_string()),
        Just("p1".to_string()),
        "[a-zA-Z0-9_~!$&'()*+,=:@|^\"<> -]{1,4}",
        "\\PC{1,2}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|parts| format!("/{}", parts.concat()))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("read:all"),
            Just("admin"),
            Just("p1"),
            Just("10.0.0.0/8"),
            Just("2030-01-01T00:00:00Z")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let field = prop_oneof![
        Just("name"),
        Just("alias"),
        Just("account"),
        Just("environment"),
        Just("category"),
        Just("permissions"),
        Just("projects"),
        Just("expires_at"),
        Just("expires_in_days"),
        Just("rate_limits"),
        Just("quotas"),
        Just("ip_allowlist"),
        Just("metadata"),
        Just("per_minute"),
        Just("daily"),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field.clone(), inner), 0..8).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn canonical_paths_are_fixed_points_without_ambiguity(raw in hostile_path()) {
        if let Ok(c) = canonicalize(&raw) {
            prop_assert_eq!(canonicalize(&c), Ok(c.clone()), "not idempotent: {:?}", raw);
            prop_assert!(c.starts_with('/'));
            prop_assert!(!c.contains("//"), "empty segment in {c:?}");
            for seg in segments(&c) {
                prop_assert!(seg != "." && seg != "..", "dot segment in {c:?}");
            }
            let lower = c.to_ascii_lowercase();
            for bad in ["%2f", "%5c", "%25", "%3b", ";", "\\"] {
                prop_assert!(!lower.contains(bad), "{bad} in {c:?}");
            }
            prop_assert!(c.bytes().all(|b| b.is_ascii_graphic()), "raw byte in {c:?}");
        }
    }

    #[test]
    fn canonicalize_never_panics_on_any_string(raw in "\\PC*") {
        let _ = canonicalize(&raw);
        let _ = canonicalize(&format!("/{raw}"));
    }

    #[test]
    fn request_lines_never_panic(method in "[A-Za-z\\-_ ]{0,10}", url in ".{0,64}", path in hostile_path()) {
        let _ = request_line(&method, &url, true);
        if let Ok(line) = request_line(&method, &format!("https://h{path}?{url}"), false) {
            prop_assert_eq!(canonicalize(&line.path), Ok(line.path.clone()));
            let _ = line.override_params();
        }
    }

    #[test]
    fn url_split_and_query_decoding_never_panic(url in ".{0,80}") {
        let u = split(&url);
        prop_assert!(u.path.starts_with('/'));
        let _ = query_pairs(u.query);
        let _ = query_pairs(Some(&url));
    }

    #[test]
    fn keys_parse_only_when_whole(random in any::<[u8; 20]>(), locator in proptest::option::of("[0-9A-Za-z]{22}"), noise in ".{0,64}", at in 0usize..62, c in "[0-9A-Za-z]") {
        let (key, _) = build_key("kw", Environment::Production, &random, locator.as_deref());
        let parsed = parse_key("kw", &key);
        prop_assert!(parsed.is_some());
        prop_assert_eq!(parsed.and_then(|p| p.key_id), locator.map(|l| format!("key_{l}")));
        let _ = parse_key("kw", &noise);
        // Any one substituted character fails the checksum (CRC32 catches every
        // burst of up to 32 bits).
        let i = 8 + at % (key.len() - 8);
        let mut bytes = key.clone().into_bytes();
        if bytes[i] != c.as_bytes()[0] {
            bytes[i] = c.as_bytes()[0];
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert!(parse_key("kw", &typo).is_none(), "{typo} accepted");
        }
    }

    #[test]
    fn bearer_header_never_panics(header in ".{0,64}") {
        if let Some(token) = bearer_token(Some(&header)) {
            prop_assert!(!token.is_empty());
            prop_assert_eq!(token, token.trim());
        }
    }

    #[test]
    fn cidr_blocks_contain_their_network(s in "[0-9a-fA-F.:/]{0,45}") {
        if let Ok(block) = Cidr::parse(&s) {
            let addr = s.split('/').next().unwrap_or_default();
            prop_assert!(block.contains(addr.parse().unwrap()));
            prop_assert!(block.within(&block));
        }
    }

    #[test]
    fn rfc3339_round_trips(ms in -62_135_596_800_000i64..253_402_300_799_999, noise in ".{0,32}") {
        prop_assert_eq!(from_rfc3339(&to_rfc3339(ms)), Some(ms));
        let _ = from_rfc3339(&noise);
    }

    #[test]
    fn management_input_never_panics(body in json_value(), pairs in prop::collection::vec(("[a-z_]{1,8}", ".{0,8}"), 0..5)) {
        let _ = parse_create(&body, NOW);
        let _ = parse_patch(&body, NOW);
        let _ = parse_list_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
}
