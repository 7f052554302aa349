//! Unit and property tests of the engine: every path ends in exactly one terminal state, each
//! compensation runs at most once, and the formation is restored on every path that may
//! restore it.

use proptest::prelude::*;

use super::step::ALL_ACTIONS;
use super::*;

fn builtin() -> Vec<Action> {
    ALL_ACTIONS.to_vec()
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
    run_forward(&mut e, ALL_ACTIONS.len());
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
    let e = Engine::replay(builtin(), &events).unwrap();
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
                        push(&mut engine, Event::StepStarted { step });
                        if action == Action::Scale {
                            scale_started = true;
                        }
                    }
                    match c {
                        Choice::Block if action == Action::Guard && !engine.wrote => {
                            push(&mut engine, Event::GuardsBlocked { step });
                        }
                        Choice::Fail { data_unsafe } => push(
                            &mut engine,
                            Event::StepFailed { step, failure: failure(data_unsafe) },
                        ),
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
                            engine = Engine::replay(actions.clone(), &journal).unwrap();
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
                    compensations_started.push(index);
                    if let Choice::CompensationFails = choices.next().unwrap() {
                        push(&mut engine, Event::CompensationFailed { index, message: "x".into(), data_unsafe: false });
                    } else {
                        push(&mut engine, Event::CompensationSucceeded { index });
                    }
                    let _ = compensation;
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
            prop_assert!(
                restored || outcome == Some(Outcome::NeedsAttention),
                "scaled down but neither restored nor flagged: {:?}", outcome
            );
        }
        // Blocked only before any write.
        if outcome == Some(Outcome::Blocked) {
            prop_assert!(!scale_started);
        }
        // Replaying the journal lands in the same state.
        let replayed = Engine::replay(actions, &journal).unwrap();
        prop_assert_eq!(replayed.state(), engine.state());
    }
}
