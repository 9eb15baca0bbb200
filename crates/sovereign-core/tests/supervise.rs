//! The supervisor's decisions: start order and cycles, and the service state machine as tables
//! of steps plus properties over random input sequences.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use sovereign_core::retry::Backoff;
use sovereign_core::supervise::{
    start_order, Action, Condition, CrashLoop, Exit, Input, Policy, Restart, Score, Service, State,
    Timer,
};

fn t(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
}

fn deps(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(n, ds)| (n.to_string(), ds.iter().map(|d| d.to_string()).collect()))
        .collect()
}

#[test]
fn start_order_is_levels_of_independent_services() {
    let levels = start_order(&deps(&[
        ("worker", &["api", "feed"]),
        ("api", &["db"]),
        ("feed", &[]),
        ("db", &[]),
        ("ui", &["worker"]),
    ]))
    .unwrap();
    assert_eq!(
        levels,
        vec![vec!["db", "feed"], vec!["api"], vec!["worker"], vec!["ui"]]
    );
    assert_eq!(
        start_order(&BTreeMap::new()).unwrap(),
        Vec::<Vec<String>>::new()
    );
}

#[test]
fn cycles_and_unknown_dependencies_are_named() {
    let err = start_order(&deps(&[
        ("a", &["b"]),
        ("b", &["c"]),
        ("c", &["a"]),
        ("d", &[]),
    ]))
    .unwrap_err();
    assert_eq!(err.code, "dependency_cycle");
    assert_eq!(err.message, "dependency cycle: a → b → c → a");
    let err = start_order(&deps(&[("a", &["a"])])).unwrap_err();
    assert_eq!(err.message, "dependency cycle: a → a");
    // A cycle behind a healthy chain is still found and named from its own members.
    let err = start_order(&deps(&[("x", &["y"]), ("y", &["z"]), ("z", &["y"])])).unwrap_err();
    assert_eq!(err.message, "dependency cycle: y → z → y", "{err:?}");
    let err = start_order(&deps(&[("a", &["nope"])])).unwrap_err();
    assert_eq!(
        (err.code, err.field.as_deref()),
        ("unknown_dependency", Some("services.a.depends_on"))
    );
}

fn policy() -> Policy {
    Policy {
        restart: Restart::Always,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 2,
        },
        reset_after: Duration::from_secs(10),
        crash_loop: CrashLoop {
            max_restarts: 3,
            window: Duration::from_secs(60),
            cooldown: Some(Duration::from_secs(30)),
        },
        stop_timeout: Duration::from_secs(5),
        has_health: false,
        failure_threshold: 2,
        restart_unhealthy: false,
    }
}

fn exit(code: i32, at: i64) -> Input {
    Input::Exited(Exit {
        code: Some(code),
        signal: None,
        at: t(at),
    })
}

fn backoff_at(actions: &[Action]) -> Option<DateTime<Utc>> {
    actions.iter().find_map(|a| match a {
        Action::SetTimer(Timer::Backoff, at) => Some(*at),
        _ => None,
    })
}

