//! Network addresses as plain values: CIDR allow-lists (the `allow_from` of webhook sources and
//! signal strategies) and the scope of an address (loopback, link-local, private, public), which
//! decides where the engine's outgoing requests may go (see [`crate::egress`]).
//!
//! Only address values live here — `core::net`'s types, the same ones `std::net` re-exports;
//! nothing opens a socket or resolves a name.
//!
//! The CIDR arithmetic is written out (a `u32`/`u128` mask, a dozen lines) rather than taken
//! from `ipnet`: `ipnet` accepts `10.0.0.1/8` as it is, while here that is refused with the
//! network meant (`10.0.0.0/8`), and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
//! dual-stack listener reports for an IPv4 client) must match the IPv4 entries — both rules
//! would have to be written around `ipnet` anyway.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::Invalid;

/// The addresses TradingView sends its webhook alerts from (as TradingView publishes them);
/// `tradingview` in an allow-list stands for these.
pub const TRADINGVIEW: [Ipv4Addr; 4] = [
    Ipv4Addr::new(52, 89, 214, 238),
    Ipv4Addr::new(34, 212, 75, 30),
    Ipv4Addr::new(54, 218, 53, 128),
    Ipv4Addr::new(52, 32, 178, 7),
];

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries; any other
/// address as it is.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask4(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn mask6(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

/// A CIDR network: an address whose host bits are all zero, and a prefix length within its
/// family's width. A single address is a /32 (IPv4) or /128 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// The network of `addr` with `prefix` bits (host bits cleared; the prefix capped at the
    /// family's width).
    pub fn of(addr: IpAddr, prefix: u8) -> Network {
        match addr {
            IpAddr::V4(a) => {
                let prefix = prefix.min(32);
                let bits = u32::from(a) & mask4(prefix);
                Network {
                    addr: IpAddr::V4(Ipv4Addr::from(bits)),
                    prefix,
                }
            }
            IpAddr::V6(a) => {
                let prefix = prefix.min(128);
                let bits = u128::from(a) & mask6(prefix);
                Network {
                    addr: IpAddr::V6(Ipv6Addr::from(bits)),
                    prefix,
                }
            }
        }
    }

    /// Parse `10.0.0.0/8`, `2001:db8::/32`, or a bare address. An IPv4-mapped IPv6 network
    /// (`::ffff:10.0.0.0/104`) is taken as the IPv4 network it covers. The error says what is
    /// wrong, for a message.
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} does not parse as one"))?;
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => width,
            Some(p) => {
                let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
                let n = digits
                    .then(|| p.parse::<u32>().ok())
                    .flatten()
                    .ok_or_else(|| format!("prefix length {p:?} is not a number"))?;
                if n > u32::from(width) {
                    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(format!(
                        "prefix length /{n} is out of range for {family} (0 to {width})"
                    ));
                }
                n as u8
            }
        };
        let net = Network::of(addr, prefix);
        if net.addr != addr {
            return Err(format!(
                "it has host bits set after the /{prefix}: did you mean {net}?"
            ));
        }
        // `::ffff:a.b.c.d/n` (n ≥ 96) is the IPv4 network `a.b.c.d/(n-96)`.
        if let IpAddr::V6(v6) = addr {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(Network::of(IpAddr::V4(v4), prefix - 96));
            }
        }
        Ok(net)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network (same family only; see [`AllowList::contains`] for
    /// IPv4-mapped addresses).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & mask4(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    fn is_single(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// The addresses a caller may come from: CIDR networks, IPv4 and IPv6, with the preset
/// `tradingview` expanded. Empty means no restriction (the caller decides whether an empty
/// list is allowed to be written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Network>,
    /// The entries as they read back: `tradingview`, or each network in canonical form.
    labels: Vec<String>,
}

impl AllowList {
    /// Parse the entries of the list at `field` (`webhooks.sources.tv.allow_from`); every bad
    /// entry is one problem, named `field[i]`.
    pub fn parse(items: &[String], field: &str) -> Result<AllowList, Vec<Invalid>> {
        let mut list = AllowList::default();
        let mut problems = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if item.trim().eq_ignore_ascii_case("tradingview") {
                list.networks
                    .extend(TRADINGVIEW.iter().map(|a| Network::of(IpAddr::V4(*a), 32)));
                list.labels.push("tradingview".into());
                continue;
            }
            match Network::parse(item) {
                Ok(net) => {
                    list.labels.push(net.to_string());
                    list.networks.push(net);
                }
                Err(why) => problems.push(Invalid::new(
                    "invalid_address",
                    format!("{field}[{i}]"),
                    format!(
                        "{item:?} is not an IP address, a CIDR network like 10.0.0.0/8, or \
                         `tradingview` ({why})"
                    ),
                )),
            }
        }
        if problems.is_empty() {
            Ok(list)
        } else {
            Err(problems)
        }
    }

    /// Whether `ip` is in one of the networks; `::ffff:a.b.c.d` matches the IPv4 entries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let plain = unmapped(ip);
        self.networks
            .iter()
            .any(|n| n.contains(plain) || n.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The entries for a listing: `tradingview, 10.0.0.0/8`, or `any address` when empty.
    pub fn describe(&self) -> String {
        if self.labels.is_empty() {
            "any address".into()
        } else {
            self.labels.join(", ")
        }
    }

    /// The networks, with presets expanded.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }
}

