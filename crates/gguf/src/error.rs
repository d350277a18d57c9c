//! The crate's error type.

use std::path::PathBuf;

use crate::types::GgmlType;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while reading or decoding a GGUF file.
///
/// Every message names where the problem is: a byte offset into the file,
/// a metadata key, a tensor name, or (for [`Error::File`]) the file path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error that happened while working on a particular file on disk.
    #[error("{}: {error}", path.display())]
    File {
        /// The file being read.
        path: PathBuf,
        /// What went wrong.
        error: Box<Error>,
    },

    /// An I/O error from the underlying reader.
    #[error("I/O error while {context}: {error}")]
    Io {
        /// What the reader was doing.
        context: String,
        /// The underlying error.
        error: std::io::Error,
    },

    /// The input ended before a field that must be there.
    #[error("unexpected end of input at byte offset {offset} while reading {what} ({needed} bytes needed, {available} available)")]
    UnexpectedEof {
        /// Byte offset (from the start of the GGUF data) where the field starts.
        offset: u64,
        /// The field being read.
        what: String,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the input.
        available: u64,
    },

    /// The file does not start with the `GGUF` magic.
    #[error("not a GGUF file: bad magic {found:02x?} at byte offset 0 (expected \"GGUF\")")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },

    /// A GGUF version this reader does not handle.
    #[error("unsupported GGUF version {version}{hint}")]
    UnsupportedVersion {
        /// The version number read (little-endian).
        version: u32,
        /// Extra explanation (may be empty).
        hint: String,
    },

    /// A structural problem at a given byte offset.
    #[error("malformed GGUF at byte offset {offset}: {msg}")]
    Malformed {
        /// Byte offset of the offending field.
        offset: u64,
        /// What is wrong.
        msg: String,
    },

    /// A problem while parsing, or with the value of, one metadata key.
    #[error("metadata key `{key}`: {error}")]
    InMetadata {
        /// The key.
        key: String,
        /// What went wrong.
        error: Box<Error>,
    },

    /// A problem while parsing, or with the description of, one tensor.
    #[error("tensor `{name}`: {error}")]
    InTensor {
        /// The tensor's name (or `#index` when the name could not be read).
        name: String,
        /// What went wrong.
        error: Box<Error>,
    },

    /// A value or description that is invalid regardless of where it was read.
    #[error("{msg}")]
    Invalid {
        /// What is wrong.
        msg: String,
    },

    /// A metadata key appears twice.
    #[error("duplicate metadata key `{key}` at byte offset {offset}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Byte offset of the second occurrence.
        offset: u64,
    },

    /// A tensor name appears twice.
    #[error("duplicate tensor name `{name}` at byte offset {offset}")]
    DuplicateTensor {
        /// The repeated name.
        name: String,
        /// Byte offset of the second occurrence.
        offset: u64,
    },

    /// A required metadata key is absent.
    #[error("metadata key `{key}` is missing")]
    MissingKey {
        /// The key looked up.
        key: String,
    },

    /// A metadata value does not have the type the caller asked for.
    #[error("metadata key `{key}` has type {found}, expected {expected}")]
    MetadataType {
        /// The key.
        key: String,
        /// What the caller wanted.
        expected: &'static str,
        /// What the file holds.
        found: &'static str,
    },

    /// No tensor with that name exists.
    #[error("no tensor named `{name}`")]
    TensorNotFound {
        /// The name looked up.
        name: String,
    },

    /// A ggml type id that is not (or no longer) defined.
    #[error("unknown ggml type id {id}")]
    UnknownType {
        /// The id read.
        id: u32,
    },

    /// A known tensor type that this crate cannot dequantise.
    #[error("unsupported tensor type {ty}{}", tensor.as_ref().map(|t| format!(" for tensor `{t}`")).unwrap_or_default())]
    UnsupportedType {
        /// The type.
        ty: GgmlType,
        /// The tensor, when known.
        tensor: Option<String>,
    },

    /// Invalid input to [`crate::dequantize`].
    #[error("cannot dequantize {ty}: {msg}")]
    BadQuantInput {
        /// The type being decoded.
        ty: GgmlType,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    /// Wraps this error with the path of the file it concerns.
    pub fn with_path(self, path: impl Into<PathBuf>) -> Error {
        Error::File {
            path: path.into(),
            error: Box::new(self),
        }
    }

    /// Wraps this error with the tensor it concerns.
    pub fn in_tensor(self, name: impl Into<String>) -> Error {
        match self {
            // Give unsupported-type errors the tensor name directly, so the
            // message reads "unsupported tensor type X for tensor `name`".
            Error::UnsupportedType { ty, tensor: None } => Error::UnsupportedType {
                ty,
                tensor: Some(name.into()),
            },
            e @ Error::UnsupportedType { .. } => e,
            other => Error::InTensor {
                name: name.into(),
                error: Box::new(other),
            },
        }
    }

    /// Wraps this error with the metadata key it concerns.
    pub fn in_metadata(self, key: impl Into<String>) -> Error {
        Error::InMetadata {
            key: key.into(),
            error: Box::new(self),
        }
    }

    pub(crate) fn io(context: impl Into<String>, error: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            error,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid { msg: msg.into() }
    }

    pub(crate) fn malformed(offset: u64, msg: impl Into<String>) -> Error {
        Error::Malformed {
            offset,
            msg: msg.into(),
        }
    }
}