#[test]
fn crashes_back_off_exponentially_then_fail_then_recover_after_cooldown() {
    let p = policy();
    let mut s = Service::new();
    assert!(s.step(&p, Input::Start, t(0)).contains(&Action::Spawn));
    s.step(&p, Input::Spawned, t(0));
    assert_eq!(s.state, State::Running);
    // Three crashes: backoff 100, 200, 400 ms from each exit.
    let mut now = 0;
    for expected in [100, 200, 400] {
        now += 50;
        let a = s.step(&p, exit(1, now), t(now));
        assert_eq!(s.state, State::Backoff);
        assert_eq!(backoff_at(&a), Some(t(now + expected)));
        now += expected;
        assert!(s
            .step(&p, Input::Timer(Timer::Backoff), t(now))
            .contains(&Action::Spawn));
        s.step(&p, Input::Spawned, t(now));
    }
    assert_eq!(s.restarts, 3);
    // The fourth within the window: failed, cooldown armed, no spawn.
    let a = s.step(&p, exit(1, now + 10), t(now + 10));
    assert_eq!(s.state, State::Failed, "{a:?}");
    assert!(
        s.reason
            .starts_with("crash loop: exited with status 1; 3 restarts within 60s"),
        "{}",
        s.reason
    );
    assert!(a.contains(&Action::SetTimer(Timer::Cooldown, t(now + 10 + 30_000))));
    assert!(!a.contains(&Action::Spawn));
    // Cooldown over: tried again with the backoff reset.
    let a = s.step(&p, Input::Timer(Timer::Cooldown), t(now + 30_010));
    assert!(a.contains(&Action::Spawn));
    s.step(&p, Input::Spawned, t(now + 30_010));
    let a = s.step(&p, exit(1, now + 30_100), t(now + 30_100));
    assert_eq!(backoff_at(&a), Some(t(now + 30_200)));
}

#[test]
fn backoff_resets_after_a_long_enough_healthy_uptime() {
    let p = policy();
    let mut s = Service::new();
    s.step(&p, Input::Start, t(0));
    s.step(&p, Input::Spawned, t(0));
    s.step(&p, exit(1, 100), t(100));
    s.step(&p, Input::Timer(Timer::Backoff), t(200));
    s.step(&p, Input::Spawned, t(200));
    // Up 9.9 s: not long enough; the next delay doubles.
    let a = s.step(&p, exit(1, 10_100), t(10_100));
    assert_eq!(backoff_at(&a), Some(t(10_300)));
    s.step(&p, Input::Timer(Timer::Backoff), t(10_300));
    s.step(&p, Input::Spawned, t(10_300));
    // Up 10 s: the delay is back to the first one.
    let a = s.step(&p, exit(1, 20_300), t(20_300));
    assert_eq!(backoff_at(&a), Some(t(20_400)));
}

#[test]
fn restart_policies_decide_after_an_exit() {
    let cases = [
        (Restart::Always, 0, State::Backoff),
        (Restart::Always, 3, State::Backoff),
        (Restart::OnFailure, 0, State::Exited),
        (Restart::OnFailure, 3, State::Backoff),
        (Restart::Never, 3, State::Exited),
    ];
    for (restart, code, expected) in cases {
        let p = Policy {
            restart,
            ..policy()
        };
        let mut s = Service::new();
        s.step(&p, Input::Start, t(0));
        s.step(&p, Input::Spawned, t(0));
        s.step(&p, exit(code, 10), t(10));
        assert_eq!(s.state, expected, "{restart:?} exit {code}");
    }
}

#[test]
fn stop_escalates_to_kill_and_restart_waits_for_the_exit() {
    let p = policy();
    let mut s = Service::new();
    s.step(&p, Input::Start, t(0));
    s.step(&p, Input::Spawned, t(0));
    let a = s.step(&p, Input::Stop, t(1000));
    assert_eq!(a[0], Action::Signal);
    assert!(a.contains(&Action::SetTimer(Timer::StopTimeout, t(6000))));
    assert_eq!(s.state, State::Stopping);
    assert_eq!(
        s.step(&p, Input::Timer(Timer::StopTimeout), t(6000)),
        vec![Action::Kill]
    );
    s.step(
        &p,
        Input::Exited(Exit {
            code: None,
            signal: Some(9),
            at: t(6001),
        }),
        t(6001),
    );
    assert_eq!(s.state, State::Stopped);
    assert!(s.step(&p, Input::Timer(Timer::Backoff), t(7000)).is_empty());

    // Restart: signal, and the spawn only after the old process is gone.
    s.step(&p, Input::Start, t(8000));
    s.step(&p, Input::Spawned, t(8000));
    let a = s.step(&p, Input::Restart, t(9000));
    assert!(a.contains(&Action::Signal) && !a.contains(&Action::Spawn));
    let a = s.step(&p, exit(0, 9100), t(9100));
    assert!(a.contains(&Action::Spawn), "{a:?}");
    assert_eq!(s.state, State::Starting);
}

