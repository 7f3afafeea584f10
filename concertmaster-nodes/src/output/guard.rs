//! The SSRF guard of `http_request`: which addresses a workflow may reach.
//!
//! A workflow author must not be able to point a request at the host's own
//! network: every range of the IANA special-purpose address registries
//! that is not a public destination (loopback, private-use, link-local with
//! the cloud metadata service at 169.254.169.254, shared, benchmarking,
//! documentation, unique-local, site-local), multicast and broadcast is
//! refused, and an IPv6 address that carries an IPv4 one (IPv4-mapped and
//! -compatible, NAT64 well-known and local-use, 6to4, Teredo) is judged by
//! the address it carries; whether written in the URL, reached through a
//! DNS name that resolves to it, or through a redirect. The client uses no
//! proxy from the environment (a proxy would resolve names itself, out of
//! the guard's sight); a proxy the host gives explicitly is sent tunnels to
//! addresses the guard checked (`proxy.rs`). A host that means to call an
//! internal system names it in the allow list.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Hosts (names or IP literals) a host service lets workflows reach even
/// though they are in a refused range, and the resolver whose answers the
/// guard checks.
#[derive(Debug, Clone, Default)]
pub struct HttpGuard {
    allowed: BTreeSet<String>,
    resolver: Option<Resolver>,
}

/// Resolves the names `http_request` calls; every address it answers is
/// checked by the guard before a connection is made to it.
///
/// The system's resolver is the default; a host gives its own to resolve
/// through a resolver of its choice (DNS over HTTPS, a split-horizon
/// server), or in tests.
#[async_trait::async_trait]
pub trait HttpResolver: Send + Sync {
    /// The addresses of `host`.
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

#[derive(Clone)]
struct Resolver(Arc<dyn HttpResolver>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpResolver")
    }
}

impl HttpGuard {
    /// Refuses every loopback, private and link-local target.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows `host` (`erp.internal`, `10.0.0.5`, `127.0.0.1`).
    pub fn allow(mut self, host: impl Into<String>) -> Self {
        self.allowed.insert(host.into().to_ascii_lowercase());
        self
    }

    /// Resolves names with `resolver` instead of the system's resolver.
    pub fn resolver(mut self, resolver: impl HttpResolver + 'static) -> Self {
        self.resolver = Some(Resolver(Arc::new(resolver)));
        self
    }

    /// The addresses of `host` with `port`, unchecked.
    pub(crate) async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match &self.resolver {
            Some(Resolver(resolver)) => Ok(resolver
                .lookup(host)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()),
            None => Ok(tokio::net::lookup_host((host, port)).await?.collect()),
        }
    }

    fn allows(&self, host: &str) -> bool {
        self.allowed
            .contains(host.trim_matches(['[', ']']).to_ascii_lowercase().as_str())
    }

    /// Why `host` may not be reached at `ip`; `None` when it may.
    pub(crate) fn refusal(&self, host: &str, ip: IpAddr) -> Option<String> {
        if self.allows(host) {
            return None;
        }
        let range = classify(ip)?;
        Some(format!(
            "{host} is {ip}, in {range}, not a public address; workflows may not call it unless the host allows it"
        ))
    }

    /// Checks a URL whose host is an IP literal (DNS names are checked when
    /// they are resolved).
    pub(crate) fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(format!(
                    "scheme {other:?} is not allowed; use http or https"
                ))
            }
        }
        let Some(host) = url.host_str() else {
            return Err(format!("{url} has no host"));
        };
        let ip = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        match ip.and_then(|ip| self.refusal(host, ip)) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// What the guard does with a range of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Refused: not a public destination.
    Refused,
    /// Carries an IPv4 address, which is classified in its place.
    Embeds(Embedding),
}

/// Where an IPv6 address of a range carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedding {
    /// In its last 32 bits (IPv4-mapped, IPv4-compatible, NAT64 `/96`).
    Last32,
    /// NAT64 local-use (RFC 8215): a `/96` inside the `/48` (last 32 bits),
    /// or the `/48` itself (RFC 6052 §2.2: bits 48–63 and 72–87); both
    /// are classified.
    LocalUse,
    /// 6to4 (RFC 3056): bits 16–47.
    SixToFour,
    /// Teredo (RFC 4380): the server in bits 32–63, the client inverted in
    /// the last 32; both are classified.
    Teredo,
}

