//! Deploy decisions: the rollout state machine as tables of runs (the seed's rules: canary,
//! critical primary, non-critical full stage; pause, promote, abort; crash recovery) plus
//! properties over random inputs; the gates' analysis semantics; conditions compared exactly;
//! templates; deploy windows.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use sovereign_core::calendar::Calendar;
use sovereign_core::deploy::analysis::{
    at_path, judge, Condition, FailedBy, Gate, GateVerdict, Measurement, Rules, Severity,
};
use sovereign_core::deploy::plan::{argv, version, Template, Vars};
use sovereign_core::deploy::rollout::{
    Action, GateOutcome, Input, Phase, Rollout, Scope, StageShape, TargetState,
};
use sovereign_core::deploy::window::{builtin_hours, parse_hours, Session};

fn stage(name: &str, targets: &[&str], critical: bool, parallelism: usize) -> StageShape {
    StageShape {
        name: name.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        critical,
        parallelism,
    }
}

/// The seed's plan: canary [lhr, nrt] → primary [ewr] (critical) → full [ord, fra, sin, bom].
fn seed() -> Vec<StageShape> {
    vec![
        stage("canary", &["lhr", "nrt"], false, 2),
        stage("primary", &["ewr"], true, 1),
        stage("full", &["ord", "fra", "sin", "bom"], false, 2),
    ]
}

fn ok(stage: usize, target: usize) -> Input {
    Input::Deployed {
        stage,
        target,
        error: None,
    }
}

fn back(stage: usize, target: usize) -> Input {
    Input::RolledBack {
        stage,
        target,
        error: None,
    }
}

fn gate(stage: usize, outcome: GateOutcome) -> Input {
    Input::Gate { stage, outcome }
}

/// Feed `inputs`; every action in order.
fn run(r: &mut Rollout, inputs: &[Input]) -> Vec<Action> {
    inputs
        .iter()
        .flat_map(|i| r.step(i).unwrap_or_else(|e| panic!("{i:?} refused: {e}")))
        .collect()
}

fn commands(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deploy { stage, target } => Some(format!("deploy {stage}.{target}")),
            Action::Rollback { stage, target } => Some(format!("rollback {stage}.{target}")),
            Action::StartGates { stage } => Some(format!("gates {stage}")),
            _ => None,
        })
        .collect()
}

