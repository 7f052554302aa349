//! The safety rules every playbook must pass, whether built in, stored or read from a plan file:
//! bounds on every number, and the order of steps that keeps data safe.

use std::time::Duration;

use super::{Action, Params, Step, duration};

/// Step timeouts: at least a second (a zero timeout fails every step, after the plan change
/// too), at most a day (a longer one is a typo, and durations this large overflow clocks).
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Retries: enough for flaky calls, few enough that a step ends.
const MAX_ATTEMPTS: u32 = 20;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Compensation deadlines: at least a second (zero would give up at the first 429), at most
/// a day (like step timeouts: a longer one is a typo, and a run should end).
const MIN_COMPENSATION_DEADLINE: Duration = Duration::from_secs(1);
const MAX_COMPENSATION_DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// Connections per dyno: a bound that keeps `dynos x connections` far from overflowing.
pub const MAX_CONNECTIONS_PER_DYNO: u32 = 10_000;

pub(super) fn check_timeout(t: Duration) -> Result<(), String> {
    if t < MIN_TIMEOUT || t > MAX_TIMEOUT {
        return Err(format!(
            "timeout {} is out of range: write between 1s and 24h, e.g. \"5m\"",
            duration::format(t)
        ));
    }
    Ok(())
}

pub(super) fn check_retry(attempts: u32, backoff: Duration) -> Result<(), String> {
    if attempts == 0 || attempts > MAX_ATTEMPTS {
        return Err(format!(
            "retry.attempts {attempts} is out of range: write 1 (no retry) to {MAX_ATTEMPTS}"
        ));
    }
    if backoff > MAX_BACKOFF {
        return Err(format!(
            "retry.backoff {} is out of range: write at most 1h, e.g. \"5s\"",
            duration::format(backoff)
        ));
    }
    Ok(())
}

pub(super) fn check_compensation_deadline(d: Duration) -> Result<(), String> {
    if d < MIN_COMPENSATION_DEADLINE || d > MAX_COMPENSATION_DEADLINE {
        return Err(format!(
            "compensation_deadline {} is out of range: write between 1s and 24h, e.g. \"15m\"",
            duration::format(d)
        ));
    }
    Ok(())
}

/// The settle period's bounds: below 100 ms it is less than one poll, so nothing is held;
/// above 10 minutes it only lengthens the downtime.
const MIN_SETTLE: Duration = Duration::from_millis(100);
const MAX_SETTLE: Duration = Duration::from_secs(600);

/// Checks a settle period (the playbook's `settle` or `--settle`).
///
/// # Errors
/// A message naming the bounds.
pub fn check_settle(d: Duration) -> Result<(), String> {
    if d < MIN_SETTLE || d > MAX_SETTLE {
        return Err(format!(
            "settle {} is out of range: write between 100ms and 10m, e.g. \"2s\"",
            duration::format(d)
        ));
    }
    Ok(())
}

/// Checks a connections-per-dyno figure (a playbook parameter or `--connections`).
///
/// # Errors
/// A message naming the bounds.
pub fn check_connections(name: &str, n: u32) -> Result<(), String> {
    if n == 0 || n > MAX_CONNECTIONS_PER_DYNO {
        return Err(format!(
            "{name} {n} is out of range: write 1 to {MAX_CONNECTIONS_PER_DYNO}"
        ));
    }
    Ok(())
}

pub(super) fn check_params(p: &Params) -> Result<(), String> {
    if p.writers.is_empty() {
        return Err("params.writers is empty: name at least one process type".into());
    }
    if let Some((i, w)) = p
        .writers
        .iter()
        .enumerate()
        .find(|(i, w)| w.trim().is_empty() || p.writers[..*i].contains(w))
    {
        return Err(format!(
            "params.writers[{i}] {w:?} is empty or named twice: give each process type once"
        ));
    }
    if !(p.memory_margin > 0.0 && p.memory_margin <= 1.0) {
        return Err(format!(
            "memory_margin {} is out of range: write a fraction such as 0.9",
            p.memory_margin
        ));
    }
    check_connections("connections_per_dyno", p.connections_per_dyno)?;
    check_connections("cache_connections_per_dyno", p.cache_connections_per_dyno)?;
    check_compensation_deadline(p.compensation_deadline)?;
    check_settle(p.settle)
}

