//! The notifier's decisions as tables: alert validation codes, default and configured routing,
//! dedup, exact token-bucket waits, retry decisions (429 hints, gone webhooks, backoff, dead), and
//! channel payloads that stay within Slack's and Discord's limits for any alert.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};
use sovereign_core::notify::{
    discord_limits, discord_payload, discord_retry_after, email_subject_body, file_line,
    parse_retry_after, parse_seconds, retry_hint, route, slack_limits, slack_payload,
    truncate_chars, validate_routes, webhook_payload, Alert, AlertDedup, AlertSpec, Channel,
    ChannelKind, Outcome, Priority, RateLimit, RetryDecision, RetryPolicy, Route, DIGEST,
};
use sovereign_core::retry::Backoff;

fn t0() -> DateTime<Utc> {
    // A Monday.
    Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap()
}

fn ms(n: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(n)
}

fn alert(priority: Priority, source: &str, title: &str) -> Alert {
    Alert {
        priority,
        source: source.into(),
        title: title.into(),
        message: "something happened".into(),
        context: json!({}),
        dedup_key: None,
    }
}

// ----- validation -----------------------------------------------------------------------------

#[test]
fn priority_parse_table() {
    let cases: &[(&str, Option<Priority>)] = &[
        ("P0", Some(Priority::P0)),
        ("p1", Some(Priority::P1)),
        (" P2 ", Some(Priority::P2)),
        ("3", Some(Priority::P3)),
        ("P4", None),
        ("", None),
        ("high", None),
        ("PP0", None),
        ("-1", None),
    ];
    for (text, expected) in cases {
        assert_eq!(Priority::parse(text).ok(), *expected, "{text:?}");
    }
    assert_eq!(Priority::from_json(&json!(0)).unwrap(), Priority::P0);
    assert_eq!(Priority::from_json(&json!(3)).unwrap(), Priority::P3);
    assert!(Priority::from_json(&json!(4)).is_err());
    assert!(Priority::from_json(&json!(1.0)).is_err());
    assert!(Priority::from_json(&json!(true)).is_err());
    for p in Priority::ALL {
        assert_eq!(Priority::parse(p.as_str()).unwrap(), p);
    }
    assert!(Priority::P0 < Priority::P3, "P0 is the most urgent");
}

#[test]
fn channel_kind_round_trips() {
    for k in ChannelKind::ALL {
        assert_eq!(ChannelKind::parse(k.as_str()).unwrap(), k);
    }
    let e = ChannelKind::parse("sms").unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("invalid_channel_kind", Some("kind"))
    );
}

fn spec() -> AlertSpec {
    AlertSpec {
        priority: json!("P1"),
        source: "risk".into(),
        title: "Daily loss limit reached".into(),
        message: "Trading halted".into(),
        context: json!({"account": "paper"}),
        dedup_key: Some("loss-limit".into()),
    }
}

