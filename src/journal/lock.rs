//! The per-app lock: one run at a time per app, across processes and machines sharing a state
//! dir. Taken over only on evidence that the holder is gone: on this host, its pid no longer
//! exists; anywhere, its lease expired without renewal.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{JournalError, StateDir, create_private_dir};

/// Who holds an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    pub host: String,
    pub pid: u32,
    pub run_id: String,
    /// RFC 3339; the holder renews it while it runs.
    pub lease_until: String,
    /// RFC 3339; when the holder took the lock (empty in locks written before it was kept).
    #[serde(default)]
    pub since: String,
}

/// A held lock; released on drop (only if still ours). While held, a heartbeat thread renews
/// its lease every few seconds, so a live run keeps its lease through a step of any length.
#[derive(Debug)]
pub struct AppLock {
    path: PathBuf,
    owner: LockOwner,
    heartbeat: Option<Heartbeat>,
}

/// The thread renewing a held lock's lease; stopped (and joined) when the lock is dropped.
#[derive(Debug)]
struct Heartbeat {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Heartbeat {
    /// Renews every third of the lease (at most every 5 s), writing only while the lock file
    /// still names this run and this process: a lock taken over is never written back.
    fn start(path: PathBuf, owner: LockOwner, lease: std::time::Duration) -> Option<Self> {
        let every = (lease / 3).clamp(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_secs(5),
        );
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("upshift-lock-heartbeat".into())
            .spawn(move || {
                let mut owner = owner;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    let ours = AppLock::read_owner(&path)
                        .is_some_and(|o| o.run_id == owner.run_id && o.pid == owner.pid);
                    if !ours {
                        break;
                    }
                    owner.lease_until = lease_end(jiff::Timestamp::now(), lease);
                    let _ = AppLock::write(&path, &owner);
                }
            })
            .ok()?;
        Some(Self { stop, thread })
    }
}

/// This machine's name, for lock ownership.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process exists on this host. Where `/proc` is missing we cannot tell, so the
/// holder is presumed alive and only its lease can expire.
fn pid_alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    if !proc.is_dir() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

