//! Address allow-lists and scopes as tables of cases, and the CIDR arithmetic as properties: an
//! address is in its own network at every prefix length, and never in a network that differs
//! from it in the first bit.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use sovereign_core::net::{scope, AllowList, Network, Scope, TRADINGVIEW};

fn list(items: &[&str]) -> AllowList {
    let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    AllowList::parse(&items, "webhooks.sources.tv.allow_from").unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn membership() {
    let l = list(&["tradingview", "10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]);
    let cases = [
        ("52.89.214.238", true),
        ("34.212.75.30", true),
        ("54.218.53.128", true),
        ("52.32.178.7", true),
        ("52.89.214.239", false),
        ("10.0.0.0", true),
        ("10.255.255.255", true),
        ("11.0.0.0", false),
        ("9.255.255.255", false),
        ("192.168.1.7", true),
        ("192.168.1.8", false),
        ("127.0.0.1", false),
        // A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6 addresses.
        ("::ffff:52.89.214.238", true),
        ("::ffff:10.1.2.3", true),
        ("::ffff:127.0.0.1", false),
        ("2001:db8::1", true),
        ("2001:db8:ffff:ffff::", true),
        ("2001:db9::", false),
        ("::1", false),
    ];
    for (addr, want) in cases {
        assert_eq!(l.contains(ip(addr)), want, "{addr}");
    }
    assert_eq!(
        l.describe(),
        "tradingview, 10.0.0.0/8, 192.168.1.7, 2001:db8::/32"
    );
    assert_eq!(l.networks().len(), 4 + 3);
    assert!(!l.is_empty());
}

#[test]
fn the_tradingview_preset_is_the_published_addresses() {
    let l = list(&["TradingView"]);
    let want: Vec<IpAddr> = [
        [52u8, 89, 214, 238],
        [34, 212, 75, 30],
        [54, 218, 53, 128],
        [52, 32, 178, 7],
    ]
    .into_iter()
    .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
    .collect();
    let got: Vec<IpAddr> = l.networks().iter().map(|n| n.addr()).collect();
    assert_eq!(got, want);
    assert!(l.networks().iter().all(|n| n.prefix() == 32));
    assert_eq!(TRADINGVIEW.len(), 4);
}

#[test]
fn an_empty_list_contains_nothing_and_says_so() {
    let l = AllowList::parse(&[], "x").unwrap();
    assert!(l.is_empty());
    assert!(!l.contains(ip("1.2.3.4")));
    assert_eq!(l.describe(), "any address");
}

#[test]
fn every_bad_entry_is_one_problem_naming_its_index() {
    let items: Vec<String> = [
        "10.0.0.0/8",     // fine
        "10.0.0.1/8",     // host bits
        "10.0.0.0/33",    // prefix out of range
        "::/129",         // prefix out of range
        "10.0.0.0/x",     // not a number
        "10.0.0.0/",      // empty prefix
        "10.0.0.0/+8",    // a sign is not a digit
        "example.com",    // not an address
        "fe80::1%eth0",   // zone ids are not addresses here
        "2001:db8::1/32", // host bits, IPv6
        "tradingview",    // fine
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let problems = AllowList::parse(&items, "signals.es.allow_from").unwrap_err();
    let fields: Vec<String> = problems.iter().map(|p| p.field.clone().unwrap()).collect();
    let want: Vec<String> = (1..=9)
        .map(|i| format!("signals.es.allow_from[{i}]"))
        .collect();
    assert_eq!(fields, want);
    for p in &problems {
        assert_eq!(p.code, "invalid_address");
        assert!(
            p.message.contains("CIDR network like 10.0.0.0/8") && p.message.contains("tradingview"),
            "{p}"
        );
    }
    assert!(
        problems[0].message.contains("did you mean 10.0.0.0/8?"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].message.contains("out of range"),
        "{}",
        problems[1]
    );
    assert!(
        problems[8].message.contains("did you mean 2001:db8::/32?"),
        "{}",
        problems[8]
    );
}

#[test]
fn networks_parse_to_their_canonical_form() {
    let cases = [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.3.4/32", "1.2.3.4"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("::/0", "::/0"),
        ("::1", "::1"),
        // An IPv4-mapped network is the IPv4 network it covers.
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
    ];
    for (text, want) in cases {
        assert_eq!(Network::parse(text).unwrap().to_string(), want, "{text}");
    }
}

#[test]
fn scopes() {
    let cases = [
        ("0.0.0.0", Scope::Unspecified),
        ("::", Scope::Unspecified),
        ("127.0.0.1", Scope::Loopback),
        ("127.255.0.9", Scope::Loopback),
        ("::1", Scope::Loopback),
        ("::ffff:127.0.0.1", Scope::Loopback),
        ("169.254.169.254", Scope::LinkLocal),
        ("fe80::1", Scope::LinkLocal),
        ("febf::1", Scope::LinkLocal),
        ("64:ff9b::a9fe:a9fe", Scope::LinkLocal),
        ("100.100.100.200", Scope::Metadata),
        ("fd00:ec2::254", Scope::Metadata),
        ("10.1.2.3", Scope::Private),
        ("172.16.0.1", Scope::Private),
        ("172.31.255.255", Scope::Private),
        ("192.168.0.1", Scope::Private),
        ("100.64.0.1", Scope::Private),
        ("fd12:3456::1", Scope::Private),
        ("::ffff:192.168.1.1", Scope::Private),
        ("224.0.0.1", Scope::Reserved),
        ("255.255.255.255", Scope::Reserved),
        ("192.0.2.10", Scope::Reserved),
        ("0.1.2.3", Scope::Reserved),
        ("ff02::1", Scope::Reserved),
        ("2001:db8::1", Scope::Reserved),
        ("::10.0.0.1", Scope::Reserved),
        ("8.8.8.8", Scope::Public),
        ("172.32.0.1", Scope::Public),
        ("100.128.0.1", Scope::Public),
        ("52.89.214.238", Scope::Public),
        ("2606:4700::1111", Scope::Public),
        ("64:ff9b::808:808", Scope::Public),
    ];
    for (addr, want) in cases {
        assert_eq!(scope(ip(addr)), want, "{addr}");
    }
}

/// The address with its first bit flipped (the top bit of the first octet / segment).
fn flip_first_bit(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) ^ (1 << 31))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) ^ (1 << 127))),
    }
}