#[test]
fn health_decides_healthy_and_unhealthy_and_dependencies() {
    let p = Policy {
        has_health: true,
        ..policy()
    };
    let mut s = Service::new();
    s.step(&p, Input::Start, t(0));
    s.step(&p, Input::Spawned, t(0));
    assert_eq!(s.state, State::Starting);
    assert!(s.satisfies(Condition::Started, &p));
    assert!(!s.satisfies(Condition::Healthy, &p));
    s.step(
        &p,
        Input::Health {
            ok: true,
            detail: "HTTP 200".into(),
        },
        t(10),
    );
    assert_eq!(s.state, State::Healthy);
    assert!(s.satisfies(Condition::Healthy, &p));
    s.step(
        &p,
        Input::Health {
            ok: false,
            detail: "HTTP 500".into(),
        },
        t(20),
    );
    assert_eq!(
        s.state,
        State::Healthy,
        "one failure is below the threshold"
    );
    let a = s.step(
        &p,
        Input::Health {
            ok: false,
            detail: "HTTP 500".into(),
        },
        t(30),
    );
    assert_eq!(s.state, State::Unhealthy);
    assert!(
        matches!(&a[0], Action::Transition { reason, .. } if reason == "2 failed checks in a row: HTTP 500")
    );
    s.step(
        &p,
        Input::Health {
            ok: true,
            detail: "HTTP 200".into(),
        },
        t(40),
    );
    assert_eq!(s.state, State::Healthy);

    // Completed: a setup step that exited 0.
    let once = Policy {
        restart: Restart::OnFailure,
        ..policy()
    };
    let mut setup = Service::new();
    setup.step(&once, Input::Start, t(0));
    setup.step(&once, Input::Spawned, t(0));
    assert!(!setup.satisfies(Condition::Completed, &once));
    setup.step(&once, exit(0, 5), t(5));
    assert!(setup.satisfies(Condition::Completed, &once));
}

#[test]
fn an_unhealthy_service_is_restarted_like_a_crash_when_asked() {
    let p = Policy {
        has_health: true,
        restart_unhealthy: true,
        failure_threshold: 1,
        ..policy()
    };
    let mut s = Service::new();
    s.step(&p, Input::Start, t(0));
    s.step(&p, Input::Spawned, t(0));
    let fail = || Input::Health {
        ok: false,
        detail: "no heartbeat".into(),
    };
    let a = s.step(&p, fail(), t(100));
    assert_eq!(s.state, State::Stopping, "{a:?}");
    assert!(a.contains(&Action::Signal));
    let a = s.step(&p, exit(143, 150), t(150));
    assert_eq!(s.state, State::Backoff, "{a:?}");
    assert_eq!(backoff_at(&a), Some(t(250)));
    assert!(
        s.reason.starts_with("unhealthy, exited with status 143"),
        "{}",
        s.reason
    );
    assert_eq!(s.restarts, 1);
    // Reported only, by default.
    let report = Policy {
        has_health: true,
        failure_threshold: 1,
        ..policy()
    };
    let mut r = Service::new();
    r.step(&report, Input::Start, t(0));
    r.step(&report, Input::Spawned, t(0));
    let a = r.step(&report, fail(), t(100));
    assert_eq!(r.state, State::Unhealthy);
    assert!(!a.contains(&Action::Signal));
    // An operator's stop while it is being restarted for health ends it.
    s.step(&p, Input::Timer(Timer::Backoff), t(250));
    s.step(&p, Input::Spawned, t(250));
    s.step(&p, fail(), t(300));
    s.step(&p, Input::Stop, t(310));
    s.step(&p, exit(143, 320), t(320));
    assert_eq!(s.state, State::Stopped);
}

