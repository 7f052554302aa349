//! What a run writes down and what it knows: the [`Ledger`] appends records to the journal
//! (fsync'd, journal-first), and [`Known`] is the run's memory, folded from those same records
//! (live, as steps write them, and on resume, from the journal) plus the steps' typed outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::Record;
use super::target::Target;
use super::{AddonReport, Interrupts, RunError, RunEvent, StepError, error_chain};
use crate::events::Reporter;
use crate::journal::{Journal, JournalError};
use crate::plan::RunRequest;
use crate::plan::facts::{Capture, ServerIdentity};
use crate::verify::WriteMark;

/// A fact a step learned that the journal does not keep but the run must not lose when the
/// step fails later on (see [`Ledger::learn`]).
#[derive(Debug, Clone)]
pub(super) enum Learned {
    /// One add-on's verify, for the run's summary.
    Report(AddonReport),
    /// The plan an add-on settled on during a rollback (name -> bare plan).
    Settled { addon: String, plan: String },
    /// Live swap: the watch of an old add-on's changed keys, alive for the rest of this
    /// process (a resumed run has none and compares every key instead).
    Watch {
        addon: String,
        watch: Arc<crate::swap::DirtyWatch>,
    },
}

/// The run's journal writer. Steps hand it records; the driver folds what they wrote into
/// [`Known`] after each attempt.
pub(super) struct Ledger {
    journal: Journal,
    interrupts: Interrupts,
    reporter: Arc<dyn Reporter>,
    /// Records this process appended; a failure after the first is survived (see `append`).
    appended: usize,
    /// The journal could not be written: the first error and how many records it holds.
    failure: Option<(String, usize)>,
    /// The kind of that error's I/O cause: the advice differs for a full disk and a refusal.
    failure_kind: Option<std::io::ErrorKind>,
    /// Facts written or learned since the driver last folded them, with when they happened.
    fresh: Vec<(Fresh, Instant)>,
    #[cfg(feature = "failpoints")]
    records_written: usize,
}

/// A fact not yet folded into [`Known`].
enum Fresh {
    Record(Box<Record>),
    Learned(Learned),
}