/// Order rules that keep a playbook safe: facts before guards, guards before any write, a
/// snapshot before the plan changes, the formation restored after the writers stop.
pub(super) fn check_order(steps: &[Step]) -> Result<(), String> {
    let pos = |a: Action| steps.iter().position(|s| s.action == a);
    let need =
        |a: Action| pos(a).ok_or_else(|| format!("the playbook has no \"{a}\" step: add one"));
    let capture = need(Action::Capture)?;
    let guard = need(Action::Guard)?;
    if guard < capture {
        return Err(
            "\"guard\" comes before \"capture\": guards judge captured facts, so capture first"
                .into(),
        );
    }
    if let Some(first_write) = steps.iter().position(|s| s.action.writes())
        && first_write < guard
    {
        return Err(format!(
            "\"{}\" writes before \"guard\": move every guard before the first write",
            steps[first_write].action
        ));
    }
    if pos(Action::MoveAttachments).is_some() {
        return check_live_swap_order(steps);
    }
    for swap_only in [
        Action::ProvisionNew,
        Action::CopyLive,
        Action::CatchUp,
        Action::RetireOld,
    ] {
        if pos(swap_only).is_some() {
            return Err(format!(
                "\"{swap_only}\" belongs to a live swap, which needs a \"move-attachments\" \
                 step: add the live-swap steps or remove it"
            ));
        }
    }
    let change = need(Action::ChangePlan)?;
    let snapshot = need(Action::Snapshot)?;
    let wait = need(Action::WaitProvisioned)?;
    let verify = need(Action::Verify)?;
    if snapshot > change {
        return Err(
            "\"snapshot\" comes after \"change-plan\": snapshot the data before the plan changes"
                .into(),
        );
    }
    if wait < change || verify < wait {
        return Err("the order must be change-plan, then wait-provisioned, then verify".into());
    }
    // Writers must be stopped and drained before the snapshot, or writes after it are lost.
    let scale = need(Action::Scale)?;
    let drained = need(Action::WaitDrained)?;
    let restore = need(Action::RestoreFormation)?;
    if !(scale < drained && drained < snapshot) {
        return Err(
            "the order must be scale, then wait-drained, then snapshot: stop and drain the \
             writers before the data is copied"
                .into(),
        );
    }
    if restore < verify {
        return Err(
            "\"restore-formation\" comes before \"verify\": the writers come back only onto \
             verified data"
                .into(),
        );
    }
    if let Some(late) = steps[restore + 1..].iter().find(|s| s.action.writes()) {
        return Err(format!(
            "\"{}\" writes after \"restore-formation\": restoring the formation is the last \
             change a playbook makes",
            late.action
        ));
    }
    if let Some(m) = pos(Action::Maintenance)
        && m > change
    {
        return Err("\"maintenance\" must come before \"change-plan\"".into());
    }
    Ok(())
}

/// Order rules of a live swap: a new add-on provisioned and copied while the app runs, the
/// writers stopped and drained before the catch-up, the catch-up's proof before the attachments
/// move, and the writers back only after the move. No in-place plan change in the same run.
fn check_live_swap_order(steps: &[Step]) -> Result<(), String> {
    let pos = |a: Action| steps.iter().position(|s| s.action == a);
    let need = |a: Action| {
        pos(a).ok_or_else(|| format!("the live-swap playbook has no \"{a}\" step: add one"))
    };
    for in_place in [Action::ChangePlan, Action::WaitProvisioned, Action::Verify] {
        if pos(in_place).is_some() {
            return Err(format!(
                "\"{in_place}\" changes the plan in place, and \"move-attachments\" swaps add-ons: \
                 a playbook does one or the other; remove one of them"
            ));
        }
    }
    let order = [
        Action::ProvisionNew,
        Action::CopyLive,
        Action::Scale,
        Action::WaitDrained,
        Action::CatchUp,
        Action::MoveAttachments,
        Action::RestoreFormation,
    ];
    let mut last = 0;
    for (i, a) in order.iter().enumerate() {
        let at = need(*a)?;
        if i > 0 && at < last {
            return Err(format!(
                "the live-swap order must be {}: \"{a}\" comes too early",
                order.map(Action::name).join(", ")
            ));
        }
        last = at;
    }
    let drained = need(Action::WaitDrained)?;
    let moved = need(Action::MoveAttachments)?;
    if let Some(s) = pos(Action::Snapshot)
        && !(drained < s && s < moved)
    {
        return Err(
            "\"snapshot\" in a live swap goes between \"wait-drained\" and \"move-attachments\""
                .into(),
        );
    }
    if let Some(m) = pos(Action::Maintenance)
        && m > moved
    {
        return Err("\"maintenance\" must come before \"move-attachments\"".into());
    }
    let restore = need(Action::RestoreFormation)?;
    if let Some(late) = steps[restore + 1..]
        .iter()
        .find(|s| s.action.writes() && s.action != Action::RetireOld)
    {
        return Err(format!(
            "\"{}\" writes after \"restore-formation\": only \"retire-old\" may follow it",
            late.action
        ));
    }
    Ok(())
}
