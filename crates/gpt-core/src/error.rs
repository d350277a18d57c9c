//! The error type of `gpt-core`.

use std::path::PathBuf;

use crate::edit::WeightId;
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
        #[source]
        error: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file or folder being written (the final name, never a temporary one).
        path: PathBuf,
        /// The operating-system error.
        #[source]
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
    /// The checkpoint holds tensors that the model its config describes does not use (a
    /// config with too few layers, without a bias the checkpoint has, or stray tensors):
    /// loading it would silently drop them.
    #[error("{path} holds {count} tensor(s) that the model described by its config does not use: `{}`{}{hint}", .names.join("`, `"), if *count > names.len() { ", …" } else { "" })]
    UnusedTensors {
        /// The checkpoint file holding the first of `names`.
        path: PathBuf,
        /// How many tensors are unused.
        count: usize,
        /// The first few unused tensors, in name order.
        names: Vec<String>,
        /// What probably went wrong (starts with `; `), or empty.
        hint: String,
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
    #[error("{0}")]
    Gguf(#[from] gguf::Error),
    /// The tokenizer could not be built or failed to encode or decode.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// An argument is out of its valid range or inconsistent with the model.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The subject of a prompt is empty.
    #[error("the subject is empty")]
    EmptySubject,
    /// The subject does not occur in the prompt (or not that often, or covers no token).
    #[error("subject {subject:?} does not occur in prompt {prompt:?}{}", if *occurrences > 0 { format!(" as occurrence {occurrence} (it occurs {occurrences} time(s), counted from 0)") } else { String::new() })]
    SubjectNotFound {
        /// The subject.
        subject: String,
        /// The prompt.
        prompt: String,
        /// The occurrence asked for (0-based).
        occurrence: usize,
        /// How many times it occurs.
        occurrences: usize,
    },
    /// A target (an answer to score or to write) is blank or tokenises to nothing.
    #[error("the target {target:?} has no tokens")]
    EmptyTarget {
        /// The target text.
        target: String,
    },
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
    /// A rewrite request is malformed.
    #[error("request {prompt:?}: {reason}")]
    InvalidRequest {
        /// The prompt template.
        prompt: String,
        /// What is wrong.
        reason: String,
    },
    /// A long operation was stopped by its caller's progress callback (e.g. an
    /// [`Editor::compute`](crate::Editor::compute) whose `progress` returned
    /// [`ControlFlow::Break`](std::ops::ControlFlow::Break)); what it changed is undone.
    #[error(transparent)]
    Cancelled(#[from] crate::progress::Cancelled),
    /// An editing method failed (its own error inside).
    #[error("{method}: {error}")]
    Edit {
        /// The method.
        method: crate::editor::Method,
        /// The method's error.
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A user intervention failed.
    #[error("intervention failed at {point}: {error}")]
    Intervention {
        /// Where it failed.
        point: HookPoint,
        /// The intervention's own error.
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary 0..{vocab_size}")]
    TokenOutOfVocabulary {
        /// The id.
        id: i64,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A forward pass was stopped by an intervention, so it has no logits.
    #[error("the forward pass was stopped at {point} and has no output")]
    Stopped {
        /// Where it stopped.
        point: HookPoint,
    },
    /// A position-wise intervention names a row, position or head outside the activation.
    #[error("{what} {index} at {point} is outside 0..{len}")]
    SiteOutOfRange {
        /// The hook point.
        point: HookPoint,
        /// `row`, `position` or `head`.
        what: &'static str,
        /// The index given (positions may be negative: counted from the end).
        index: i64,
        /// The activation's size in that dimension.
        len: i64,
    },
    /// A position-wise intervention's sites are inconsistent.
    #[error("invalid sites at {point}: {reason}")]
    InvalidSites {
        /// The hook point.
        point: HookPoint,
        /// What is wrong.
        reason: String,
    },
    /// Values for a position-wise intervention fit none of the accepted shapes.
    #[error("values of shape {got:?} do not fit {sites} sites of shape {entry:?} at {point}")]
    SiteValuesShape {
        /// The hook point.
        point: HookPoint,
        /// Number of selected sites.
        sites: usize,
        /// Shape of one site's entry.
        entry: Vec<i64>,
        /// The values' shape.
        got: Vec<i64>,
    },
    /// The model has no such weight (e.g. a gate projection in GPT-2).
    #[error("this model has no weight {id}")]
    NoSuchWeight {
        /// The weight asked for.
        id: WeightId,
    },
    /// An undo record from another model.
    #[error("undo of edit #{serial} ({target}): the record belongs to another model")]
    UndoFromAnotherModel {
        /// The edit's serial number.
        serial: u64,
        /// The edited weight.
        target: WeightId,
    },
    /// An undo out of order: later edits must be undone first. Nothing was changed; the
    /// record stays valid.
    #[error("undo of edit #{serial} ({target}) out of order: undo the later edits first (open edits, oldest first: {open:?})")]
    UndoOutOfOrder {
        /// The edit's serial number.
        serial: u64,
        /// The edited weight.
        target: WeightId,
        /// Serial numbers of the edits still applied, oldest first.
        open: Vec<u64>,
    },
    /// An undo of an edit that was already undone.
    #[error("edit #{serial} ({target}) was already undone")]
    AlreadyUndone {
        /// The edit's serial number.
        serial: u64,
        /// The edited weight.
        target: WeightId,
    },
    /// A tensor holds NaN or infinite values where finite ones are required (e.g. logits of
    /// a model with a corrupt weight).
    #[error("{what} contains {count} NaN or infinite values")]
    NonFinite {
        /// What was checked.
        what: String,
        /// How many values are not finite.
        count: i64,
    },
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An output file could not be written (atomically, to a new place).
    #[error(transparent)]
    Output(#[from] factscope_common::WriteError),
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

impl Error {
    /// The editing method's own error inside an [`Error::Edit`], if it is of type `E`: how a
    /// caller gets back, say, `rome::Error` from an [`crate::Editor`] without guessing (the
    /// method crates also convert it back in their `From<gpt_core::Error>`).
    pub fn method_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Edit { error, .. } => error.downcast_ref::<E>(),
            _ => None,
        }
    }
}

/// Checks that `t` holds only finite values.
///
/// # Errors
/// [`Error::NonFinite`] naming `what` and the count of bad values.
pub fn check_finite(t: &tch::Tensor, what: &str) -> Result<()> {
    let count = t
        .f_isfinite()?
        .f_logical_not()?
        .f_sum(tch::Kind::Int64)?
        .f_int64_value(&[])?;
    if count > 0 {
        return Err(Error::NonFinite {
            what: what.to_string(),
            count,
        });
    }
    Ok(())
}
