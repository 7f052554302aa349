//! Run-time estimates from this machine's history: the durations of earlier successful runs
//! of the same plan changes, read from the journals. The median is taken by
//! [`crate::window::Estimate::from_history`].

use std::time::Duration;

use crate::engine::Outcome;
use crate::journal::{self, StateDir};
use crate::plan::RunRequest;
use crate::plan::facts::Capture;
use crate::runner::record::Record;

/// The plan changes of a run, as `(from, to)` per add-on, sorted: two runs are comparable when
/// these are equal (add-on names differ between apps; plan pairs are what takes the time).
pub fn plan_pairs(request: &RunRequest, capture: &Capture) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = capture
        .found_changes(&request.changes)
        .map(|(c, a)| (a.plan.clone(), crate::plans::bare_name(&c.plan).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Durations (first record to last) of the successful runs in `state` whose plan pairs equal
/// `pairs` and that used the same strategy (a live swap and an in-place change of the same
/// plans take very different times). Unreadable journals are skipped: history only sharpens
/// an estimate.
pub fn durations(
    state: &StateDir,
    pairs: &[(String, String)],
    strategy: crate::playbook::Strategy,
) -> Vec<Duration> {
    let Ok(ids) = state.run_ids() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for id in ids {
        let path = state.run_dir(&id).join(journal::JOURNAL_FILE);
        let Ok(entries) = journal::read::<Record>(&path) else {
            continue;
        };
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            continue;
        };
        let request = entries.iter().find_map(|e| match &e.record {
            Record::Started { request, .. } => Some(request),
            _ => None,
        });
        let capture = entries.iter().find_map(|e| match &e.record {
            Record::Captured { capture } => Some(capture),
            _ => None,
        });
        let succeeded = entries.iter().any(|e| {
            matches!(
                e.record,
                Record::Finished {
                    outcome: Outcome::Succeeded,
                    ..
                }
            )
        });
        if let (Some(request), Some(capture), true) = (request, capture, succeeded)
            && plan_pairs(request, capture) == pairs
            && crate::playbook::Strategy::of(&request.playbook) == strategy
        {
            out.push(Duration::from_millis(
                u64::try_from(last.at_ms - first.at_ms).unwrap_or(0),
            ));
        }
    }
    out
}
