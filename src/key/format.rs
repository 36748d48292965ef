//! The API key format: `<prefix>_<env>_<random><locator><check>`.
//!
//! `random` is 27 base62 characters carrying 160 bits from a CSPRNG; `locator` is
//! the 22 characters of the key's id after `key_` (keys issued before it existed
//! have none: `<prefix>_<env>_<random><check>`); `check` is the CRC32 of everything
//! before it, as 6 base62 characters. A typo or a made-up key fails the checksum
//! here, before any storage is read. The locator lets the gate find a key's object
//! when the KV index has no copy yet (`lookup`). Only the SHA-256 of the whole key
//! is ever stored.

use crate::key::record::Environment;
use sha2::{Digest, Sha256};

/// Random bytes per key: 160 bits.
pub const RANDOM_BYTES: usize = 20;
const RANDOM_CHARS: usize = 27; // ceil(160 / log2(62))
const CHECK_CHARS: usize = 6; // ceil(32 / log2(62))
/// Characters of a key id after `key_`, carried by the key as its locator.
pub const LOCATOR_CHARS: usize = 22;
/// Characters of the random part shown in the visible prefix.
const VISIBLE_CHARS: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key that passed the format and checksum test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub environment: Environment,
    /// Hex SHA-256 of the whole key: the only form in which keys are stored.
    pub hash: String,
    /// The id of the key's object, when the key carries its locator.
    pub key_id: Option<String>,
}

/// The tag a key carries for its environment.
pub fn env_tag(env: Environment) -> &'static str {
    match env {
        Environment::Production => "live",
        Environment::Staging => "stg",
        Environment::Development => "dev",
    }
}

fn env_from_tag(tag: &str) -> Option<Environment> {
    match tag {
        "live" => Some(Environment::Production),
        "stg" => Some(Environment::Staging),
        "dev" => Some(Environment::Development),
        _ => None,
    }
}

