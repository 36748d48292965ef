//! The one canonical path. Computed once, at the start of every request, from the
//! path the runtime hands over; public paths, route rules, costs, the project and the
//! management router all read this form, and the origin receives exactly it.
//!
//! Following RFC 3986 §6.2.2 and §5.2.4 and Envoy's `normalize_path` /
//! `merge_slashes`: percent-encoded unreserved characters are decoded, other escapes
//! get upper-case hex, characters outside `pchar` are encoded, repeated slashes are
//! merged and dot segments (encoded ones too) are removed; a trailing slash is kept.
//! Whatever different origins could read differently is refused instead of rewritten
//! (Envoy's `path_with_escaped_slashes_action: REJECT_REQUEST`): an encoded `/` or
//! `\`, a literal `\`, an encoded `%` (double encoding), `;` anywhere in the path
//! (path parameters), NUL and other control bytes, escapes that are not two hex
//! digits, and bytes that do not decode to UTF-8.
//!
//! And no two paths that an origin could treat as the same under Unicode case
//! folding or compatibility normalization are judged differently: a path holding
//! a character that some folding turns into ASCII, into nothing or into path
//! syntax (ſ → s, ı → I, İ → i, K → k, ﬁ → fi, ／ → /, ․ → .), a character that is
//! invisible, unassigned or a space or control of Unicode's, or a U+0307 that
//! Turkish or Lithuanian casing deletes after an ASCII letter, is refused
//! (`unicode_tables`, generated from the Unicode Character Database). What is left
//! of non-ASCII folds only to non-ASCII: rules, costs and the project segment are
//! ASCII, so every spelling of such a path is judged alike.

use crate::request::unicode_tables::{DOT_ABOVE_DROPPED_AFTER, PATH_REFUSED};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSlash,
    Backslash,
    EncodedPercent,
    Semicolon,
    ControlByte,
    BadEscape,
    InvalidUtf8,
    TooLong,
    /// A character an origin may fold into another path (see the module's notes).
    Folds(char),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "it does not start with '/'",
            PathError::EncodedSlash => "it contains an encoded '/' or '\\'",
            PathError::Backslash => "it contains a '\\'",
            PathError::EncodedPercent => "it contains an encoded '%' (double encoding)",
            PathError::Semicolon => "it contains ';' (path parameters)",
            PathError::ControlByte => "it contains a control character",
            PathError::BadEscape => "it contains a '%' not followed by two hex digits",
            PathError::InvalidUtf8 => "its escapes do not decode to UTF-8",
            PathError::TooLong => "it is longer than 8192 bytes",
            PathError::Folds(c) => {
                return write!(
                    f,
                    "it contains U+{:04X}, which origins may fold into other characters",
                    u32::from(*c)
                )
            }
        })
    }
}

/// Whether `table` (sorted inclusive ranges) holds `c`.
pub fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The first character of `decoded` that an origin may fold into another path.
fn folding(decoded: &str) -> Option<char> {
    let mut previous = '/';
    for c in decoded.chars() {
        let after_dropping_letter = c == '\u{307}'
            && previous.is_ascii()
            && DOT_ABOVE_DROPPED_AFTER.contains(&(previous as u8));
        if !c.is_ascii() && (in_table(PATH_REFUSED, c) || after_dropping_letter) {
            return Some(c);
        }
        previous = c;
    }
    None
}

/// Whether a canonical path decodes to ASCII only (its escapes are all below 0x80).
pub fn is_ascii(canonical: &str) -> bool {
    let bytes = canonical.as_bytes();
    !bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'%' && bytes.get(i + 1).is_some_and(|h| *h >= b'8'))
}

/// Longest path accepted, before canonicalization.
pub const MAX_PATH_BYTES: usize = 8192;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a segment may carry unencoded (RFC 3986 `pchar` less `;`, which is
/// refused, and `%`, which starts an escape).
fn is_plain(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// One segment in canonical form, and its decoded bytes (for the UTF-8 check).
fn segment(raw: &[u8], decoded: &mut Vec<u8>) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let byte = if b == b'%' {
            let hi = raw.get(i + 1).and_then(|h| hex_digit(*h));
            let lo = raw.get(i + 2).and_then(|l| hex_digit(*l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape);
            };
            i += 3;
            let byte = hi * 16 + lo;
            match byte {
                b'/' | b'\\' => return Err(PathError::EncodedSlash),
                b'%' => return Err(PathError::EncodedPercent),
                b';' => return Err(PathError::Semicolon),
                _ => {}
            }
            byte
        } else {
            i += 1;
            match b {
                b'\\' => return Err(PathError::Backslash),
                b';' => return Err(PathError::Semicolon),
                _ => {}
            }
            b
        };
        if byte < 0x20 || byte == 0x7f {
            return Err(PathError::ControlByte);
        }
        decoded.push(byte);
        if is_plain(byte) {
            out.push(byte as char);
        } else {
            push_escaped(&mut out, byte);
        }
    }
    Ok(out)
}

