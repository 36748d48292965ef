//! Reserve at admission, commit on answer. An admitted request's credits are
//! taken from the key's ledger at once (so concurrent requests can never
//! over-admit) and held as a reservation until the gate reports what the client
//! got. Only a committed request counts as a use (`usage_count`, the usage chart);
//! a released one gives its credits back. A reservation never settled is released
//! by the key object's alarm after `RESERVATION_TIMEOUT_SECONDS`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What is billed (`CHARGE_ON`): keyward's own refusals never cost credits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChargeOn {
    /// The origin answered, whatever its status.
    #[default]
    Forwarded,
    /// The origin answered 2xx or 3xx.
    Success,
}

impl ChargeOn {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "forwarded" => Some(ChargeOn::Forwarded),
            "success" => Some(ChargeOn::Success),
            _ => None,
        }
    }

    /// Whether a request the origin answered with `origin_status` (`None`: the
    /// origin never answered — a failed fetch, a timeout) is charged.
    pub fn charges(self, origin_status: Option<u16>) -> bool {
        match (self, origin_status) {
            (_, None) => false,
            (ChargeOn::Forwarded, Some(_)) => true,
            (ChargeOn::Success, Some(s)) => (200..400).contains(&s),
        }
    }
}

/// Credits held for one admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: u64,
    /// When the credits were taken from the ledger: a release gives them back there.
    pub at: i64,
    pub cost: u64,
    /// When the alarm releases it if no settlement came.
    pub due: i64,
    /// What it took from the key's balance (`limits::credits`): given back with
    /// its release. 0 for a management call or a key without credits.
    #[serde(default)]
    pub spent: u64,
}

/// How the gate reports one reservation's request, after the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub id: u64,
    /// The origin's status; `None` when the origin never answered or the request
    /// was not forwarded (a later row refused it).
    pub origin_status: Option<u16>,
    /// What the client got.
    pub status: u16,
    /// keyward's code, when keyward refused it after the key admitted it.
    pub code: Option<String>,
    pub duration_ms: u32,
}

/// The open reservations of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations {
    open: BTreeMap<u64, Reservation>,
    last_id: u64,
}

/// Ids per millisecond: ids are `at × 1024 + n`, so they grow with time and stay
/// unique across restarts without a stored counter.
const PER_MS: u64 = 1024;

impl Reservations {
    /// From storage: the open ones and the highest id ever given (logs included).
    pub fn restore(open: impl IntoIterator<Item = Reservation>, last_id: u64) -> Self {
        let open: BTreeMap<u64, Reservation> = open.into_iter().map(|r| (r.id, r)).collect();
        let last_id = open.keys().next_back().copied().unwrap_or(0).max(last_id);
        Reservations { open, last_id }
    }

    pub fn open(&mut self, at: i64, cost: u64, timeout_ms: i64) -> Reservation {
        let id = (self.last_id + 1).max((at.max(0) as u64).saturating_mul(PER_MS));
        self.last_id = id;
        let r = Reservation {
            id,
            at,
            cost,
            due: at.saturating_add(timeout_ms),
            spent: 0,
        };
        self.open.insert(id, r);
        r
    }

    /// A block of `n` ids no reservation will take (a lease's log rows).
    pub fn block(&mut self, at: i64, n: u64) -> u64 {
        let first = (self.last_id + 1).max((at.max(0) as u64).saturating_mul(PER_MS));
        self.last_id = first + n.max(1) - 1;
        first
    }

    /// Settles (or releases) `id`: `None` when it is not open any more, so nothing
    /// is ever given back or counted twice.
    /// Records what the open reservation `id` took from the key's balance.
    pub fn spending(&mut self, id: u64, spent: u64) -> Option<Reservation> {
        let r = self.open.get_mut(&id)?;
        r.spent = spent;
        Some(*r)
    }

    pub fn take(&mut self, id: u64) -> Option<Reservation> {
        self.open.remove(&id)
    }

    /// The reservations whose time is up at `now`, removed.
    pub fn overdue(&mut self, now: i64) -> Vec<Reservation> {
        let ids: Vec<u64> = self
            .open
            .values()
            .filter(|r| r.due <= now)
            .map(|r| r.id)
            .collect();
        ids.iter().filter_map(|id| self.open.remove(id)).collect()
    }

    /// When the alarm must next release something.
    pub fn next_due(&self) -> Option<i64> {
        self.open.values().map(|r| r.due).min()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_charged() {
        use ChargeOn::*;
        for s in [200, 301, 404, 429, 500, 503] {
            assert!(Forwarded.charges(Some(s)), "{s}");
        }
        assert!(!Forwarded.charges(None));
        assert!(Success.charges(Some(200)) && Success.charges(Some(304)));
        for s in [400, 404, 500, 502] {
            assert!(!Success.charges(Some(s)), "{s}");
        }
        assert!(!Success.charges(None));
        assert_eq!(ChargeOn::parse("success"), Some(Success));
        assert_eq!(ChargeOn::parse("Success"), None);
        assert_eq!(ChargeOn::default(), Forwarded);
    }

    #[test]
    fn ids_grow_and_survive_a_restart() {
        let mut r = Reservations::default();
        let a = r.open(1_000, 1, 30_000);
        let b = r.open(1_000, 1, 30_000);
        assert!(b.id > a.id);
        assert_eq!(a.due, 31_000);
        // Restarted with only the highest id seen in the logs: no id is reused,
        // even if the clock reads earlier.
        let mut again = Reservations::restore([], b.id);
        assert!(again.open(999, 1, 30_000).id > b.id);
    }

    #[test]
    fn a_reservation_settles_once() {
        let mut r = Reservations::default();
        let a = r.open(1_000, 2, 30_000);
        assert_eq!(r.take(a.id), Some(a));
        assert_eq!(r.take(a.id), None);
        assert!(r.overdue(i64::MAX).is_empty());
    }

    #[test]
    fn overdue_ones_are_released_by_time() {
        let mut r = Reservations::default();
        let a = r.open(1_000, 1, 30_000);
        let b = r.open(5_000, 1, 30_000);
        assert_eq!(r.next_due(), Some(31_000));
        assert!(r.overdue(30_999).is_empty());
        assert_eq!(r.overdue(31_000), vec![a]);
        assert_eq!(r.next_due(), Some(35_000));
        assert_eq!(r.take(b.id), Some(b));
        assert_eq!(r.next_due(), None);
    }
}
