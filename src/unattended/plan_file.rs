//! The reviewed plan file: `upshift plan … --out PLAN.json` saves the request, the plan and
//! the state it saw (the plan embeds the capture); `upshift run --plan PLAN.json` runs that
//! request and refuses when the platform has drifted from it.
//!
//! The file holds names, plans, quantities and Redis figures, never a config var value, URL or
//! token (the capture keeps config var names only). It is written 0600 all the same, like every
//! file holding run data.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::plan::{Plan, RunRequest};
use crate::window::Window;

/// The `format` field: tells a plan file from other JSON.
pub const FORMAT: &str = "upshift-plan";
/// The current `version`.
pub const VERSION: u32 = 1;

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
        Self {
            format: FORMAT.into(),
            version: VERSION,
            saved_at: now.to_string(),
            window,
            request,
            plan,
        }
    }

    /// Writes the file, mode 0600, replacing it atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), PlanFileError> {
        let err = |source| PlanFileError::Write {
            path: path.to_owned(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self)
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
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Reads and checks a plan file.
    ///
    /// # Errors
    /// Unreadable, not a plan file, or another version.
    pub fn load(path: &Path) -> Result<Self, PlanFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
            path: path.to_owned(),
            source,
        })?;
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
}