fn phases(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Entered(p) => Some(p.name()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_good_version_promotes_through_every_stage() {
    let mut r = Rollout::new(seed());
    let a = run(
        &mut r,
        &[
            Input::Start,
            ok(0, 0),
            ok(0, 1),
            gate(0, GateOutcome::Passed),
            ok(1, 0),
            gate(1, GateOutcome::Passed),
            ok(2, 0),
            ok(2, 1),
            ok(2, 2),
            ok(2, 3),
            gate(2, GateOutcome::Passed),
        ],
    );
    assert_eq!(
        commands(&a),
        [
            "deploy 0.0",
            "deploy 0.1",
            "gates 0",
            "deploy 1.0",
            "gates 1",
            "deploy 2.0",
            "deploy 2.1",
            "deploy 2.2",
            "deploy 2.3",
            "gates 2"
        ]
    );
    assert_eq!(
        phases(&a),
        [
            "deploying",
            "verifying",
            "promoting",
            "deploying",
            "verifying",
            "promoting",
            "deploying",
            "verifying",
            "promoting",
            "succeeded"
        ]
    );
    assert_eq!(r.phase(), &Phase::Succeeded);
}

#[test]
fn parallelism_holds_the_rest_of_a_stage_back() {
    let mut r = Rollout::new(seed());
    run(
        &mut r,
        &[
            Input::Start,
            ok(0, 0),
            ok(0, 1),
            gate(0, GateOutcome::Passed),
            ok(1, 0),
        ],
    );
    let a = run(&mut r, &[gate(1, GateOutcome::Passed)]);
    assert_eq!(commands(&a), ["deploy 2.0", "deploy 2.1"], "two at a time");
    assert_eq!(commands(&run(&mut r, &[ok(2, 1)])), ["deploy 2.2"]);
    assert_eq!(commands(&run(&mut r, &[ok(2, 0)])), ["deploy 2.3"]);
    assert!(commands(&run(&mut r, &[ok(2, 2)])).is_empty());
    assert_eq!(commands(&run(&mut r, &[ok(2, 3)])), ["gates 2"]);
}

#[test]
fn a_failed_canary_rolls_itself_back_and_stops() {
    let mut r = Rollout::new(seed());
    run(&mut r, &[Input::Start, ok(0, 0), ok(0, 1)]);
    let a = run(
        &mut r,
        &[gate(0, GateOutcome::Failed("api probe: HTTP 500".into()))],
    );
    assert_eq!(commands(&a), ["rollback 0.0", "rollback 0.1"]);
    assert_eq!(
        r.phase(),
        &Phase::RollingBack {
            scope: Scope::Through(0)
        }
    );
    let a = run(&mut r, &[back(0, 1), back(0, 0)]);
    assert_eq!(phases(&a), ["rolled_back"]);
    assert_eq!(r.reason(), Some("api probe: HTTP 500"));
    assert_eq!(
        r.target(1, 0),
        Some(TargetState::Waiting),
        "primary never touched"
    );
}

#[test]
fn a_failed_primary_rolls_back_every_stage_last_first() {
    let mut r = Rollout::new(seed());
    run(
        &mut r,
        &[
            Input::Start,
            ok(0, 0),
            ok(0, 1),
            gate(0, GateOutcome::Passed),
            ok(1, 0),
        ],
    );
    let a = run(
        &mut r,
        &[gate(
            1,
            GateOutcome::Failed("error rate: 3 failures in a row".into()),
        )],
    );
    assert_eq!(commands(&a), ["rollback 1.0"], "the primary first");
    let a = run(&mut r, &[back(1, 0)]);
    assert_eq!(
        commands(&a),
        ["rollback 0.0", "rollback 0.1"],
        "then the canary"
    );
    let a = run(&mut r, &[back(0, 0), back(0, 1)]);
    assert_eq!(phases(&a), ["rolled_back"]);
}

#[test]
fn a_failed_full_stage_keeps_the_primary_and_ends_partial() {
    let mut r = Rollout::new(seed());
    run(
        &mut r,
        &[
            Input::Start,
            ok(0, 0),
            ok(0, 1),
            gate(0, GateOutcome::Passed),
            ok(1, 0),
            gate(1, GateOutcome::Passed),
            ok(2, 0),
            ok(2, 1),
        ],
    );
    // sin's deploy fails while bom's runs: bom answers first, then only the full stage goes back.
    let a = run(
        &mut r,
        &[Input::Deployed {
            stage: 2,
            target: 2,
            error: Some("exit status 1".into()),
        }],
    );
    assert!(commands(&a).is_empty(), "bom's deploy still runs: {a:?}");
    assert_eq!(
        r.phase(),
        &Phase::RollingBack {
            scope: Scope::Stage(2)
        }
    );
    let a = run(&mut r, &[ok(2, 3)]);
    assert_eq!(commands(&a), ["rollback 2.0", "rollback 2.1"]);
    let a = run(&mut r, &[back(2, 0), back(2, 1)]);
    assert_eq!(commands(&a), ["rollback 2.2", "rollback 2.3"]);
    let a = run(&mut r, &[back(2, 2), back(2, 3)]);
    assert_eq!(phases(&a), ["succeeded_partial"]);
    assert_eq!(
        r.target(1, 0),
        Some(TargetState::Deployed),
        "the primary stays"
    );
    assert_eq!(r.reason(), Some("the deploy of sin failed: exit status 1"));
}

#[test]
fn a_failed_rollback_ends_failed_and_still_rolls_back_the_rest() {
    let mut r = Rollout::new(seed());
    run(&mut r, &[Input::Start, ok(0, 0), ok(0, 1)]);
    run(&mut r, &[gate(0, GateOutcome::TimedOut)]);
    let a = run(
        &mut r,
        &[
            Input::RolledBack {
                stage: 0,
                target: 0,
                error: Some("timed out after 60 s".into()),
            },
            back(0, 1),
        ],
    );
    assert_eq!(phases(&a), ["failed"]);
    assert_eq!(r.target(0, 1), Some(TargetState::RolledBack));
    assert!(
        r.reason().unwrap().contains("the rollback of lhr failed"),
        "{:?}",
        r.reason()
    );
}

#[test]
fn an_inconclusive_gate_pauses_for_a_person() {
    let mut r = Rollout::new(seed());
    run(&mut r, &[Input::Start, ok(0, 0), ok(0, 1)]);
    let a = run(
        &mut r,
        &[gate(
            0,
            GateOutcome::Inconclusive("latency 0.03 between pass and fail".into()),
        )],
    );
    assert!(a.contains(&Action::StopGates { stage: 0 }));
    assert!(matches!(r.phase(), Phase::Paused { stage: 0, .. }));
    // Resume: the gate is measured again from scratch.
    let a = run(&mut r, &[Input::Resume]);
    assert_eq!(commands(&a), ["gates 0"]);
    run(
        &mut r,
        &[gate(0, GateOutcome::Inconclusive("again".into()))],
    );
    // Promote: the person passes the stage.
    let a = run(&mut r, &[Input::Promote { full: false }]);
    assert_eq!(commands(&a), ["deploy 1.0"]);
}

#[test]
fn pause_holds_new_deploys_and_resume_goes_on() {
    let mut r = Rollout::new(vec![stage("all", &["a", "b", "c"], true, 1)]);
    run(&mut r, &[Input::Start]);
    run(&mut r, &[Input::Pause]);
    let a = run(&mut r, &[ok(0, 0)]);
    assert!(commands(&a).is_empty(), "paused: b waits");
    assert_eq!(
        r.step(&Input::Pause).unwrap_err().code,
        "already_paused",
        "twice"
    );
    let a = run(&mut r, &[Input::Resume]);
    assert_eq!(commands(&a), ["deploy 0.1"]);
}

#[test]
fn promote_full_skips_every_later_gate() {
    let mut r = Rollout::new(seed());
    run(&mut r, &[Input::Start, ok(0, 0), ok(0, 1)]);
    let a = run(&mut r, &[Input::Promote { full: true }]);
    assert_eq!(commands(&a), ["deploy 1.0"]);
    let a = run(&mut r, &[ok(1, 0)]);
    assert_eq!(
        commands(&a),
        ["deploy 2.0", "deploy 2.1"],
        "no gate for the primary"
    );
    let a = run(&mut r, &[ok(2, 0), ok(2, 1), ok(2, 2), ok(2, 3)]);
    assert_eq!(r.phase(), &Phase::Succeeded, "{a:?}");
}

#[test]
fn promote_refuses_a_stage_still_deploying_without_full() {
    let mut r = Rollout::new(seed());
    run(&mut r, &[Input::Start]);
    let e = r.step(&Input::Promote { full: false }).unwrap_err();
    assert_eq!(e.code, "not_verifying");
    assert_eq!(r.phase(), &Phase::Deploying { stage: 0 }, "nothing changed");
}

#[test]
fn abort_rolls_back_what_was_deployed_after_running_commands_finish() {
    let mut r = Rollout::new(seed());
    run(
        &mut r,
        &[
            Input::Start,
            ok(0, 0),
            ok(0, 1),
            gate(0, GateOutcome::Passed),
        ],
    );
    let a = run(&mut r, &[Input::Abort]);
    assert!(commands(&a).is_empty(), "ewr's deploy is running: {a:?}");
    let a = run(&mut r, &[ok(1, 0)]);
    assert_eq!(commands(&a), ["rollback 1.0"]);
    let a = run(&mut r, &[back(1, 0)]);
    assert_eq!(commands(&a), ["rollback 0.0", "rollback 0.1"]);
    let a = run(&mut r, &[back(0, 0), back(0, 1)]);
    assert_eq!(phases(&a), ["aborted"]);
    assert_eq!(r.step(&Input::Resume).unwrap_err().code, "run_finished");
}

#[test]
fn stale_answers_change_nothing() {
    let mut r = Rollout::new(seed());
    run(&mut r, &[Input::Start, ok(0, 0), ok(0, 1)]);
    let before = r.clone();
    assert!(run(
        &mut r,
        &[ok(0, 0), gate(1, GateOutcome::Passed), back(0, 0)]
    )
    .is_empty());
    assert_eq!(r, before);
}

#[test]
fn recovery_redoes_what_was_in_flight_and_verifies_again() {
    let inputs = [
        Input::Start,
        ok(0, 0),
        ok(0, 1),
        gate(0, GateOutcome::Passed),
        ok(1, 0),
    ];
    let mut r = Rollout::new(seed());
    run(&mut r, &inputs);
    // The journal replayed into a fresh machine gives the same run: the primary's gate again,
    // no deploy command again.
    let mut replayed = Rollout::new(seed());
    run(&mut replayed, &inputs);
    assert_eq!(replayed, r);
    assert_eq!(replayed.recover(), [Action::StartGates { stage: 1 }]);
    // A deploy that started and never answered runs again.
    let mut r = Rollout::new(seed());
    run(&mut r, &[Input::Start, ok(0, 0)]);
    assert_eq!(
        r.recover(),
        [Action::Deploy {
            stage: 0,
            target: 1
        }]
    );
}

#[test]
fn rollback_to_rolls_every_target_back_last_stage_first() {
    let mut r = Rollout::rollback_to(seed());
    let a = run(&mut r, &[Input::Start]);
    assert_eq!(commands(&a), ["rollback 2.0", "rollback 2.1"]);
    let a = run(&mut r, &[back(2, 0), back(2, 1), back(2, 2), back(2, 3)]);
    assert_eq!(
        commands(&a),
        ["rollback 2.2", "rollback 2.3", "rollback 1.0"]
    );
    let a = run(&mut r, &[back(1, 0), back(0, 0), back(0, 1)]);
    assert_eq!(phases(&a), ["rolled_back"]);
}

// ----- properties -----------------------------------------------------------------------------

/// A random event the engine or an operator could send; command results answer a running
/// command picked by index.
#[derive(Debug, Clone)]
enum Ev {
    Answer { pick: usize, ok: bool },
    Gate(u8),
    Promote(bool),
    Pause,
    Resume,
    Abort,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        6 => (any::<usize>(), prop::bool::weighted(0.85)).prop_map(|(pick, ok)| Ev::Answer { pick, ok }),
        3 => (0u8..4).prop_map(Ev::Gate),
        1 => any::<bool>().prop_map(Ev::Promote),
        1 => Just(Ev::Pause),
        1 => Just(Ev::Resume),
        1 => Just(Ev::Abort),
    ]
}

fn shape() -> impl Strategy<Value = Vec<StageShape>> {
    prop::collection::vec((1usize..5, any::<bool>(), 1usize..4), 1..4).prop_map(|stages| {
        stages
            .into_iter()
            .enumerate()
            .map(|(i, (n, critical, parallelism))| StageShape {
                name: format!("s{i}"),
                targets: (0..n).map(|t| format!("t{i}{t}")).collect(),
                critical,
                parallelism,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever happens: never more commands at once than a stage's parallelism, never a
    /// deploy of a target twice, never a deploy once rolling back or after a later stage
    /// began, rollbacks only of targets whose deploy started and each at most once, nothing
    /// after the end, and an end that says what happened.
    #[test]
    fn a_run_keeps_its_rules(stages in shape(), evs in prop::collection::vec(ev(), 0..80)) {
        let mut r = Rollout::new(stages.clone());
        let mut running: Vec<(bool, usize, usize)> = Vec::new(); // (is rollback, stage, target)
        let mut deployed = std::collections::BTreeSet::new();
        let mut rolled = std::collections::BTreeSet::new();
        let mut highest_stage = 0;
        let mut unwinding = false;
        let inputs = [Input::Start];
        let mut i = 0;
        while i < inputs.len() + evs.len() {
            let input = if i < inputs.len() { inputs[i].clone() } else {
                match &evs[i - inputs.len()] {
                    Ev::Answer { pick, ok } if !running.is_empty() => {
                        let (rb, s, t) = running.remove(pick % running.len());
                        let error = (!ok).then(|| "boom".to_string());
                        if rb { Input::RolledBack { stage: s, target: t, error } }
                        else { Input::Deployed { stage: s, target: t, error } }
                    }
                    Ev::Answer { .. } => Input::Pause,
                    Ev::Gate(g) => {
                        let stage = r.phase().stage().unwrap_or(0);
                        Input::Gate { stage, outcome: match g {
                            0 => GateOutcome::Passed,
                            1 => GateOutcome::Failed("x".into()),
                            2 => GateOutcome::Inconclusive("y".into()),
                            _ => GateOutcome::TimedOut,
                        }}
                    }
                    Ev::Promote(full) => Input::Promote { full: *full },
                    Ev::Pause => Input::Pause,
                    Ev::Resume => Input::Resume,
                    Ev::Abort => Input::Abort,
                }
            };
            i += 1;
            let was_terminal = r.phase().is_terminal();
            let before = r.clone();
            let actions = match r.step(&input) {
                Ok(a) => a,
                Err(_) => { prop_assert_eq!(&r, &before, "a refusal changes nothing"); continue; }
            };
            if was_terminal { prop_assert!(actions.is_empty(), "nothing after the end"); }
            for a in &actions {
                match a {
                    Action::Deploy { stage, target } => {
                        prop_assert!(!unwinding, "no deploy while rolling back");
                        prop_assert!(*stage >= highest_stage, "stages in order");
                        highest_stage = *stage;
                        prop_assert!(deployed.insert((*stage, *target)), "deployed twice");
                        running.push((false, *stage, *target));
                    }
                    Action::Rollback { stage, target } => {
                        prop_assert!(deployed.contains(&(*stage, *target)), "rolled back untouched");
                        prop_assert!(rolled.insert((*stage, *target)), "rolled back twice");
                        prop_assert!(!running.iter().any(|(rb, ..)| !rb), "a deploy still runs");
                        running.push((true, *stage, *target));
                    }
                    Action::Entered(Phase::RollingBack { .. }) => unwinding = true,
                    _ => {}
                }
            }
            for (s, st) in stages.iter().enumerate() {
                let n = running.iter().filter(|(_, rs, _)| *rs == s).count();
                prop_assert!(n <= st.parallelism, "{} running in stage {} (parallelism {})", n, s, st.parallelism);
            }
        }
        match r.phase() {
            Phase::Succeeded => {
                prop_assert!(rolled.is_empty());
                for (s, st) in stages.iter().enumerate() {
                    for t in 0..st.targets.len() {
                        prop_assert_eq!(r.target(s, t), Some(TargetState::Deployed));
                    }
                }
            }
            Phase::RolledBack | Phase::Aborted => {
                prop_assert!(r.all_touched_rolled_back(stages.len() - 1));
            }
            _ => {}
        }
    }

    /// The journal is the inputs: replaying them gives the same run.
    #[test]
    fn replay_rebuilds_the_same_run(stages in shape(), evs in prop::collection::vec(ev(), 0..60)) {
        let mut r = Rollout::new(stages.clone());
        let mut journal = vec![Input::Start];
        r.step(&Input::Start).unwrap();
        let mut running: Vec<(bool, usize, usize)> = Vec::new();
        for a in r.recover() {
            if let Action::Deploy { stage, target } = a { running.push((false, stage, target)); }
        }
        for e in evs {
            let input = match e {
                Ev::Answer { pick, ok } if !running.is_empty() => {
                    let (rb, s, t) = running.remove(pick % running.len());
                    let error = (!ok).then(|| "boom".to_string());
                    if rb { Input::RolledBack { stage: s, target: t, error } } else { Input::Deployed { stage: s, target: t, error } }
                }
                Ev::Gate(0) => Input::Gate { stage: r.phase().stage().unwrap_or(0), outcome: GateOutcome::Passed },
                Ev::Gate(_) => Input::Gate { stage: r.phase().stage().unwrap_or(0), outcome: GateOutcome::Failed("x".into()) },
                Ev::Promote(full) => Input::Promote { full },
                Ev::Abort => Input::Abort,
                _ => Input::Resume,
            };
            if let Ok(actions) = r.step(&input) {
                journal.push(input);
                for a in actions {
                    match a {
                        Action::Deploy { stage, target } => running.push((false, stage, target)),
                        Action::Rollback { stage, target } => running.push((true, stage, target)),
                        _ => {}
                    }
                }
            }
        }
        let mut replayed = Rollout::new(stages);
        for input in &journal { let _ = replayed.step(input); }
        prop_assert_eq!(&replayed, &r);
    }
}

// ----- analysis -------------------------------------------------------------------------------

use Measurement::{Error as E, Failure as F, Inconclusive as I, Success as S};

/// Feed measurements of one check; the verdict after each.
fn tally(rules: Rules, ms: &[Measurement]) -> Vec<Option<GateVerdict>> {
    let mut g = Gate::new([rules]);
    ms.iter().map(|m| g.record(0, *m)).collect()
}

#[test]
fn a_p0_check_fails_on_its_first_failure() {
    let v = tally(Rules::of(Severity::P0), &[F]);
    assert_eq!(
        v,
        [Some(GateVerdict::Failed {
            check: 0,
            severity: Severity::P0,
            by: FailedBy::ConsecutiveFailures
        })]
    );
}

#[test]
fn a_p1_check_fails_after_three_failures_in_a_row() {
    let rules = Rules {
        count: 5,
        ..Rules::of(Severity::P1)
    };
    let v = tally(rules, &[F, F, S, F, F, F]);
    assert_eq!(
        v[..5],
        [None, None, None, None, None],
        "a success breaks the run"
    );
    assert!(matches!(
        v[5],
        Some(GateVerdict::Failed {
            by: FailedBy::ConsecutiveFailures,
            ..
        })
    ));
}

#[test]
fn analysis_limits_as_argo_counts_them() {
    let cases: Vec<(&str, Rules, Vec<Measurement>, Option<GateVerdict>)> = vec![
        (
            "count successes pass",
            Rules {
                count: 3,
                ..Rules::of(Severity::P1)
            },
            vec![S, F, S, S],
            Some(GateVerdict::Passed),
        ),
        (
            "not yet",
            Rules {
                count: 3,
                ..Rules::of(Severity::P1)
            },
            vec![S, S],
            None,
        ),
        (
            "failure limit counts all failures",
            Rules {
                count: 9,
                failure_limit: Some(1),
                ..Rules::of(Severity::P1)
            },
            vec![F, S, F],
            Some(GateVerdict::Failed {
                check: 0,
                severity: Severity::P1,
                by: FailedBy::FailureLimit,
            }),
        ),
        (
            "four errors in a row are tolerated",
            Rules::of(Severity::P0),
            vec![E, E, E, E, S],
            Some(GateVerdict::Passed),
        ),
        (
            "the fifth is not",
            Rules::of(Severity::P0),
            vec![E, E, E, E, E],
            Some(GateVerdict::Failed {
                check: 0,
                severity: Severity::P0,
                by: FailedBy::ConsecutiveErrors,
            }),
        ),
        (
            "an error is not a failure",
            Rules::of(Severity::P0),
            vec![E, S],
            Some(GateVerdict::Passed),
        ),
        (
            "inconclusive pauses at once by default",
            Rules::of(Severity::P1),
            vec![I],
            Some(GateVerdict::Inconclusive { check: 0 }),
        ),
        (
            "unless tolerated",
            Rules {
                inconclusive_limit: 1,
                ..Rules::of(Severity::P1)
            },
            vec![I, S],
            Some(GateVerdict::Passed),
        ),
    ];
    for (name, rules, ms, want) in cases {
        let v = tally(rules, &ms);
        assert_eq!(*v.last().unwrap(), want, "{name}");
    }
}

#[test]
fn a_gate_passes_when_every_check_has_and_fails_when_one_does() {
    let mut g = Gate::new([Rules::of(Severity::P0), Rules::of(Severity::P1)]);
    assert_eq!(g.record(0, S), None, "the second has not passed");
    assert!(!g.open(0) && g.open(1));
    assert_eq!(g.record(1, S), Some(GateVerdict::Passed));
    assert_eq!(
        Gate::new([]).verdict(),
        Some(GateVerdict::Passed),
        "no checks"
    );
    let mut g = Gate::new([Rules::of(Severity::P1), Rules::of(Severity::P0)]);
    g.record(0, S);
    assert!(matches!(
        g.record(1, F),
        Some(GateVerdict::Failed { check: 1, .. })
    ));
}

#[test]
fn conditions_compare_numbers_exactly_and_strings_by_equality() {
    let cases = [
        ("<= 0.01", json!(0.01), Some(true)),
        ("< 1e-3", json!(0.0009), Some(true)),
        ("> -2", json!(-1.5), Some(true)),
        ("> -2", json!(-2.5), Some(false)),
        ("== 100", json!(1e2), Some(true)),
        ("== 0", json!(-0.0), Some(true)),
        (
            ">= 12345678901234567890",
            json!(12345678901234567891u64),
            Some(true),
        ),
        ("== ok", json!("ok"), Some(true)),
        ("== \"v2.1\"", json!("v2.1"), Some(true)),
        ("!= ok", json!("down"), Some(true)),
        ("== true", json!(true), Some(true)),
        ("< 5", json!("four"), None),
        ("== ok", json!({"a": 1}), None),
    ];
    for (cond, v, want) in cases {
        let c = Condition::parse("pass", cond).unwrap();
        assert_eq!(c.holds(&v), want, "{cond} on {v}");
    }
    // Digits beyond a float's: exact where JSON numbers keep their text (the engine's build,
    // serde_json's arbitrary_precision).
    let fine: serde_json::Value = serde_json::from_str("0.0100000000000000000001").unwrap();
    if fine.to_string().as_str() == "0.0100000000000000000001" {
        let c = Condition::parse("pass", "<= 0.01").unwrap();
        assert_eq!(c.holds(&fine), Some(false));
        let c = Condition::parse("pass", "> 0.01").unwrap();
        assert_eq!(c.holds(&fine), Some(true));
    }
    for bad in ["0.01", "<", "<= ok", "=~ x"] {
        assert_eq!(
            Condition::parse("pass", bad).unwrap_err().code,
            "invalid_condition",
            "{bad}"
        );
    }
}

#[test]
fn the_band_between_pass_and_fail_is_inconclusive() {
    let pass = Condition::parse("pass", "<= 0.01").unwrap();
    let fail = Condition::parse("fail", "> 0.05").unwrap();
    assert_eq!(judge(&json!(0.005), &pass, Some(&fail)), S);
    assert_eq!(judge(&json!(0.03), &pass, Some(&fail)), I);
    assert_eq!(judge(&json!(0.06), &pass, Some(&fail)), F);
    assert_eq!(
        judge(&json!(0.03), &pass, None),
        F,
        "no band without a fail condition"
    );
    assert_eq!(judge(&json!("n/a"), &pass, Some(&fail)), E);
    let doc = json!({"data": {"items": [{"version": "v2"}]}});
    assert_eq!(at_path(&doc, "data.items.0.version"), Some(&json!("v2")));
    assert_eq!(at_path(&doc, "data.missing"), None);
}

// ----- templates and versions -----------------------------------------------------------------

#[test]
fn templates_fill_placeholders_and_refuse_unknown_ones() {
    let t = Template::parse("deploy[1]", "{target}-{version}.tar {{raw}}").unwrap();
    let vars = Vars {
        version: "v2",
        previous: Some("v1"),
        target: "lhr",
        stage: "canary",
    };
    assert_eq!(t.render(&vars).unwrap(), "lhr-v2.tar {raw}");
    assert!(t.uses("target") && !t.uses("previous"));
    let e = Template::parse("deploy[2]", "{verison}").unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        ("unknown_placeholder", Some("deploy[2]"))
    );
    assert_eq!(
        Template::parse("x", "{version").unwrap_err().code,
        "invalid_template"
    );
    assert_eq!(
        Template::parse("x", "a}b").unwrap_err().code,
        "invalid_template"
    );
    let p = Template::parse("rollback[1]", "{previous}").unwrap();
    let none = Vars {
        previous: None,
        ..vars
    };
    assert_eq!(p.render(&none), Err("previous"));
    assert_eq!(argv("deploy", &[]).unwrap_err().code, "invalid_argv");
    assert_eq!(
        argv("deploy", &["".into()]).unwrap_err().code,
        "invalid_argv"
    );
}

#[test]
fn versions_are_plain_text_never_an_option() {
    for good in ["v2.1.0", "3f2a9c1", "release/2026-12", "build+7", "a@b"] {
        assert_eq!(version("version", good).unwrap(), good);
    }
    for bad in ["", "-rf", "v 2", "v2;rm", "$(x)", &"x".repeat(129)] {
        assert_eq!(
            version("version", bad).unwrap_err().code,
            "invalid_version",
            "{bad:?}"
        );
    }
}

// ----- windows --------------------------------------------------------------------------------

fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::America::New_York
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn session(calendar: &str) -> Session {
    let (tz, open, close) = builtin_hours(calendar).unwrap();
    Session {
        calendar: Calendar::builtin(calendar).unwrap(),
        tz,
        open,
        close,
    }
}

#[test]
fn the_new_york_session_is_open_from_0930_to_1600_on_trading_days() {
    let s = session("us_equities");
    // Monday 2026-12-07.
    assert_eq!(s.open_until(ny(2026, 12, 7, 9, 29)), None);
    assert_eq!(
        s.open_until(ny(2026, 12, 7, 9, 30)),
        Some(ny(2026, 12, 7, 16, 0))
    );
    assert_eq!(
        s.open_until(ny(2026, 12, 7, 15, 59)),
        Some(ny(2026, 12, 7, 16, 0))
    );
    assert_eq!(s.open_until(ny(2026, 12, 7, 16, 0)), None);
    assert_eq!(s.open_until(ny(2026, 12, 5, 12, 0)), None, "Saturday");
    assert_eq!(s.open_until(ny(2026, 12, 25, 12, 0)), None, "Christmas");
    // The day after Thanksgiving closes at 13:00.
    assert_eq!(
        s.open_until(ny(2026, 11, 27, 12, 0)),
        Some(ny(2026, 11, 27, 13, 0))
    );
    assert_eq!(s.open_until(ny(2026, 11, 27, 13, 30)), None);
}

#[test]
fn an_overnight_session_belongs_to_the_day_it_closes() {
    let s = session("cme_futures");
    // Sunday 17:00 Chicago (18:00 New York) opens Monday's session.
    assert_eq!(s.open_until(ny(2026, 12, 6, 17, 59)), None);
    assert_eq!(
        s.open_until(ny(2026, 12, 6, 18, 0)),
        Some(ny(2026, 12, 7, 17, 0))
    );
    // The daily halt 16:00–17:00 Chicago.
    assert_eq!(s.open_until(ny(2026, 12, 7, 17, 30)), None);
    assert_eq!(
        s.open_until(ny(2026, 12, 7, 18, 30)),
        Some(ny(2026, 12, 8, 17, 0))
    );
    // Friday evening opens nothing until Sunday.
    assert_eq!(s.open_until(ny(2026, 12, 11, 18, 30)), None);
}

#[test]
fn session_hours_parse() {
    let (o, c) = parse_hours("session", "09:30-16:00").unwrap();
    assert_eq!(
        (o.to_string(), c.to_string()),
        ("09:30:00".into(), "16:00:00".into())
    );
    for bad in ["9-5", "09:30", "10:00-10:00", "25:00-26:00"] {
        assert_eq!(
            parse_hours("session", bad).unwrap_err().code,
            "invalid_session",
            "{bad}"
        );
    }
}
