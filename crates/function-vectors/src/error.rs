//! The error type of `function-vectors`.

use std::path::PathBuf;

/// Errors of task files, prompts, head scans and function vectors.
///
/// Each variant names what was wrong and where: the file, the record index and field, the
/// layer or head, the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model, the tokenizer or an intervention failed.
    #[error(transparent)]
    Model(#[from] gpt_core::Error),
    /// A long operation was stopped by its caller's progress callback.
    #[error(transparent)]
    Cancelled(#[from] gpt_core::Cancelled),
    /// libtorch failed outside a model call.
    #[error("libtorch: {0}")]
    Torch(#[from] gpt_core::tch::TchError),
    /// A task file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        error: std::io::Error,
    },
    /// A task file is not a non-empty JSON list of records.
    #[error("{path}: {reason}")]
    BadTaskFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One record of a task file is malformed.
    #[error("{path}: record {index}: field `{field}`: {reason}")]
    BadRecord {
        /// The file (or the task's name when it did not come from a file).
        path: PathBuf,
        /// Index of the record in the file's list (from 0).
        index: usize,
        /// The field concerned (`input`, `output`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A task has too few pairs (in a split) for the requested prompts.
    #[error("task {task}: {reason}")]
    TooFewPairs {
        /// The task's name.
        task: String,
        /// What is missing.
        reason: String,
    },
    /// A layer outside the model.
    #[error("{what}: layer {layer} is out of range (the model has {n_layers} layers)")]
    LayerOutOfRange {
        /// What asked for it (e.g. `FV layer`).
        what: &'static str,
        /// The layer.
        layer: usize,
        /// Number of layers of the model.
        n_layers: usize,
    },
    /// A head outside the model.
    #[error("head ({layer}, {head}) is out of range (the model has {n_layers} layers × {n_heads} heads)")]
    HeadOutOfRange {
        /// The head's layer.
        layer: usize,
        /// The head.
        head: usize,
        /// Number of layers.
        n_layers: usize,
        /// Query heads per layer.
        n_heads: usize,
    },
    /// A function-vector file is unreadable, corrupt or for another model.
    #[error("function-vector file {path}: {reason}")]
    FvFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An argument or setting is out of its valid range or inconsistent (the crate-wide
    /// catch-all, named as in every factscope crate).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Writing results failed.
    #[error(transparent)]
    Save(#[from] factscope_common::WriteError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
