//! Unit and property tests of the engine: every path ends in exactly one terminal state, each
//! compensation runs at most once, and the formation is restored on every path that may
//! restore it.

use proptest::prelude::*;

use super::step::ALL_ACTIONS;
use super::*;

/// The in-place playbook's actions (the first eleven of the registry).
fn builtin() -> Vec<Action> {
    ALL_ACTIONS[..IN_PLACE].to_vec()
}

const IN_PLACE: usize = 11;

/// The live-swap playbook's actions.
fn live_swap() -> Vec<Action> {
    crate::playbook::Playbook::of_strategy(crate::playbook::Strategy::LiveSwap).actions()
}

fn index(actions: &[Action], a: Action) -> usize {
    actions
        .iter()
        .position(|x| *x == a)
        .expect("in the playbook")
}

#[test]
fn a_live_swap_is_at_risk_from_the_move_and_proven_by_it() {
    let actions = live_swap();
    let moved = index(&actions, Action::MoveAttachments);
    let mut e = Engine::new(actions.clone());
    run_forward(&mut e, moved);
    assert_eq!(
        e.data(),
        DataState::Untouched,
        "the copy never touches the old data"
    );
    ok(&mut e, Event::StepStarted { step: moved });
    assert_eq!(e.data(), DataState::AtRisk);
    ok(&mut e, Event::StepSucceeded { step: moved });
    assert_eq!(e.data(), DataState::Proven);
    run_forward_from(&mut e, moved + 1, actions.len());
    assert_eq!(e.outcome(), Some(Outcome::Succeeded));
}

fn run_forward_from(engine: &mut Engine, from: usize, upto: usize) {
    for step in from..upto {
        ok(engine, Event::StepStarted { step });
        ok(engine, Event::StepSucceeded { step });
    }
}

/// Runs the rollback to its end, each compensation succeeding unless it is `failing`.
fn roll_back_live(e: &mut Engine, failing: Option<Compensation>) -> Vec<(Compensation, bool)> {
    let mut seen = Vec::new();
    while let Next::Compensate {
        index,
        compensation,
    } = e.next()
    {
        let skipped = e.is_skipped(index);
        ok(e, Event::CompensationStarted { index });
        seen.push((compensation, skipped));
        if skipped {
            continue;
        }
        if Some(compensation) == failing {
            ok(
                e,
                Event::CompensationFailed {
                    index,
                    message: "refused".into(),
                    data_unsafe: false,
                },
            );
        } else {
            ok(e, Event::CompensationSucceeded { index });
        }
    }
    seen
}

#[test]
fn a_failed_move_moves_back_first_and_the_writers_return_only_after_it() {
    let actions = live_swap();
    let moved = index(&actions, Action::MoveAttachments);
    let mut e = Engine::new(actions.clone());
    run_forward(&mut e, moved);
    ok(&mut e, Event::StepStarted { step: moved });
    ok(
        &mut e,
        Event::StepFailed {
            step: moved,
            failure: failure(false),
        },
    );
    let seen = roll_back_live(&mut e, None);
    assert_eq!(
        seen,
        vec![
            (Compensation::MoveBack, false),
            (Compensation::RestoreFormation, false),
            (Compensation::RestoreMaintenance, false),
            (Compensation::RestoreNotifications, false),
            (Compensation::DestroyNew, false),
        ]
    );
    assert_eq!(e.outcome(), Some(Outcome::RolledBack));

    // A move back that fails leaves the writers stopped: the app's names may be split.
    let mut e = Engine::new(actions);
    run_forward(&mut e, moved);
    ok(&mut e, Event::StepStarted { step: moved });
    ok(
        &mut e,
        Event::StepFailed {
            step: moved,
            failure: failure(false),
        },
    );
    let seen = roll_back_live(&mut e, Some(Compensation::MoveBack));
    assert!(
        seen.contains(&(Compensation::RestoreFormation, true)),
        "{seen:?}"
    );
    assert_eq!(e.outcome(), Some(Outcome::NeedsAttention));
}

#[test]
fn a_live_swap_failing_before_the_move_rolls_back_without_touching_data() {
    let actions = live_swap();
    let catch_up = index(&actions, Action::CatchUp);
    let mut e = Engine::new(actions);
    run_forward(&mut e, catch_up);
    ok(&mut e, Event::StepStarted { step: catch_up });
    ok(
        &mut e,
        Event::StepFailed {
            step: catch_up,
            failure: failure(false),
        },
    );
    let seen = roll_back_live(&mut e, None);
    assert!(seen.iter().all(|(_, skipped)| !skipped), "{seen:?}");
    assert_eq!(seen.last(), Some(&(Compensation::DestroyNew, false)));
    assert_eq!(e.outcome(), Some(Outcome::RolledBack));
}

