//! The error type of `gpt-core`.

use std::path::PathBuf;

use crate::hook::HookPoint;

/// Errors from loading, running and editing models.
///
/// Every variant names what was wrong and where: the file, the tensor, the layer, the hook
/// point or the limit that was exceeded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating-system error.
        error: std::io::Error,
    },
    /// A model path is neither a Hugging Face model folder nor a `.gguf` file.
    #[error("{path} is not a model: {reason}")]
    NotAModel {
        /// The path given.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// A `config.json` (or GGUF metadata) could not be parsed or is inconsistent.
    #[error("invalid model config in {path}: {reason}")]
    Config {
        /// Where the config came from.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint file is corrupt or not in the expected format.
    #[error("invalid checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the architecture needs is absent from the checkpoint.
    #[error("tensor `{name}` is missing from {path}")]
    MissingTensor {
        /// The checkpoint's name for the tensor.
        name: String,
        /// The checkpoint file or folder.
        path: PathBuf,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor's name (checkpoint name, weight id or argument).
        name: String,
        /// The expected shape.
        expected: Vec<i64>,
        /// The shape found.
        got: Vec<i64>,
    },
    /// The GGUF reader failed.
    #[error(transparent)]
    Gguf(#[from] gguf::Error),
    /// The tokenizer could not be built or failed to encode or decode.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// An argument is out of its valid range or inconsistent with the model.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A prompt tokenised to no tokens.
    #[error("the prompt is empty (it has no tokens)")]
    EmptyPrompt,
    /// A sequence is longer than the model's context window.
    #[error("sequence of {len} tokens exceeds the model's context of {n_ctx} tokens")]
    ContextOverflow {
        /// Number of positions requested (including cached ones).
        len: usize,
        /// The model's context length.
        n_ctx: usize,
    },
    /// A layer index is out of range.
    #[error("layer {layer} is out of range: the model has {n_layers} layers")]
    LayerOutOfRange {
        /// The layer asked for.
        layer: usize,
        /// The number of layers.
        n_layers: usize,
    },
    /// A hook point name could not be parsed.
    #[error("unknown hook point `{0}` (expected e.g. `hook_embed`, `blocks.3.hook_resid_pre`, `blocks.3.mlp.hook_post`)")]
    UnknownHookPoint(String),
    /// A hook point that this model does not fire.
    #[error("hook point {point} does not exist in this model")]
    NoSuchHookPoint {
        /// The hook point.
        point: HookPoint,
    },
    /// An intervention returned a replacement of the wrong shape.
    #[error("intervention at {point} returned shape {got:?}, expected {expected:?}")]
    ReplacementShape {
        /// Where the replacement happened.
        point: HookPoint,
        /// The activation's shape.
        expected: Vec<i64>,
        /// The replacement's shape.
        got: Vec<i64>,
    },
    /// A user intervention failed.
    #[error("intervention failed at {point}: {error}")]
    Intervention {
        /// Where it failed.
        point: HookPoint,
        /// The intervention's own error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An edit record does not belong to this model's current state.
    #[error("invalid edit: {0}")]
    Edit(String),
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}
