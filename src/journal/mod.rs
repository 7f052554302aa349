//! The journal: one directory per run under the state dir, an append-only JSON-lines file
//! fsync'd before and after every effect, and a per-app lock with an owner and a lease.
//!
//! The journal is the memory of intent; the platform is the truth. `resume` replays the
//! journal's engine events to learn where the run stood, then re-reads the platform before it
//! acts. Nothing secret is ever written here: records hold names, plans, quantities, digests
//! and request ids, never a token, a Redis URL or a password. Files are mode 0600.

mod lock;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use lock::{AppLock, LockOwner, hostname};

/// The version of the record format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Journal, lock and state-dir errors.
#[derive(Debug, Error)]
pub enum JournalError {
    #[error(
        "no state directory: set UPSHIFT_STATE_DIR (or XDG_STATE_HOME / HOME) to a writable folder"
    )]
    NoStateDir,
    #[error("the state directory {path} cannot be used: {problem}")]
    UnusableStateDir { path: PathBuf, problem: String },
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write journal {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: check its owner and permissions, or move its run directory aside")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "journal {path} line {line} is not a record this upshift understands: inspect the file, \
         or move its run directory aside"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error(
        "journal {path} is empty, but its run left {left} beside it: the journal was cut or \
         emptied, so what the run did is unknown; check the app (`heroku ps`, its add-ons' \
         plans), then move the run directory aside"
    )]
    Emptied { path: PathBuf, left: String },
    #[error("no run {run_id} under {dir}: `upshift runs` lists the runs")]
    NoSuchRun { run_id: String, dir: PathBuf },
    #[error("no unfinished run{} and no needs-attention run to reopen: `upshift runs` lists the runs; `upshift resume RUN_ID` reports a finished one", app.as_ref().map(|a| format!(" for app {a}")).unwrap_or_default())]
    NothingToResume { app: Option<String> },
    #[error(
        "app {app} is held by run {} (pid {} on {}, since {}, lease until {}), which is still \
         alive: wait for it to finish; do not take it over while its process runs",
        owner.run_id, owner.pid, owner.host,
        if owner.since.is_empty() { "an unknown time" } else { owner.since.as_str() },
        owner.lease_until
    )]
    Locked { app: String, owner: LockOwner },
    #[error("cannot take the lock {path}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where upshift keeps runs and locks: `UPSHIFT_STATE_DIR`, else `$XDG_STATE_HOME/upshift`,
