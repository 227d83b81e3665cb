//! The client's address behind trusted proxies (`TRUSTED_PROXIES`).
//!
//! `X-Forwarded-For` is believed only when the TCP peer is a trusted proxy,
//! and then only as far as the chain of trusted proxies goes: walking the
//! list from the right (each proxy appends the address it received the
//! request from), the client is the first address that is not itself a
//! trusted proxy. Anything to its left was written by the client and may be
//! forged.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;

/// One `address/prefix` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host).
    /// Bits set past the prefix are refused: `10.0.0.1/8` is a typo.
    fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let width = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or_else(|| format!("`{text}` has a prefix length outside 0 to {width}"))?,
        };
        if masked(network, prefix) != network {
            return Err(format!("`{text}` has address bits set past its prefix"));
        }
        Ok(Self { network, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                masked(address, self.prefix) == self.network
            }
            _ => false,
        }
    }
}

/// `address` with every bit past the first `prefix` cleared.
fn masked(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// A comma-separated list of CIDR blocks or addresses (blanks ignored).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(Cidr::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(address))
    }

    /// The client's address: the peer's, unless the peer is trusted; then
    /// the rightmost `X-Forwarded-For` hop that is not trusted (the
    /// leftmost when all are; the last trusted hop when the next one to the
    /// left is not an address).
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Repeated headers read as one list, in order.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            let Some(address) = parse_hop(hop) else {
                break;
            };
            client = address.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// A hop is an address, possibly with a port (`203.0.113.9:4711`,
/// `[2001:db8::1]:4711`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocks: Vec<String> = self.0.iter().map(Cidr::to_string).collect();
        f.write_str(&blocks.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn blocks_parse_and_match_by_prefix() {
        let proxies = TrustedProxies::parse(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,").unwrap();
        assert_eq!(proxies.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");
        for inside in [
            "10.1.2.3",
            "10.255.255.255",
            "192.0.2.7",
            "2001:db8:ffff::1",
        ] {
            assert!(proxies.trusts(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "::ffff:10.0.0.1"] {
            assert!(!proxies.trusts(ip(outside)), "{outside}");
        }
        let everything = TrustedProxies::parse("0.0.0.0/0,::/0").unwrap();
        assert!(everything.trusts(ip("203.0.113.1")) && everything.trusts(ip("::1")));
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.1/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "example.org",
            "10.0.0/8",
            "10.0.0.0/8/8",
        ] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_peer() {
        let proxies = TrustedProxies::parse("10.0.0.0/8,2001:db8::/32").unwrap();
        let headers = forwarded(&["198.51.100.1, 203.0.113.9"]);
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client_addr(ip("192.0.2.1"), &headers),
            ip("192.0.2.1")
        );
        // Behind a trusted one, the rightmost untrusted hop; the forged
        // leftmost one is not believed.
        assert_eq!(
            proxies.client_addr(ip("10.0.0.5"), &headers),
            ip("203.0.113.9")
        );
        // Through two trusted proxies, split over two headers, with ports.
        let chain = forwarded(&["198.51.100.1, 203.0.113.9:4711", "10.0.0.9"]);
        assert_eq!(
            proxies.client_addr(ip("10.0.0.5"), &chain),
            ip("203.0.113.9")
        );
        // IPv6, and an IPv4-mapped peer read as IPv4.
        let v6 = forwarded(&["[2001:db9::7]:80, 2001:db8::2"]);
        assert_eq!(
            proxies.client_addr(ip("2001:db8::1"), &v6),
            ip("2001:db9::7")
        );
        assert_eq!(
            proxies.client_addr(ip("::ffff:10.0.0.5"), &headers),
            ip("203.0.113.9")
        );
        // No header, garbage, or nothing but proxies.
        assert_eq!(
            proxies.client_addr(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
        assert_eq!(
            proxies.client_addr(ip("10.0.0.5"), &forwarded(&["203.0.113.9, junk, 10.0.0.8"])),
            ip("10.0.0.8")
        );
        assert_eq!(
            proxies.client_addr(ip("10.0.0.5"), &forwarded(&["10.0.0.7, 10.0.0.8"])),
            ip("10.0.0.7")
        );
        // Nothing trusted: the peer, whatever the header says.
        assert_eq!(
            TrustedProxies::default().client_addr(ip("10.0.0.5"), &headers),
            ip("10.0.0.5")
        );
    }
}