#[test]
fn alert_spec_validation_table() {
    type Case = (
        &'static str,
        fn(&mut AlertSpec),
        Option<(&'static str, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        ("valid", |_| {}, None),
        ("priority as number", |s| s.priority = json!(0), None),
        ("priority missing is P2", |s| s.priority = Value::Null, None),
        (
            "bad priority",
            |s| s.priority = json!("P9"),
            Some(("invalid_priority", "priority")),
        ),
        (
            "priority bool",
            |s| s.priority = json!(false),
            Some(("invalid_priority", "priority")),
        ),
        (
            "empty source",
            |s| s.source = "  ".into(),
            Some(("invalid_source", "source")),
        ),
        ("source 64", |s| s.source = "é".repeat(64), None),
        (
            "source 65",
            |s| s.source = "é".repeat(65),
            Some(("invalid_source", "source")),
        ),
        (
            "empty title",
            |s| s.title = String::new(),
            Some(("invalid_title", "title")),
        ),
        ("title 200 multibyte", |s| s.title = "🚀".repeat(200), None),
        (
            "title 201",
            |s| s.title = "a".repeat(201),
            Some(("invalid_title", "title")),
        ),
        (
            "title newline",
            |s| s.title = "a\nb".into(),
            Some(("invalid_title", "title")),
        ),
        ("message empty ok", |s| s.message = String::new(), None),
        ("message 4000", |s| s.message = "日".repeat(4000), None),
        (
            "message 4001",
            |s| s.message = "x".repeat(4001),
            Some(("invalid_message", "message")),
        ),
        ("context null ok", |s| s.context = Value::Null, None),
        (
            "context array",
            |s| s.context = json!([1]),
            Some(("invalid_context", "context")),
        ),
        (
            "context string",
            |s| s.context = json!("x"),
            Some(("invalid_context", "context")),
        ),
        (
            "dedup empty",
            |s| s.dedup_key = Some(" ".into()),
            Some(("invalid_dedup_key", "dedup_key")),
        ),
        ("dedup none", |s| s.dedup_key = None, None),
    ];
    for (name, edit, expected) in cases {
        let mut s = spec();
        edit(&mut s);
        let got = s.validate().map_err(|e| (e.code, e.field.unwrap()));
        match expected {
            None => assert!(got.is_ok(), "{name}: {got:?}"),
            Some((code, field)) => {
                assert_eq!(got.unwrap_err(), (code, field.to_string()), "{name}")
            }
        }
    }
}

#[test]
fn validated_alert_is_normalised() {
    let mut s = spec();
    s.priority = Value::Null;
    s.source = "  risk ".into();
    s.title = " Halt ".into();
    s.context = Value::Null;
    let a = s.validate().unwrap();
    assert_eq!(a.priority, Priority::P2);
    assert_eq!((a.source.as_str(), a.title.as_str()), ("risk", "Halt"));
    assert_eq!(a.context, json!({}));
    let parsed: AlertSpec =
        serde_json::from_value(json!({"source": "x", "title": "y", "priority": "p0"})).unwrap();
    assert_eq!(parsed.validate().unwrap().priority, Priority::P0);
}

// ----- routing --------------------------------------------------------------------------------

fn channels() -> Vec<Channel> {
    [
        ("ops-slack", ChannelKind::Slack),
        ("ops-discord", ChannelKind::Discord),
        ("hook", ChannelKind::Webhook),
        ("mail", ChannelKind::Email),
        ("log", ChannelKind::File),
    ]
    .into_iter()
    .map(|(n, k)| Channel {
        name: n.into(),
        kind: k,
    })
    .collect()
}

fn r(priorities: &[Priority], sources: Option<&[&str]>, to: &[&str]) -> Route {
    Route {
        priorities: priorities.to_vec(),
        sources: sources.map(|s| s.iter().map(|x| x.to_string()).collect()),
        channels: to.iter().map(|x| x.to_string()).collect(),
    }
}

#[test]
fn default_routing_table() {
    use Priority::*;
    let cases: &[(Priority, &[&str], bool)] = &[
        (
            P0,
            &["ops-slack", "ops-discord", "hook", "mail", "log"],
            false,
        ),
        (P1, &["ops-slack", "ops-discord", "hook", "log"], false),
        (P2, &["ops-slack", "ops-discord", "hook"], false),
        (P3, &["hook", "log"], true),
    ];
    for (p, want, digest) in cases {
        let got = route(&[], &channels(), &alert(*p, "engine", "t"));
        assert_eq!(got.channels, *want, "{p}");
        assert_eq!(got.digest, *digest, "{p}");
    }
    // An alert never reaches no channel: without one of the kinds its priority goes to, it
    // goes to every channel there is.
    let only_file = vec![Channel {
        name: "log".into(),
        kind: ChannelKind::File,
    }];
    assert_eq!(
        route(&[], &only_file, &alert(P2, "e", "t")).channels,
        vec!["log".to_string()]
    );
    let hook_and_file = vec![
        Channel {
            name: "hook".into(),
            kind: ChannelKind::Webhook,
        },
        Channel {
            name: "log".into(),
            kind: ChannelKind::File,
        },
    ];
    assert_eq!(
        route(&[], &hook_and_file, &alert(P2, "e", "t")).channels,
        vec!["hook".to_string()]
    );
}

#[test]
fn configured_routes_override_defaults_when_they_match() {
    use Priority::*;
    let routes = vec![
        r(&[P0], Some(&["risk"]), &["mail", "ops-slack"]),
        r(&[P0, P1], Some(&["risk"]), &["ops-slack", "log"]),
        r(&[], Some(&["noisy"]), &[]),
        r(&[P3], None, &["ops-discord", DIGEST]),
        r(&[P2], None, &["hook"]),
    ];
    let cases: &[(Priority, &str, &[&str], bool)] = &[
        // Two matching routes: union, in route order, each once.
        (P0, "risk", &["mail", "ops-slack", "log"], false),
        (P1, "risk", &["ops-slack", "log"], false),
        // No route matches: defaults.
        (
            P0,
            "engine",
            &["ops-slack", "ops-discord", "hook", "mail", "log"],
            false,
        ),
        (
            P1,
            "engine",
            &["ops-slack", "ops-discord", "hook", "log"],
            false,
        ),
        // A matching route with no channels mutes.
        (P0, "noisy", &[], false),
        // The digest is a route target like any other.
        (P3, "engine", &["ops-discord"], true),
        (P2, "risk", &["hook"], false),
    ];
    for (p, source, want, digest) in cases {
        let got = route(&routes, &channels(), &alert(*p, source, "t"));
        assert_eq!(got.channels, *want, "{p} {source}");
        assert_eq!(got.digest, *digest, "{p} {source}");
    }
}

#[test]
fn route_validation_table() {
    let ok = validate_routes(&channels(), &[r(&[], None, &["log", DIGEST])]);
    assert_eq!(ok, Ok(()));
    let e = validate_routes(
        &channels(),
        &[r(&[], None, &["log"]), r(&[], None, &["log", "nope"])],
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("unknown_channel", Some("routes[1].channels[1]"))
    );
    let mut dup = channels();
    dup.push(dup[0].clone());
    let e = validate_routes(&dup, &[]).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("duplicate_channel", Some("channels[5].name"))
    );
    let reserved = vec![Channel {
        name: DIGEST.into(),
        kind: ChannelKind::File,
    }];
    let e = validate_routes(&reserved, &[]).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("invalid_channel_name", Some("channels[0].name"))
    );
}

