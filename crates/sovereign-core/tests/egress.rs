//! Where `http_request` may send, as tables: URL prefixes (scheme, host and port exact, the path
//! on a segment boundary), the guard without a list (the engine's own API, metadata, link-local;
//! off loopback, everything but public addresses), resolved addresses, and the registration
//! check of a task's URL (a template is left to the run).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use chrono::{TimeZone, Utc};
use serde_json::json;
use sovereign_core::calendar::Calendars;
use sovereign_core::egress::{Egress, UrlPrefix};
use sovereign_core::task::{HandlerRules, PolicySpec, Task, TaskSpec};

fn listed(entries: &[&str]) -> Egress {
    let prefixes = entries
        .iter()
        .enumerate()
        .map(|(i, e)| UrlPrefix::parse(e, &format!("allow[{i}]")).unwrap())
        .collect();
    Egress::new(Some(prefixes), vec![addr("127.0.0.1:8080")])
}

fn guarded(listening: &str) -> Egress {
    Egress::new(None, vec![addr(listening)])
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Each URL with whether `egress` lets it through; a refusal must carry the stable code.
fn check(egress: &Egress, cases: &[(&str, bool)]) {
    for (url, want) in cases {
        let got = egress.check_text(url);
        assert_eq!(got.is_ok(), *want, "{url}: {got:?}");
        if let Err(e) = got {
            assert_eq!(
                (e.code, e.field.as_deref()),
                ("destination_not_allowed", Some("payload.url")),
                "{url}"
            );
        }
    }
}

#[test]
fn prefixes_match_scheme_host_port_and_whole_segments() {
    let e = listed(&[
        "https://api.example.com",
        "http://127.0.0.1:9000/hooks/",
        "http://[::1]:7000/a",
    ]);
    check(
        &e,
        &[
            ("https://api.example.com/", true),
            ("https://api.example.com/v1/orders?x=1#f", true),
            ("https://api.example.com:443/v1", true),
            ("https://API.Example.com/v1", true),
            ("http://api.example.com/", false),
            ("https://api.example.com:8443/", false),
            ("https://api.example.com.evil.test/", false),
            ("https://evil.test/?u=https://api.example.com", false),
            ("https://api.example.com@evil.test/", false),
            ("https://user:pw@api.example.com/v1", true),
            ("http://127.0.0.1:9000/hooks", true),
            ("http://127.0.0.1:9000/hooks/", true),
            ("http://127.0.0.1:9000/hooks/a/b", true),
            ("http://127.0.0.1:9000/hooksX", false),
            ("http://127.0.0.1:9000/hook", false),
            ("http://127.0.0.1:9000/", false),
            ("http://127.0.0.1:9001/hooks/a", false),
            ("http://localhost:9000/hooks/a", false),
            // Dot segments are resolved before matching; encoded separators below a path
            // prefix are refused (the far end may decode them into `..`).
            ("http://127.0.0.1:9000/hooks/../admin", false),
            ("http://127.0.0.1:9000/hooks/%2e%2e/admin", false),
            ("http://127.0.0.1:9000/hooks/a%2Fb", false),
            ("http://127.0.0.1:9000/hooks/a%5c..", false),
            // Other spellings of 127.0.0.1 are 127.0.0.1, to the check as to the sender.
            ("http://2130706433:9000/hooks/x", true),
            ("http://[::1]:7000/a/b", true),
            ("http://[::1]:7000/ab", false),
        ],
    );
}

#[test]
fn an_empty_list_is_off_and_bad_entries_are_named() {
    let off = Egress::new(Some(vec![]), vec![]);
    let refused = off.check_text("https://api.example.com/").unwrap_err();
    assert!(refused.message.contains("off"), "{refused}");
    for bad in [
        "api.example.com",
        "ftp://api.example.com",
        "https://api.example.com/?q=1",
        "https://api.example.com/#f",
        "https://u:p@api.example.com",
        "http://",
    ] {
        let e = UrlPrefix::parse(bad, "handlers.http_request.allow[0]").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_url", Some("handlers.http_request.allow[0]")),
            "{bad}"
        );
    }
    assert_eq!(
        UrlPrefix::parse("http://127.0.0.1:9000/hooks/", "f")
            .unwrap()
            .to_string(),
        "http://127.0.0.1:9000/hooks/"
    );
}

