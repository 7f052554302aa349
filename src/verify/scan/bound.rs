//! The bound on a SCAN that never ends (a broken or hostile server). Pure.

/// What ends a SCAN that does not end by itself (a broken or hostile server: a cursor that
/// never returns to 0). A real iteration never repeats a cursor and returns each key a few
/// times at most (only a rehash repeats keys); with COUNT 1000 it takes about DBSIZE / 1000
/// calls, more on a sparse table. So a cursor repeated among the recent ones, more than
/// 4 x DBSIZE keys or more than DBSIZE / 100 calls (each with 10,000 of slack: a table left sparse by mass deletes takes more calls, a few thousand) is a server to
/// stop reading rather than a loop to keep busy forever. Memory stays constant: only the last
/// [`RECENT_CURSORS`] cursors are kept (a longer cycle ends at the call bound), and DBSIZE
/// counts at most 2^32 keys, Redis' own limit, so a server claiming more cannot lift the
/// bounds out of reach.
#[derive(Debug)]
pub(super) struct ScanBound {
    recent: std::collections::VecDeque<u64>,
    /// The same cursors, for a constant-time repeat check.
    recent_set: std::collections::HashSet<u64>,
    keys: u64,
    calls: u64,
    max_keys: u64,
    max_calls: u64,
}

/// Keys and calls a SCAN may take beyond what DBSIZE allows.
const SCAN_SLACK: u64 = 10_000;

/// Cursors remembered for the repeat check.
const RECENT_CURSORS: usize = 4096;

impl ScanBound {
    pub(super) fn new(dbsize: u64) -> Self {
        let dbsize = dbsize.min(1 << 32);
        Self {
            recent: std::collections::VecDeque::with_capacity(RECENT_CURSORS),
            recent_set: std::collections::HashSet::with_capacity(RECENT_CURSORS),
            keys: 0,
            calls: 0,
            max_keys: dbsize * 4 + SCAN_SLACK,
            max_calls: dbsize / 100 + SCAN_SLACK,
        }
    }

    /// Counts one SCAN reply; `Err` says why the scan cannot be trusted to end.
    pub(super) fn step(&mut self, next: u64, keys: usize) -> Result<(), String> {
        self.keys = self.keys.saturating_add(keys as u64);
        self.calls += 1;
        if next != 0 && !self.recent_set.insert(next) {
            return Err(format!(
                "SCAN returned cursor {next} twice: the iteration would never end"
            ));
        }
        if self.recent.len() == RECENT_CURSORS
            && let Some(old) = self.recent.pop_front()
        {
            self.recent_set.remove(&old);
        }
        self.recent.push_back(next);
        if self.keys > self.max_keys || self.calls > self.max_calls {
            return Err(format!(
                "SCAN returned {} keys over {} calls without ending, for a database DBSIZE put \
                 at {} keys: the iteration would never end",
                self.keys,
                self.calls,
                (self.max_keys - SCAN_SLACK) / 4
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ScanBound;

    #[test]
    fn a_scan_that_never_ends_is_stopped() {
        // A real iteration: distinct cursors, then 0.
        let mut b = ScanBound::new(3000);
        for c in 1..=3 {
            assert!(b.step(c, 1000).is_ok());
        }
        assert!(b.step(0, 10).is_ok());
        // A cursor that comes back.
        let mut b = ScanBound::new(10);
        assert!(b.step(7, 0).is_ok());
        assert!(b.step(8, 0).is_ok());
        assert!(b.step(7, 0).unwrap_err().contains("cursor 7 twice"));
        // New cursors and new keys forever.
        let mut b = ScanBound::new(1);
        let end = (1..u64::MAX).find(|&c| b.step(c, 1).is_err()).unwrap();
        assert!(end <= 10_001, "stopped after {end} calls");
        // A cycle longer than the cursors remembered ends at the call bound, and a server
        // claiming an absurd DBSIZE does not lift it out of reach.
        let mut b = ScanBound::new(0);
        let end = (0..u64::MAX)
            .find(|&c| b.step(1 + c % 10_000, 0).is_err())
            .unwrap();
        assert_eq!(end, 10_000);
        let b = ScanBound::new(u64::MAX);
        assert_eq!(b.max_calls, (1 << 32) / 100 + 10_000);
        // No keys, new cursors forever.
        let mut b = ScanBound::new(0);
        let end = (1..u64::MAX).find(|&c| b.step(c, 0).is_err()).unwrap();
        assert!(end <= 10_001, "stopped after {end} calls");
    }
}