/// A range of the IANA special-purpose address registries (RFC 6890 and
/// its updates), with the RFC that defines it.
struct Range<A> {
    network: A,
    len: u8,
    name: &'static str,
    rfc: &'static str,
    class: Class,
}

impl<A: std::fmt::Display> std::fmt::Display for Range<A> {
    /// `network/len, name (RFC)`, as refusals name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}, {} ({})",
            self.network, self.len, self.name, self.rfc
        )
    }
}

const fn v4(network: [u8; 4], len: u8, name: &'static str, rfc: &'static str) -> Range<Ipv4Addr> {
    Range {
        network: Ipv4Addr::new(network[0], network[1], network[2], network[3]),
        len,
        name,
        rfc,
        class: Class::Refused,
    }
}

/// The IPv4 special-purpose registry's ranges that are not global, and
/// multicast and broadcast. Entries the registry marks globally reachable
/// (AS112 192.31.196.0/24 and 192.175.48.0/24, AMT 192.52.193.0/24) are
/// public destinations and are not listed; the anycast addresses inside
/// 192.0.0.0/24 are refused with their block: no workflow has a reason to
/// call them.
const V4_RANGES: &[Range<Ipv4Addr>] = &[
    v4([0, 0, 0, 0], 8, "\"this network\"", "RFC 791"),
    v4([10, 0, 0, 0], 8, "private-use", "RFC 1918"),
    v4(
        [100, 64, 0, 0],
        10,
        "shared address space (carrier-grade NAT)",
        "RFC 6598",
    ),
    v4([127, 0, 0, 0], 8, "loopback", "RFC 1122"),
    v4(
        [169, 254, 0, 0],
        16,
        "link-local (cloud metadata services)",
        "RFC 3927",
    ),
    v4([172, 16, 0, 0], 12, "private-use", "RFC 1918"),
    v4([192, 0, 0, 0], 24, "IETF protocol assignments", "RFC 6890"),
    v4([192, 0, 2, 0], 24, "documentation (TEST-NET-1)", "RFC 5737"),
    v4(
        [192, 88, 99, 0],
        24,
        "deprecated 6to4 relay anycast",
        "RFC 7526",
    ),
    v4([192, 168, 0, 0], 16, "private-use", "RFC 1918"),
    v4([198, 18, 0, 0], 15, "benchmarking", "RFC 2544"),
    v4(
        [198, 51, 100, 0],
        24,
        "documentation (TEST-NET-2)",
        "RFC 5737",
    ),
    v4(
        [203, 0, 113, 0],
        24,
        "documentation (TEST-NET-3)",
        "RFC 5737",
    ),
    v4([224, 0, 0, 0], 4, "multicast", "RFC 5771"),
    v4([240, 0, 0, 0], 4, "reserved", "RFC 1112"),
    v4([255, 255, 255, 255], 32, "limited broadcast", "RFC 919"),
];

const fn v6(
    segments: [u16; 8],
    len: u8,
    name: &'static str,
    rfc: &'static str,
    class: Class,
) -> Range<Ipv6Addr> {
    let [a, b, c, d, e, f, g, h] = segments;
    Range {
        network: Ipv6Addr::new(a, b, c, d, e, f, g, h),
        len,
        name,
        rfc,
        class,
    }
}

const REFUSED: Class = Class::Refused;

