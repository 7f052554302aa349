//! The reviewed plan file: `upshift plan … --out PLAN.json` saves the request, the plan and
//! the state it saw (the plan embeds the capture); `upshift run --plan PLAN.json` runs that
//! request and refuses when the platform has drifted from it.
//!
//! The file holds names, plans, quantities and Redis figures, never a config var value, URL or
//! token (the capture keeps config var names only). It is written 0600 all the same, like every
//! file holding run data.
//!
//! The file is sealed with a content hash (`hash`: `sha256:` and the hex SHA-256 of the
//! canonical JSON of everything else in the file, see [`content_hash`]). `plan --out` prints it
//! for the reviewer to note; `run --plan` recomputes it and refuses a file whose content no
//! longer matches (edited or corrupted), and `run --plan-hash` asserts it is the one reviewed.
//! A hash is not a signature: whoever can write the file can reseal it, which is why `run`
//! also recomputes the plan from the platform and refuses any difference (see
//! [`crate::unattended::review`]), and why `--plan-hash` exists.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::plan::{Plan, RunRequest};
use crate::window::Window;

/// The `format` field: tells a plan file from other JSON.
pub const FORMAT: &str = "upshift-plan";
/// The current `version`. Version 2 added the content hash; version 1 files have none and
/// are refused with a request to plan again.
pub const VERSION: u32 = 2;
/// The prefix of [`content_hash`] values: names the algorithm, so a later one can be told apart.
pub const HASH_PREFIX: &str = "sha256:";

/// A saved, reviewed plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub format: String,
    pub version: u32,
    /// When `plan` saved it (RFC 3339).
    pub saved_at: String,
    /// The window given to `plan`, used by `run` unless it gets its own `--window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub request: RunRequest,
    pub plan: Plan,
    /// The content hash the file was sealed with (see [`content_hash`]).
    pub hash: String,
}

/// A plan file that cannot be written or used.
#[derive(Debug, Error)]
pub enum PlanFileError {
    #[error("cannot write the plan file {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the plan file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an upshift plan file: {source}; save one with `upshift plan … --out {}`",
        path.display()
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{path} is a plan file of version {version}, this upshift reads version {VERSION}: plan again with this version"
    )]
    Version { path: PathBuf, version: u32 },
    #[error(
        "{path} was changed or corrupted after it was saved: its content hashes to {computed}, \
         the file was sealed with {stored}; nothing was done: run `upshift plan … --out` again \
         and review the new plan"
    )]
    Tampered {
        path: PathBuf,
        stored: String,
        computed: String,
    },
    #[error(
        "{path} is not the plan that was reviewed: its hash is {found}, --plan-hash says \
         {expected}; nothing was done: run the reviewed file, or plan again and review it"
    )]
    NotReviewed {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: {source}")]
    Playbook {
        path: PathBuf,
        source: crate::playbook::PlaybookError,
    },
    #[error("{path} was saved for {planned}, not {given}: nothing was done")]
    OtherApp {
        path: PathBuf,
        planned: String,
        given: String,
    },
}

impl PlanFile {
    /// A plan file for `request` and its `plan`.
    pub fn new(
        request: RunRequest,
        plan: Plan,
        window: Option<Window>,
        now: jiff::Timestamp,
    ) -> Self {
        let mut file = Self {
            format: FORMAT.into(),
            version: VERSION,
            saved_at: now.to_string(),
            window,
            request,
            plan,
            hash: String::new(),
        };
        file.hash = file.content_hash();
        file
    }

    /// The hash of the file's content as it is now (not the `hash` it carries).
    pub fn content_hash(&self) -> String {
        // Serialising plain data to a Value does not fail (no maps with non-string keys).
        content_hash(&serde_json::to_value(self).unwrap_or_default())
    }

