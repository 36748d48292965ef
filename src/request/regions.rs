//! Geography, simulated (tests and `make geo` only: `TEST_GEO`, refused in
//! production). Cloudflare's Durable Object regions — the names of its location
//! hints — and the round trip between any two of them, so that the local runtime,
//! where every object is on the same machine, can show what a client far from an
//! object pays.
//!
//! The round trips are approximate medians of public figures, in milliseconds:
//! - the three the issue gives (Sydney–Virginia 210, Virginia–Frankfurt 85,
//!   Virginia–São Paulo 115);
//! - the others from public inter-city ping tables (WonderNetwork's global ping
//!   statistics, wondernetwork.com/pings; AWS inter-region figures as published
//!   at cloudping.co), each region read as one city: wnam San Francisco, enam
//!   Virginia, sam São Paulo, weur Frankfurt, eeur Warsaw, apac Singapore, oc
//!   Sydney, afr Johannesburg, me Dubai;
//! - within one region, 5 ms (a neighbouring data centre of the same region).
//!
//! The names are real beyond the simulation: an account may declare its region,
//! and its keys' objects are then created there (a location hint).

use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// The header that names a request's client region (read only with `TEST_GEO`;
/// like every `X-Keyward-*` header it never reaches the origin).
pub const HEADER: &str = "x-keyward-test-region";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Wnam,
    Enam,
    Sam,
    Weur,
    Eeur,
    Apac,
    Oc,
    Afr,
    Me,
}

pub const ALL: [Region; 9] = [
    Region::Wnam,
    Region::Enam,
    Region::Sam,
    Region::Weur,
    Region::Eeur,
    Region::Apac,
    Region::Oc,
    Region::Afr,
    Region::Me,
];

/// The round trip within one region.
pub const SAME_REGION_MS: u32 = 5;

/// Round trips between different regions, in `ALL`'s order (upper triangle read
/// both ways).
const ROUND_TRIP_MS: [[u32; 9]; 9] = [
    // wnam enam  sam weur eeur apac   oc  afr   me
    [5, 62, 175, 150, 165, 170, 140, 290, 230],  // wnam
    [62, 5, 115, 85, 105, 220, 210, 230, 190],   // enam
    [175, 115, 5, 200, 215, 330, 310, 340, 310], // sam
    [150, 85, 200, 5, 20, 160, 280, 160, 110],   // weur
    [165, 105, 215, 20, 5, 170, 290, 175, 120],  // eeur
    [170, 220, 330, 160, 170, 5, 95, 280, 90],   // apac
    [140, 210, 310, 280, 290, 95, 5, 400, 190],  // oc
    [290, 230, 340, 160, 175, 280, 400, 5, 170], // afr
    [230, 190, 310, 110, 120, 90, 190, 170, 5],  // me
];

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::Wnam => "wnam",
            Region::Enam => "enam",
            Region::Sam => "sam",
            Region::Weur => "weur",
            Region::Eeur => "eeur",
            Region::Apac => "apac",
            Region::Oc => "oc",
            Region::Afr => "afr",
            Region::Me => "me",
        }
    }

    /// A region from its name (exactly as Cloudflare spells its location hints).
    pub fn parse(name: &str) -> Option<Region> {
        ALL.into_iter().find(|r| r.name() == name)
    }

    /// Milliseconds there and back between `self` and `other`.
    pub fn round_trip_ms(self, other: Region) -> u32 {
        // `ALL` lists the variants in declaration order, as the matrix does.
        ROUND_TRIP_MS[self as usize][other as usize]
    }
}

/// Where a request's client is: its header's region, else `default`; an unknown
/// name is 400 naming the header.
pub fn of_request(header: Option<&str>, default: Region) -> Result<Region, ApiError> {
    match header {
        None => Ok(default),
        Some(v) => Region::parse(v.trim()).ok_or_else(|| ApiError::InvalidHeader {
            name: HEADER.into(),
            reason: format!("'{v}' is not a region ({})", names()),
        }),
    }
}

