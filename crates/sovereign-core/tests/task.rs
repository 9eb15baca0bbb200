//! Task validation as tables of cases: every way a spec can be wrong names its code and field,
//! and a valid spec round-trips through `Task::spec`.

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use sovereign_core::calendar::Calendars;
use sovereign_core::schedule::ScheduleSpec;
use sovereign_core::task::{
    CommandSpec, HandlerKind, HandlerRules, HttpRequestSpec, Missed, Overlap, PolicySpec, Task,
    TaskId, TaskSpec,
};

fn spec(handler: &str, payload: Value) -> TaskSpec {
    TaskSpec {
        task_id: "t1".into(),
        name: "Task one".into(),
        handler: handler.into(),
        payload,
        schedule: None,
        enabled: true,
        policy: PolicySpec::default(),
    }
}

fn validate(s: TaskSpec, rules: &HandlerRules) -> Result<Task, (String, Option<String>)> {
    let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    Task::validate(s, &Calendars::with_builtins(), rules, now, now)
        .map_err(|e| (e.code.to_string(), e.field))
}

#[test]
fn invalid_specs_name_code_and_field() {
    let echo_allowed = HandlerRules {
        command_allow: vec!["echo".into()],
        ..Default::default()
    };
    let none_allowed = HandlerRules::default();
    type Edit = fn(&mut TaskSpec);
    let cases: Vec<(&str, Edit, &HandlerRules, &str, &str)> = vec![
        (
            "empty id",
            |s| s.task_id = String::new(),
            &none_allowed,
            "invalid_task_id",
            "task_id",
        ),
        (
            "id with space",
            |s| s.task_id = "a b".into(),
            &none_allowed,
            "invalid_task_id",
            "task_id",
        ),
        (
            "id too long",
            |s| s.task_id = "x".repeat(129),
            &none_allowed,
            "invalid_task_id",
            "task_id",
        ),
        (
            "blank name",
            |s| s.name = "  ".into(),
            &none_allowed,
            "invalid_name",
            "name",
        ),
        (
            "unknown handler",
            |s| s.handler = "nope".into(),
            &none_allowed,
            "unknown_handler",
            "handler",
        ),
        (
            "planned handler",
            |s| s.handler = "ai_signal".into(),
            &none_allowed,
            "unknown_handler",
            "handler",
        ),
        (
            "http without url",
            |s| {
                s.handler = "http_request".into();
                s.payload = json!({})
            },
            &none_allowed,
            "invalid_payload",
            "payload.url",
        ),
        (
            "http ftp url",
            |s| {
                s.handler = "http_request".into();
                s.payload = json!({"url": "ftp://x"})
            },
            &none_allowed,
            "invalid_payload",
            "payload.url",
        ),
        (
            "http bad method",
            |s| {
                s.handler = "http_request".into();
                s.payload = json!({"url": "http://x", "method": "BREW"})
            },
            &none_allowed,
            "invalid_payload",
            "payload.method",
        ),
        (
            "http header not string",
            |s| {
                s.handler = "http_request".into();
                s.payload = json!({"url": "http://x", "headers": {"A": 1}})
            },
            &none_allowed,
            "invalid_payload",
            "payload.headers.A",
        ),
        (
            "http bad timeout",
            |s| {
                s.handler = "http_request".into();
                s.payload = json!({"url": "http://x", "timeout": "soon"})
            },
            &none_allowed,
            "invalid_duration",
            "payload.timeout",
        ),
        (
            "command off",
            |s| {
                s.handler = "command".into();
                s.payload = json!({"argv": ["echo"]})
            },
            &none_allowed,
            "command_not_allowed",
            "payload.argv",
        ),
        (
            "command not listed",
            |s| {
                s.handler = "command".into();
                s.payload = json!({"argv": ["rm", "-rf"]})
            },
            &echo_allowed,
            "command_not_allowed",
            "payload.argv",
        ),
        (
            "command empty argv",
            |s| {
                s.handler = "command".into();
                s.payload = json!({"argv": []})
            },
            &echo_allowed,
            "invalid_payload",
            "payload.argv",
        ),
        (
            "command argv not strings",
            |s| {
                s.handler = "command".into();
                s.payload = json!({"argv": ["echo", 1]})
            },
            &echo_allowed,
            "invalid_payload",
            "payload.argv",
        ),
        (
            "bad cron",
            |s| {
                s.schedule = Some(ScheduleSpec {
                    cron: Some("nope".into()),
                    ..Default::default()
                })
            },
            &none_allowed,
            "invalid_cron",
            "schedule.cron",
        ),
        (
            "bad tz",
            |s| {
                s.schedule = Some(ScheduleSpec {
                    cron: Some("0 0 9 * * *".into()),
                    tz: Some("Nowhere/City".into()),
                    ..Default::default()
                })
            },
            &none_allowed,
            "invalid_time_zone",
            "schedule.tz",
        ),
        (
            "unknown calendar",
            |s| {
                s.schedule = Some(ScheduleSpec {
                    every: Some("1m".into()),
                    calendar: Some("lse".into()),
                    ..Default::default()
                })
            },
            &none_allowed,
            "unknown_calendar",
            "schedule.calendar",
        ),
        (
            "empty schedule",
            |s| s.schedule = Some(ScheduleSpec::default()),
            &none_allowed,
            "invalid_schedule",
            "schedule",
        ),
        (
            "bad timeout",
            |s| s.policy.timeout = Some("forever".into()),
            &none_allowed,
            "invalid_duration",
            "timeout",
        ),
        (
            "too many retries",
            |s| s.policy.retries = Some(101),
            &none_allowed,
            "invalid_retries",
            "retries",
        ),
        (
            "bad overlap",
            |s| s.policy.overlap = Some("queue".into()),
            &none_allowed,
            "invalid_overlap",
            "overlap",
        ),
        (
            "bad missed",
            |s| s.policy.missed = Some("all".into()),
            &none_allowed,
            "invalid_missed",
            "missed",
        ),
    ];
    for (name, edit, rules, code, field) in cases {
        let mut s = spec("log_signal", json!({}));
        edit(&mut s);
        let got = validate(s, rules).err();
        assert_eq!(
            got,
            Some((code.to_string(), Some(field.to_string()))),
            "case {name:?}"
        );
    }
}

