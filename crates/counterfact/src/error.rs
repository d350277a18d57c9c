//! The error type of `counterfact`.

use std::path::PathBuf;

/// Errors of loading cases, scoring, running and summarising.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model, the tokenizer or an editing method failed.
    #[error(transparent)]
    Model(#[from] gpt_core::Error),
    /// libtorch failed outside a model call.
    #[error("libtorch: {0}")]
    Torch(#[from] gpt_core::tch::TchError),
    /// A dataset file cannot be read or is not a JSON list.
    #[error("cases {path}: {reason}")]
    Dataset {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One record of a dataset is malformed.
    #[error("cases {path}: record {index}, field `{field}`: {reason}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The record's index in the list (0-based).
        index: usize,
        /// The field at fault.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The output folder holds another run, or a record file is corrupt.
    #[error("run folder {path}: {reason}")]
    Run {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] factscope_common::WriteError),
    /// Reading or appending to a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        error: std::io::Error,
    },
    /// A case (or a group edited together) failed.
    #[error("case {}", .case_ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    Case {
        /// The case ids.
        case_ids: Vec<u64>,
        /// What failed.
        #[source]
        error: Box<Error>,
    },
    /// An argument or setting is out of its valid range or inconsistent (the crate-wide
    /// catch-all, named as in every factscope crate).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
