//! The simulated geography's one entry from JavaScript (`TEST_GEO` only): the
//! round trip between two regions, which an object waits for when a call says
//! where it comes from (`entry.mjs`). The figures are `request::regions`'.

use crate::request::regions::Region;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub struct Geography;

#[wasm_bindgen]
impl Geography {
    /// Milliseconds there and back between two regions named as location hints;
    /// 0 when either is unknown (no simulation).
    pub fn round_trip_ms(from: &str, to: &str) -> u32 {
        match (Region::parse(from), Region::parse(to)) {
            (Some(a), Some(b)) => a.round_trip_ms(b),
            _ => 0,
        }
    }
}