    /// Writes the file, mode 0600, replacing it atomically, sealed with the hash of its
    /// content as it is now, and returns that hash.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<String, PlanFileError> {
        let err = |source| PlanFileError::Write {
            path: path.to_owned(),
            source,
        };
        let mut sealed = self.clone();
        sealed.hash = self.content_hash();
        let mut text = serde_json::to_string_pretty(&sealed)
            .map_err(|e| err(std::io::Error::other(e.to_string())))?;
        text.push('\n');
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // tempfile creates 0600 files; persisting keeps the mode and replaces atomically.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        tmp.write_all(text.as_bytes()).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        // Never over a device, a FIFO or a link (checked as late as possible).
        crate::files::check_output(path).map_err(|e| err(std::io::Error::other(e)))?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(sealed.hash)
    }

    /// Reads and checks a plan file: its format, version, content hash, and the playbook it
    /// embeds.
    ///
    /// # Errors
    /// Unreadable, not a plan file, another version, content that does not match its hash
    /// (edited or corrupted), or an unsafe playbook.
    pub fn load(path: &Path) -> Result<Self, PlanFileError> {
        Self::load_reviewed(path, None)
    }

    /// [`PlanFile::load`], and when `expected` is given (`--plan-hash`: with or without the
    /// `sha256:` prefix, any case), refuses a file sealed with another hash. That check comes
    /// right after the integrity check, before the content is interpreted: a file that is not
    /// the reviewed one is reported as such, whatever else is wrong with it.
    ///
    /// # Errors
    /// As [`PlanFile::load`], and a hash other than `expected`.
    pub fn load_reviewed(path: &Path, expected: Option<&str>) -> Result<Self, PlanFileError> {
        let text = crate::files::read_text_capped(path, crate::files::TEXT_FILE_LIMIT).map_err(
            |source| PlanFileError::Read {
                path: path.to_owned(),
                source,
            },
        )?;
        let head: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| PlanFileError::Parse {
                path: path.to_owned(),
                source,
            })?;
        let version = head.get("version").and_then(serde_json::Value::as_u64);
        if head.get("format").and_then(serde_json::Value::as_str) == Some(FORMAT)
            && version != Some(u64::from(VERSION))
        {
            return Err(PlanFileError::Version {
                path: path.to_owned(),
                version: version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            });
        }
        // The hash is checked on the JSON as read, before it is interpreted: an unknown field
        // or a field the types would default counts as a change too.
        if let Some(stored) = head.get("hash").and_then(serde_json::Value::as_str)
            && head.get("format").and_then(serde_json::Value::as_str) == Some(FORMAT)
        {
            let computed = content_hash(&head);
            if stored != computed {
                return Err(PlanFileError::Tampered {
                    path: path.to_owned(),
                    stored: stored.to_owned(),
                    computed,
                });
            }
        }
        if let Some(expected) = expected {
            let found = head
                .get("hash")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no hash");
            if !same_hash(expected, found) {
                return Err(PlanFileError::NotReviewed {
                    path: path.to_owned(),
                    expected: expected.trim().to_owned(),
                    found: found.to_owned(),
                });
            }
        }
        let file: Self = serde_json::from_value(head).map_err(|source| PlanFileError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if file.format != FORMAT {
            return Err(PlanFileError::Parse {
                path: path.to_owned(),
                source: serde::de::Error::custom(format!("format is {:?}", file.format)),
            });
        }
        // The embedded playbook is checked like one given with --playbook: an edited file
        // must not smuggle in a playbook that cannot be safe.
        let invalid = |source| PlanFileError::Playbook {
            path: path.to_owned(),
            source,
        };
        file.request.validate().map_err(invalid)?;
        Ok(file)
    }
}

/// Whether two hashes are the same, with or without the `sha256:` prefix, in any case.
fn same_hash(a: &str, b: &str) -> bool {
    let bare = |h: &str| {
        let h = h.trim().to_ascii_lowercase();
        h.strip_prefix(HASH_PREFIX).map(str::to_owned).unwrap_or(h)
    };
    bare(a) == bare(b)
}

/// The content hash of a plan file's JSON: `sha256:` and the lower-case hex SHA-256 of its
/// canonical serialization, every field but the top-level `hash`.
///
/// Canonical means compact JSON with the keys of every object sorted, so that the hash does
/// not depend on whitespace, key order or the `serde_json` build (`preserve_order`); numbers
/// are written the way `serde_json` writes them, and floats read back exactly (the
/// `float_roundtrip` feature), so a file read and hashed again gives the hash it was saved with.
pub fn content_hash(file: &serde_json::Value) -> String {
    let mut text = String::new();
    match file {
        serde_json::Value::Object(map) => {
            let mut content = map.clone();
            content.remove("hash");
            canonical(&serde_json::Value::Object(content), &mut text);
        }
        other => canonical(other, &mut text),
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = String::from(HASH_PREFIX);
    for byte in digest.as_ref() {
        // Writing to a String does not fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_file_says_how_to_make_a_right_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "{\"format\":\"upshift-plan\",\"version\":9}").unwrap();
        let e = PlanFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("version 9"), "{e}");
        std::fs::write(&path, "[1,2]").unwrap();
        let e = PlanFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("is not an upshift plan file"), "{e}");
        assert!(e.contains("--out"), "{e}");
    }

    #[test]
    fn the_hash_ignores_layout_and_itself_but_not_content() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":[1,2.5,"x"],"a":{"d":null,"c":true},"hash":"h1"}"#)
                .unwrap();
        let b: serde_json::Value = serde_json::from_str(
            "{ \"a\": {\"c\": true, \"d\": null},\n \"b\": [1, 2.5, \"x\"], \"hash\": \"h2\" }",
        )
        .unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert!(content_hash(&a).starts_with("sha256:"));
        assert_eq!(content_hash(&a).len(), "sha256:".len() + 64);
        let c: serde_json::Value =
            serde_json::from_str(r#"{"b":[1,2.5,"y"],"a":{"d":null,"c":true}}"#).unwrap();
        assert_ne!(content_hash(&a), content_hash(&c));
        // A known vector: the canonical text of {} is "{}".
        assert_eq!(
            content_hash(&serde_json::json!({"hash": "x"})),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
