//! Reading the small text files a person hands upshift (playbooks, plan files, `.netrc`) with a
//! size cap. `std::fs::read_to_string` reads until the end: `--playbook /dev/zero` grew to
//! 23 GB before the kernel killed the process. A file over the cap is refused with a clear
//! error instead, whatever it is (a device, a pipe, a huge file).
//!
//! And the one rule for the files upshift writes at a path a person names (`snapshot --out`,
//! `plan --out`): they are written beside the path and renamed over it, and a rename replaces
//! whatever is there. Run as root, `--out /dev/null` turned /dev/null into a 0600 regular file
//! for every process on the machine. So [`check_output`] refuses a path that exists and is not
//! a regular file, before anything is read, and [`replace`] checks again right before the
//! rename (the path can change meanwhile).

use std::io::Read;
use std::path::{Path, PathBuf};

/// The cap for the files upshift reads: a plan file with its capture and playbook is a few
/// tens of kB; 4 MiB leaves room for an app with hundreds of add-ons.
pub const TEXT_FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// The file's text, at most `limit` bytes.
///
/// # Errors
/// The open or read error; `InvalidData` when the file holds more than `limit` bytes or is not
/// UTF-8.
pub fn read_text_capped(path: &Path, limit: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} (upshift reads only small text files here): check the path",
                crate::units::bytes(limit)
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text: check the path",
        )
    })
}

/// An output path that holds something other than a regular file, which upshift will not
/// replace.
#[derive(Debug, thiserror::Error)]
#[error("{} is {kind}, not a file: give a file path", path.display())]
pub struct NotAFile {
    /// The path given.
    pub path: PathBuf,
    /// What is there (`a character device`, `a symbolic link`, …).
    pub kind: &'static str,
}

/// Whether `path` may be written by renaming a new file over it: nothing is there, or a
/// regular file. A symbolic link is refused rather than followed or replaced: replacing it
/// breaks the link (`/dev/stdout` printed nothing), following it writes where the reader of
/// the command line did not look.
///
/// # Errors
/// [`NotAFile`] naming what is there. A path that cannot be inspected (no permission on its
/// directory) passes: the write reports it.
pub fn check_output(path: &Path) -> Result<(), NotAFile> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let kind = file_kind(meta.file_type());
    match kind {
        None => Ok(()),
        Some(kind) => Err(NotAFile {
            path: path.to_owned(),
            kind,
        }),
    }
}

/// What a file type is in words, `None` for a regular file.
fn file_kind(t: std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_file() {
        None
    } else {
        Some("not a regular file")
    }
}

