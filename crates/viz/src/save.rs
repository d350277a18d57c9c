//! Atomic file writes (the shared implementation of `factscope-common`).

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: readers see the old file or the whole new one, never
/// a part (see [`factscope_common::write_atomic`]).
///
/// # Errors
/// [`Error::Io`] naming the file and the step that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    factscope_common::write_atomic(path, bytes).map_err(Error::from)
}

impl From<factscope_common::WriteError> for Error {
    fn from(e: factscope_common::WriteError) -> Self {
        Error::Io {
            path: e.path,
            context: e.context,
            source: e.source,
        }
    }
}
