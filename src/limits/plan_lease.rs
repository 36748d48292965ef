//! Plan leases (in the sense of Gray & Cheriton, 1989): an account's object
//! promises an isolate that the account's plan stays as it is until a time, so
//! that a request of a plan without account-wide limits asks only the key's
//! object. A plan change answers only once every lease on the old plan has
//! lapsed; from then on an isolate's lease has lapsed too and its next request
//! asks the account again, so the change still bites on the very next request.
//!
//! The isolate reads the lease on its own clock, `MARGIN_MS` early: a clock up to
//! that much behind the object's cannot stretch a lease past the change.

/// How much earlier than the object's time an isolate treats a lease as lapsed.
pub const MARGIN_MS: i64 = 250;

/// The lease to answer with at `now`, and whether it is a new one to store: a
/// lease is renewed once less than half of it is left (one write per half lease).
pub fn grant(held_until: i64, now: i64, lease_ms: i64) -> (i64, bool) {
    if held_until - now >= lease_ms / 2 {
        (held_until, false)
    } else {
        (now + lease_ms, true)
    }
}

/// Whether a lease until `until` (the object's clock) still holds at the
/// isolate's `now`.
pub fn holds(until: i64, now: i64) -> bool {
    now < until - MARGIN_MS
}

/// How long a plan change made at `now` waits before it answers: until the last
/// lease granted on the old plan has lapsed.
pub fn wait_ms(held_until: i64, now: i64) -> i64 {
    (held_until - now).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_once_half_of_it_is_left() {
        assert_eq!(grant(0, 1_000, 5_000), (6_000, true));
        assert_eq!(grant(6_000, 3_500, 5_000), (6_000, false));
        assert_eq!(grant(6_000, 3_501, 5_000), (8_501, true));
    }

    #[test]
    fn an_isolate_lets_a_lease_go_early() {
        assert!(holds(10_000, 9_749));
        assert!(!holds(10_000, 9_750));
        assert!(!holds(10_000, 10_000));
        assert!(!holds(0, 0), "no lease");
    }

    #[test]
    fn a_plan_change_waits_out_the_leases_on_the_old_plan() {
        assert_eq!(wait_ms(6_000, 4_000), 2_000);
        assert_eq!(wait_ms(6_000, 7_000), 0);
        assert_eq!(wait_ms(0, 7_000), 0, "never leased");
    }
}