// ----- dedup ----------------------------------------------------------------------------------

#[test]
fn dedup_by_identity_within_window() {
    let mut d = AlertDedup::new(Duration::from_secs(60));
    let a = alert(Priority::P1, "risk", "limit");
    let keyed = |title: &str| Alert {
        dedup_key: Some("k1".into()),
        ..alert(Priority::P0, "svc", title)
    };
    let steps: Vec<(&str, Alert, i64, bool)> = vec![
        ("first", a.clone(), 0, true),
        ("same within window", a.clone(), 59_999, false),
        (
            "other title",
            alert(Priority::P1, "risk", "limit 2"),
            1_000,
            true,
        ),
        (
            "other priority",
            alert(Priority::P0, "risk", "limit"),
            1_000,
            true,
        ),
        (
            "other source",
            alert(Priority::P1, "oms", "limit"),
            1_000,
            true,
        ),
        ("keyed first", keyed("one"), 1_000, true),
        ("same key, other title", keyed("two"), 2_000, false),
        ("window passed", a.clone(), 60_000, true),
        ("key window passed", keyed("three"), 61_000, true),
    ];
    for (name, al, at, want) in steps {
        assert_eq!(d.admit(&al, t0() + ms(at)), want, "{name}");
    }
    d.forget(&a);
    assert!(
        d.admit(&a, t0() + ms(60_001)),
        "forgotten alerts are new again"
    );
}

// ----- rate limit -----------------------------------------------------------------------------

#[test]
fn slack_token_bucket_exact_waits() {
    let mut b = RateLimit::slack();
    let steps: &[(i64, Result<(), Duration>)] = &[
        (0, Ok(())),
        (0, Err(Duration::from_secs(1))),
        (300, Err(Duration::from_millis(700))),
        (999, Err(Duration::from_millis(1))),
        (1_000, Ok(())),
        (1_500, Err(Duration::from_millis(500))),
        (5_000, Ok(())),
        (5_000, Err(Duration::from_secs(1))),
    ];
    for (i, (at, want)) in steps.iter().enumerate() {
        assert_eq!(b.admit(t0() + ms(*at)), *want, "step {i} at {at}ms");
    }
}

