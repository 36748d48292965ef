//! Where a key's object lives, and when it should move nearer its clients (issue
//! 21 §2). A Durable Object stays where it was created; a key's object is created
//! by the management call that made the key, near the admin. So the object keeps
//! its home region and watches where its admissions come from:
//!
//! - on its key's first use, from a region farther than `NEAR_MS`, it asks to be
//!   moved there;
//! - later, `STREAK` admissions in a row from one far region move it again (a
//!   key used from several regions at once stays: budget leases serve those), at
//!   most once per `KEY_MOVE_EVERY_SECONDS` (0: keys never move).
//!
//! A move makes the key's next object (`successor`), near the client; that object
//! takes everything the old one holds (record, ledger, reservations, leases, usage,
//! logs) in one step, and the old one answers every command from then on with the
//! name of the new one, so every caller finds the key through its first object,
//! named by the key's id (`locator`).

use crate::request::regions::Region;
use serde::{Deserialize, Serialize};

/// A client this near its key's object (round trip, ms) is served where it is.
pub const NEAR_MS: u32 = 30;
/// Admissions in a row from one far region that move a key already in use.
pub const STREAK: u32 = 8;
/// A move asked for and not made is asked for again after this long.
pub const RETRY_MS: i64 = 30_000;
/// Between a key's id and its object's generation.
const SEPARATOR: char = '~';

/// What the object keeps of its place (its own row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    /// Where it was created (a location hint, or its first caller's region);
    /// `None` for an object made before homes were kept: it never asks to move.
    pub region: Option<Region>,
    /// When the key last arrived here by a move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_at: Option<i64>,
    #[serde(default)]
    pub moves: u32,
}

/// The object's home and, in memory only, what it has seen since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub home: Home,
    /// Admissions decided since this instance started.
    seen: u64,
    /// The region of the last admissions and how many in a row came from it.
    streak: Option<(Region, u32)>,
    /// When this instance last asked to be moved.
    asked_at: Option<i64>,
}

impl Placement {
    pub fn at(home: Home) -> Self {
        Placement {
            home,
            ..Placement::default()
        }
    }

    /// An admission from `from` (`None`: unknown). `first`: the key's first use;
    /// `every_ms`: how soon after a move it may move again (0: never).
    /// Answers the region the key should move to, if it should.
    pub fn admitted(
        &mut self,
        from: Option<Region>,
        first: bool,
        every_ms: i64,
        now: i64,
    ) -> Option<Region> {
        let from = from.filter(|_| every_ms > 0)?;
        let first = first && self.seen == 0 && self.home.moves == 0;
        self.seen += 1;
        self.streak = match self.streak {
            Some((r, n)) if r == from => Some((r, n.saturating_add(1))),
            _ => Some((from, 1)),
        };
        let home = self.home.region?;
        if from.round_trip_ms(home) <= NEAR_MS {
            return None;
        }
        if self.asked_at.is_some_and(|t| now - t < RETRY_MS) {
            return None;
        }
        let settled = self.home.moved_at.is_none_or(|t| now - t >= every_ms);
        let moved_away = self.streak.is_some_and(|(_, n)| n >= STREAK);
        if first || (settled && moved_away) {
            self.asked_at = Some(now);
            return Some(from);
        }
        None
    }

    /// The key arrived here, in `region`, by a move.
    pub fn arrived(&mut self, region: Option<Region>, now: i64) {
        self.home = Home {
            region,
            moved_at: Some(now),
            moves: self.home.moves.saturating_add(1),
        };
        self.streak = None;
        self.asked_at = None;
    }
}

/// The key's id: the name of its first object, which finds every later one.
pub fn locator(name: &str) -> &str {
    name.split_once(SEPARATOR).map_or(name, |(id, _)| id)
}

/// How many moves made the object of this name (0: the first).
pub fn generation(name: &str) -> u32 {
    name.split_once(SEPARATOR)
        .and_then(|(_, g)| g.parse().ok())
        .unwrap_or(0)
}

/// The name of the object a key moves to from the object of `name`.
pub fn successor(name: &str) -> String {
    format!("{}{SEPARATOR}{}", locator(name), generation(name) + 1)
}

