//! The SSRF guard of `http_request`: which addresses a workflow may reach.
//!
//! A workflow author must not be able to point a request at the host's own
//! network: loopback, private ranges, link-local (the cloud metadata
//! service at 169.254.169.254), unique-local, multicast and unspecified
//! addresses are refused, whether written in the URL, reached through a
//! DNS name that resolves to them, or through a redirect. A host that
//! means to call an internal system names it in the allow list.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Hosts (names or IP literals) a host service lets workflows reach even
/// though they are in a refused range.
#[derive(Debug, Clone, Default)]
pub struct HttpGuard {
    allowed: BTreeSet<String>,
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

    fn allows(&self, host: &str) -> bool {
        self.allowed
            .contains(host.trim_matches(['[', ']']).to_ascii_lowercase().as_str())
    }

    /// Why `host` may not be reached at `ip`; `None` when it may.
    pub(crate) fn refusal(&self, host: &str, ip: IpAddr) -> Option<String> {
        if self.allows(host) || !forbidden(ip) {
            return None;
        }
        Some(format!(
            "{host} is {ip}, a loopback, private or link-local address; workflows may not call it unless the host allows it"
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

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        // Shared address space (carrier-grade NAT), and 240/4 reserved.
        || (a == 100 && (64..128).contains(&b))
        || a >= 240
        || a == 0
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

/// Whether `ip` is in a range workflows may not reach by default.
pub(crate) fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => forbidden_v6(ip),
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
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
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
    fn refused_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip} is public");
        }
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