#[test]
fn burst_bucket_refills_one_token_per_period() {
    let mut b = RateLimit::new(Duration::from_secs(1), 3);
    for i in 0..3 {
        assert_eq!(b.admit(t0()), Ok(()), "burst token {i}");
    }
    assert_eq!(b.admit(t0()), Err(Duration::from_secs(1)));
    assert_eq!(b.admit(t0() + ms(250)), Err(Duration::from_millis(750)));
    assert_eq!(b.admit(t0() + ms(1_000)), Ok(()));
    assert_eq!(b.admit(t0() + ms(1_000)), Err(Duration::from_secs(1)));
    // Idle long enough and the whole burst is back, but no more.
    let later = t0() + ms(60_000);
    for _ in 0..3 {
        assert_eq!(b.admit(later), Ok(()));
    }
    assert_eq!(b.admit(later), Err(Duration::from_secs(1)));
    // burst 0 behaves like 1.
    let mut z = RateLimit::new(Duration::from_millis(100), 0);
    assert_eq!(z.admit(t0()), Ok(()));
    assert_eq!(z.admit(t0()), Err(Duration::from_millis(100)));
}

#[test]
fn hold_until_blocks_the_channel_then_refills() {
    let mut b = RateLimit::discord();
    assert_eq!(b.admit(t0()), Ok(()));
    b.hold_until(t0() + ms(5_000));
    assert_eq!(b.admit(t0() + ms(1_000)), Err(Duration::from_secs(4)));
    assert_eq!(b.admit(t0() + ms(5_000)), Ok(()));
    assert!(RateLimit::default_for(ChannelKind::File).is_none());
    assert_eq!(
        RateLimit::default_for(ChannelKind::Slack),
        Some(RateLimit::slack())
    );
}

// ----- retry ----------------------------------------------------------------------------------

#[test]
fn parse_seconds_table() {
    let cases: &[(&str, Option<u64>)] = &[
        ("120", Some(120_000)),
        ("0", Some(0)),
        ("007", Some(7_000)),
        ("1.5", Some(1_500)),
        ("0.25", Some(250)),
        ("64.57", Some(64_570)),
        (".5", Some(500)),
        ("2.", Some(2_000)),
        ("0.0015", Some(2)),
        ("0.001", Some(1)),
        ("1e-3", Some(1)),
        ("1e-7", Some(1)),
        ("1.5E2", Some(150_000)),
        ("0e5", Some(0)),
        ("", None),
        (".", None),
        ("-1", None),
        ("+1", None),
        ("1.2.3", None),
        ("abc", None),
        ("1e", None),
        (" 1", None),
        ("99999999999999999999999999999999999999999", None),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_seconds(text),
            want.map(Duration::from_millis),
            "{text:?}"
        );
    }
}

#[test]
fn retry_after_header_table() {
    let cases: &[(&str, Option<u64>)] = &[
        ("120", Some(120)),
        (" 3 ", Some(3)),
        ("Mon, 05 Jan 2026 12:02:00 GMT", Some(120)),
        ("Monday, 05-Jan-26 12:02:00 GMT", Some(120)),
        ("Mon Jan  5 12:02:00 2026", Some(120)),
        ("Mon, 05 Jan 2026 11:00:00 GMT", Some(0)),
        ("soon", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_retry_after(text, t0()),
            want.map(Duration::from_secs),
            "{text:?}"
        );
    }
}

