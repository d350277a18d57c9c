//! A bounded, panic-free reader for [GGUF] files (the llama.cpp / ggml model
//! format), with bit-exact dequantisation of tensor data to `f32`.
//!
//! Pure Rust, no ML framework dependency. Parsing validates everything
//! ggml would: magic and version (2 or 3, little-endian), bounded counts and
//! string lengths, metadata value types, at most [`MAX_DIMS`] nonzero
//! dimensions per tensor, known tensor types whose innermost dimension is a
//! whole number of blocks, a power-of-two `general.alignment`, aligned tensor
//! offsets, and tensor data that lies inside the file without overlapping.
//! Malformed or truncated input gives an [`Error`] naming the byte offset,
//! metadata key, tensor or path concerned, never a panic, and no allocation
//! is larger than a small multiple of the input's size.
//!
//! Dequantisation ([`dequantize`]) supports F32, F16, BF16, Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K, matching ggml's reference
//! `dequantize_row_*` and gguf-py's `gguf.quants.dequantize` bit for bit.
//! Other types give [`Error::UnsupportedType`].
//!
//! GGUF stores dimensions innermost first ([`TensorInfo::dims`]); the
//! dequantised data is row-major for the reversed shape
//! ([`TensorInfo::shape_outer_first`]), i.e. what PyTorch expects.
//!
//! # Example
//!
//! ```no_run
//! use gguf::GgufFile;
//!
//! # fn main() -> gguf::Result<()> {
//! let mut reader = GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! assert_eq!(reader.file.architecture(), Some("llama"));
//! let n_layers = reader.file.require_u64("llama.block_count")?;
//! let info = reader.file.tensor("token_embd.weight").cloned();
//! if let Some(info) = info {
//!     let shape = info.shape_outer_first(); // e.g. [49152, 576]
//!     let values: Vec<f32> = reader.read_f32(&info.name)?;
//!     assert_eq!(values.len() as u64, info.n_elements());
//!     println!("{n_layers} layers, embedding {shape:?}, type {}", info.ggml_type);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [GGUF]: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md

#![forbid(unsafe_code)]

mod dequant;
mod error;
mod file;
mod metadata;
mod quant;
mod quant_k;
mod reader;
mod rewrite;
mod source;
mod types;
pub mod write;

pub use dequant::dequantize;
pub use error::{Error, Result};
pub use file::{GgufFile, TensorInfo, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
pub use metadata::{MetadataValue, ValueType, MAX_ARRAY_DEPTH};
pub use quant::{can_quantize, quantize};
pub use reader::GgufReader;
pub use rewrite::{rewrite, Replacement};
pub use types::{GgmlType, QK_K};