impl Ledger {
    pub fn new(journal: Journal, interrupts: Interrupts, reporter: Arc<dyn Reporter>) -> Self {
        Self {
            journal,
            interrupts,
            reporter,
            appended: 0,
            failure: None,
            failure_kind: None,
            fresh: Vec::new(),
            #[cfg(feature = "failpoints")]
            records_written: 0,
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The first journal write error, and how many records the journal holds.
    pub fn failure(&self) -> Option<&(String, usize)> {
        self.failure.as_ref()
    }

    /// The I/O error kind behind [`Ledger::failure`], when there is one.
    pub fn failure_kind(&self) -> Option<std::io::ErrorKind> {
        self.failure_kind
    }

    /// Appends a record (fsync'd). With the `failpoints` feature, `UPSHIFT_FAILPOINT=N`
    /// aborts the process right after the Nth record of this process: the crash tests kill
    /// the run at every journal point this way.
    ///
    /// A write failure after the first record (disk full, I/O error) does not stop the run:
    /// what is in memory still knows how to restore the app. The journal is left as a crash
    /// would leave it (no later record, so no gap), the run is asked to stop safely exactly as
    /// by a first Ctrl-C (roll back at the next safe point, compensations carry on), and the
    /// run ends `needs-attention` with the steps to finish (see `ActiveRun::report`). With the
    /// `failpoints` feature, `UPSHIFT_FAIL_JOURNAL_AFTER=N` fails every append after the Nth,
    /// with the OS error `UPSHIFT_FAIL_JOURNAL_ERRNO` (default 28, ENOSPC).
    pub fn append(&mut self, record: &Record) -> Result<(), RunError> {
        if self.failure.is_some() {
            return Ok(());
        }
        let now = jiff::Timestamp::now().as_millisecond();
        #[cfg(feature = "failpoints")]
        let failed = std::env::var("UPSHIFT_FAIL_JOURNAL_AFTER")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| self.records_written >= n);
        #[cfg(not(feature = "failpoints"))]
        let failed = false;
        let appended = if failed {
            Err(JournalError::Write {
                path: self.journal.path().to_owned(),
                source: std::io::Error::from_raw_os_error(
                    std::env::var("UPSHIFT_FAIL_JOURNAL_ERRNO")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(28),
                ),
            })
        } else {
            self.journal.append(now, record)
        };
        if let Err(e) = appended {
            if self.appended == 0 {
                return Err(e.into());
            }
            let message = error_chain(&e);
            self.failure = Some((message.clone(), self.appended));
            self.failure_kind = io_kind(&e);
            self.reporter.report(&RunEvent::Warning {
                message: format!(
                    "{message}; stopping safely: the run rolls back what it can from memory and \
                     will end needs-attention"
                ),
            });
            if self.interrupts.count() == 0 {
                self.interrupts.interrupt();
            }
            return Ok(());
        }
        self.appended += 1;
        #[cfg(feature = "failpoints")]
        {
            self.records_written += 1;
            if std::env::var("UPSHIFT_FAILPOINT")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                == Some(self.records_written)
            {
                std::process::abort();
            }
        }
        Ok(())
    }

    /// A step's record: journaled now, folded into [`Known`] by the driver after the step.
    /// Kept in memory even when the journal can no longer be written: memory is then all
    /// the run has to restore the app.
    ///
    /// # Errors
    /// The journal cannot be written at all (its first record).
    pub fn record(&mut self, record: Record) -> Result<(), StepError> {
        self.append(&record).map_err(|e| {
            StepError::failed(format!("cannot write the journal: {}", error_chain(&e)))
        })?;
        self.fresh
            .push((Fresh::Record(Box::new(record)), Instant::now()));
        Ok(())
    }

    /// A fact the journal does not keep, for the driver to store after the step.
    pub fn learn(&mut self, fact: Learned) {
        self.fresh.push((Fresh::Learned(fact), Instant::now()));
    }

    /// Folds every record written and fact learned since the last call into `known`.
    pub fn fold_into(&mut self, known: &mut Known) {
        for (fact, at) in self.fresh.drain(..) {
            match fact {
                Fresh::Record(record) => match *record {
                    Record::Downtime { started: true } => {
                        known.downtime_since.get_or_insert(at);
                    }
                    Record::Downtime { started: false } => {
                        if let Some(since) = known.downtime_since.take() {
                            known.downtime += at.saturating_duration_since(since);
                        }
                    }
                    record => known.absorb(&record),
                },
                Fresh::Learned(Learned::Report(report)) => {
                    known.reports.insert(report.addon.clone(), report);
                }
                Fresh::Learned(Learned::Settled { addon, plan }) => {
                    known.settled_on.insert(addon, plan);
                }
                Fresh::Learned(Learned::Watch { addon, watch }) => {
                    known.watches.insert(addon, watch);
                }
            }
        }
    }
}

/// The kind of the first I/O error in `e`'s chain.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = err.source();
    }
    None
}

/// Live swap: an old add-on's new one, as its journal record names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewAddon {
    pub name: String,
    pub id: String,
    /// The temporary attachment name (its config var is `<attachment>_URL`).
    pub attachment: String,
}