/// A product prefix is lowercase ASCII letters and digits, 1 to 12 of them, so the
/// underscore stays an unambiguous separator.
pub fn valid_product_prefix(p: &str) -> bool {
    (1..=12).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The locator a key with id `id` carries: its 22 base62 characters after `key_`
/// (every id keyward makes has them; any other id gets keys without a locator).
pub fn locator_of(id: &str) -> Option<&str> {
    id.strip_prefix("key_").filter(|rest| {
        rest.len() == LOCATOR_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Builds a key from 160 random bits and the locator of its id (`locator_of`).
/// Returns (full key, visible prefix).
pub fn build_key(
    product: &str,
    env: Environment,
    random: &[u8; RANDOM_BYTES],
    locator: Option<&str>,
) -> (String, String) {
    let head = format!(
        "{product}_{}_{}{}",
        env_tag(env),
        base62_fixed(random, RANDOM_CHARS),
        locator.unwrap_or_default()
    );
    let check = base62_fixed(&crc32(head.as_bytes()).to_be_bytes(), CHECK_CHARS);
    let visible_len = product.len() + 1 + env_tag(env).len() + 1 + VISIBLE_CHARS;
    let visible = head.get(..visible_len).unwrap_or(&head).to_string();
    (format!("{head}{check}"), visible)
}

/// Checks format and checksum; on success returns the environment and the hash.
/// Does no I/O: garbage is refused at the cost of a few hundred nanoseconds.
pub fn parse_key(product: &str, key: &str) -> Option<ParsedKey> {
    let mut parts = key.splitn(3, '_');
    let (p, tag, body) = (parts.next()?, parts.next()?, parts.next()?);
    let with_locator = body.len() == RANDOM_CHARS + LOCATOR_CHARS + CHECK_CHARS;
    if p != product || !(with_locator || body.len() == RANDOM_CHARS + CHECK_CHARS) {
        return None;
    }
    let environment = env_from_tag(tag)?;
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let split = key.len() - CHECK_CHARS;
    let (head, check) = (key.get(..split)?, key.get(split..)?);
    if base62_fixed(&crc32(head.as_bytes()).to_be_bytes(), CHECK_CHARS) != check {
        return None;
    }
    let key_id = with_locator
        .then(|| body.get(RANDOM_CHARS..RANDOM_CHARS + LOCATOR_CHARS))
        .flatten()
        .map(|l| format!("key_{l}"));
    Some(ParsedKey {
        environment,
        hash: sha256_hex(key),
        key_id,
    })
}

/// Whether two secrets are equal, in time that depends on neither: their SHA-256
/// digests compared by `subtle`.
pub fn digest_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.as_slice().ct_eq(y.as_slice()).into()
}

pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// Big-endian bytes as exactly `width` base62 digits (left-padded with '0').
/// `width` must be large enough for the byte count; callers use fixed sizes.
pub fn base62_fixed(bytes: &[u8], width: usize) -> String {
    let mut num: Vec<u8> = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        // One long division of `num` by 62; the remainder is the next digit.
        let mut rem: u32 = 0;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = BASE62[rem as usize];
    }
    String::from_utf8(digits).unwrap_or_default()
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE), as zlib computes it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "key_03573Y5or993DOSqmhIN7M";
    const LOCATOR: &str = "03573Y5or993DOSqmhIN7M";

    fn sample(seed: u8) -> [u8; RANDOM_BYTES] {
        let mut r = [0u8; RANDOM_BYTES];
        for (i, b) in r.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
        }
        r
    }

    #[test]
    fn crc32_matches_reference_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn base62_is_fixed_width_and_exact() {
        assert_eq!(base62_fixed(&[0, 0], 3), "000");
        assert_eq!(base62_fixed(&[0, 61], 2), "0z");
        assert_eq!(base62_fixed(&[0, 62], 2), "10");
        assert_eq!(base62_fixed(&[0xFF; RANDOM_BYTES], RANDOM_CHARS).len(), 27);
        // 2^160 - 1 needs all 27 digits, so none may be lost.
        assert_ne!(
            base62_fixed(&[0xFF; RANDOM_BYTES], RANDOM_CHARS).as_bytes()[0],
            b'0'
        );
        assert_eq!(base62_fixed(&u32::MAX.to_be_bytes(), CHECK_CHARS), "4gfFC3");
    }

    #[test]
    fn built_key_parses_with_its_environment() {
        for env in [
            Environment::Production,
            Environment::Staging,
            Environment::Development,
        ] {
            let (key, visible) = build_key("kw", env, &sample(3), Some(LOCATOR));
            let parsed = parse_key("kw", &key).expect("valid key");
            assert_eq!(parsed.key_id.as_deref(), Some(ID));
            assert_eq!(parsed.environment, env);
            assert_eq!(parsed.hash, sha256_hex(&key));
            assert!(key.starts_with(&visible));
            assert_eq!(
                visible.len(),
                "kw_".len() + env_tag(env).len() + 1 + VISIBLE_CHARS
            );
        }
        let (key, _) = build_key("kw", Environment::Production, &sample(1), Some(LOCATOR));
        assert!(key.starts_with("kw_live_"));
        assert_eq!(key.len(), "kw_live_".len() + 55);
        // The README's pattern for secret scanning, exactly.
        let body = &key["kw_live_".len()..];
        assert!(body.len() == 55 && body.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn keys_without_a_locator_still_parse() {
        // Issued before keys carried their locator: 27 random, 6 check.
        let (key, _) = build_key("kw", Environment::Development, &sample(4), None);
        assert_eq!(key.len(), "kw_dev_".len() + 33);
        let parsed = parse_key("kw", &key).expect("a key of an earlier build");
        assert_eq!(parsed.key_id, None);
        assert_eq!(parsed.hash, sha256_hex(&key));
        // Any other length is garbage.
        for extra in ["A", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA"] {
            let (k, _) = build_key("kw", Environment::Development, &sample(4), Some(extra));
            assert!(parse_key("kw", &k).is_none(), "{k}");
        }
    }

    #[test]
    fn locators_are_the_ids_keyward_makes() {
        assert_eq!(locator_of(ID), Some(LOCATOR));
        assert_eq!(locator_of("key_000"), None);
        assert_eq!(locator_of("nokey_0123456789abcdefghijkl"), None);
        assert_eq!(locator_of("key_0123456789abcdefghij-l"), None);
    }

    #[test]
    fn every_single_character_typo_is_rejected() {
        let (key, _) = build_key("kw", Environment::Production, &sample(9), Some(LOCATOR));
        let bytes = key.as_bytes();
        for i in 0.."kw_live_".len() + 55 {
            for &c in BASE62.iter() {
                if bytes[i] == c || bytes[i] == b'_' {
                    continue;
                }
                let mut typo = bytes.to_vec();
                typo[i] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert!(parse_key("kw", &typo).is_none(), "accepted {typo}");
            }
        }
    }

    #[test]
    fn garbage_and_wrong_shapes_are_rejected() {
        let (key, _) = build_key("kw", Environment::Production, &sample(5), Some(LOCATOR));
        assert!(parse_key("kw", "").is_none());
        assert!(parse_key("kw", "kw_live_").is_none());
        assert!(parse_key("kw", &key[..key.len() - 1]).is_none());
        assert!(parse_key("kw", &format!("{key}x")).is_none());
        assert!(parse_key("other", &key).is_none());
        assert!(parse_key("kw", &key.replace("_live_", "_prod_")).is_none());
        assert!(parse_key("kw", "kw_live_ééééééééééééééééé").is_none());
        assert!(parse_key("kw", &key.replacen('A', "-", 1)).is_none() || !key.contains('A'));
    }

    #[test]
    fn product_prefix_rules() {
        assert!(valid_product_prefix("kw"));
        assert!(valid_product_prefix("acme2"));
        assert!(!valid_product_prefix(""));
        assert!(!valid_product_prefix("a_b"));
        assert!(!valid_product_prefix("KW"));
    }
}