/// The IPv6 special-purpose registry's ranges that are not global, the
/// ranges that embed an IPv4 address, and the deprecated site-local and
/// multicast ranges. The most specific range that holds an address
/// decides. Inside 2001::/23 the registry marks a few small blocks
/// globally reachable (anycast PCP and TURN, AMT, AS112, ORCHIDv2, DRIP);
/// they are refused with the block: no workflow has a reason to call them.
const V6_RANGES: &[Range<Ipv6Addr>] = &[
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        128,
        "unspecified",
        "RFC 4291",
        REFUSED,
    ),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 1],
        128,
        "loopback",
        "RFC 4291",
        REFUSED,
    ),
    v6(
        [0, 0, 0, 0, 0, 0xffff, 0, 0],
        96,
        "IPv4-mapped",
        "RFC 4291",
        Class::Embeds(Embedding::Last32),
    ),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-compatible (deprecated)",
        "RFC 4291",
        Class::Embeds(Embedding::Last32),
    ),
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "NAT64 well-known prefix",
        "RFC 6052",
        Class::Embeds(Embedding::Last32),
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "NAT64 local-use prefix",
        "RFC 8215",
        Class::Embeds(Embedding::LocalUse),
    ),
    v6(
        [0x100, 0, 0, 0, 0, 0, 0, 0],
        64,
        "discard-only",
        "RFC 6666",
        REFUSED,
    ),
    v6(
        [0x100, 0, 0, 1, 0, 0, 0, 0],
        64,
        "dummy prefix",
        "RFC 9780",
        REFUSED,
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments",
        "RFC 2928",
        REFUSED,
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        32,
        "Teredo",
        "RFC 4380",
        Class::Embeds(Embedding::Teredo),
    ),
    v6(
        [0x2001, 0x2, 0, 0, 0, 0, 0, 0],
        48,
        "benchmarking",
        "RFC 5180",
        REFUSED,
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation",
        "RFC 3849",
        REFUSED,
    ),
    v6(
        [0x2002, 0, 0, 0, 0, 0, 0, 0],
        16,
        "6to4",
        "RFC 3056",
        Class::Embeds(Embedding::SixToFour),
    ),
    v6(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation",
        "RFC 9637",
        REFUSED,
    ),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing SIDs",
        "RFC 9602",
        REFUSED,
    ),
    v6(
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        "unique-local",
        "RFC 4193",
        REFUSED,
    ),
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "link-local",
        "RFC 4291",
        REFUSED,
    ),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "site-local (deprecated)",
        "RFC 3879",
        REFUSED,
    ),
    v6(
        [0xff00, 0, 0, 0, 0, 0, 0, 0],
        8,
        "multicast",
        "RFC 4291",
        REFUSED,
    ),
];

/// The most specific range of `ranges` that holds `ip` (as bits).
fn most_specific<A: Copy>(
    ranges: &'static [Range<A>],
    bits: u128,
    width: u8,
    of: fn(A) -> u128,
) -> Option<&'static Range<A>> {
    ranges
        .iter()
        .filter(|range| {
            let shift = u32::from(width - range.len);
            let mask = if range.len == 0 {
                0
            } else {
                (u128::MAX >> (128 - u32::from(width))) >> shift << shift
            };
            bits & mask == of(range.network) & mask
        })
        .max_by_key(|range| range.len)
}