/// else `~/.local/state/upshift`.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state dir at an explicit path (tests, `UPSHIFT_STATE_DIR`).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Resolves the state dir from the environment.
    ///
    /// # Errors
    /// [`JournalError::NoStateDir`] when no variable points anywhere.
    pub fn from_env() -> Result<Self, JournalError> {
        if let Some(dir) = std::env::var_os("UPSHIFT_STATE_DIR").filter(|v| !v.is_empty()) {
            return Ok(Self::at(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return Ok(Self::at(PathBuf::from(dir).join("upshift")));
        }
        dirs::home_dir()
            .map(|h| Self::at(h.join(".local/state/upshift")))
            .ok_or(JournalError::NoStateDir)
    }

    /// Checks the state dir before anything is written through it, creating it (0700) when
    /// missing: it must be a directory this user owns and can write, that no one else may
    /// write (like ssh, since its journals decide what `resume` does to an app), with `runs`
    /// and `locks` folders where they exist.
    ///
    /// # Errors
    /// [`JournalError::UnusableStateDir`] saying what is wrong and how to fix it.
    pub fn check(&self) -> Result<(), JournalError> {
        let root = &self.root;
        let bad = |problem: String| JournalError::UnusableStateDir {
            path: root.clone(),
            problem,
        };
        if !root.exists() {
            create_private_dir(root)?;
        }
        let meta = std::fs::metadata(root).map_err(|e| bad(format!("{e}")))?;
        if !meta.is_dir() {
            return Err(bad(
                "it is not a directory: point UPSHIFT_STATE_DIR at a folder".into(),
            ));
        }
        for sub in [self.runs_dir(), self.locks_dir()] {
            if sub.exists() && !sub.is_dir() {
                return Err(bad(format!(
                    "{} is not a directory: move it away",
                    sub.display()
                )));
            }
        }
        // A file created here is owned by this user: comparing owners needs no libc call.
        let probe = tempfile::NamedTempFile::new_in(root).map_err(|e| {
            bad(format!(
                "it is not writable ({e}): give this user write access, e.g. chmod 700 {}",
                root.display()
            ))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let me = probe
                .as_file()
                .metadata()
                .map_err(|e| bad(format!("{e}")))?
                .uid();
            if meta.uid() != me {
                return Err(bad(format!(
                    "it is owned by uid {}, not by this user (uid {me}): use a folder of your own",
                    meta.uid()
                )));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(bad(format!(
                    "others may write to it (mode {:o}): run `chmod 700 {}`",
                    meta.mode() & 0o7777,
                    root.display()
                )));
            }
        }
        drop(probe);
        Ok(())
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding one directory per run.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// One run's directory (journal, snapshots).
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    /// The folder of per-app locks.
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// Every run id, oldest first (ids sort by start time).
    ///
    /// # Errors
    /// An unreadable runs folder (a missing one is empty).
    pub fn run_ids(&self) -> Result<Vec<String>, JournalError> {
        let dir = self.runs_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(JournalError::Read { path: dir, source }),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(JOURNAL_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// The journal file's name inside a run directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Creates a directory (and parents) readable by the owner only.
///
/// # Errors
/// When the folder cannot be created.
pub fn create_private_dir(path: &Path) -> Result<(), JournalError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|source| JournalError::CreateDir {
            path: path.to_owned(),
            source,
        })
}

/// Opens a file for appending, creating it with mode 0600.
fn open_private_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// One line of a journal, wrapped with the format version and a timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<R> {
    pub v: u32,
    /// Milliseconds since the Unix epoch when the record was written.
    pub at_ms: i64,
    #[serde(flatten)]
    pub record: R,
}

/// An open, append-only journal. Generic over the record type so the runner owns its schema
/// and this module owns durability.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    run_id: String,
    /// Where the original was kept when opening recovered a torn tail.
    recovered: Option<PathBuf>,
}

impl Journal {
    /// Creates the run directory and its journal.
    ///
    /// # Errors
    /// When the directory or file cannot be created.
    pub fn create(state: &StateDir, run_id: &str) -> Result<Self, JournalError> {
        let dir = state.run_dir(run_id);
        create_private_dir(&dir)?;
        Self::open(state, run_id)
    }

    /// Opens an existing run's journal for appending (resume, rollback). A torn tail is
    /// recovered first (see [`recover_torn_tail`]) so that nothing is ever appended onto a
    /// half-written line. Call it only while holding the app's lock.
    ///
    /// # Errors
    /// [`JournalError::NoSuchRun`] when it does not exist; a corrupt or unreadable journal.
    pub fn open(state: &StateDir, run_id: &str) -> Result<Self, JournalError> {
        let dir = state.run_dir(run_id);
        if !dir.is_dir() {
            return Err(JournalError::NoSuchRun {
                run_id: run_id.to_owned(),
                dir: state.runs_dir(),
            });
        }
        let path = dir.join(JOURNAL_FILE);
        let recovered = if path.exists() {
            recover_torn_tail(&path)?
        } else {
            None
        };
        let file = open_private_append(&path).map_err(|source| JournalError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            file,
            run_id: run_id.to_owned(),
            recovered,
        })
    }

    /// Where the original journal was kept, when opening it recovered a torn tail.
    pub fn recovered(&self) -> Option<&Path> {
        self.recovered.as_deref()
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and fsyncs it: once this returns, the record survives a crash.
    ///
    /// # Errors
    /// When the write or the fsync fails.
    pub fn append<R: Serialize>(&mut self, at_ms: i64, record: &R) -> Result<(), JournalError> {
        let entry = Entry {
            v: FORMAT_VERSION,
            at_ms,
            record,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| JournalError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let write = |file: &mut File| -> std::io::Result<()> {
            file.write_all(&line)?;
            file.sync_data()
        };
        write(&mut self.file).map_err(|source| JournalError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads every record of a journal. A torn tail (bytes after the last newline: a crash cut
/// the last write) is ignored: it was never fsync'd as complete, so its effect is re-derived
/// from the platform. Every complete line must be a record.
///
/// # Errors
/// Unreadable file, or a complete line that is not a record (garbage, in the middle or at
/// the end).
pub fn read<R: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<Entry<R>>, JournalError> {
    let (entries, problem) = read_prefix(path);
    match problem {
        Some(e) => Err(e),
        None => Ok(entries),
    }
}

/// The records of a journal up to its first problem, and that problem: lets `runs` and the
/// unfinished-run guard name the app of a run whose journal cannot be fully read.
pub fn read_prefix<R: for<'de> Deserialize<'de>>(
    path: &Path,
) -> (Vec<Entry<R>>, Option<JournalError>) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(source) => {
            let e = JournalError::Read {
                path: path.to_owned(),
                source,
            };
            return (Vec::new(), Some(e));
        }
    };
    let (entries, problem) = parse(path, &bytes[..complete_len(&bytes)]);
    if entries.is_empty() && problem.is_none() {
        // A run writes its start before anything else, so an empty journal alone is a run
        // that never began. One with files beside it (a snapshot) was cut or emptied: it must
        // not vanish from `runs` and from the unfinished-run guard.
        let left: Vec<String> = path
            .parent()
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with(JOURNAL_FILE))
            .collect();
        if !left.is_empty() {
            let e = JournalError::Emptied {
                path: path.to_owned(),
                left: left.join(", "),
            };
            return (entries, Some(e));
        }
    }
    (entries, problem)
}

/// The length of the complete lines of a journal: up to and including its last newline.
fn complete_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

fn parse<R: for<'de> Deserialize<'de>>(
    path: &Path,
    complete: &[u8],
) -> (Vec<Entry<R>>, Option<JournalError>) {
    let mut entries = Vec::new();
    for (i, line) in complete.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(e) => entries.push(e),
            Err(source) => {
                let e = JournalError::Corrupt {
                    path: path.to_owned(),
                    line: i + 1,
                    source,
                };
                return (entries, Some(e));
            }
        }
    }
    (entries, None)
}

/// Recovers a torn tail: when the journal ends in a partial line (a crash mid-write), keeps a
/// copy of the whole file next to it (`journal.jsonl.torn`, `.torn.1`, ...), then truncates
/// the journal to its last complete record. Returns the copy's path, `None` when nothing was
/// torn. Garbage among the complete lines is not touched but refused: it needs a person.
///
/// # Errors
/// An unreadable journal, a corrupt complete line, or a failure writing the copy or the cut.
pub fn recover_torn_tail(path: &Path) -> Result<Option<PathBuf>, JournalError> {
    let bytes = std::fs::read(path).map_err(|source| JournalError::Read {
        path: path.to_owned(),
        source,
    })?;
    let keep = complete_len(&bytes);
    if let (_, Some(e)) = parse::<serde::de::IgnoredAny>(path, &bytes[..keep]) {
        return Err(e);
    }
    if keep == bytes.len() {
        return Ok(None);
    }
    let write_err = |source| JournalError::Write {
        path: path.to_owned(),
        source,
    };
    let mut copy = path.with_extension("jsonl.torn");
    let mut n = 0;
    while copy.exists() {
        n += 1;
        copy = path.with_extension(format!("jsonl.torn.{n}"));
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&copy).map_err(write_err)?;
    file.write_all(&bytes).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    let journal = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(write_err)?;
    journal
        .set_len(u64::try_from(keep).unwrap_or(u64::MAX))
        .map_err(write_err)?;
    journal.sync_all().map_err(write_err)?;
    Ok(Some(copy))
}

/// A fresh run id: UTC start time (sortable) and a random suffix.
pub fn new_run_id(now: jiff::Timestamp) -> String {
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let suffix: u16 = rand::random();
    format!("{stamp}-{suffix:04x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Rec {
        A { n: u32 },
        B,
    }

    #[test]
    fn appends_and_reads_back_and_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        let mut j = Journal::create(&state, "r1").unwrap();
        j.append(1, &Rec::A { n: 7 }).unwrap();
        j.append(2, &Rec::B).unwrap();
        let back: Vec<Entry<Rec>> = read(j.path()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].record, Rec::A { n: 7 });
        assert_eq!(back[1].at_ms, 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(j.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(state.run_ids().unwrap(), vec!["r1".to_string()]);
    }

    const B: &str = "{\"v\":1,\"at_ms\":1,\"type\":\"B\"}\n";

    #[test]
    fn a_torn_last_line_is_dropped_but_a_corrupt_middle_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("j");
        std::fs::write(&p, format!("{B}{{\"v\":1,\"at_")).unwrap();
        assert_eq!(read::<Rec>(&p).unwrap().len(), 1);
        std::fs::write(&p, format!("garbage\n{B}")).unwrap();
        assert!(matches!(
            read::<Rec>(&p),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn garbage_appended_as_a_whole_line_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("journal.jsonl");
        std::fs::write(&p, format!("{B}{B}not json at all\n")).unwrap();
        let err = read::<Rec>(&p).unwrap_err();
        assert!(
            matches!(err, JournalError::Corrupt { line: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
        let (prefix, problem) = read_prefix::<Rec>(&p);
        assert_eq!(prefix.len(), 2);
        assert!(problem.is_some());
        // Recovery never touches garbage among complete lines.
        assert!(recover_torn_tail(&p).is_err());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{B}{B}not json at all\n")
        );
    }

    #[test]
    fn a_torn_tail_is_cut_with_a_copy_kept_and_open_never_appends_onto_it() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        drop(Journal::create(&state, "r1").unwrap());
        let p = state.run_dir("r1").join(JOURNAL_FILE);
        let torn = format!("{B}{{\"v\":1,\"at_ms\":2,\"ty");
        std::fs::write(&p, &torn).unwrap();
        let mut j = Journal::open(&state, "r1").unwrap();
        let copy = j.recovered().expect("recovered").to_owned();
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), torn);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), B);
        j.append(3, &Rec::A { n: 1 }).unwrap();
        let back: Vec<Entry<Rec>> = read(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].record, Rec::A { n: 1 });
        // A whole journal is left alone.
        assert!(recover_torn_tail(&p).unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_unreadable_journal_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("missing").join(JOURNAL_FILE);
        let err = read::<Rec>(&p).unwrap_err();
        assert!(matches!(err, JournalError::Read { .. }), "{err}");
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
    }

    #[test]
    fn an_emptied_journal_beside_a_snapshot_is_a_problem_and_a_bare_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(JOURNAL_FILE);
        std::fs::write(&p, "").unwrap();
        assert!(
            read::<Rec>(&p).unwrap().is_empty(),
            "a run that never began"
        );
        std::fs::write(tmp.path().join("snapshot-redis-1.ups"), b"x").unwrap();
        let err = read::<Rec>(&p).unwrap_err();
        assert!(matches!(err, JournalError::Emptied { .. }), "{err}");
        assert!(err.to_string().contains("snapshot-redis-1.ups"), "{err}");
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id("2026-01-01T00:00:00Z".parse().unwrap());
        let b = new_run_id("2026-01-02T00:00:00Z".parse().unwrap());
        assert!(a < b);
        assert!(a.starts_with("20260101T000000Z-"));
    }
}
