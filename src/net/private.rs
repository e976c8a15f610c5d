//! Which addresses a public relay must never dial on a stranger's word
//! (the SSRF rule), every outbound connection's check.
//!
//! Refused: this machine, private and shared networks, link-local,
//! documentation, benchmarking, multicast and reserved ranges of both
//! families (IANA's special-purpose registries), and every IPv6 form that
//! carries an IPv4 address inside it, judged by the IPv4 address it carries:
//! IPv4-mapped `::ffff:a.b.c.d`, SIIT's IPv4-translated `::ffff:0:a.b.c.d`,
//! NAT64's `64:ff9b::a.b.c.d`, and 6to4's `2002:aabb:ccdd::`. Forms that are
//! deprecated or only meaningful on a local network are refused outright:
//! IPv4-compatible `::a.b.c.d` (so `::7f00:1`, which some stacks route to
//! 127.0.0.1), local-use NAT64 `64:ff9b:1::/48`, Teredo `2001::/32`, and
//! site-local `fec0::/10`.
//!
//! ```
//! use atrelay::net::is_private_ip;
//! assert!(is_private_ip("::7f00:1".parse().unwrap()));
//! assert!(is_private_ip("64:ff9b::7f00:1".parse().unwrap()));
//! assert!(!is_private_ip("64:ff9b::808:808".parse().unwrap())); // 8.8.8.8 through NAT64
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is one the SSRF rule refuses (see the module docs).
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224 // multicast, reserved, broadcast
}

fn is_private_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // ::/96 holds ::, ::1 and the deprecated IPv4-compatible form.
        [0, 0, 0, 0, 0, 0, _, _] => true,
        // IPv4-mapped.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => is_private_v4(embedded(hi, lo)),
        // SIIT IPv4-translated.
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => is_private_v4(embedded(hi, lo)),
        // NAT64 well-known prefix.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => is_private_v4(embedded(hi, lo)),
        // Local-use NAT64.
        [0x64, 0xff9b, 1, ..] => true,
        // Discard-only.
        [0x100, 0, 0, 0, ..] => true,
        // Teredo, benchmarking, ORCHID(v2).
        [0x2001, 0, ..] | [0x2001, 2, 0, ..] => true,
        [0x2001, x, ..] if (0x10..0x30).contains(&x) => true,
        // Documentation.
        [0x2001, 0xdb8, ..] => true,
        [x, ..] if x & 0xfff0 == 0x3ff0 => true,
        // 6to4: the IPv4 address is the next 32 bits.
        [0x2002, hi, lo, ..] => is_private_v4(embedded(hi, lo)),
        // SRv6 segment identifiers.
        [0x5f00, ..] => true,
        // Unique-local, link-local, site-local, multicast.
        [x, ..] => {
            x & 0xfe00 == 0xfc00 || x & 0xffc0 == 0xfe80 || x & 0xffc0 == 0xfec0 || x >> 8 == 0xff
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn refused() {
        for s in [
            "127.0.0.1",
            "127.255.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            // Every IPv6 form of 127.0.0.1 that hostile testing got through.
            "::7f00:1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:c0a8:101::",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:20::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(is_private_ip(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn allowed() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.1.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
        ] {
            assert!(!is_private_ip(ip(s)), "{s} must be allowed");
        }
    }
}
