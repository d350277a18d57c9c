//! The error type of `rome`.

/// Errors of editing: the update math, statistics and requests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model failed (shapes, context, libtorch), or a prompt did.
    #[error(transparent)]
    Model(gpt_core::Error),
    /// libtorch failed outside a model call.
    #[error("libtorch: {0}")]
    Torch(#[from] gpt_core::tch::TchError),
    /// Tensors of the update math have shapes that do not fit together.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// The expected shape, in words (e.g. `[d_in, d_in]`).
        expected: String,
        /// The shape given.
        got: Vec<i64>,
    },
    /// A matrix that must be symmetric positive definite is not (numerically): the key
    /// statistics are singular or too ill-conditioned for a Cholesky solve.
    #[error("{what} is not positive definite (Cholesky failed{}): collect statistics over more text, or regularise it", if let Some(i) = .failed_at { format!(" at pivot {i}") } else { String::new() })]
    NotPositiveDefinite {
        /// Which matrix.
        what: &'static str,
        /// The first non-positive pivot, if known.
        failed_at: Option<i64>,
    },
    /// A matrix is positive definite but too ill-conditioned for a meaningful solve.
    #[error("{what} is ill-conditioned (condition number ≥ {condition:.1e}): collect statistics over more text, or regularise it")]
    IllConditioned {
        /// Which matrix.
        what: &'static str,
        /// The estimate `(max Lᵢᵢ / min Lᵢᵢ)²` of the Cholesky factor's diagonal.
        condition: f64,
    },
    /// The key does not reach the edited direction (`uᵀk ≈ 0`), so no rank-one update along
    /// `u` can change the output at `k`.
    #[error("degenerate rank-one update: (C⁻¹k*)ᵀk = {denominator:e} is (nearly) zero")]
    Degenerate {
        /// The denominator.
        denominator: f64,
    },
    /// A corpus file is unreadable or malformed, or the corpus is empty.
    #[error("corpus {path}: {reason}")]
    Corpus {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What is wrong (with the byte offset or line where it applies).
        reason: String,
    },
    /// A statistics file is unreadable, corrupt, or for another model, layer or corpus.
    #[error("statistics file {path}: {reason}")]
    Stats {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] factscope_common::WriteError),
    /// A long operation was stopped by its caller's progress callback (a statistics run
    /// writes its checkpoint first: run it again to resume).
    #[error(transparent)]
    Cancelled(#[from] gpt_core::Cancelled),
    /// An argument or setting is out of its valid range or inconsistent (the crate-wide
    /// catch-all, named as in every factscope crate).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<gpt_core::Error> for Error {
    /// Wraps a model error; an [`gpt_core::Error::Edit`] that carries one of this crate's
    /// errors (from an [`gpt_core::Editor`] of this crate) becomes that error again.
    fn from(e: gpt_core::Error) -> Self {
        match e {
            gpt_core::Error::Edit { error, method } => match error.downcast::<Error>() {
                Ok(own) => *own,
                Err(error) => Error::Model(gpt_core::Error::Edit { method, error }),
            },
            gpt_core::Error::Cancelled(c) => Error::Cancelled(c),
            other => Error::Model(other),
        }
    }
}
