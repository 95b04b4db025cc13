//! The data directory: its lock, the run identity, and `--reset-state`.
//!
//! ```text
//! DATA_DIR/neolight.lock          exclusive lock held while a mesh runs on the directory
//! DATA_DIR/identity.json          schema version, market source, replay inputs and settings
//! DATA_DIR/ledger/                sled store
//! DATA_DIR/state/fills.csv        fill journal and mirror
//! DATA_DIR/state/pnl_history.csv  mirror
//! DATA_DIR/runtime/               atlas_brain.json, last_run.json
//! DATA_DIR/archive/<time>/        what --reset-state or a broken sled store moved aside
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use chrono::Utc;
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub const SCHEMA_VERSION: u32 = 1;

/// One replay input as recorded in the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    pub path: String,
    pub sha256: String,
    pub symbols: Vec<String>,
}

/// Identity of a run: a rerun with an equal identity resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub schema_version: u32,
    pub market: String,
    #[serde(default)]
    pub inputs: Vec<InputIdentity>,
    /// Settings that change fills, by flag name.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl RunIdentity {
    /// Human-readable differences from `other` (the stored identity).
    pub fn differences(&self, stored: &RunIdentity) -> Vec<String> {
        let mut out = Vec::new();
        if self.schema_version != stored.schema_version {
            out.push(format!("schema version {} (stored {})", self.schema_version, stored.schema_version));
        }
        if self.market != stored.market {
            // Inputs and settings of another market are not comparable, so the market alone is reported.
            out.push(format!("market {} (stored {})", self.market, stored.market));
            return out;
        }
        if self.inputs != stored.inputs {
            let show = |inputs: &[InputIdentity]| {
                inputs.iter().map(|i| format!("{} [{}]", i.path, &i.sha256[..i.sha256.len().min(12)])).collect::<Vec<_>>().join(", ")
            };
            let same_paths = self.inputs.len() == stored.inputs.len()
                && self.inputs.iter().zip(&stored.inputs).all(|(a, b)| a.path == b.path);
            if same_paths {
                out.push(format!("the contents of the replay inputs changed: {} (stored {})", show(&self.inputs), show(&stored.inputs)));
            } else {
                out.push(format!("replay inputs {} (stored {})", show(&self.inputs), show(&stored.inputs)));
            }
        }
        for (name, value) in &self.settings {
            match stored.settings.get(name) {
                Some(old) if old != value => out.push(format!("--{name} {value} (stored {old})")),
                None => out.push(format!("--{name} {value} (not stored)")),
                _ => {}
            }
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create data directory {path}: {source}; choose another --data-dir or NEOLIGHT_DATA_DIR")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("data directory {path} is in use by another neolight process (lock {lock}); stop it or choose another --data-dir")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("cannot use data directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}/identity.json is not valid: {problem}; move it aside or run with --reset-state")]
    BadIdentity { path: PathBuf, problem: String },
    #[error(
        "data directory {path} holds another run: {differences}. Use --reset-state to move the old state aside, or choose another --data-dir"
    )]
    OtherRun { path: PathBuf, differences: String },
}

/// An open, locked data directory. The lock is released when this is dropped.
pub struct DataDir {
    pub root: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates and locks the directory, applies `--reset-state`, and checks or stores `identity`.
    pub fn open(root: &Path, identity: &RunIdentity, reset: bool) -> Result<Self, DataDirError> {
        std::fs::create_dir_all(root).map_err(|source| DataDirError::Create { path: root.to_path_buf(), source })?;
        let io = |source| DataDirError::Io { path: root.to_path_buf(), source };
        let lock_path = root.join("neolight.lock");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io)?;
        match lock.try_lock_exclusive() {
            Ok(true) => {}
            Ok(false) => return Err(DataDirError::Locked { path: root.to_path_buf(), lock: lock_path }),
            Err(source) => return Err(io(source)),
        }
        let dir = DataDir { root: root.to_path_buf(), _lock: lock };

        if reset {
            dir.move_aside(&["identity.json", "ledger", "state", "runtime"], "reset-state").map_err(io)?;
        }

        let identity_path = root.join("identity.json");
        match std::fs::read(&identity_path) {
            Ok(bytes) => {
                let stored: RunIdentity = serde_json::from_slice(&bytes)
                    .map_err(|err| DataDirError::BadIdentity { path: root.to_path_buf(), problem: err.to_string() })?;
                let differences = identity.differences(&stored);
                if !differences.is_empty() {
                    return Err(DataDirError::OtherRun { path: root.to_path_buf(), differences: differences.join("; ") });
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let text = serde_json::to_vec_pretty(identity).expect("identity serializes");
                write_atomically(&identity_path, &text).map_err(io)?;
            }
            Err(source) => return Err(io(source)),
        }
        for sub in ["state", "runtime"] {
            std::fs::create_dir_all(root.join(sub)).map_err(io)?;
        }
        Ok(dir)
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("ledger")
    }

    pub fn fills_path(&self) -> PathBuf {
        self.root.join("state").join("fills.csv")
    }

    pub fn pnl_path(&self) -> PathBuf {
        self.root.join("state").join("pnl_history.csv")
    }

    pub fn brain_path(&self) -> PathBuf {
        self.root.join("runtime").join("atlas_brain.json")
    }

    pub fn last_run_path(&self) -> PathBuf {
        self.root.join("runtime").join("last_run.json")
    }

    /// Moves the named entries into `archive/<UTC time>-<why>/`; deletes nothing.
    pub fn move_aside(&self, names: &[&str], why: &str) -> std::io::Result<Option<PathBuf>> {
        let present: Vec<&&str> = names.iter().filter(|n| self.root.join(n).exists()).collect();
        if present.is_empty() {
            return Ok(None);
        }
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let target = self.root.join("archive").join(format!("{stamp}-{why}"));
        std::fs::create_dir_all(&target)?;
        for name in present {
            std::fs::rename(self.root.join(name), target.join(name))?;
        }
        warn!(path = %target.display(), why, "moved old state aside");
        info!(path = %target.display(), "nothing was deleted; remove the archive by hand when it is no longer needed");
        Ok(Some(target))
    }
}

/// Replaces `path` with `bytes`: a temp file beside it, fsync, rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(market: &str) -> RunIdentity {
        RunIdentity { schema_version: SCHEMA_VERSION, market: market.into(), inputs: vec![], settings: BTreeMap::new() }
    }

    #[test]
    fn second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DataDir::open(dir.path(), &identity("sim"), false).unwrap();
        let err = DataDir::open(dir.path(), &identity("sim"), false).err().expect("second open must fail");
        assert!(err.to_string().contains("in use by another neolight process"), "{err}");
    }

    #[test]
    fn other_market_is_refused_and_reset_moves_aside() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), &identity("sim"), false).unwrap());
        let err = DataDir::open(dir.path(), &identity("replay"), false).err().expect("other market must fail");
        assert!(err.to_string().contains("market replay (stored sim)"), "{err}");
        assert!(err.to_string().contains("--reset-state"), "{err}");
        drop(DataDir::open(dir.path(), &identity("replay"), true).unwrap());
        let archived: Vec<_> = std::fs::read_dir(dir.path().join("archive")).unwrap().collect();
        assert_eq!(archived.len(), 1);
    }
}
