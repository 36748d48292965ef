//! A working key used as no one intended (issue 22 §3): per key and UTC hour, the
//! distinct client networks (/24 for IPv4, /48 for IPv6) and countries its
//! admitted requests came from. Past `SHARING_NETWORKS_PER_HOUR` networks, or from
//! a country new to a key that had one, the key is suspected of being shared:
//! announced once per hour (`key.shared_suspected`), and with
//! `SHARING_ACTION=deactivate` deactivated. Time passed in; bounded memory.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

const HOUR: i64 = 3_600_000;
/// Countries remembered as the key's own (earlier hours).
const MAX_KNOWN: usize = 32;
/// Countries kept per hour.
const MAX_COUNTRIES: usize = 64;

/// What a suspicion does besides being announced (`SHARING_ACTION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Notify,
    Deactivate,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "notify" | "none" => Some(Action::Notify),
            "deactivate" => Some(Action::Deactivate),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharing {
    /// The hour being counted (its start, Unix ms).
    pub hour: i64,
    /// Networks this hour, at most the threshold + 1 (enough to know it was passed).
    pub networks: Vec<String>,
    /// Networks seen beyond those kept this hour.
    #[serde(default)]
    pub more_networks: u32,
    pub countries: Vec<String>,
    /// Countries of earlier hours: the key's own.
    pub known: Vec<String>,
    /// The hour a suspicion was last announced for.
    pub alerted_hour: Option<i64>,
    pub last: Option<Suspicion>,
}

/// What was suspected, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspicion {
    pub at: i64,
    pub window_start: i64,
    pub networks: u32,
    pub countries: Vec<String>,
    pub new_country: Option<String>,
    pub threshold: u32,
}

/// The network of a client address: `203.0.113.0/24`, `2001:db8:1::/48`.
pub fn network_of(ip: &str) -> Option<String> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(&v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
            }
        },
    }
}

/// A country code as `request.cf` gives it: two ASCII letters (`T1`, Tor, too).
pub fn country_of(code: &str) -> Option<String> {
    let c = code.trim();
    (c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| c.to_ascii_uppercase())
}

impl Sharing {
    /// An admitted request from `ip` in `country` at `now`: whether anything
    /// changed (to store), and a suspicion to announce (once per hour).
    pub fn see(
        &mut self,
        ip: Option<&str>,
        country: Option<&str>,
        threshold: u32,
        now: i64,
    ) -> (bool, Option<Suspicion>) {
        if threshold == 0 {
            return (false, None);
        }
        let hour = now.div_euclid(HOUR) * HOUR;
        let mut changed = false;
        if self.hour != hour {
            for c in std::mem::take(&mut self.countries) {
                if !self.known.contains(&c) && self.known.len() < MAX_KNOWN {
                    self.known.push(c);
                }
            }
            self.networks.clear();
            self.more_networks = 0;
            self.hour = hour;
            changed = true;
        }
        if let Some(net) = ip.and_then(network_of) {
            if !self.networks.contains(&net) {
                if self.networks.len() <= threshold as usize {
                    self.networks.push(net);
                } else {
                    self.more_networks = self.more_networks.saturating_add(1);
                }
                changed = true;
            }
        }
        let mut new_country = None;
        if let Some(c) = country.and_then(country_of) {
            let seen = |c: &String| self.known.contains(c) || self.countries.contains(c);
            let had_one = !self.known.is_empty() || !self.countries.is_empty();
            if !seen(&c) {
                if had_one {
                    new_country = Some(c.clone());
                }
                if self.countries.len() < MAX_COUNTRIES {
                    self.countries.push(c);
                }
                changed = true;
            }
        }
        let networks = self.networks.len() as u32 + self.more_networks;
        let suspected = networks > threshold || new_country.is_some();
        if !suspected || self.alerted_hour == Some(hour) {
            return (changed, None);
        }
        let s = Suspicion {
            at: now,
            window_start: hour,
            networks,
            countries: self.countries.clone(),
            new_country,
            threshold,
        };
        self.alerted_hour = Some(hour);
        self.last = Some(s.clone());
        (true, Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR;

    #[test]
    fn networks_are_24s_and_48s() {
        assert_eq!(
            network_of("203.0.113.77").as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            network_of("2001:db8:1:2::5").as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(
            network_of("::ffff:10.1.2.3").as_deref(),
            Some("10.1.2.0/24")
        );
        assert_eq!(network_of("not an ip"), None);
        assert_eq!(country_of("de").as_deref(), Some("DE"));
        assert_eq!(country_of("DEU"), None);
        assert_eq!(country_of("d!"), None);
    }

    #[test]
    fn past_the_threshold_once_per_hour() {
        let mut s = Sharing::default();
        for i in 0..3 {
            let (_, sus) = s.see(Some(&format!("10.0.{i}.9")), None, 3, H + i);
            assert!(sus.is_none());
        }
        assert!(
            !s.see(Some("10.0.1.200"), None, 3, H + 5).0,
            "the same /24: nothing new"
        );
        let (_, sus) = s.see(Some("10.0.9.1"), None, 3, H + 6);
        assert_eq!(sus.map(|x| x.networks), Some(4));
        assert!(
            s.see(Some("10.0.10.1"), None, 3, H + 7).1.is_none(),
            "once per hour"
        );
        assert_eq!(s.networks.len(), 4, "bounded");
        assert_eq!(s.more_networks, 1);
        // The next hour counts afresh.
        assert!(s.see(Some("10.0.11.1"), None, 3, H + HOUR).1.is_none());
        assert_eq!(s.networks.len(), 1);
        assert!(
            s.see(Some("10.0.1.1"), None, 0, H + HOUR).1.is_none(),
            "0: off"
        );
    }

    #[test]
    fn a_new_country_for_a_key_that_had_one() {
        let mut s = Sharing::default();
        assert!(
            s.see(None, Some("DE"), 20, H).1.is_none(),
            "its first country"
        );
        assert!(s.see(None, Some("DE"), 20, H + 1).1.is_none());
        let sus = s.see(None, Some("BR"), 20, H + 2).1.unwrap();
        assert_eq!(sus.new_country.as_deref(), Some("BR"));
        assert_eq!(sus.countries, vec!["DE".to_string(), "BR".into()]);
        // Next hour: both are the key's own; a third is new again.
        assert!(s.see(None, Some("BR"), 20, H + HOUR).1.is_none());
        assert_eq!(
            s.see(None, Some("JP"), 20, H + HOUR + 1)
                .1
                .unwrap()
                .new_country
                .as_deref(),
            Some("JP")
        );
    }
}