#[test]
fn unknown_handler_message_lists_known_ones() {
    let err = Task::validate(
        spec("nope", json!({})),
        &Calendars::with_builtins(),
        &HandlerRules::default(),
        Utc::now(),
        Utc::now(),
    )
    .unwrap_err();
    for known in HandlerKind::ALL {
        assert!(err.message.contains(known.as_str()), "{}", err.message);
    }
}

#[test]
fn valid_spec_compiles_policy_and_round_trips() {
    let mut s = spec(
        "http_request",
        json!({"url": "https://example.test/{{payload.sym}}", "method": "post", "headers": {"X-A": "b"}, "body": {"q": 1}, "timeout": "2s"}),
    );
    s.schedule = Some(ScheduleSpec {
        cron: Some("0 25 9 * * MON-FRI".into()),
        tz: Some("America/New_York".into()),
        calendar: Some("us_equities".into()),
        ..Default::default()
    });
    s.policy = PolicySpec {
        timeout: Some("45s".into()),
        retries: Some(3),
        retry_backoff: Some("250ms".into()),
        overlap: Some("allow".into()),
        missed: Some("skip".into()),
    };
    let task = validate(s.clone(), &HandlerRules::default()).unwrap();
    assert_eq!(task.id, TaskId::parse("t1").unwrap());
    assert_eq!(task.handler, HandlerKind::HttpRequest);
    assert_eq!(task.policy.timeout, std::time::Duration::from_secs(45));
    assert_eq!(task.policy.retries, 3);
    assert_eq!(
        task.policy.backoff.initial,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(
        (task.policy.overlap, task.policy.missed),
        (Overlap::Allow, Missed::Skip)
    );
    assert_eq!(task.spec(), s, "the stored spec is what the user wrote");

    let http = HttpRequestSpec::from_payload(&task.payload).unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(http.headers, vec![("X-A".to_string(), "b".to_string())]);
    assert_eq!(http.timeout, Some(std::time::Duration::from_secs(2)));
}

#[test]
fn command_spec_parses_env_and_cwd() {
    let c = CommandSpec::from_payload(
        &json!({"argv": ["echo", "hi"], "env": {"A": "1"}, "cwd": "/tmp"}),
    )
    .unwrap();
    assert_eq!(c.argv, ["echo", "hi"]);
    assert_eq!(c.env, vec![("A".to_string(), "1".to_string())]);
    assert_eq!(c.cwd.as_deref(), Some("/tmp"));
    let rules = HandlerRules {
        command_allow: vec!["echo".into()],
        ..Default::default()
    };
    assert!(rules.check_command("echo").is_ok());
    assert!(
        rules.check_command("/bin/echo").is_err(),
        "the allow-list matches argv[0] exactly"
    );
}

#[test]
fn resume_plan_table() {
    use sovereign_core::schedule::Schedule;
    use sovereign_core::task::{resume_plan, ResumePlan};
    let at = |h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 11, 24, h, m, s).unwrap();
    let cals = Calendars::with_builtins();
    let every_min = Schedule::parse(
        &ScheduleSpec {
            every: Some("1m".into()),
            ..Default::default()
        },
        &cals,
    )
    .unwrap();
    let once = Schedule::parse(
        &ScheduleSpec {
            at: Some("2026-11-24T12:00:30Z".into()),
            ..Default::default()
        },
        &cals,
    )
    .unwrap();
    let anchor = at(12, 0, 0);
    let cases = [
        // (schedule, policy, cursor, now, expected)
        (
            "down over several fires, run once",
            &every_min,
            Missed::RunOnce,
            Some(at(12, 1, 0)),
            at(12, 5, 30),
            ResumePlan {
                catch_up: Some(at(12, 2, 0)),
                next: Some(at(12, 6, 0)),
            },
        ),
        (
            "down over several fires, skip",
            &every_min,
            Missed::Skip,
            Some(at(12, 1, 0)),
            at(12, 5, 30),
            ResumePlan {
                catch_up: None,
                next: Some(at(12, 6, 0)),
            },
        ),
        (
            "nothing missed",
            &every_min,
            Missed::RunOnce,
            Some(at(12, 5, 0)),
            at(12, 5, 30),
            ResumePlan {
                catch_up: None,
                next: Some(at(12, 6, 0)),
            },
        ),
        (
            "never fired, missed since creation",
            &every_min,
            Missed::RunOnce,
            None,
            at(12, 3, 10),
            ResumePlan {
                catch_up: Some(at(12, 1, 0)),
                next: Some(at(12, 4, 0)),
            },
        ),
        (
            "one-shot missed while down",
            &once,
            Missed::RunOnce,
            None,
            at(12, 1, 0),
            ResumePlan {
                catch_up: Some(at(12, 0, 30)),
                next: None,
            },
        ),
        (
            "one-shot already run",
            &once,
            Missed::RunOnce,
            Some(at(12, 0, 30)),
            at(12, 1, 0),
            ResumePlan {
                catch_up: None,
                next: None,
            },
        ),
        (
            "one-shot still ahead",
            &once,
            Missed::RunOnce,
            None,
            at(12, 0, 10),
            ResumePlan {
                catch_up: None,
                next: Some(at(12, 0, 30)),
            },
        ),
    ];
    for (name, schedule, missed, cursor, now, expected) in cases {
        assert_eq!(
            resume_plan(schedule, missed, cursor, anchor, now),
            expected,
            "{name}"
        );
    }
}