fn any_addr() -> impl Strategy<Value = (IpAddr, u8)> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, n)| (IpAddr::V4(Ipv4Addr::from(a)), n)),
        (any::<u128>(), 0u8..=128).prop_map(|(a, n)| (IpAddr::V6(Ipv6Addr::from(a)), n)),
    ]
}

proptest! {
    /// Every address is in its own /n for every n, and the network's text parses back to the
    /// same network, which a list of that one entry matches.
    #[test]
    fn an_address_is_in_its_own_network((addr, n) in any_addr()) {
        let net = Network::of(addr, n);
        prop_assert!(net.contains(addr));
        // (An IPv4-mapped network reads back as the IPv4 one; 2^-80 odds, but exact.)
        let mapped = matches!(net.addr(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        if !mapped {
            prop_assert_eq!(Network::parse(&net.to_string()).ok(), Some(net));
        }
        let l = AllowList::parse(&[net.to_string()], "f").unwrap();
        prop_assert!(l.contains(addr));
    }

    /// A network of prefix ≥ 1 never contains an address that differs in the first bit; only
    /// /0 (everything) does.
    #[test]
    fn a_network_never_contains_an_address_differing_in_the_first_bit((addr, n) in any_addr()) {
        let other = flip_first_bit(addr);
        let net = Network::of(addr, n);
        prop_assert_eq!(net.contains(other), n == 0);
    }

    /// Host bits are refused whenever they are set, and named with the network meant.
    #[test]
    fn host_bits_are_refused((addr, n) in any_addr()) {
        let text = format!("{addr}/{n}");
        let net = Network::of(addr, n);
        match Network::parse(&text) {
            Ok(parsed) => {
                prop_assert_eq!(net.addr(), addr);
                // A mapped IPv6 network reads back as IPv4; anything else as written.
                prop_assert!(parsed == net || addr.is_ipv6());
            }
            Err(why) => {
                prop_assert_ne!(net.addr(), addr);
                prop_assert!(why.contains(&net.to_string()), "{}", why);
            }
        }
    }
}