/// What part of the network an address belongs to, as far as sending requests there goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `0.0.0.0`, `::`: connecting to it reaches this machine.
    Unspecified,
    /// `127.0.0.0/8`, `::1`: this machine.
    Loopback,
    /// `169.254.0.0/16`, `fe80::/10`: the local link, where cloud metadata services answer
    /// (169.254.169.254).
    LinkLocal,
    /// Other clouds' metadata addresses outside link-local: `100.100.100.200` (Alibaba),
    /// `fd00:ec2::254` (AWS over IPv6).
    Metadata,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `100.64.0.0/10` (carrier-grade NAT,
    /// Tailscale), `fc00::/7` and the old site-local `fec0::/10`: a local network.
    Private,
    /// Multicast, broadcast, documentation, benchmarking and reserved ranges: never a server
    /// a task should call.
    Reserved,
    /// Everything else: the internet.
    Public,
}

impl Scope {
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Unspecified => "an unspecified address (this machine)",
            Scope::Loopback => "a loopback address (this machine)",
            Scope::LinkLocal => "a link-local address (where cloud metadata services answer)",
            Scope::Metadata => "a cloud metadata address",
            Scope::Private => "a private-network address",
            Scope::Reserved => "a reserved, multicast or documentation address",
            Scope::Public => "a public address",
        }
    }
}

/// The scope of `ip`; IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses
/// have the scope of the IPv4 address they carry.
pub fn scope(ip: IpAddr) -> Scope {
    match unmapped(ip) {
        IpAddr::V4(a) => scope4(a),
        IpAddr::V6(a) => scope6(a),
    }
}

fn in4(a: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    u32::from(a) & mask4(prefix) == u32::from(Ipv4Addr::from(net))
}

fn in6(a: Ipv6Addr, net: [u16; 8], prefix: u8) -> bool {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = net;
    u128::from(a) & mask6(prefix) == u128::from(Ipv6Addr::new(s0, s1, s2, s3, s4, s5, s6, s7))
}

fn scope4(a: Ipv4Addr) -> Scope {
    const TABLE: &[([u8; 4], u8, Scope)] = &[
        ([0, 0, 0, 0], 32, Scope::Unspecified),
        ([0, 0, 0, 0], 8, Scope::Reserved),
        ([127, 0, 0, 0], 8, Scope::Loopback),
        ([169, 254, 0, 0], 16, Scope::LinkLocal),
        ([100, 100, 100, 200], 32, Scope::Metadata),
        ([10, 0, 0, 0], 8, Scope::Private),
        ([172, 16, 0, 0], 12, Scope::Private),
        ([192, 168, 0, 0], 16, Scope::Private),
        ([100, 64, 0, 0], 10, Scope::Private),
        ([192, 0, 0, 0], 24, Scope::Reserved),
        ([192, 0, 2, 0], 24, Scope::Reserved),
        ([198, 51, 100, 0], 24, Scope::Reserved),
        ([203, 0, 113, 0], 24, Scope::Reserved),
        ([198, 18, 0, 0], 15, Scope::Reserved),
        ([224, 0, 0, 0], 4, Scope::Reserved),
        ([240, 0, 0, 0], 4, Scope::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in4(a, *net, *prefix))
        .map_or(Scope::Public, |(_, _, s)| *s)
}

fn scope6(a: Ipv6Addr) -> Scope {
    // NAT64: the IPv4 address in the last 32 bits is where the packets go.
    if in6(a, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return scope4(Ipv4Addr::from(u128::from(a) as u32));
    }
    const TABLE: &[([u16; 8], u8, Scope)] = &[
        ([0, 0, 0, 0, 0, 0, 0, 0], 128, Scope::Unspecified),
        ([0, 0, 0, 0, 0, 0, 0, 1], 128, Scope::Loopback),
        ([0, 0, 0, 0, 0, 0, 0, 0], 8, Scope::Reserved),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Scope::Reserved),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Scope::Reserved),
        ([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128, Scope::Metadata),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Scope::LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Scope::Private),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Scope::Private),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Scope::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in6(a, *net, *prefix))
        .map_or(Scope::Public, |(_, _, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_at_the_edges() {
        assert_eq!(mask4(0), 0);
        assert_eq!(mask4(1), 0x8000_0000);
        assert_eq!(mask4(32), u32::MAX);
        assert_eq!(mask6(0), 0);
        assert_eq!(mask6(128), u128::MAX);
        assert_eq!(mask6(1), 1u128 << 127);
    }
}