#[allow(clippy::needless_pass_by_value)] // call sites read better with values
fn ok(engine: &mut Engine, event: Event) {
    engine.apply(&event).expect("transition allowed");
}

fn run_forward(engine: &mut Engine, upto: usize) {
    for step in 0..upto {
        ok(engine, Event::StepStarted { step });
        ok(engine, Event::StepSucceeded { step });
    }
}

fn failure(data_unsafe: bool) -> Failure {
    Failure {
        message: "boom".into(),
        data_unsafe,
    }
}

#[test]
fn happy_path_succeeds_and_clears_the_stack() {
    let mut e = Engine::new(builtin());
    run_forward(&mut e, IN_PLACE);
    assert_eq!(e.outcome(), Some(Outcome::Succeeded));
    assert!(e.stack().is_empty());
    assert_eq!(
        e.next(),
        Next::Done {
            outcome: Outcome::Succeeded
        }
    );
}

#[test]
fn a_blocking_guard_ends_blocked_before_any_write() {
    let mut e = Engine::new(builtin());
    run_forward(&mut e, 1);
    ok(&mut e, Event::StepStarted { step: 1 });
    ok(&mut e, Event::GuardsBlocked { step: 1 });
    assert_eq!(e.outcome(), Some(Outcome::Blocked));
}

#[test]
fn failure_after_scale_down_rolls_back_in_reverse_order() {
    let mut e = Engine::new(builtin());
    run_forward(&mut e, 6); // capture .. snapshot
    ok(&mut e, Event::StepStarted { step: 6 }); // change-plan
    ok(
        &mut e,
        Event::StepFailed {
            step: 6,
            failure: failure(false),
        },
    );
    let mut order = Vec::new();
    while let Next::Compensate {
        index,
        compensation,
    } = e.next()
    {
        order.push(compensation);
        ok(&mut e, Event::CompensationStarted { index });
        ok(&mut e, Event::CompensationSucceeded { index });
    }
    assert_eq!(
        order,
        vec![
            Compensation::SettlePlan,
            Compensation::RestoreFormation,
            Compensation::RestoreMaintenance
        ]
    );
    assert_eq!(e.outcome(), Some(Outcome::RolledBack));
}

#[test]
fn unsafe_data_leaves_the_writers_stopped() {
    let mut e = Engine::new(builtin());
    run_forward(&mut e, 8);
    ok(&mut e, Event::StepStarted { step: 8 }); // verify
    ok(
        &mut e,
        Event::StepFailed {
            step: 8,
            failure: failure(true),
        },
    );
    let mut run = Vec::new();
    while let Next::Compensate {
        index,
        compensation,
    } = e.next()
    {
        let skipped = e.is_skipped(index);
        ok(&mut e, Event::CompensationStarted { index });
        if !skipped {
            run.push(compensation);
            ok(&mut e, Event::CompensationSucceeded { index });
        }
    }
    assert_eq!(run, vec![Compensation::SettlePlan]);
    assert_eq!(e.outcome(), Some(Outcome::NeedsAttention));
}

#[test]
fn a_failed_compensation_needs_attention() {
    let mut e = Engine::new(builtin());
    run_forward(&mut e, 4);
    ok(&mut e, Event::StepStarted { step: 4 });
    ok(
        &mut e,
        Event::StepFailed {
            step: 4,
            failure: failure(false),
        },
    );
    let Next::Compensate { index, .. } = e.next() else {
        panic!("expected a compensation")
    };
    ok(&mut e, Event::CompensationStarted { index });
    ok(
        &mut e,
        Event::CompensationFailed {
            index,
            message: "api down".into(),
            data_unsafe: false,
        },
    );
    while let Next::Compensate { index, .. } = e.next() {
        ok(&mut e, Event::CompensationStarted { index });
        ok(&mut e, Event::CompensationSucceeded { index });
    }
    assert_eq!(e.outcome(), Some(Outcome::NeedsAttention));
}

#[test]
fn health_failure_after_restore_needs_attention_not_rollback() {
    let mut e = Engine::new(builtin());
    run_forward(&mut e, 10);
    ok(&mut e, Event::StepStarted { step: 10 });
    ok(
        &mut e,
        Event::StepFailed {
            step: 10,
            failure: failure(false),
        },
    );
    assert_eq!(e.outcome(), Some(Outcome::NeedsAttention));
}

#[test]
fn out_of_order_events_are_errors_and_change_nothing() {
    let mut e = Engine::new(builtin());
    let before = e.clone();
    assert!(e.apply(&Event::StepStarted { step: 3 }).is_err());
    assert!(e.apply(&Event::CompensationStarted { index: 0 }).is_err());
    assert!(e.apply(&Event::GuardsBlocked { step: 0 }).is_err());
    assert_eq!(e, before);
}