/// Why `ip` is not a public destination: the range, and its RFC; `None`
/// for a public address. An address embedding an IPv4 one answers for
/// that address.
pub(crate) fn classify(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<String> {
    let range = most_specific(V4_RANGES, u128::from(u32::from(ip)), 32, |a| {
        u128::from(u32::from(a))
    })?;
    Some(range.to_string())
}

fn classify_v6(ip: Ipv6Addr) -> Option<String> {
    let bits = u128::from(ip);
    let range = most_specific(V6_RANGES, bits, 128, u128::from)?;
    let within = |why: String| format!("{range}, carrying {why}");
    let embedded = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
    match range.class {
        Class::Refused => Some(range.to_string()),
        Class::Embeds(Embedding::Last32) => classify_v4(embedded(0)).map(within),
        Class::Embeds(Embedding::SixToFour) => classify_v4(embedded(80)).map(within),
        Class::Embeds(Embedding::Teredo) => {
            let server = embedded(64);
            let client = Ipv4Addr::from(!(bits as u32));
            classify_v4(server)
                .or_else(|| classify_v4(client))
                .map(within)
        }
        Class::Embeds(Embedding::LocalUse) => {
            // RFC 6052 §2.2, a /48 prefix: 16 bits, the u octet, 16 bits.
            let high = ((bits >> 64) & 0xffff) as u32;
            let low = ((bits >> 40) & 0xffff) as u32;
            let in_48 = Ipv4Addr::from((high << 16) | low);
            classify_v4(embedded(0))
                .or_else(|| classify_v4(in_48))
                .map(within)
        }
    }
}

/// Resolves names for the HTTP client, refusing names that lead to a
/// forbidden address: every connection, redirects included, resolves here,
/// and the client connects to exactly the addresses checked.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) guard: Arc<HttpGuard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = guard.lookup(&host, 0).await?;
            if let Some(why) = addrs.iter().find_map(|a| guard.refusal(&host, a.ip())) {
                return Err(why.into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ipv4_range_of_the_table_is_refused_from_its_first_to_its_last_address() {
        for range in V4_RANGES {
            let host_bits = u32::MAX.checked_shr(u32::from(range.len)).unwrap_or(0);
            let last = Ipv4Addr::from(u32::from(range.network) | host_bits);
            let why = classify(IpAddr::V4(range.network))
                .unwrap_or_else(|| panic!("{} ({}) must be refused", range.network, range.name));
            assert!(why.contains(range.rfc), "{}: {why}", range.network);
            // The last address may sit in a more specific range (240/4
            // ends with the limited broadcast address): refused all the same.
            assert!(
                classify(IpAddr::V4(last)).is_some(),
                "{last} ({}) must be refused",
                range.name
            );
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "192.0.1.1",
            "192.31.196.1",
            "223.255.255.255",
        ] {
            assert_eq!(classify(ip.parse().unwrap()), None, "{ip} is public");
        }
    }

    #[test]
    fn every_ipv6_range_of_the_table_is_refused_or_judged_by_what_it_carries() {
        for range in V6_RANGES {
            let ip = range.network;
            match range.class {
                Class::Refused => {
                    let why = classify(IpAddr::V6(ip))
                        .unwrap_or_else(|| panic!("{ip} ({}) must be refused", range.name));
                    // 2001::, the first of 2001::/23, is Teredo's first too.
                    assert!(
                        why.contains(range.rfc) || why.contains("carrying"),
                        "{ip}: {why}"
                    );
                    let last = Ipv6Addr::from(
                        u128::from(ip) | (u128::MAX.checked_shr(u32::from(range.len)).unwrap_or(0)),
                    );
                    assert!(
                        classify(IpAddr::V6(last)).is_some(),
                        "{last} ({}) must be refused",
                        range.name
                    );
                }
                Class::Embeds(_) => {}
            }
        }
        for (ip, carries) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private-use"),
            ("::169.254.169.254", "link-local"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b:1:ffff::192.168.0.1", "private-use"),
            // 64:ff9b:1::/48 with 10.0.0.1 in bits 48-63 and 72-87.
            ("64:ff9b:1:a00:0:100:808:808", "private-use"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
            // Teredo: server 127.0.0.1; then client 10.0.0.1 (inverted).
            ("2001:0:7f00:1::", "loopback"),
            ("2001:0:808:808::f5ff:fffe", "private-use"),
        ] {
            let why = classify(ip.parse().unwrap())
                .unwrap_or_else(|| panic!("{ip} carries a {carries} address"));
            assert!(
                why.contains(carries) && why.contains("carrying"),
                "{ip}: {why}"
            );
        }
        for ip in [
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1:808:8:808:808:808",
            "2002:808:808::1",
            "2001:0:808:808::f7f7:f7f7",
        ] {
            assert_eq!(
                classify(ip.parse().unwrap()),
                None,
                "{ip} reaches a public address"
            );
        }
    }

    #[test]
    fn refusals_name_the_range_and_its_rfc() {
        let guard = HttpGuard::new();
        let why = guard
            .refusal("metadata.internal", "169.254.169.254".parse().unwrap())
            .unwrap();
        assert!(
            why.contains("link-local")
                && why.contains("RFC 3927")
                && why.contains("workflows may not call it"),
            "{why}"
        );
    }

    #[test]
    fn the_allow_list_lets_named_hosts_through() {
        let guard = HttpGuard::new().allow("127.0.0.1").allow("ERP.internal");
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(guard.refusal("127.0.0.1", loopback).is_none());
        assert!(guard
            .refusal("erp.internal", "10.0.0.5".parse().unwrap())
            .is_none());
        assert!(guard.refusal("localhost", loopback).is_some());
        let url = reqwest::Url::parse("file:///etc/passwd").unwrap();
        assert!(guard.check_url(&url).unwrap_err().contains("scheme"));
        let url = reqwest::Url::parse("http://[::1]:8080/").unwrap();
        assert!(guard.check_url(&url).is_err());
    }
}