#[test]
fn a_missing_program_fails_the_service_with_its_reason() {
    let p = policy();
    let mut s = Service::new();
    s.step(&p, Input::Start, t(0));
    let a = s.step(
        &p,
        Input::SpawnFailed("program not found: nope".into()),
        t(0),
    );
    assert_eq!(s.state, State::Failed);
    assert_eq!(s.reason, "program not found: nope");
    assert!(a.contains(&Action::SetTimer(Timer::Cooldown, t(30_000))));
    // An operator start tries again at once.
    assert!(s.step(&p, Input::Start, t(1)).contains(&Action::Spawn));
}

#[test]
fn the_health_score_is_exact() {
    let s = |passing, total, critical_failed| {
        Score {
            passing,
            total,
            critical_failed,
        }
        .permille()
    };
    assert_eq!(s(0, 0, false), 1000);
    assert_eq!(s(2, 3, false), 666);
    assert_eq!(s(3, 3, false), 1000);
    assert_eq!(s(3, 3, true), 0);
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        Just(Input::Start),
        Just(Input::Stop),
        Just(Input::Restart),
        Just(Input::Spawned),
        Just(Input::SpawnFailed("x".into())),
        (0..3i32).prop_map(|c| Input::Exited(Exit {
            code: Some(c),
            signal: None,
            at: t(0)
        })),
        any::<bool>().prop_map(|ok| Input::Health {
            ok,
            detail: String::new()
        }),
        Just(Input::Timer(Timer::Backoff)),
        Just(Input::Timer(Timer::Cooldown)),
        Just(Input::Timer(Timer::StopTimeout)),
    ]
}

proptest! {
    /// Driven like the engine drives it (an exit only when a process is alive, a spawn answered
    /// at once): never two processes, nothing spawns while stopped by hand, backoff within bounds.
    #[test]
    fn at_most_one_process_and_a_stop_is_final(inputs in proptest::collection::vec((input(), 0..5_000i64), 1..80)) {
        let p = Policy { has_health: true, restart_unhealthy: true, ..policy() };
        let mut s = Service::new();
        let mut alive = false;
        let mut spawning = false;
        let mut now = 0;
        for (input, dt) in inputs {
            now += dt;
            // The engine answers a spawn (spawned or failed) before anything else, and reports
            // exits and health verdicts only for a live process.
            let answers_spawn = matches!(input, Input::Spawned | Input::SpawnFailed(_));
            if answers_spawn != spawning {
                continue;
            }
            if matches!(input, Input::Exited(_) | Input::Health { .. }) && !alive {
                continue;
            }
            spawning = false;
            let input = match input {
                Input::Exited(mut e) => { e.at = t(now); Input::Exited(e) }
                other => other,
            };
            let was_wanted = s.wanted;
            let is_stop = input == Input::Stop;
            let exited = matches!(input, Input::Exited(_));
            let failed = matches!(input, Input::SpawnFailed(_));
            let actions = s.step(&p, input.clone(), t(now));
            if exited || failed {
                alive = false;
            }
            for a in &actions {
                match a {
                    Action::Spawn => {
                        prop_assert!(!alive, "spawn while a process is alive: {input:?}");
                        prop_assert!(s.wanted, "spawn while not wanted");
                        alive = true;
                        spawning = true;
                    }
                    Action::SetTimer(Timer::Backoff, at) => {
                        let d = (*at - t(now)).to_std().unwrap();
                        prop_assert!(d >= p.backoff.initial && d <= p.backoff.max);
                    }
                    _ => {}
                }
            }
            if is_stop {
                prop_assert!(!actions.contains(&Action::Spawn));
                prop_assert!(matches!(s.state, State::Stopping | State::Stopped) || (!was_wanted && !s.state.alive()));
            }
            prop_assert_eq!(s.state.alive(), alive, "state {:?} vs process", s.state);
        }
    }
}