/// The object a key moved from into the object of `name` (`None`: the first).
pub fn predecessor(name: &str) -> Option<String> {
    match generation(name) {
        0 => None,
        1 => Some(locator(name).to_string()),
        g => Some(format!("{}{SEPARATOR}{}", locator(name), g - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Region::{Eeur, Oc, Weur};

    const MOVE_EVERY_MS: i64 = 600_000;

    fn in_weur() -> Placement {
        Placement::at(Home {
            region: Some(Weur),
            ..Home::default()
        })
    }

    #[test]
    fn a_first_use_from_far_away_asks_to_move_there_once() {
        let mut p = in_weur();
        assert_eq!(p.admitted(Some(Oc), true, MOVE_EVERY_MS, 0), Some(Oc));
        // Asked once; the move is on its way.
        assert_eq!(p.admitted(Some(Oc), true, MOVE_EVERY_MS, 1), None);
        assert_eq!(
            p.admitted(Some(Oc), false, MOVE_EVERY_MS, RETRY_MS - 1),
            None
        );
    }

    #[test]
    fn a_first_use_nearby_or_from_nowhere_stays() {
        let mut p = in_weur();
        assert_eq!(
            p.admitted(Some(Eeur), true, MOVE_EVERY_MS, 0),
            None,
            "weur–eeur is 20 ms"
        );
        let mut p = in_weur();
        assert_eq!(p.admitted(None, true, MOVE_EVERY_MS, 0), None);
        // An object with no known home never asks.
        let mut p = Placement::default();
        assert_eq!(p.admitted(Some(Oc), true, MOVE_EVERY_MS, 0), None);
    }

    #[test]
    fn a_key_in_use_moves_after_a_streak_from_one_far_region() {
        let mut p = in_weur();
        assert_eq!(p.admitted(Some(Weur), true, MOVE_EVERY_MS, 0), None);
        for i in 1..STREAK {
            assert_eq!(
                p.admitted(Some(Oc), false, MOVE_EVERY_MS, i as i64),
                None,
                "after {i}"
            );
        }
        assert_eq!(p.admitted(Some(Oc), false, MOVE_EVERY_MS, 100), Some(Oc));
    }

    #[test]
    fn a_key_used_from_two_regions_in_turn_stays() {
        let mut p = in_weur();
        p.admitted(Some(Weur), true, MOVE_EVERY_MS, 0);
        for i in 0..100 {
            let from = if i % 3 == 0 { Weur } else { Oc };
            assert_eq!(
                p.admitted(Some(from), false, MOVE_EVERY_MS, i),
                None,
                "at {i}"
            );
        }
    }

    #[test]
    fn a_moved_key_stays_put_for_a_while() {
        let mut p = in_weur();
        p.arrived(Some(Oc), 1_000);
        assert_eq!(p.home.moves, 1);
        for i in 0..STREAK * 2 {
            assert_eq!(
                p.admitted(Some(Weur), false, MOVE_EVERY_MS, 2_000 + i as i64),
                None
            );
        }
        let later = 1_000 + MOVE_EVERY_MS;
        assert_eq!(
            p.admitted(Some(Weur), false, MOVE_EVERY_MS, later),
            Some(Weur)
        );
    }

    #[test]
    fn a_move_not_made_is_asked_for_again() {
        let mut p = in_weur();
        assert_eq!(p.admitted(Some(Oc), true, MOVE_EVERY_MS, 0), Some(Oc));
        for i in 0..STREAK {
            p.admitted(Some(Oc), false, MOVE_EVERY_MS, 10 + i as i64);
        }
        assert_eq!(
            p.admitted(Some(Oc), false, MOVE_EVERY_MS, RETRY_MS),
            Some(Oc)
        );
    }

    #[test]
    fn keys_never_move_when_moves_are_off() {
        let mut p = in_weur();
        assert_eq!(p.admitted(Some(Oc), true, 0, 0), None);
    }

    #[test]
    fn names_chain_from_the_key_s_id() {
        assert_eq!(successor("key_1"), "key_1~1");
        assert_eq!(successor("key_1~1"), "key_1~2");
        assert_eq!(predecessor("key_1"), None);
        assert_eq!(predecessor("key_1~1").as_deref(), Some("key_1"));
        assert_eq!(predecessor("key_1~2").as_deref(), Some("key_1~1"));
        assert_eq!(locator("key_1~7"), "key_1");
        assert_eq!(generation("key_1~7"), 7);
        assert_eq!(generation("key_1"), 0);
        assert_eq!(generation("key_1~x"), 0);
    }
}