/// What a run knows: read by every step through its context, written only by the driver.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub capture: Option<Capture>,
    pub snapshots: BTreeMap<String, PathBuf>,
    /// The server behind each add-on's URL before the plan change (journaled as `OldServer`).
    pub old_servers: BTreeMap<String, ServerIdentity>,
    /// Each add-on's write evidence when the drain ended (journaled with `OldServer`, so a
    /// resumed run checks for writes since the drain as the first process would have).
    pub write_marks: BTreeMap<String, WriteMark>,
    /// The plan each add-on settled on in the settle compensation (name -> bare plan): a
    /// rollback that kept a new plan is reported as such, not as "rolled back".
    pub settled_on: BTreeMap<String, String>,
    pub reports: BTreeMap<String, AddonReport>,
    /// Live swap: each old add-on's new one (old name -> its record).
    pub new_addons: BTreeMap<String, NewAddon>,
    /// Live swap: each old add-on's `notify_keyspace_events` before the run.
    pub notifications_before: BTreeMap<String, String>,
    /// Live swap: the server the catch-up proved equal, and the key count it had.
    pub new_servers: BTreeMap<String, (ServerIdentity, u64)>,
    /// The server each add-on's data was last verified on (journaled with `Verified`): the
    /// writers come back only while its config var still leads there.
    pub verified_servers: BTreeMap<String, super::record::VerifiedServer>,
    /// Live swap: the dirty-key watches of this process (not journaled).
    pub watches: BTreeMap<String, Arc<crate::swap::DirtyWatch>>,
    /// Add-ons whose URL a step refused as leading to a server not proven theirs (journaled
    /// as `ForeignServer`): the to-do list sends nobody to repair through that config var.
    pub foreign: std::collections::BTreeSet<String>,
    /// Since when the writers are stopped, if they are.
    pub downtime_since: Option<Instant>,
    /// Closed downtime so far.
    pub downtime: Duration,
}

impl Known {
    /// Takes in one journaled fact: the one function both a live run (after each step) and a
    /// resumed run (replaying its journal) build their memory with. Downtime is left to the
    /// callers: live it is timed by the clock, on resume by the journal's timestamps.
    pub fn absorb(&mut self, record: &Record) {
        match record {
            Record::Captured { capture } => self.capture = Some(capture.clone()),
            Record::Snapshot { addon, file, .. } => {
                self.snapshots.insert(addon.clone(), PathBuf::from(file));
            }
            Record::OldServer {
                addon,
                identity,
                writes,
                mark,
            } => {
                self.old_servers.insert(addon.clone(), identity.clone());
                // A journal of an older version has the bare counter: the check then fails
                // closed where a save hides what it would have seen.
                let mark = mark.clone().or_else(|| writes.map(WriteMark::counter_only));
                if let Some(mark) = mark {
                    self.write_marks.insert(addon.clone(), mark);
                }
            }
            Record::NewAddon {
                addon,
                new_addon,
                new_id,
                attachment,
            } => {
                self.new_addons.insert(
                    addon.clone(),
                    NewAddon {
                        name: new_addon.clone(),
                        id: new_id.clone(),
                        attachment: attachment.clone(),
                    },
                );
            }
            Record::Verified { addon, server, .. } => match server {
                Some(server) => {
                    self.verified_servers.insert(addon.clone(), server.clone());
                }
                // A later verify that could not name its server leaves nothing to compare.
                None => {
                    self.verified_servers.remove(addon);
                }
            },
            Record::Notifications { addon, before } => {
                self.notifications_before
                    .entry(addon.clone())
                    .or_insert_with(|| before.clone());
            }
            Record::NewServer {
                addon,
                identity,
                keys,
            } => {
                self.new_servers
                    .insert(addon.clone(), (identity.clone(), *keys));
            }
            Record::ForeignServer { addon } => {
                self.foreign.insert(addon.clone());
            }
            _ => {}
        }
    }

    /// The add-ons of the run, as the capture found them (none before the capture).
    pub fn targets(&self, request: &RunRequest) -> Vec<Target> {
        self.capture
            .as_ref()
            .map_or_else(Vec::new, |capture| super::target::targets(capture, request))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Known, Learned, Ledger};
    use crate::journal::{self, Journal, StateDir};
    use crate::runner::record::Record;
    use crate::runner::{AddonReport, Interrupts, Silent};

