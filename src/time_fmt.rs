//! Unix-millisecond timestamps to and from RFC 3339, the only time format of the
//! API, through chrono (no features but `alloc`: no clock, no time zone data).

use chrono::{DateTime, SecondsFormat};

/// `2026-11-23T04:05:06.789Z`; a time chrono cannot represent (beyond ±262,000
/// years) renders as the epoch rather than failing a response.
pub fn to_rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; sub-millisecond digits are
/// dropped (the API keeps milliseconds).
pub fn from_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Whole seconds in `ms`, rounded up (a wait is never announced shorter than it is).
pub fn ceil_secs(ms: i64) -> u64 {
    ((ms.max(0) + 999) / 1000) as u64
}

/// The `Retry-After` of a wait of `ms`: whole seconds rounded up, at least 1.
pub fn retry_after(ms: i64) -> u64 {
    ceil_secs(ms).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ms = 1_795_000_000_123;
        assert_eq!(from_rfc3339(&to_rfc3339(ms)), Some(ms));
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(to_rfc3339(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(to_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(to_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            from_rfc3339("2026-01-01T00:00:00+01:00"),
            Some(1_767_222_000_000)
        );
        assert_eq!(
            from_rfc3339("2026-01-01T00:00:00Z"),
            Some(1_767_225_600_000)
        );
        assert_eq!(
            from_rfc3339("2026-01-01T00:00:00.5Z"),
            Some(1_767_225_600_500)
        );
        assert_eq!(
            from_rfc3339("2026-01-01T00:00:00.123456-00:30"),
            Some(1_767_227_400_123)
        );
    }

    #[test]
    fn every_week_of_four_centuries_round_trips() {
        let day = 86_400_000i64;
        for d in (-146_097..2 * 146_097).step_by(7) {
            let ms = d * day + 12_345;
            assert_eq!(from_rfc3339(&to_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "tomorrow",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0100",
            "2026-1-01T00:00:00Z",
            "",
        ] {
            assert_eq!(from_rfc3339(bad), None, "{bad}");
        }
        assert!(from_rfc3339("2024-02-29T00:00:00Z").is_some());
    }
}