/// Countries of continent `AS` that Cloudflare's `me` region serves.
const MIDDLE_EAST: [&str; 13] = [
    "AE", "BH", "IL", "IQ", "IR", "JO", "KW", "LB", "OM", "PS", "QA", "SA", "YE",
];

/// The region nearest a client as `request.cf` describes it: its continent code,
/// country code and longitude. `None` for a continent no region serves (`AN`) or
/// an unknown one.
pub fn nearest(continent: &str, country: &str, longitude: Option<f32>) -> Option<Region> {
    let east_of = |l: f32| longitude.is_some_and(|x| x > l);
    match continent {
        "NA" if longitude.is_some_and(|x| x < -100.0) => Some(Region::Wnam),
        "NA" => Some(Region::Enam),
        "SA" => Some(Region::Sam),
        "EU" if east_of(15.0) => Some(Region::Eeur),
        "EU" => Some(Region::Weur),
        "AS" if MIDDLE_EAST.contains(&country) => Some(Region::Me),
        "AS" => Some(Region::Apac),
        "OC" => Some(Region::Oc),
        "AF" => Some(Region::Afr),
        _ => None,
    }
}

/// The list of names, for messages.
pub fn names() -> String {
    ALL.map(Region::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_symmetric_with_the_same_region_on_its_diagonal() {
        for a in ALL {
            assert_eq!(a.round_trip_ms(a), SAME_REGION_MS);
            for b in ALL {
                assert_eq!(a.round_trip_ms(b), b.round_trip_ms(a), "{a:?} {b:?}");
                if a != b {
                    assert!(a.round_trip_ms(b) > SAME_REGION_MS);
                }
            }
        }
    }

    #[test]
    fn all_lists_the_variants_in_declaration_order() {
        for (i, r) in ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
        }
    }

    #[test]
    fn a_client_is_placed_by_continent_longitude_and_country() {
        assert_eq!(nearest("NA", "US", Some(-122.4)), Some(Region::Wnam));
        assert_eq!(nearest("NA", "US", Some(-77.0)), Some(Region::Enam));
        assert_eq!(nearest("NA", "US", None), Some(Region::Enam));
        assert_eq!(nearest("SA", "BR", Some(-46.6)), Some(Region::Sam));
        assert_eq!(nearest("EU", "DE", Some(8.7)), Some(Region::Weur));
        assert_eq!(nearest("EU", "PL", Some(21.0)), Some(Region::Eeur));
        assert_eq!(nearest("AS", "AE", Some(55.3)), Some(Region::Me));
        assert_eq!(nearest("AS", "SG", Some(103.8)), Some(Region::Apac));
        assert_eq!(nearest("OC", "AU", Some(151.2)), Some(Region::Oc));
        assert_eq!(nearest("AF", "ZA", Some(28.0)), Some(Region::Afr));
        assert_eq!(nearest("AN", "AQ", Some(0.0)), None);
        assert_eq!(nearest("", "", None), None);
    }

    #[test]
    fn the_issue_s_figures_hold() {
        assert_eq!(Region::Oc.round_trip_ms(Region::Enam), 210);
        assert_eq!(Region::Enam.round_trip_ms(Region::Weur), 85);
        assert_eq!(Region::Enam.round_trip_ms(Region::Sam), 115);
    }

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for r in ALL {
            assert_eq!(Region::parse(r.name()), Some(r));
        }
        for bad in ["", "WEUR", "eu", "weur ", "oceania"] {
            assert_eq!(Region::parse(bad), None, "{bad}");
        }
        assert!(names().starts_with("wnam, enam"));
    }

    #[test]
    fn a_request_is_where_its_header_says_else_at_the_default() {
        assert_eq!(of_request(None, Region::Weur).unwrap(), Region::Weur);
        assert_eq!(of_request(Some(" oc "), Region::Weur).unwrap(), Region::Oc);
        let e = of_request(Some("mars"), Region::Weur).unwrap_err();
        assert!(matches!(e, ApiError::InvalidHeader { ref name, .. } if name == HEADER));
    }
}