/// The canonical form of `raw`, or why it is refused.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let body = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut decoded = Vec::with_capacity(raw.len());
    let mut kept: Vec<String> = Vec::new();
    // A path ending in '/', '/.' or '/..' names a directory: keep its trailing slash.
    let mut trailing_slash = false;
    for raw_segment in body.split('/') {
        decoded.push(b'/');
        let seg = segment(raw_segment.as_bytes(), &mut decoded)?;
        trailing_slash = matches!(seg.as_str(), "" | "." | "..");
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(seg),
        }
    }
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return Err(PathError::InvalidUtf8);
    };
    if let Some(c) = folding(text) {
        return Err(PathError::Folds(c));
    }
    let mut out = String::with_capacity(raw.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The segments of a canonical path (no empty ones; a trailing slash adds none).
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        canonicalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for p in [
            "/",
            "/health",
            "/projects/p1/tasks",
            "/a/b/",
            "/a:b@c/!$&'()*+,=",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(ok("/%70rojects/%7e%41"), "/projects/~A");
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/a%3fb%23c"), "/a%3Fb%23c");
    }

    #[test]
    fn characters_outside_pchar_are_encoded() {
        assert_eq!(ok("/a|b^c\"d"), "/a%7Cb%5Ec%22d");
        assert_eq!(ok("/é"), "/%C3%A9");
    }

    #[test]
    fn slashes_merge_and_dot_segments_go() {
        assert_eq!(ok("//projects///p1//"), "/projects/p1/");
        assert_eq!(ok("/docs/../internal"), "/internal");
        assert_eq!(ok("/docs/%2e%2E/internal"), "/internal");
        assert_eq!(ok("/docs/.%2e/internal"), "/internal");
        assert_eq!(ok("/a/./b/."), "/a/b/");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/../../x"), "/x");
        assert_eq!(ok("/.."), "/");
        assert_eq!(ok("/a/..."), "/a/...");
    }

    #[test]
    fn what_origins_could_read_differently_is_refused() {
        let refused = [
            ("/projects%2Fp2/tasks", PathError::EncodedSlash),
            ("/docs/..%2finternal", PathError::EncodedSlash),
            ("/a%5Cb", PathError::EncodedSlash),
            ("/a\\b", PathError::Backslash),
            ("/docs/..;/internal", PathError::Semicolon),
            ("/projects;x=1/p2", PathError::Semicolon),
            ("/a%3Bb", PathError::Semicolon),
            ("/a%252Fb", PathError::EncodedPercent),
            ("/a%00b", PathError::ControlByte),
            ("/a%0Ab", PathError::ControlByte),
            ("/a\tb", PathError::ControlByte),
            ("/a%7f", PathError::ControlByte),
            ("/a%zz", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/a%", PathError::BadEscape),
            ("/a%C0%AE", PathError::InvalidUtf8),
            ("/a%FF", PathError::InvalidUtf8),
            ("relative", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (raw, want) in refused {
            assert_eq!(canonicalize(raw), Err(want), "{raw}");
        }
        assert_eq!(
            canonicalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn characters_an_origin_folds_into_other_paths_are_refused() {
        for (raw, c) in [
            ("/licen%C5%BFes/1", '\u{17F}'), // ſ: upper-cases to S
            ("/l%C4%B1censes/1", '\u{131}'), // ı: upper-cases to I
            ("/l%C4%B0censes/1", '\u{130}'), // İ: lower-cases to i
            ("/project%C5%BF/p2/x", '\u{17F}'),
            ("/%E2%84%AAeys", '\u{212A}'), // Kelvin sign: lower-cases to k
            ("/%EF%AC%81les", '\u{FB01}'), // ﬁ: NFKC fi
            ("/a%EF%BC%8Fb", '\u{FF0F}'),  // fullwidth solidus: NFKC /
            ("/a%EF%BC%BCb", '\u{FF3C}'),  // fullwidth reverse solidus
            ("/docs/%E2%80%A4%E2%80%A4/x", '\u{2024}'), // one dot leader: NFKC .
            ("/%EF%BD%90rojects", '\u{FF50}'), // fullwidth p
            ("/cla%E1%BA%9E", '\u{1E9E}'), // capital sharp s: folds to ss
            ("/a%E2%80%8Bb", '\u{200B}'),  // zero width space
            ("/a%E2%80%AEb", '\u{202E}'),  // right-to-left override
            ("/a%C2%A0b", '\u{A0}'),       // no-break space
            ("/a%C2%ADb", '\u{AD}'),       // soft hyphen: NFKC_Casefold drops it
            ("/a%CD%B8", '\u{378}'),       // unassigned
            ("/li%CC%87censes", '\u{307}'), // Lithuanian upper case drops the dot
            ("/LI%CC%87CENSES", '\u{307}'), // Turkish lower case drops it
        ] {
            assert_eq!(canonicalize(raw), Err(PathError::Folds(c)), "{raw}");
        }
        let e = canonicalize("/licen%C5%BFes/1").unwrap_err();
        assert!(e.to_string().contains("U+017F"), "{e}");
    }

    #[test]
    fn non_ascii_that_folds_only_to_non_ascii_passes() {
        for raw in [
            "/caf%C3%A9",
            "/CAF%C3%89",
            "/%E4%B8%AD%E6%96%87",
            "/%F0%9F%98%80",
            "/z%CC%87",
            "/%C5%BC%C3%B3%C5%82w",
            "/%E2%88%95",
        ] {
            assert!(canonicalize(raw).is_ok(), "{raw}");
        }
        assert!(is_ascii("/a%20b/%7E"));
        assert!(!is_ascii("/caf%C3%A9"));
    }

    #[test]
    fn utf8_split_across_segments_is_still_checked_per_path() {
        // Each half alone is not UTF-8, and neither is the whole (a '/' sits between).
        assert_eq!(canonicalize("/%C3/%A9"), Err(PathError::InvalidUtf8));
    }

    #[test]
    fn segments_of_a_canonical_path() {
        assert_eq!(segments("/a/b/").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(segments("/").count(), 0);
    }
}
