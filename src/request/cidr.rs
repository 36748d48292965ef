//! IP allowlists: CIDR blocks (or single addresses) for IPv4 and IPv6.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        // Digits only, no leading zero: one spelling per prefix length.
        let canonical =
            |p: &str| p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max && canonical(p))
                .ok_or_else(|| format!("'{s}' has a prefix length outside 0..={max}"))?,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether every address of this block lies in `outer` (same address family).
    pub fn within(&self, outer: &Cidr) -> bool {
        self.network.is_ipv4() == outer.network.is_ipv4()
            && outer.prefix <= self.prefix
            && outer.contains(self.network)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, normalize(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), self.prefix, 32)
                    == masked(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is matched as the IPv4 it carries.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn masked(value: u128, prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let host_bits = u32::from(bits - prefix);
    (value >> host_bits) << host_bits
}

/// Whether `ip` is inside any block of `allowlist`. An empty list allows everyone;
/// entries that fail to parse (validated on write, so never in practice) match nothing.
pub fn allowed(allowlist: &[String], ip: Option<IpAddr>) -> bool {
    if allowlist.is_empty() {
        return true;
    }
    let Some(ip) = ip else { return false };
    allowlist
        .iter()
        .filter_map(|c| Cidr::parse(c).ok())
        .any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let single = Cidr::parse("192.0.2.7").unwrap();
        assert!(single.contains(ip("192.0.2.7")));
        assert!(!single.contains(ip("192.0.2.8")));
        assert!(Cidr::parse("203.0.113.9/31")
            .unwrap()
            .contains(ip("203.0.113.8")));
    }

    #[test]
    fn ipv6_blocks_and_mapped_v4() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let v4 = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(v4.contains(ip("::ffff:127.0.0.1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
    }

    #[test]
    fn rejects_bad_blocks() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "abc",
            "10.0.0.0/-1",
            "1.2.3.4/x",
            " 10.0.0.1",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "01.2.3.4",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn blocks_within_blocks() {
        let c = |s| Cidr::parse(s).unwrap();
        assert!(c("10.1.0.0/16").within(&c("10.0.0.0/8")));
        assert!(c("10.1.2.3").within(&c("10.0.0.0/8")));
        assert!(c("10.0.0.0/8").within(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/7").within(&c("10.0.0.0/8")));
        assert!(!c("11.0.0.0/16").within(&c("10.0.0.0/8")));
        assert!(c("2001:db8:1::/48").within(&c("2001:db8::/32")));
        assert!(!c("::ffff:10.0.0.1").within(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.1").within(&c("::/0")));
    }

    #[test]
    fn allowlist_semantics() {
        assert!(allowed(&[], None));
        let list = vec!["10.0.0.0/8".to_string(), "2001:db8::/32".to_string()];
        assert!(allowed(&list, Some(ip("10.9.9.9"))));
        assert!(allowed(&list, Some(ip("2001:db8::5"))));
        assert!(!allowed(&list, Some(ip("11.0.0.1"))));
        assert!(!allowed(&list, None));
    }
}
