//! Where a presented key leads: the decision between the KV index (read first,
//! eventually consistent) and the key's own object (strongly consistent), and
//! which answers may be remembered.
//!
//! KV's copy of a new or rotated key can take about a minute to reach other
//! locations. A key issued now carries its object's id (`key_format`), so a KV
//! miss is asked of that object before it is refused: a key works everywhere from
//! the moment its create or rotate call answers. Keys issued before the locator
//! existed are found in KV only; KV has had them since long before this build.

use crate::key::record::HashEntry;

/// What the gate does with a presented key after reading KV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// KV knows it: its object decides (a stale copy — a rotated, revoked or
    /// deleted secret — is refused there).
    Found(HashEntry),
    /// KV has no copy (yet): ask the object the key names.
    AskKey(String),
    /// No key leads here.
    Unknown,
}

/// The decision. A KV entry for a key that names another object than the entry's
/// cannot be a key keyward issued: refused (fail closed).
pub fn decide(kv: Option<HashEntry>, key_id: Option<&str>) -> Lookup {
    match (kv, key_id) {
        (Some(e), Some(id)) if e.id != id => Lookup::Unknown,
        (Some(e), _) => Lookup::Found(e),
        (None, Some(id)) => Lookup::AskKey(id.to_string()),
        (None, None) => Lookup::Unknown,
    }
}

/// Whether a "no such key" may be remembered (in the isolate, for the cache TTL).
/// Yes when the key's object said so — it holds the key's current secrets, and a
/// hash it does not know now can never become a key later (a new secret carries
/// 160 fresh random bits) — or when a key without a locator is not in KV. Never a
/// KV miss alone for a key that names its object: that may be KV lagging.
pub fn remember_unknown(asked_the_object: bool, key_id: Option<&str>) -> bool {
    asked_the_object || key_id.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> HashEntry {
        HashEntry {
            id: id.into(),
            parents: Vec::new(),
            account: "acme".into(),
            written_at: None,
            object: None,
        }
    }

    #[test]
    fn a_kv_hit_leads_to_its_object() {
        assert_eq!(
            decide(Some(entry("key_a")), Some("key_a")),
            Lookup::Found(entry("key_a"))
        );
        // A key of an earlier build: KV only.
        assert_eq!(
            decide(Some(entry("key_a")), None),
            Lookup::Found(entry("key_a"))
        );
    }

    #[test]
    fn a_kv_miss_with_a_locator_asks_the_key() {
        assert_eq!(decide(None, Some("key_a")), Lookup::AskKey("key_a".into()));
        assert!(
            !remember_unknown(false, Some("key_a")),
            "KV may lag: not final"
        );
        assert!(remember_unknown(true, Some("key_a")), "the object knows");
    }

    #[test]
    fn a_kv_miss_without_a_locator_is_unknown_for_good() {
        assert_eq!(decide(None, None), Lookup::Unknown);
        assert!(remember_unknown(false, None));
    }

    #[test]
    fn a_stale_hit_after_rotate_still_only_locates() {
        // The old secret's KV copy still names the key: its object refuses it
        // (`check_key`, row 3); the new secret's copy may not be there yet.
        assert_eq!(
            decide(Some(entry("key_a")), Some("key_a")),
            Lookup::Found(entry("key_a"))
        );
        assert_eq!(decide(None, Some("key_a")), Lookup::AskKey("key_a".into()));
    }

    #[test]
    fn an_entry_for_another_object_is_refused() {
        assert_eq!(decide(Some(entry("key_b")), Some("key_a")), Lookup::Unknown);
    }
}
