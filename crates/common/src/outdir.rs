//! One rule for every command's output folder: a folder a command writes into is new, empty,
//! or holds only what factscope wrote there before — never a user's file that would be
//! replaced. What factscope wrote is listed in a manifest, `.factscope-outputs.json`, kept up
//! to date (atomically) before each output is written.
//!
//! - A missing or empty folder is created and used.
//! - A folder whose every entry the manifest lists (an earlier run of a factscope command) is
//!   used; its listed outputs may be replaced.
//! - A folder with entries the manifest does not list (files factscope did not write) is
//!   refused, naming some of them, unless the caller allows it (`--force`, or `--resume`
//!   where the command's own checks decide whether the earlier run matches). Even then an
//!   entry not in the manifest is never replaced: [`OutputDir::path`] refuses its name.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsio::{ensure_writable_dir, write_atomic, write_json_atomic, WriteError};

/// The manifest's file name.
pub const MANIFEST: &str = ".factscope-outputs.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// Top-level entries (files or folders) factscope wrote, by name.
    written: BTreeSet<String>,
}

/// An output folder checked by the one rule (see the module docs).
#[derive(Debug)]
pub struct OutputDir {
    dir: PathBuf,
    manifest: Manifest,
    /// Entries that were there and are not factscope's (kept, never replaced).
    foreign: BTreeSet<String>,
}

impl OutputDir {
    /// Opens `dir` for a command's outputs, creating it if needed. With `allow_foreign`,
    /// entries factscope did not write are tolerated (and left alone).
    ///
    /// # Errors
    /// [`WriteError`] if the folder is unusable, or holds entries factscope did not write and
    /// `allow_foreign` is false (the error names up to five of them).
    pub fn open(dir: &Path, allow_foreign: bool) -> Result<Self, WriteError> {
        ensure_writable_dir(dir)?;
        let manifest_path = dir.join(MANIFEST);
        let manifest: Manifest = match fs::read(&manifest_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                WriteError::new(
                    &manifest_path,
                    "reading the output manifest",
                    std::io::Error::other(e),
                )
            })?,
            Err(e) if e.kind() == ErrorKind::NotFound => Manifest::default(),
            Err(e) => {
                return Err(WriteError::new(
                    &manifest_path,
                    "reading the output manifest",
                    e,
                ))
            }
        };
        let mut foreign = BTreeSet::new();
        let entries =
            fs::read_dir(dir).map_err(|e| WriteError::new(dir, "listing the folder", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| WriteError::new(dir, "listing the folder", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporary files of interrupted atomic writes are ours too.
            if name == MANIFEST || (name.starts_with('.') && name.ends_with(".tmp")) {
                continue;
            }
            if !manifest.written.contains(&name) {
                foreign.insert(name);
            }
        }
        if !foreign.is_empty() && !allow_foreign {
            let shown: Vec<&str> = foreign.iter().take(5).map(String::as_str).collect();
            let more = foreign.len().saturating_sub(shown.len());
            return Err(WriteError::new(
                dir,
                "using it as an output folder",
                std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "it holds files factscope did not write ({}{}); choose a new or empty folder, or allow it explicitly (files that are not factscope's are never replaced)",
                        shown.join(", "),
                        if more > 0 { format!(" and {more} more") } else { String::new() }
                    ),
                ),
            ));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            foreign,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether factscope wrote an entry of this name here before (this run or an earlier one).
    pub fn is_ours(&self, name: &str) -> bool {
        self.manifest.written.contains(name)
    }

    /// The path of output `name` (a top-level file or folder name), recorded in the manifest
    /// first so a later run knows it is factscope's.
    ///
    /// # Errors
    /// [`WriteError`] if an entry of that name exists that factscope did not write (it is
    /// never replaced), or the manifest cannot be written.
    pub fn path(&mut self, name: &str) -> Result<PathBuf, WriteError> {
        let path = self.dir.join(name);
        if self.foreign.contains(name) && !self.manifest.written.contains(name) {
            return Err(WriteError::new(
                &path,
                "writing an output",
                std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    "a file of this name is already there and factscope did not write it (refusing to replace it)",
                ),
            ));
        }
        if !self.manifest.written.contains(name) {
            // Several processes may share a folder (the shards of one run): merge what the
            // others recorded meanwhile instead of writing over it.
            let manifest_path = self.dir.join(MANIFEST);
            if let Ok(bytes) = fs::read(&manifest_path) {
                if let Ok(theirs) = serde_json::from_slice::<Manifest>(&bytes) {
                    self.manifest.written.extend(theirs.written);
                }
            }
            self.manifest.written.insert(name.to_string());
            write_json_atomic(&manifest_path, &self.manifest)?;
        }
        Ok(path)
    }

    /// Writes output `name` atomically ([`OutputDir::path`], then [`write_atomic`]).
    ///
    /// # Errors
    /// As [`OutputDir::path`] and [`write_atomic`].
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<PathBuf, WriteError> {
        let path = self.path(name)?;
        write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Writes output `name` as pretty JSON, atomically.
    ///
    /// # Errors
    /// As [`OutputDir::write`].
    pub fn write_json<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<PathBuf, WriteError> {
        let path = self.path(name)?;
        write_json_atomic(&path, value)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_users_files_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        // New folder: used; outputs recorded.
        let mut o = OutputDir::open(&out, false).unwrap();
        o.write("summary.json", b"{}").unwrap();
        // An earlier run's folder: used again, its outputs replaced.
        let mut o = OutputDir::open(&out, false).unwrap();
        assert!(o.is_ours("summary.json"));
        o.write("summary.json", b"{\"n\": 1}").unwrap();
        // A user's file beside them: refused, named.
        fs::write(out.join("notes.txt"), b"mine").unwrap();
        let e = OutputDir::open(&out, false).unwrap_err().to_string();
        assert!(
            e.contains("notes.txt") && e.contains("did not write"),
            "{e}"
        );
        // Allowed explicitly: outputs go beside it, and its name is never written.
        let mut o = OutputDir::open(&out, true).unwrap();
        o.write("summary.json", b"{}").unwrap();
        let e = o.write("notes.txt", b"x").unwrap_err().to_string();
        assert!(e.contains("refusing to replace"), "{e}");
        assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"mine");
        // A user's file with an output name in a folder without a manifest.
        let other = dir.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("summary.json"), b"user's").unwrap();
        assert!(OutputDir::open(&other, false).is_err());
        let mut o = OutputDir::open(&other, true).unwrap();
        assert!(o.write("summary.json", b"{}").is_err());
        assert_eq!(fs::read(other.join("summary.json")).unwrap(), b"user's");
    }
}