/// Renames `from` over `to`, after checking `to` once more with [`check_output`], and flushes
/// the directory: a rename lives in the directory, and until the directory is on disk a power
/// cut can bring back the old name (the rollback of a plan change reads the snapshot named in
/// its journal after exactly such a crash).
///
/// # Errors
/// The rename's or the flush's error, or an error wrapping [`NotAFile`] (see
/// [`is_not_a_file`]).
pub fn replace(from: &Path, to: &Path) -> std::io::Result<()> {
    check_output(to).map_err(std::io::Error::other)?;
    std::fs::rename(from, to)?;
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        // A file system that cannot flush a directory (EINVAL) has nothing to flush.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// A file written as one stream and flushed to disk behind the writer: every `every` bytes a
/// thread of its own flushes what has been written so far (fdatasync), while the writer goes
/// on. The final [`SyncBehind::sync_all`] then has only the tail to flush. Why: a snapshot's
/// file is flushed before the plan change may start, and flushed at the end in one go the
/// whole file's writeback sat in the downtime after the last key was read (9 ms of a 250 ms
/// snapshot of 100,000 keys, issue 12); behind the writer it overlaps the reads.
///
/// A background flush that fails fails [`SyncBehind::sync_all`]: after a failed flush the
/// kernel may have dropped the dirty pages, and a later flush can succeed over lost data.
#[derive(Debug)]
pub struct SyncBehind {
    file: std::fs::File,
    every: u64,
    unsynced: u64,
    kick: Option<std::sync::mpsc::SyncSender<()>>,
    flusher: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl SyncBehind {
    /// Wraps `file`, flushing behind the writer every `every` bytes.
    ///
    /// # Errors
    /// The file cannot be duplicated for the flushing thread, or the thread cannot start.
    pub fn new(file: std::fs::File, every: u64) -> std::io::Result<Self> {
        let behind = file.try_clone()?;
        // One request waiting at most: a flush started later covers every write before it.
        let (kick, requests) = std::sync::mpsc::sync_channel::<()>(1);
        let flusher = std::thread::Builder::new()
            .name("upshift-sync".into())
            .spawn(move || {
                while requests.recv().is_ok() {
                    behind.sync_data()?;
                }
                Ok(())
            })?;
        Ok(Self {
            file,
            every: every.max(1),
            unsynced: 0,
            kick: Some(kick),
            flusher: Some(flusher),
        })
    }

    /// Asks for a flush of everything written so far, without waiting for it.
    pub fn kick(&mut self) {
        self.unsynced = 0;
        if let Some(kick) = &self.kick {
            // Full: a flush is already asked for and will cover these bytes. Gone: the
            // flusher failed, and `sync_all` reports why.
            let _ = kick.try_send(());
        }
    }

    /// Waits for the flushes behind the writer, then flushes the rest, data and metadata.
    /// The file is on disk when this returns `Ok`.
    ///
    /// # Errors
    /// A background flush failed, or the last one does.
    pub fn sync_all(mut self) -> std::io::Result<std::fs::File> {
        drop(self.kick.take());
        if let Some(flusher) = self.flusher.take() {
            flusher
                .join()
                .map_err(|_| std::io::Error::other("the flushing thread stopped"))??;
        }
        self.file.sync_all()?;
        Ok(self.file)
    }
}

impl std::io::Write for SyncBehind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= self.every {
            self.kick();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Whether an I/O error is [`replace`] refusing a path that is not a regular file: bad input,
/// not a failing disk.
pub fn is_not_a_file(err: &std::io::Error) -> bool {
    err.get_ref()
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<NotAFile>)
}

/// Whether files can be created in `dir`: it is a directory and a probe file can be made (and
/// is removed at once). Checked before a command connects, so that an unusable `--out` or
/// `--spill-dir` directory is bad input said in a second, not a failure found after minutes of
/// reading (the spill directory is first used once the memory budget is full).
///
/// # Errors
/// `NotADirectory` when `dir` is something else; the creation error otherwise (missing,
/// read-only, no permission).
pub fn check_writable_dir(dir: &Path) -> std::io::Result<()> {
    if !std::fs::metadata(dir)?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    tempfile::Builder::new()
        .prefix(".upshift-probe-")
        .tempfile_in(dir)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::{check_output, is_not_a_file, read_text_capped, replace};

    #[test]
    fn only_a_missing_path_or_a_regular_file_may_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        assert!(check_output(&file).is_ok(), "a new path");
        std::fs::write(&file, "x").unwrap();
        assert!(check_output(&file).is_ok(), "a regular file");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = check_output(&link).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is a symbolic link, not a file: give a file path",
                link.display()
            )
        );
        assert_eq!(check_output(dir.path()).unwrap_err().kind, "a directory");
        assert_eq!(
            check_output(std::path::Path::new("/dev/null"))
                .unwrap_err()
                .kind,
            "a character device"
        );
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, "new").unwrap();
        let err = replace(&tmp, &link).unwrap_err();
        assert!(is_not_a_file(&err), "{err}");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        replace(&tmp, &file).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
    }

    #[test]
    fn an_endless_file_is_refused_at_the_cap() {
        let err = read_text_capped(std::path::Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.toml");
        std::fs::write(&p, "name = \"x\"\n").unwrap();
        assert_eq!(read_text_capped(&p, 1024).unwrap(), "name = \"x\"\n");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text_capped(&p, 1024).is_err());
    }

    /// Every byte written behind the flushes arrives, the file is whole after `sync_all`, and
    /// the flusher ran (the writes crossed `every` several times and once more at the kick).
    #[test]
    fn a_file_flushed_behind_the_writer_holds_every_byte() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = super::SyncBehind::new(file, 4096).unwrap();
        let mut want = Vec::new();
        for i in 0..1000_u32 {
            let chunk = i.to_le_bytes().repeat(9);
            w.write_all(&chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        w.kick();
        w.write_all(b"tail").unwrap();
        want.extend_from_slice(b"tail");
        let file = w.sync_all().unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn replace_renames_over_a_file_and_flushes_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("new"), dir.path().join("out"));
        std::fs::write(&from, "new").unwrap();
        std::fs::write(&to, "old").unwrap();
        replace(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "new");
        assert!(!from.exists());
    }
}