    /// A step's record is on disk before the driver folds it, and the fold gives the memory
    /// that replaying the journal (the resume path) gives: one function for both.
    #[test]
    fn records_are_journaled_at_once_and_folded_like_a_replay() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let journal = Journal::create(&state, "run-1").unwrap();
        let path = journal.path().to_owned();
        let mut ledger = Ledger::new(journal, Interrupts::default(), Arc::new(Silent));
        ledger
            .append(&Record::Note {
                message: "first".into(),
            })
            .unwrap();
        let snapshot = Record::Snapshot {
            addon: "redis-a".into(),
            file: "/tmp/snapshot-redis-a.ups".into(),
            keys: 3,
            digest: "d".into(),
        };
        ledger.record(snapshot.clone()).unwrap();
        ledger.record(Record::Downtime { started: true }).unwrap();
        let on_disk: Vec<Record> = journal::read::<Record>(&path)
            .unwrap()
            .into_iter()
            .map(|e| e.record)
            .collect();
        assert_eq!(on_disk.len(), 3, "{on_disk:?}");
        assert_eq!(on_disk[1], snapshot);

        let mut live = Known::default();
        ledger.fold_into(&mut live);
        let mut replayed = Known::default();
        for record in &on_disk {
            replayed.absorb(record);
        }
        assert_eq!(live.snapshots, replayed.snapshots);
        assert_eq!(
            live.snapshots
                .get("redis-a")
                .map(|p| p.display().to_string()),
            Some("/tmp/snapshot-redis-a.ups".to_owned())
        );
        assert!(live.downtime_since.is_some());

        // Folding drains: a second fold adds nothing, and the downtime closes once.
        std::thread::sleep(Duration::from_millis(20));
        ledger.record(Record::Downtime { started: false }).unwrap();
        ledger.fold_into(&mut live);
        ledger.fold_into(&mut live);
        assert!(live.downtime_since.is_none());
        assert!(
            live.downtime >= Duration::from_millis(20),
            "{:?}",
            live.downtime
        );
    }

    /// Facts the journal does not keep survive in memory without a journal line.
    #[test]
    fn learned_facts_reach_memory_without_a_journal_line() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let journal = Journal::create(&state, "run-2").unwrap();
        let path = journal.path().to_owned();
        let mut ledger = Ledger::new(journal, Interrupts::default(), Arc::new(Silent));
        ledger.learn(Learned::Settled {
            addon: "redis-a".into(),
            plan: "premium-1".into(),
        });
        ledger.learn(Learned::Report(AddonReport {
            label: "MAIN".into(),
            addon: "redis-a".into(),
            from: "premium-0".into(),
            to: "premium-1".into(),
            keys_verified: 7,
            bytes_verified: 70,
            differences: 0,
            repaired: 0,
        }));
        let mut known = Known::default();
        ledger.fold_into(&mut known);
        assert_eq!(
            known.settled_on.get("redis-a").map(String::as_str),
            Some("premium-1")
        );
        assert_eq!(
            known.reports.get("redis-a").map(|r| r.keys_verified),
            Some(7)
        );
        assert!(journal::read::<Record>(&path).unwrap().is_empty());
    }

    /// A drain record of an older version (the bare counter in `writes`) still gives a
    /// mark, the counter alone; a current one gives its full evidence, and keeps `writes` for
    /// an older version resuming it.
    #[test]
    fn drain_marks_of_older_journals_still_resume() {
        let old =
            r#"{"type":"old-server","addon":"redis-a","identity":{"run_id":"r1"},"writes":5}"#;
        let mut known = Known::default();
        known.absorb(&serde_json::from_str::<Record>(old).unwrap());
        assert_eq!(
            known.write_marks.get("redis-a"),
            Some(&crate::verify::WriteMark::counter_only(5))
        );
        let mark = crate::verify::WriteMark::parse(
            "rdb_changes_since_last_save:5\nrdb_saves:2\n# Commandstats\ncmdstat_set:calls=9\n",
        );
        let record = Record::OldServer {
            addon: "redis-a".into(),
            identity: crate::plan::facts::ServerIdentity {
                run_id: "r1".into(),
                maxmemory: 0,
                maxclients: None,
            },
            writes: Some(5),
            mark: Some(mark.clone()),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""writes":5"#), "{text}");
        let mut known = Known::default();
        known.absorb(&serde_json::from_str::<Record>(&text).unwrap());
        assert_eq!(known.write_marks.get("redis-a"), Some(&mark));
    }
}
