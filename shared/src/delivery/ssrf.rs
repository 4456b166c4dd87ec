//! Which addresses webhooks may be sent to. Endpoint URLs must be https and must not reach the
//! gateway's own network: loopback, private, link-local (cloud metadata lives at 169.254.169.254),
//! CGNAT, unspecified, multicast, broadcast and reserved ranges are refused, for IPv4, IPv6 and
//! IPv4 embedded in IPv6. The check runs on every resolved address at send time (a DNS name can
//! point anywhere, and can change), and on literal IPs when an endpoint is saved.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether outbound deliveries may reach private addresses (local mode only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// Production: https only, public addresses only.
    PublicOnly,
    /// Local mode: additionally `http://` and loopback addresses (receivers on the laptop).
    AllowLoopback,
}

/// Why an endpoint URL or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a valid URL")]
    Malformed,
    /// Not https (or http to loopback in local mode).
    #[error("endpoint URLs must use https")]
    Scheme,
    /// Credentials in the URL would leak in logs and headers.
    #[error("endpoint URLs must not contain credentials")]
    Credentials,
    /// The host is, or resolves to, an address wagate must not call.
    #[error("endpoint address {0} is private, loopback, link-local or reserved")]
    Blocked(IpAddr),
    /// A name that always means this machine.
    #[error("endpoint host {0} is local")]
    LocalName(String),
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = ip.is_unspecified()            // 0.0.0.0/8 (a == 0 below)
        || a == 0
        || ip.is_loopback()                       // 127.0.0.0/8
        || ip.is_private()                        // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()                     // 169.254/16, cloud metadata
        || (a == 100 && (64..=127).contains(&b))  // 100.64/10 CGNAT
        || (a == 192 && b == 0 && c == 0)         // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)         // TEST-NET-1
        || (a == 198 && (18..=19).contains(&b))   // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100)      // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)       // TEST-NET-3
        || ip.is_multicast()                      // 224/4
        || a >= 240; // 240/4 reserved, 255.255.255.255 broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00        // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80        // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0        // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        || s[0] == 0; // ::/16 other than the embedded forms handled above
    !blocked
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail()),
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Whether `policy` lets a delivery connect to `ip`.
pub fn address_allowed(ip: IpAddr, policy: NetworkPolicy) -> Result<(), UrlError> {
    let loopback_ok = policy == NetworkPolicy::AllowLoopback && ip.is_loopback();
    if is_public(ip) || loopback_ok {
        Ok(())
    } else {
        Err(UrlError::Blocked(ip))
    }
}

/// Checks an endpoint URL before it is saved and before every send: scheme, credentials, IP
/// literals and local names. The host is read exactly as the HTTP client reads it (the `url`
/// crate's WHATWG parsing, which reqwest uses), so every spelling of an address counts as that
/// address: `https://2130706433/`, `https://0x7f000001/`, `https://127.1/`,
/// `https://0177.0.0.1/` and `https://10.1/` are loopback or private. Host names are checked
/// again, resolved, at every send.
pub fn check_url(url: &str, policy: NetworkPolicy) -> Result<(), UrlError> {
    // URLs are ASCII; an internationalized host must be given in its punycode form.
    if !url.is_ascii() || url.matches('#').count() > 1 {
        return Err(UrlError::Malformed);
    }
    // The authority as written: present, without credentials, a host of the characters a host
    // name may have (WHATWG parsing accepts more, and reads `https:///x` as host `x`).
    let (_, rest) = url.split_once("://").ok_or(UrlError::Malformed)?;
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|a| !a.is_empty())
        .ok_or(UrlError::Malformed)?;
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    if !authority.starts_with('[')
        && !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
    {
        return Err(UrlError::Malformed);
    }
    let parsed = url::Url::parse(url).map_err(|_| UrlError::Malformed)?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let (ip, domain) = match parsed.host().ok_or(UrlError::Malformed)? {
        url::Host::Ipv4(v4) => (Some(IpAddr::V4(v4)), None),
        url::Host::Ipv6(v6) => (Some(IpAddr::V6(v6)), None),
        url::Host::Domain(d) => (None, Some(d.trim_end_matches('.').to_ascii_lowercase())),
    };
    if domain.as_deref() == Some("") {
        return Err(UrlError::Malformed);
    }
    let loopback_host =
        ip.is_some_and(|ip| ip.is_loopback()) || domain.as_deref() == Some("localhost");
    match parsed.scheme() {
        "https" => {}
        "http" if policy == NetworkPolicy::AllowLoopback && loopback_host => {}
        _ => return Err(UrlError::Scheme),
    }
    if let Some(name) = &domain {
        let local_name = name == "localhost"
            || name.ends_with(".localhost")
            || name.ends_with(".local")
            || name.ends_with(".internal");
        if local_name && !(policy == NetworkPolicy::AllowLoopback && name == "localhost") {
            return Err(UrlError::LocalName(name.clone()));
        }
    }
    match ip {
        Some(ip) => address_allowed(ip, policy),
        None => Ok(()),
    }
}