#[test]
fn the_guard_on_a_loopback_engine_keeps_it_off_itself_and_the_metadata_service() {
    let e = guarded("127.0.0.1:8080");
    check(
        &e,
        &[
            // Neighbours on this machine and the LAN, and the internet: as before.
            ("http://127.0.0.1:9000/hook", true),
            ("http://localhost:9000/hook", true),
            ("http://[::1]:9000/hook", true),
            ("http://192.168.1.10/api", true),
            ("https://api.example.com/", true),
            ("http://8.8.8.8/", true),
            // The engine's own API, however it is spelled.
            ("http://127.0.0.1:8080/api/tasks", false),
            ("http://localhost:8080/", false),
            ("http://LOCALHOST.:8080/", false),
            ("http://app.localhost:8080/", false),
            ("http://[::1]:8080/", false),
            ("http://127.0.0.2:8080/", false),
            ("http://2130706433:8080/", false),
            ("http://0x7f.1:8080/", false),
            ("http://[::ffff:127.0.0.1]:8080/", false),
            // This machine through the unspecified address, link-local, metadata, reserved.
            ("http://0.0.0.0:9000/", false),
            ("http://[::]:9000/", false),
            ("http://169.254.169.254/latest/meta-data/", false),
            ("http://[::ffff:169.254.169.254]/", false),
            ("http://[fe80::1]/", false),
            ("http://100.100.100.200/latest/meta-data/", false),
            ("http://[fd00:ec2::254]/", false),
            ("http://224.0.0.1/", false),
        ],
    );
}

#[test]
fn the_guard_off_loopback_reaches_public_addresses_only() {
    for listening in ["0.0.0.0:8080", "[::]:8080", "52.1.2.3:8080"] {
        let e = guarded(listening);
        check(
            &e,
            &[
                ("https://api.example.com/", true),
                ("http://8.8.8.8/", true),
                ("http://[2606:4700::1111]/", true),
                ("http://127.0.0.1:9000/", false),
                ("http://localhost:9000/", false),
                ("http://[::1]:9000/", false),
                ("http://10.0.0.5/", false),
                ("http://192.168.1.10/", false),
                ("http://100.64.0.1/", false),
                ("http://[fd12::1]/", false),
                ("http://169.254.169.254/", false),
            ],
        );
    }
    // Bound to one public address: that address at the engine's port is the engine itself.
    let e = guarded("52.1.2.3:8080");
    check(
        &e,
        &[
            ("http://52.1.2.3:8080/api/tasks", false),
            ("http://52.1.2.3:9000/", true),
        ],
    );
}

#[test]
fn resolved_addresses_are_judged_too() {
    let ip = |t: &str| t.parse::<IpAddr>().unwrap();
    let home = guarded("127.0.0.1:8080");
    let cases = [
        ("api.example.com", "93.184.216.34", true),
        ("nas.lan", "192.168.1.10", true),
        ("localhost", "127.0.0.1", true),
        ("localhost", "::1", true),
        // A name that is not localhost pointing at loopback: DNS rebinding.
        ("api.example.com", "127.0.0.1", false),
        ("api.example.com", "169.254.169.254", false),
        ("api.example.com", "0.0.0.0", false),
        ("api.example.com", "::ffff:169.254.169.254", false),
    ];
    for (host, addr, want) in cases {
        let got = home.check_resolved(host, ip(addr));
        assert_eq!(got.is_ok(), want, "{host} → {addr}: {got:?}");
    }
    let exposed = guarded("0.0.0.0:8080");
    assert!(exposed
        .check_resolved("nas.lan", ip("192.168.1.10"))
        .is_err());
    assert!(exposed
        .check_resolved("localhost", ip("127.0.0.1"))
        .is_err());
    assert!(exposed
        .check_resolved("api.example.com", ip("93.184.216.34"))
        .is_ok());
    // A list names what may be reached: its hosts resolve wherever they resolve.
    let list = listed(&["http://nas.lan"]);
    assert!(list.check_resolved("nas.lan", ip("192.168.1.10")).is_ok());
}

#[test]
fn registration_checks_a_plain_url_and_leaves_a_template_to_the_run() {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let rules = HandlerRules {
        egress: listed(&["http://127.0.0.1:9000/hooks"]),
        ..Default::default()
    };
    let validate = |url: &str| {
        let spec = TaskSpec {
            task_id: "t1".into(),
            name: "T".into(),
            handler: "http_request".into(),
            payload: json!({ "url": url }),
            schedule: None,
            enabled: true,
            policy: PolicySpec::default(),
        };
        Task::validate(spec, &Calendars::with_builtins(), &rules, now, now)
            .map(|_| ())
            .map_err(|e| (e.code, e.field))
    };
    assert_eq!(validate("http://127.0.0.1:9000/hooks/a"), Ok(()));
    let field = Some("payload.url".to_string());
    assert_eq!(
        validate("http://127.0.0.1:9001/hooks/a"),
        Err(("destination_not_allowed", field.clone()))
    );
    // A templated URL is checked when rendered; it must still start with its scheme.
    assert_eq!(validate("http://{{trigger.data.host}}/x"), Ok(()));
    assert_eq!(
        validate("{{trigger.data.url}}"),
        Err(("invalid_payload", field))
    );
}
