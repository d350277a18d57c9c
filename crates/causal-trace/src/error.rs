//! The error type of `causal-trace`.

use std::path::PathBuf;

/// Errors of tracing, patching and dataset runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model or a prompt failed (shapes, context, subject not found, libtorch).
    #[error(transparent)]
    Model(#[from] gpt_core::Error),
    /// libtorch failed outside a model call.
    #[error("libtorch: {0}")]
    Torch(#[from] gpt_core::tch::TchError),
    /// A long operation was stopped by its caller's progress callback.
    #[error(transparent)]
    Cancelled(#[from] gpt_core::Cancelled),
    /// An argument or setting is out of its valid range or inconsistent (the crate-wide
    /// catch-all, named as in every factscope crate).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A facts file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        error: std::io::Error,
    },
    /// A facts file is malformed.
    #[error("{path}: record {index}: {reason}")]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// Index of the record in the file's list.
        index: usize,
        /// What is wrong (names the field).
        reason: String,
    },
    /// A facts file is not a JSON list.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing results failed.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        error: std::io::Error,
    },
    /// Writing results failed (atomic writes, output folders).
    #[error(transparent)]
    Save(#[from] factscope_common::WriteError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