#[test]
fn discord_retry_after_is_exact_milliseconds() {
    let body = r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#;
    assert_eq!(discord_retry_after(body), Some(Duration::from_millis(1500)));
    assert_eq!(
        discord_retry_after(r#"{"retry_after": 0.123}"#),
        Some(Duration::from_millis(123))
    );
    assert_eq!(
        discord_retry_after(r#"{"retry_after": 3}"#),
        Some(Duration::from_secs(3))
    );
    assert_eq!(discord_retry_after(r#"{"retry_after": -1}"#), None);
    assert_eq!(discord_retry_after(r#"{"other": 1}"#), None);
    assert_eq!(discord_retry_after("not json"), None);
    // The body's precise value wins over the rounded header; the header is the fallback.
    assert_eq!(
        retry_hint(Some("2"), Some(body), t0()),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        retry_hint(Some("2"), Some("<html>"), t0()),
        Some(Duration::from_secs(2))
    );
    assert_eq!(retry_hint(None, None, t0()), None);
}

fn http(status: u16) -> Outcome {
    Outcome::Http {
        status,
        retry_after: None,
    }
}

fn retry_in(after: Duration, rate_limited: bool) -> RetryDecision {
    RetryDecision::Retry {
        after,
        at: t0() + chrono::Duration::from_std(after).unwrap(),
        rate_limited,
    }
}

#[test]
fn retry_decision_table() {
    let p = RetryPolicy::default();
    let secs = Duration::from_secs;
    let disable = |s: u16| RetryDecision::Disable {
        reason: format!("webhook gone (HTTP {s})"),
    };
    let drop = |s: u16| RetryDecision::Drop {
        reason: format!("refused (HTTP {s})"),
    };
    let hinted = |status: u16, header: &str| Outcome::Http {
        status,
        retry_after: retry_hint(Some(header), None, t0()),
    };
    let discord_429 = Outcome::Http {
        status: 429,
        retry_after: retry_hint(Some("2"), Some(r#"{"retry_after": 1.5}"#), t0()),
    };
    let cases: Vec<(u32, Outcome, RetryDecision)> = vec![
        (1, http(200), RetryDecision::Delivered),
        (1, http(204), RetryDecision::Delivered),
        (8, http(200), RetryDecision::Delivered),
        (1, hinted(429, "120"), retry_in(secs(120), true)),
        (
            1,
            hinted(429, "Mon, 05 Jan 2026 12:02:00 GMT"),
            retry_in(secs(120), true),
        ),
        (1, discord_429, retry_in(Duration::from_millis(1500), true)),
        (3, http(429), retry_in(secs(4), true)),
        (1, hinted(429, "86400"), retry_in(secs(3600), true)),
        (1, http(404), disable(404)),
        (1, http(410), disable(410)),
        (1, http(400), drop(400)),
        (1, http(401), drop(401)),
        (1, http(403), drop(403)),
        (1, http(413), drop(413)),
        (1, http(301), drop(301)),
        (1, http(408), retry_in(secs(1), false)),
        (1, http(500), retry_in(secs(1), false)),
        (1, Outcome::Network, retry_in(secs(1), false)),
    ];
    for (i, (attempt, outcome, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            p.after_failure(attempt, &outcome, t0(), t0()),
            want,
            "case {i}: {outcome:?}"
        );
    }
}

#[test]
fn server_errors_back_off_capped_until_the_alert_is_too_old() {
    let p = RetryPolicy {
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            multiplier: 2,
        },
        max_age: Duration::from_secs(60),
        max_attempts: None,
        max_retry_after: Duration::from_secs(60),
    };
    // Attempts go on past any count while the alert is young, each wait capped at 10 s.
    let at = |secs: i64| t0() + chrono::Duration::seconds(secs);
    let waits: Vec<u64> = (1..=7)
        .map(|n| match p.after_failure(n, &http(503), t0(), t0()) {
            RetryDecision::Retry { after, .. } => after.as_secs(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(waits, vec![1, 2, 4, 8, 10, 10, 10]);
    // A retry is never scheduled past the alert's age limit...
    match p.after_failure(40, &http(503), t0(), at(55)) {
        RetryDecision::Retry { after, .. } => assert_eq!(after, Duration::from_secs(5)),
        other => panic!("unexpected {other:?}"),
    }
    // ...and at the limit the alert is dead.
    assert_eq!(
        p.after_failure(41, &Outcome::Network, t0(), at(60)),
        RetryDecision::Dead {
            attempts: 41,
            reason: "network failure".into()
        }
    );
    // The default holds a queue for a day: a 10-minute outage loses nothing.
    let d = RetryPolicy::default();
    assert!(matches!(
        d.after_failure(200, &http(503), t0(), at(600)),
        RetryDecision::Retry { .. }
    ));
    assert!(matches!(
        d.after_failure(2000, &http(503), t0(), at(24 * 3600)),
        RetryDecision::Dead { .. }
    ));
    // An optional attempt cap still ends it.
    let capped = RetryPolicy {
        max_attempts: Some(6),
        ..p
    };
    assert!(matches!(
        capped.after_failure(6, &http(503), t0(), t0()),
        RetryDecision::Dead { attempts: 6, .. }
    ));
    // A permanent failure is dropped, not dead, whatever the attempt.
    assert!(matches!(
        p.after_failure(9, &http(400), t0(), t0()),
        RetryDecision::Drop { .. }
    ));
    // So is a refusal outside HTTP (an SMTP 5xx), even on the first attempt.
    assert!(matches!(
        p.after_failure(1, &Outcome::Refused, t0(), t0()),
        RetryDecision::Drop { .. }
    ));
    // An acceptance outside HTTP (SMTP 250, a file line written) is a delivery.
    assert_eq!(
        p.after_failure(3, &Outcome::Accepted, t0(), t0()),
        RetryDecision::Delivered
    );
}

// ----- payloads -------------------------------------------------------------------------------

fn chars(v: &Value) -> usize {
    v.as_str().unwrap().chars().count()
}

/// Assert every Discord limit; returns the embed total.
fn check_discord(v: &Value) -> usize {
    use discord_limits as L;
    assert!(chars(&v["content"]) <= L::CONTENT);
    assert_eq!(v["allowed_mentions"], json!({"parse": []}));
    let embeds = v["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 1);
    let e = &embeds[0];
    let title = chars(&e["title"]);
    assert!((1..=L::TITLE).contains(&title));
    assert!(!e["title"].as_str().unwrap().trim().is_empty());
    let desc = e.get("description").map_or(0, chars);
    assert!(desc <= L::DESCRIPTION);
    let footer = chars(&e["footer"]["text"]);
    assert!(footer <= L::FOOTER);
    let mut total = title + desc + footer;
    if let Some(fields) = e.get("fields") {
        let fields = fields.as_array().unwrap();
        assert!(fields.len() <= L::FIELDS);
        for f in fields {
            let (n, val) = (chars(&f["name"]), chars(&f["value"]));
            assert!((1..=L::FIELD_NAME).contains(&n));
            assert!((1..=L::FIELD_VALUE).contains(&val));
            assert!(!f["name"].as_str().unwrap().trim().is_empty());
            assert!(!f["value"].as_str().unwrap().trim().is_empty());
            total += n + val;
        }
    }
    assert!(total <= L::EMBED_TOTAL, "embed total {total}");
    total
}

fn check_slack(v: &Value) {
    use slack_limits as L;
    assert!(chars(&v["text"]) <= L::TEXT);
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(chars(&blocks[0]["text"]["text"]) <= L::HEADER);
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => {}
            "section" => {
                let n = chars(&b["text"]["text"]);
                assert!((1..=L::SECTION).contains(&n));
            }
            "context" => {
                let els = b["elements"].as_array().unwrap();
                assert!((1..=L::CONTEXT_ELEMENTS).contains(&els.len()));
                for el in els {
                    assert!(chars(&el["text"]) <= L::CONTEXT_TEXT);
                }
            }
            other => panic!("unexpected block {other}"),
        }
    }
    assert_eq!(blocks.last().unwrap()["type"], "context");
}

/// Truncated text is a prefix of the original (so no char was split) followed by "…".
fn assert_cut_from(cut: &str, original: &str, max: usize) {
    assert_eq!(cut.chars().count(), max);
    let kept = cut.strip_suffix('…').unwrap();
    assert!(original.starts_with(kept));
}

#[test]
fn truncate_chars_table() {
    let cases: &[(&str, usize, &str)] = &[
        ("hello", 10, "hello"),
        ("hello", 5, "hello"),
        ("hello", 4, "hel…"),
        ("hello", 1, "…"),
        ("hello", 0, ""),
        ("日本語テキスト", 4, "日本語…"),
        ("🚀🚀🚀", 2, "🚀…"),
        ("", 3, ""),
    ];
    for (s, max, want) in cases {
        assert_eq!(truncate_chars(s, *max), *want, "{s:?} {max}");
    }
}

#[test]
fn discord_truncates_multibyte_text_within_limits() {
    let title = "🚀".repeat(300);
    let message = "日本語".repeat(2000);
    let mut ctx = serde_json::Map::new();
    for i in 0..30 {
        ctx.insert(
            format!("ключ-{i:02}-{}", "é".repeat(300)),
            json!("€".repeat(2000)),
        );
    }
    let a = Alert {
        priority: Priority::P0,
        source: "Ω".repeat(100),
        title: title.clone(),
        message: message.clone(),
        context: Value::Object(ctx),
        dedup_key: None,
    };
    let v = discord_payload(&a);
    let total = check_discord(&v);
    let e = &v["embeds"][0];
    assert_cut_from(e["title"].as_str().unwrap(), &title, discord_limits::TITLE);
    assert_cut_from(
        e["description"].as_str().unwrap(),
        &message,
        discord_limits::DESCRIPTION,
    );
    let first = &e["fields"][0];
    assert!(first["name"].as_str().unwrap().starts_with("ключ-00-"));
    assert_eq!(chars(&first["name"]), discord_limits::FIELD_NAME);
    // The 6000 total is what runs out: the budget is used, not wasted.
    assert!(
        total > discord_limits::EMBED_TOTAL - discord_limits::FIELD_NAME - 2,
        "{total}"
    );
    assert_eq!(e["color"], json!(Priority::P0.color()));
}

#[test]
fn discord_small_alert_is_complete() {
    let a = Alert {
        context: json!({"account": "paper", "loss": -1250.5, "empty": ""}),
        ..alert(Priority::P1, "risk", "Loss limit")
    };
    let v = discord_payload(&a);
    check_discord(&v);
    let e = &v["embeds"][0];
    assert_eq!(e["title"], "Loss limit");
    assert_eq!(e["description"], "something happened");
    assert_eq!(e["footer"]["text"], "risk · P1");
    let fields: Vec<(&str, &str)> = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    assert!(fields.contains(&("account", "paper")));
    assert!(fields.contains(&("loss", "-1250.5")));
    assert!(fields.contains(&("empty", "—")), "{fields:?}");
    assert!(v["content"].as_str().unwrap().contains("P1"));
}

#[test]
fn slack_payload_shape_and_escaping() {
    let a = Alert {
        message: "a < b & c > d".into(),
        context: json!({"symbol": "ES"}),
        ..alert(Priority::P0, "oms", "Order <rejected>")
    };
    let v = slack_payload(&a);
    check_slack(&v);
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"]
        .as_str()
        .unwrap()
        .ends_with("P0 · Order <rejected>"));
    assert_eq!(blocks[1]["text"]["text"], "a &lt; b &amp; c &gt; d");
    assert_eq!(blocks[2]["elements"][1]["text"], "symbol: ES");
    assert!(v["text"]
        .as_str()
        .unwrap()
        .contains("[P0] oms: Order &lt;rejected&gt;"));
    // No message: no section block.
    let quiet = Alert {
        message: String::new(),
        ..alert(Priority::P3, "s", "t")
    };
    let v = slack_payload(&quiet);
    assert_eq!(v["blocks"].as_array().unwrap().len(), 2);
    // Escapes are never cut in half.
    let long = Alert {
        message: "&".repeat(4000),
        ..alert(Priority::P2, "s", "t")
    };
    let v = slack_payload(&long);
    check_slack(&v);
    let section = v["blocks"][1]["text"]["text"].as_str().unwrap();
    let kept = section.strip_suffix('…').unwrap();
    assert_eq!(kept.len() % 5, 0);
    assert_eq!(kept.replace("&amp;", ""), "");
}

#[test]
fn webhook_file_and_email_outputs() {
    let a = Alert {
        message: "line one\nline two".into(),
        context: json!({"k": 1}),
        dedup_key: Some("d1".into()),
        ..alert(Priority::P1, "svc", "ib-gateway\r\nBcc: evil@example.com")
    };
    let at = t0() + ms(5);
    let w = webhook_payload(7, &a, at);
    assert_eq!(
        w,
        json!({
            "id": 7, "priority": "P1", "source": "svc",
            "title": "ib-gateway\r\nBcc: evil@example.com",
            "message": "line one\nline two", "context": {"k": 1}, "dedup_key": "d1",
            "at": "2026-01-05T12:00:00.005Z",
        })
    );
    let line = file_line(7, &a, at);
    assert!(!line.contains('\n'));
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), w);
    let (subject, body) = email_subject_body(&a);
    assert!(!subject.contains(['\r', '\n']), "{subject:?}");
    assert!(subject.starts_with("[Sovereign P1] svc: ib-gateway"));
    assert!(body.contains("line one\nline two"));
    assert!(body.contains("Dedup key: d1"));
    assert!(body.contains("  k: 1"));
}

// ----- properties -----------------------------------------------------------------------------

fn text(max: usize) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        any::<char>(),
        Just('€'),
        Just('🚀'),
        Just('&'),
        Just('<'),
        Just(' '),
        Just('\n'),
    ];
    proptest::collection::vec(ch, 0..max).prop_map(String::from_iter)
}

fn any_alert() -> impl Strategy<Value = Alert> {
    (
        0usize..4,
        text(120),
        text(400),
        text(6000),
        proptest::collection::vec((text(300), text(1500)), 0..32),
    )
        .prop_map(|(p, source, title, message, ctx)| Alert {
            priority: Priority::ALL[p],
            source,
            title,
            message,
            context: Value::Object(
                ctx.into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
            dedup_key: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn payloads_respect_channel_limits(a in any_alert()) {
        check_discord(&discord_payload(&a));
        check_slack(&slack_payload(&a));
        let (subject, _) = email_subject_body(&a);
        prop_assert!(!subject.contains(['\r', '\n']));
        prop_assert!(!file_line(1, &a, t0()).contains('\n'));
    }

    #[test]
    fn truncation_never_exceeds_and_keeps_a_prefix(s in text(300), max in 0usize..320) {
        let cut = truncate_chars(&s, max);
        prop_assert!(cut.chars().count() <= max);
        if s.chars().count() <= max {
            prop_assert_eq!(&cut, &s);
        } else if max > 0 {
            let kept = cut.strip_suffix('…').unwrap();
            prop_assert!(s.starts_with(kept));
        }
    }

    #[test]
    fn token_bucket_never_admits_more_than_burst_plus_rate(
        gaps in proptest::collection::vec(0i64..700, 1..60),
        burst in 1u32..4,
    ) {
        let mut b = RateLimit::new(Duration::from_millis(500), burst);
        let mut now = t0();
        let mut admitted = 0u64;
        for g in gaps {
            now += ms(g);
            match b.admit(now) {
                Ok(()) => admitted += 1,
                Err(wait) => {
                    // The wait is exact: one millisecond early is refused, on time is admitted
                    // (probed on copies, so the real bucket is untouched).
                    let later = now + chrono::Duration::from_std(wait).unwrap();
                    prop_assert!(b.clone().admit(later - ms(1)).is_err());
                    prop_assert_eq!(b.clone().admit(later), Ok(()));
                }
            }
        }
        let elapsed = u64::try_from((now - t0()).num_milliseconds()).unwrap();
        prop_assert!(admitted <= u64::from(burst) + elapsed / 500);
    }
}

#[test]
fn the_digest_is_due_once_a_day_at_its_time() {
    use chrono::{NaiveDate, NaiveTime, TimeZone};
    use sovereign_core::notify::digest_due;
    let tz = chrono_tz::America::New_York;
    let at = NaiveTime::from_hms_opt(17, 30, 0).unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    // (now UTC, last sent, expected)
    let cases = [
        (
            Utc.with_ymd_and_hms(2026, 11, 24, 22, 29, 0).unwrap(),
            None,
            None,
        ),
        (
            Utc.with_ymd_and_hms(2026, 11, 24, 22, 30, 0).unwrap(),
            None,
            Some(day),
        ),
        (
            Utc.with_ymd_and_hms(2026, 11, 24, 23, 0, 0).unwrap(),
            Some(day),
            None,
        ),
        (
            Utc.with_ymd_and_hms(2026, 11, 25, 22, 31, 0).unwrap(),
            Some(day),
            day.succ_opt(),
        ),
    ];
    for (now, last, expected) in cases {
        assert_eq!(digest_due(now, at, tz, last), expected, "{now}");
    }
}

#[test]
fn the_digest_lists_alerts_in_order() {
    use sovereign_core::notify::{digest_text, AlertSpec};
    let alert = |title: &str| {
        serde_json::from_value::<AlertSpec>(serde_json::json!({"priority": "P3", "source": "scheduler", "title": title, "message": "line one\nline two"}))
            .unwrap()
            .validate()
            .unwrap()
    };
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 14, 5, 0).unwrap();
    let (subject, body) = digest_text(t.date_naive(), &[(t, alert("first")), (t, alert("second"))]);
    assert_eq!(subject, "Sovereign daily digest 2026-11-24: 2 alert(s)");
    assert_eq!(
        body,
        "14:05:00 [P3] scheduler: first\n    line one\n    line two\n14:05:00 [P3] scheduler: second\n    line one\n    line two\n"
    );
}