#[test]
fn replay_rebuilds_the_same_engine() {
    let events = vec![
        Event::StepStarted { step: 0 },
        Event::StepSucceeded { step: 0 },
        Event::StepStarted { step: 1 },
        Event::StepSucceeded { step: 1 },
        Event::StepStarted { step: 2 },
        Event::AbortRequested {
            reason: "ctrl-c".into(),
        },
    ];
    let e = Engine::replay(builtin(), true, &events).unwrap();
    assert_eq!(
        e.next(),
        Next::Compensate {
            index: 0,
            compensation: Compensation::RestoreMaintenance
        }
    );
}

/// A random runner: each choice picks what the world does at the engine's next request.
#[derive(Debug, Clone, Copy)]
enum Choice {
    Succeed,
    Fail { data_unsafe: bool },
    Block,
    Abort,
    CompensationFails,
    Crash,
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        6 => Just(Choice::Succeed),
        1 => any::<bool>().prop_map(|data_unsafe| Choice::Fail { data_unsafe }),
        1 => Just(Choice::Block),
        1 => Just(Choice::Abort),
        1 => Just(Choice::CompensationFails),
        1 => Just(Choice::Crash),
    ]
}

proptest! {
    #[test]
    fn every_path_ends_once_and_restores_the_formation(
        choices in proptest::collection::vec(choice(), 0..64)
    ) {
        let actions = builtin();
        let mut engine = Engine::new(actions.clone());
        let mut journal: Vec<Event> = Vec::new();
        let mut compensations_started = Vec::new();
        let mut scale_started = false;
        let mut restore_step_done = false;
        // A data-unsafe failure was reported, or a compensation failed: the only excuses for
        // leaving the writers stopped.
        let mut unsafe_reported = false;
        let mut compensation_failed = false;
        let mut choices = choices.into_iter().chain(std::iter::repeat(Choice::Succeed));
        for _ in 0..200 {
            let mut push = |engine: &mut Engine, ev: Event| {
                engine.apply(&ev).expect("driver only sends allowed events");
                journal.push(ev);
            };
            match engine.next() {
                Next::Done { .. } => break,
                Next::RunStep { step, action } => {
                    let c = choices.next().unwrap();
                    if matches!(engine.state(), State::Forward { .. }) {
                        if let Choice::Abort = c {
                            push(&mut engine, Event::AbortRequested { reason: "stop".into() });
                            continue;
                        }
                        if action == Action::RestoreFormation {
                            // The writers come back: past the point of no return only onto
                            // critical data a verify proved whole.
                            prop_assert!(engine.data() != DataState::AtRisk, "restore step on unproven data");
                        }
                        push(&mut engine, Event::StepStarted { step });
                        if action == Action::Scale {
                            scale_started = true;
                        }
                    }
                    match c {
                        Choice::Block if action == Action::Guard && !engine.wrote => {
                            push(&mut engine, Event::GuardsBlocked { step });
                        }
                        Choice::Fail { data_unsafe } => {
                            unsafe_reported |= data_unsafe;
                            push(
                                &mut engine,
                                Event::StepFailed { step, failure: failure(data_unsafe) },
                            );
                        }
                        Choice::Abort => {
                            let ev = Event::AbortRequested { reason: "stop".into() };
                            if engine.apply(&ev).is_ok() {
                                journal.push(ev);
                            } else {
                                push(&mut engine, Event::StepSucceeded { step });
                            }
                        }
                        Choice::Crash => {
                            // Kill -9 here: rebuild from the journal and carry on.
                            engine = Engine::replay(actions.clone(), true, &journal).unwrap();
                        }
                        _ => {
                            push(&mut engine, Event::StepSucceeded { step });
                            if action == Action::RestoreFormation {
                                restore_step_done = true;
                            }
                        }
                    }
                }
                Next::Compensate { index, compensation } => {
                    let skipped = engine.is_skipped(index);
                    push(&mut engine, Event::CompensationStarted { index });
                    if skipped {
                        continue;
                    }
                    if compensation == Compensation::RestoreFormation {
                        prop_assert!(engine.data() != DataState::AtRisk, "formation restored on unproven data");
                    }
                    compensations_started.push(index);
                    if let Choice::CompensationFails = choices.next().unwrap() {
                        compensation_failed = true;
                        push(&mut engine, Event::CompensationFailed { index, message: "x".into(), data_unsafe: false });
                    } else {
                        push(&mut engine, Event::CompensationSucceeded { index });
                    }
                }
            }
        }
        // Exactly one terminal state.
        let outcome = engine.outcome();
        prop_assert!(outcome.is_some(), "run did not end: {:?}", engine.state());
        // Each compensation at most once.
        let mut seen = compensations_started.clone();
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), compensations_started.len());
        // Formation restored on every path, except when data is unsafe (writers must stay
        // stopped) or a compensation failed (needs attention says so).
        if scale_started && !restore_step_done {
            let restored = engine
                .stack()
                .iter()
                .enumerate()
                .any(|(i, c)| *c == Compensation::RestoreFormation && compensations_started.contains(&i));
            let excused = outcome == Some(Outcome::NeedsAttention)
                && (unsafe_reported || compensation_failed || engine.data_at_risk());
            prop_assert!(
                restored || excused,
                "scaled down but neither restored nor excused: {:?}", outcome
            );
        }
        // Blocked only before any write.
        if outcome == Some(Outcome::Blocked) {
            prop_assert!(!scale_started);
        }
        // Replaying the journal lands in the same state.
        let replayed = Engine::replay(actions, true, &journal).unwrap();
        prop_assert_eq!(replayed.state(), engine.state());
    }
}