impl AppLock {
    /// Takes the lock of `app` for `run_id`, or reports who holds it.
    ///
    /// # Errors
    /// [`JournalError::Locked`] naming the holder; I/O errors.
    pub fn acquire(
        state: &StateDir,
        app: &str,
        run_id: &str,
        now: jiff::Timestamp,
        lease: std::time::Duration,
    ) -> Result<Self, JournalError> {
        let dir = state.locks_dir();
        create_private_dir(&dir)?;
        let path = dir.join(format!("{}.lock", sanitize(app)));
        if path.is_dir() {
            // Never removed: a directory here is not a lock any run of ours wrote.
            return Err(JournalError::UnusableStateDir {
                path: state.root().to_owned(),
                problem: format!(
                    "the lock {} is a directory: remove it by hand",
                    path.display()
                ),
            });
        }
        let owner = LockOwner {
            host: hostname(),
            pid: std::process::id(),
            run_id: run_id.to_owned(),
            lease_until: lease_end(now, lease),
            since: now.to_string(),
        };
        for _ in 0..2 {
            match Self::create(&path, &owner) {
                Ok(()) => {
                    let heartbeat = Heartbeat::start(path.clone(), owner.clone(), lease);
                    return Ok(Self {
                        path,
                        owner,
                        heartbeat,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let Some(holder) = Self::read_owner(&path) else {
                        // Unreadable (torn by a crash while writing): gone.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    };
                    // The same run id is no exception: a `resume` of a run whose process is
                    // still alive would drive it twice at once. Only a gone holder is replaced.
                    if Self::holder_gone(&holder, now) {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    return Err(JournalError::Locked {
                        app: app.to_owned(),
                        owner: holder,
                    });
                }
                Err(source) => return Err(JournalError::Lock { path, source }),
            }
        }
        Err(JournalError::Lock {
            path,
            source: std::io::Error::other("lost a race for the lock twice"),
        })
    }

    /// Who holds `app`, if anyone (a stale holder is reported too; callers judge).
    pub fn holder(state: &StateDir, app: &str) -> Option<LockOwner> {
        Self::read_owner(&state.locks_dir().join(format!("{}.lock", sanitize(app))))
    }

    /// Extends the lease; long steps call this so another process never takes over a live run.
    ///
    /// # Errors
    /// I/O errors writing the lock.
    pub fn renew(
        &mut self,
        now: jiff::Timestamp,
        lease: std::time::Duration,
    ) -> Result<(), JournalError> {
        self.owner.lease_until = lease_end(now, lease);
        Self::write(&self.path, &self.owner)
    }

    /// The run holding the lock.
    pub fn owner(&self) -> &LockOwner {
        &self.owner
    }

    fn holder_gone(holder: &LockOwner, now: jiff::Timestamp) -> bool {
        if holder.host == hostname() && !pid_alive(holder.pid) {
            return true;
        }
        holder
            .lease_until
            .parse::<jiff::Timestamp>()
            .is_ok_and(|until| until < now)
    }

    fn create(path: &std::path::Path, owner: &LockOwner) -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(&serde_json::to_vec(owner).map_err(std::io::Error::other)?)?;
        file.sync_all()
    }

    fn write(path: &std::path::Path, owner: &LockOwner) -> Result<(), JournalError> {
        // One temporary name per write: the heartbeat and `renew` may write at the same time.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("lock.tmp.{}.{n}", std::process::id()));
        let result = (|| {
            let _ = std::fs::remove_file(&tmp);
            Self::create(&tmp, owner)?;
            std::fs::rename(&tmp, path)
        })();
        result.map_err(|source| JournalError::Lock {
            path: path.to_owned(),
            source,
        })
    }

    fn read_owner(path: &std::path::Path) -> Option<LockOwner> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Drop for AppLock {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            drop(heartbeat.stop);
            let _ = heartbeat.thread.join();
        }
        if Self::read_owner(&self.path).is_some_and(|o| o.run_id == self.owner.run_id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn lease_end(now: jiff::Timestamp, lease: std::time::Duration) -> String {
    let lease = jiff::SignedDuration::try_from(lease).unwrap_or(jiff::SignedDuration::MAX);
    now.checked_add(lease).unwrap_or(now).to_string()
}

/// App names are `[a-z0-9-]`; anything else is replaced so a name can never escape the folder.
fn sanitize(app: &str) -> String {
    app.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn second_run_is_refused_with_the_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        let _held = AppLock::acquire(&state, "app", "r1", now(), Duration::from_secs(120)).unwrap();
        let err =
            AppLock::acquire(&state, "app", "r2", now(), Duration::from_secs(120)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("held by run r1"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("since 2026-11-25T12:00:00Z"), "{msg}");
        assert!(
            !msg.contains("resume"),
            "a live holder must not be resumed: {msg}"
        );
    }

    #[test]
    fn a_live_holder_of_the_same_run_is_not_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        // This process holds run r1; a `resume r1` from another process on this host (same
        // host, same run id) must be refused while the pid lives.
        let _held = AppLock::acquire(&state, "app", "r1", now(), Duration::from_secs(120)).unwrap();
        let err =
            AppLock::acquire(&state, "app", "r1", now(), Duration::from_secs(120)).unwrap_err();
        assert!(matches!(err, JournalError::Locked { .. }), "{err}");
        assert_eq!(AppLock::holder(&state, "app").unwrap().run_id, "r1");
    }

    #[test]
    fn a_dead_holder_of_the_same_run_is_taken_back() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        create_private_dir(&state.locks_dir()).unwrap();
        let dead = LockOwner {
            host: hostname(),
            pid: u32::MAX - 1,
            run_id: "r1".into(),
            lease_until: "2099-01-01T00:00:00Z".into(),
            since: String::new(),
        };
        let path = state.locks_dir().join("app.lock");
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        let lock = AppLock::acquire(&state, "app", "r1", now(), Duration::from_secs(60)).unwrap();
        assert_eq!(lock.owner().pid, std::process::id());
    }

    #[test]
    fn a_dead_holder_on_this_host_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        let path = state.locks_dir().join("app.lock");
        create_private_dir(&state.locks_dir()).unwrap();
        let dead = LockOwner {
            host: hostname(),
            pid: u32::MAX - 1,
            run_id: "old".into(),
            lease_until: "2099-01-01T00:00:00Z".into(),
            since: String::new(),
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        let lock = AppLock::acquire(&state, "app", "new", now(), Duration::from_secs(60)).unwrap();
        assert_eq!(lock.owner().run_id, "new");
    }

    #[test]
    fn a_live_holder_elsewhere_keeps_it_until_the_lease_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        create_private_dir(&state.locks_dir()).unwrap();
        let other = LockOwner {
            host: "other-host".into(),
            pid: 1,
            run_id: "theirs".into(),
            lease_until: "2026-11-25T12:01:00Z".into(),
            since: String::new(),
        };
        let path = state.locks_dir().join("app.lock");
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(AppLock::acquire(&state, "app", "mine", now(), Duration::from_secs(60)).is_err());
        let later: jiff::Timestamp = "2026-11-25T12:02:00Z".parse().unwrap();
        assert!(AppLock::acquire(&state, "app", "mine", later, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_live_holder_keeps_renewing_its_lease_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        let start = jiff::Timestamp::now();
        let lock =
            AppLock::acquire(&state, "app", "r1", start, Duration::from_millis(300)).unwrap();
        std::thread::sleep(Duration::from_millis(700));
        // Without a heartbeat the lease would have ended at start + 300 ms.
        let until: jiff::Timestamp = AppLock::holder(&state, "app")
            .unwrap()
            .lease_until
            .parse()
            .unwrap();
        assert!(
            until > start + jiff::SignedDuration::from_millis(600),
            "{until}"
        );
        drop(lock);
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            AppLock::holder(&state, "app").is_none(),
            "the heartbeat stopped"
        );
        let leftovers = std::fs::read_dir(state.locks_dir()).unwrap().count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn drop_releases() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::at(tmp.path());
        drop(AppLock::acquire(&state, "app", "r1", now(), Duration::from_secs(60)).unwrap());
        assert!(AppLock::holder(&state, "app").is_none());
    }
}