/// The IP address `url` names literally, read as the HTTP client reads it (none for a host
/// name, or a URL that does not parse).
pub fn literal_address(url: &str) -> Option<IpAddr> {
    host_address(&url::Url::parse(url).ok()?)
}

/// The IP address a parsed URL's host is, if it is one (none for a host name).
pub fn host_address(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_blocked_range_is_refused() {
        let blocked = [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "100::1",
        ];
        for s in blocked {
            let ip: IpAddr = s.parse().unwrap();
            assert!(!is_public(ip), "{s} must be blocked");
            assert_eq!(
                address_allowed(ip, NetworkPolicy::PublicOnly),
                Err(UrlError::Blocked(ip))
            );
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ] {
            assert!(is_public(s.parse().unwrap()), "{s} must be allowed");
        }
    }

    #[test]
    fn urls_must_be_https_without_credentials_or_local_targets() {
        let p = NetworkPolicy::PublicOnly;
        assert_eq!(check_url("https://hooks.example.com/wa?x=1", p), Ok(()));
        assert_eq!(check_url("https://hooks.example.com:8443/wa", p), Ok(()));
        for malformed in [
            "https://0.dev*/",
            "https://exämple.com/",
            "https://hooks.example.com/a#b#c",
            "https://under_score.example.com/",
        ] {
            assert_eq!(
                check_url(malformed, p),
                Err(UrlError::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(check_url("https://xn--exmple-cua.com/a#b", p), Ok(()));
        assert_eq!(
            check_url("http://hooks.example.com/wa", p),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            check_url("ftp://hooks.example.com", p),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            check_url("https://user:pw@hooks.example.com", p),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            check_url("https://127.0.0.1/x", p),
            Err(UrlError::Blocked("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            check_url("https://[::1]:443/x", p),
            Err(UrlError::Blocked("::1".parse().unwrap()))
        );
        assert_eq!(
            check_url("https://169.254.169.254/latest/meta-data", p),
            Err(UrlError::Blocked("169.254.169.254".parse().unwrap()))
        );
        assert!(matches!(
            check_url("https://localhost/x", p),
            Err(UrlError::LocalName(_))
        ));
        assert!(matches!(
            check_url("https://metadata.google.internal/", p),
            Err(UrlError::LocalName(_))
        ));
        for bad in [
            "",
            "hooks.example.com",
            "https://",
            "https:///path",
            "https://exa mple.com",
        ] {
            assert_eq!(check_url(bad, p), Err(UrlError::Malformed), "{bad}");
        }
    }

    #[test]
    fn every_spelling_of_a_blocked_address_is_refused() {
        let p = NetworkPolicy::PublicOnly;
        for (url, ip) in [
            ("https://10.1:8443/", "10.0.0.1"),
            ("https://2130706433/", "127.0.0.1"),
            ("https://0x7f000001/", "127.0.0.1"),
            ("https://127.1/", "127.0.0.1"),
            ("https://0177.0.0.1/", "127.0.0.1"),
            ("https://0x7f.1/", "127.0.0.1"),
            ("https://127.0.0.1./", "127.0.0.1"),
            ("https://0xA9.0xFE.0xA9.0xFE/latest", "169.254.169.254"),
            ("https://2852039166/", "169.254.169.254"),
            ("https://0/", "0.0.0.0"),
            ("https://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
            (
                "https://[0:0:0:0:0:ffff:a9fe:a9fe]/",
                "::ffff:169.254.169.254",
            ),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(check_url(url, p), Err(UrlError::Blocked(ip)), "{url}");
            assert_eq!(literal_address(url), Some(ip), "{url}");
        }
        assert_eq!(check_url("https://8.8.8.8/", p), Ok(()));
        assert_eq!(
            check_url("https://134744072/", p),
            Ok(()),
            "8.8.8.8 spelled as one number"
        );
        assert_eq!(literal_address("https://hooks.example.com/"), None);
        assert!(matches!(
            check_url("https://LOCALHOST./x", p),
            Err(UrlError::LocalName(_))
        ));
    }

    /// Host spellings the WHATWG IPv4 parser knows: one to four parts, each decimal, octal
    /// (leading 0) or hex (0x), with an optional trailing dot.
    fn ipv4_spelling() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let part = (any::<u32>(), 0..3u8).prop_map(|(n, radix)| match radix {
            0 => n.to_string(),
            1 => format!("0{n:o}"),
            _ => format!("0x{n:x}"),
        });
        let small = (0u32..256, 0..3u8).prop_map(|(n, radix)| match radix {
            0 => n.to_string(),
            1 => format!("0{n:o}"),
            _ => format!("0X{n:X}"),
        });
        (proptest::collection::vec(small, 0..4), part, any::<bool>()).prop_map(
            |(head, last, dot)| {
                let mut parts = head;
                parts.push(last);
                let mut host = parts.join(".");
                if dot {
                    host.push('.');
                }
                host
            },
        )
    }

    proptest::proptest! {
        /// Differential: whatever address `url::Url` (the HTTP client's parser) reads from a
        /// host, the check decides on that address.
        #[test]
        fn the_check_decides_on_the_address_the_client_will_connect_to(
            host in ipv4_spelling(),
            port in proptest::option::of(1u16..),
        ) {
            let url = match port {
                Some(port) => format!("https://{host}:{port}/hook"),
                None => format!("https://{host}/hook"),
            };
            let ours = check_url(&url, NetworkPolicy::PublicOnly);
            match url::Url::parse(&url).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
                Some(url::Host::Ipv4(v4)) if is_public_v4(v4) => proptest::prop_assert_eq!(ours, Ok(())),
                Some(url::Host::Ipv4(v4)) => {
                    proptest::prop_assert_eq!(ours, Err(UrlError::Blocked(IpAddr::V4(v4))));
                }
                Some(url::Host::Domain(_)) => {
                    // Not an address to the client either (e.g. a part out of range is an error,
                    // not a name, for numeric hosts): the check must not take it for a public IP.
                    proptest::prop_assert!(literal_address(&url).is_none());
                }
                _ => proptest::prop_assert!(ours.is_err(), "{url}: {ours:?}"),
            }
        }
    }

    #[test]
    fn local_mode_allows_http_to_loopback_only() {
        let p = NetworkPolicy::AllowLoopback;
        assert_eq!(check_url("http://127.0.0.1:9000/hook", p), Ok(()));
        assert_eq!(check_url("http://localhost:9000/hook", p), Ok(()));
        assert_eq!(check_url("http://[::1]:9000/hook", p), Ok(()));
        assert_eq!(
            check_url("http://hooks.example.com/x", p),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            check_url("https://10.0.0.5/x", p),
            Err(UrlError::Blocked("10.0.0.5".parse().unwrap()))
        );
        assert_eq!(address_allowed("127.0.0.1".parse().unwrap(), p), Ok(()));
    }
}