/// Runs the rollback to its end: `settle` says whether the settle compensation succeeds.
/// Returns the compensations actually performed.
fn roll_back(e: &mut Engine, settle: bool) -> Vec<Compensation> {
    let mut run = Vec::new();
    while let Next::Compensate {
        index,
        compensation,
    } = e.next()
    {
        let skipped = e.is_skipped(index);
        ok(e, Event::CompensationStarted { index });
        if skipped {
            continue;
        }
        run.push(compensation);
        if compensation == Compensation::SettlePlan && !settle {
            ok(
                e,
                Event::CompensationFailed {
                    index,
                    message: "redis unreachable".into(),
                    data_unsafe: false,
                },
            );
        } else {
            ok(e, Event::CompensationSucceeded { index });
        }
    }
    run
}

/// The verify step (8) fails with an error that says nothing about data (an unreadable
/// server): after the plan PATCH that is unsafe by default.
fn verify_errors(critical: bool) -> Engine {
    let mut e = Engine::new(builtin()).critical(critical);
    run_forward(&mut e, 8);
    ok(&mut e, Event::StepStarted { step: 8 });
    ok(
        &mut e,
        Event::StepFailed {
            step: 8,
            failure: failure(false),
        },
    );
    e
}

#[test]
fn an_error_after_the_point_of_no_return_keeps_the_writers_stopped_unless_settle_proves_the_data() {
    let mut e = verify_errors(true);
    assert_eq!(e.data(), DataState::AtRisk);
    let run = roll_back(&mut e, false);
    assert_eq!(
        run,
        vec![Compensation::SettlePlan],
        "formation must not come back"
    );
    assert_eq!(e.outcome(), Some(Outcome::NeedsAttention));

    let mut e = verify_errors(true);
    let run = roll_back(&mut e, true);
    assert_eq!(
        run,
        vec![
            Compensation::SettlePlan,
            Compensation::RestoreFormation,
            Compensation::RestoreMaintenance
        ],
        "a settle that verified the data lets the writers back"
    );
    assert_eq!(e.data(), DataState::Proven);
    assert_eq!(e.outcome(), Some(Outcome::RolledBack));
}

#[test]
fn a_run_of_caches_only_keeps_the_looser_rule() {
    let mut e = verify_errors(false);
    assert_eq!(e.data(), DataState::Untouched);
    let run = roll_back(&mut e, false);
    assert!(run.contains(&Compensation::RestoreFormation));
}

#[test]
fn a_needs_attention_run_reopens_and_restores_only_after_a_verify() {
    let mut e = verify_errors(true);
    roll_back(&mut e, false);
    assert_eq!(e.outcome(), Some(Outcome::NeedsAttention));
    assert!(e.can_reopen());
    ok(&mut e, Event::Reopened);
    // Settle fails again: still stopped, still reopenable.
    assert_eq!(roll_back(&mut e, false), vec![Compensation::SettlePlan]);
    assert!(e.can_reopen());
    ok(&mut e, Event::Reopened);
    let run = roll_back(&mut e, true);
    assert!(run.contains(&Compensation::RestoreFormation));
    assert_eq!(e.outcome(), Some(Outcome::RolledBack));
    assert!(!e.can_reopen());
    assert!(Engine::new(builtin()).apply(&Event::Reopened).is_err());
}

#[test]
fn a_blocked_or_succeeded_run_cannot_be_reopened() {
    let mut e = Engine::new(builtin());
    run_forward(&mut e, IN_PLACE);
    assert!(!e.can_reopen());
    assert!(e.apply(&Event::Reopened).is_err());
}
