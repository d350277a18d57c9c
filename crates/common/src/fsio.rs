//! Atomic writes and output-location checks.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A file could not be written (or an output location is unusable).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path} ({context}): {source}")]
pub struct WriteError {
    /// The file or folder concerned.
    pub path: PathBuf,
    /// What was being done.
    pub context: &'static str,
    /// The operating-system error.
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    pub(crate) fn new(path: &Path, context: &'static str, source: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            context,
            source,
        }
    }
}

/// Writes `bytes` to `path` atomically: readers see the old file or the whole new one, never
/// a part. The temporary file sits beside `path` (so the rename stays on one file system),
/// is synced before the rename, and is removed if anything fails.
///
/// # Errors
/// [`WriteError`] naming the file and the step that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            WriteError::new(
                path,
                "choosing a temporary file",
                std::io::Error::new(ErrorKind::InvalidInput, "the path names no file"),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let dir = parent_dir(path);
    let (tmp, mut file) = create_temp(&dir, &file_name)
        .map_err(|e| WriteError::new(path, "creating a temporary file", e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| WriteError::new(path, "writing it (through a temporary file beside it)", e))
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
                .map_err(|e| WriteError::new(path, "renaming the temporary file into place", e))
        });
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Serialises `value` as pretty JSON and writes it with [`write_atomic`].
///
/// # Errors
/// [`WriteError`] naming the file (serialisation failures included).
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), WriteError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| WriteError::new(path, "serialising JSON", std::io::Error::other(e)))?;
    write_atomic(path, &bytes)
}

/// Makes sure `dir` exists (creating it and its parents) and that files can be created in
/// it, by creating and removing a probe file. Call it before long work whose results go
/// there, so an unusable location fails at once instead of after the work.
///
/// # Errors
/// [`WriteError`] if `dir` is a file, cannot be created, or is not writable.
pub fn ensure_writable_dir(dir: &Path) -> Result<(), WriteError> {
    if dir.exists() && !dir.is_dir() {
        return Err(WriteError::new(
            dir,
            "using it as an output folder",
            std::io::Error::new(ErrorKind::AlreadyExists, "it exists and is not a folder"),
        ));
    }
    fs::create_dir_all(dir).map_err(|e| WriteError::new(dir, "creating the folder", e))?;
    let (probe, file) =
        create_temp(dir, "probe").map_err(|e| WriteError::new(dir, "creating a file in it", e))?;
    drop(file);
    let _ = fs::remove_file(probe);
    Ok(())
}

/// Checks that `path` can be written as a new file later: its folder exists or can be
/// created and is writable, and `path` is not a folder. An existing file is only accepted
/// when `overwrite` is true.
///
/// # Errors
/// [`WriteError`] saying why the file could not be written.
pub fn ensure_writable_file(path: &Path, overwrite: bool) -> Result<(), WriteError> {
    if path.is_dir() {
        return Err(WriteError::new(
            path,
            "using it as an output file",
            std::io::Error::new(ErrorKind::AlreadyExists, "it is a folder"),
        ));
    }
    if path.exists() && !overwrite {
        return Err(WriteError::new(
            path,
            "using it as an output file",
            std::io::Error::new(
                ErrorKind::AlreadyExists,
                "it already exists (refusing to overwrite it)",
            ),
        ));
    }
    ensure_writable_dir(&parent_dir(path))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates a new, not yet existing, hidden temporary file in `dir`.
fn create_temp(dir: &Path, file_name: &str) -> std::io::Result<(PathBuf, fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last_err = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{file_name}.{}.{nanos:x}.{n}.tmp",
            std::process::id()
        ));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free temporary file name")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_json_atomic(&path, &vec![1, 2, 3]).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn unusable_locations_are_reported_before_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("occupied");
        fs::write(&file, b"user data").unwrap();
        let e = ensure_writable_dir(&file).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
        let e = ensure_writable_file(&file, false).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(fs::read(&file).unwrap(), b"user data");
        ensure_writable_file(&file, true).unwrap();
        ensure_writable_dir(&dir.path().join("new/nested")).unwrap();
        assert!(dir.path().join("new/nested").is_dir());
        let e = write_atomic(&file.join("below-a-file"), b"x").unwrap_err();
        assert!(e.path.starts_with(&file), "{e}");
    }
}
