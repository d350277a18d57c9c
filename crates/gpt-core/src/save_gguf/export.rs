//! A model written as a new GGUF file from its weights — for a model that did not come from
//! one (a Hugging Face folder, a random or edited model): llama.cpp's metadata for its
//! family, its tokenizer as `tokenizer.ggml.*`, and every tensor under llama.cpp's name in
//! one chosen type.

use std::collections::BTreeMap;
use std::path::Path;

use gguf::{GgmlType, MetadataValue};

use super::vocab::tokenizer_metadata;
use crate::error::{Error, Result};
use crate::families;
use crate::tokenizer::Tokenizer;
use crate::transformer::Transformer;

/// How [`Transformer::export_gguf`] writes a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufExport {
    /// The type of the matrices (F16 by default; F32, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
    /// Q4_K, Q5_K, Q6_K). Vectors (norms, biases) and GPT-2's position embeddings stay F32,
    /// as llama.cpp's converter keeps them; a matrix whose rows are not a whole number of
    /// the type's blocks is stored as F16 (and listed in [`ExportedGguf::as_f16`]).
    pub ty: GgmlType,
    /// `general.name`, if any.
    pub name: Option<String>,
    /// llama.cpp's name of the tokenizer's pre-tokenizer (`tokenizer.ggml.pre`); `None`
    /// finds it for the pre-tokenizers whose name is known (GPT-2's, SmolLM's, Llama 3's,
    /// Qwen2's) and refuses others. A wrong name makes llama.cpp split text differently
    /// without any error.
    pub pre_tokenizer: Option<String>,
    /// `tokenizer.chat_template`, if any (a Hugging Face folder's `tokenizer_config.json`
    /// has it).
    pub chat_template: Option<String>,
}

impl Default for GgufExport {
    fn default() -> Self {
        GgufExport {
            ty: GgmlType::F16,
            name: None,
            pre_tokenizer: None,
            chat_template: None,
        }
    }
}

/// What [`Transformer::export_gguf`] wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExportedGguf {
    /// The number of tensors.
    pub tensors: usize,
    /// How many tensors of each type.
    pub types: BTreeMap<String, usize>,
    /// Matrices stored as F16 instead of the chosen type (rows not a whole number of its
    /// blocks).
    pub as_f16: Vec<String>,
    /// The pre-tokenizer name written (`tokenizer.ggml.pre`).
    pub pre_tokenizer: String,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// llama.cpp's `general.file_type` (`llama_ftype`) of a file whose matrices are `ty`; `None`
/// for a type the export does not write (the types `gguf::quantize` writes all have one).
fn file_type(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        // All-Q4_K / all-Q5_K files are llama.cpp's "_S" mixes at most; say so.
        GgmlType::Q4K => 14,
        GgmlType::Q5K => 16,
        GgmlType::Q6K => 18,
        GgmlType::BF16 => 32,
        _ => return None,
    })
}

/// How a tensor of `shape` (outermost first) named `name` is stored when matrices are
/// `ty`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored {
    /// In `ty`.
    AsChosen,
    /// A vector, or GPT-2's position embeddings: F32, as llama.cpp keeps them.
    F32,
    /// A matrix whose rows are not whole blocks of `ty`: F16.
    F16Instead,
}

impl Stored {
    fn of(name: &str, shape: &[i64], ty: GgmlType) -> Self {
        let row = shape.last().copied().unwrap_or(0).max(0) as u64;
        if shape.len() < 2 || name == "position_embd.weight" {
            Stored::F32
        } else if row % ty.block_size() == 0 {
            Stored::AsChosen
        } else {
            Stored::F16Instead
        }
    }

    fn ty(self, chosen: GgmlType) -> GgmlType {
        match self {
            Stored::AsChosen => chosen,
            Stored::F32 => GgmlType::F32,
            Stored::F16Instead => GgmlType::F16,
        }
    }
}

impl Transformer {
    /// Writes this model (its current weights, edits included) and `tokenizer` as a new
    /// GGUF file `out` for llama.cpp, Ollama and LM Studio — atomically, never over an
    /// existing file. For a model loaded from a GGUF, [`crate::save_gguf`] instead keeps
    /// that file's tensors byte for byte.
    ///
    /// Supported: GPT-2 models and Llama-layout models llama.cpp runs as its `llama` or
    /// `qwen2` graph (Llama, Mistral without a sliding window, Qwen2), with a byte-level BPE
    /// tokenizer. The file is built in memory before it is written (about twice its size at
    /// the peak, beside the model).
    ///
    /// ```no_run
    /// # fn main() -> gpt_core::Result<()> {
    /// use gpt_core::{load_model, GgmlType, GgufExport, LoadOptions};
    /// let loaded = load_model("models/my-hf-folder".as_ref(), LoadOptions::default())?;
    /// let options = GgufExport { ty: GgmlType::Q8_0, ..GgufExport::default() };
    /// let written = loaded.model.export_gguf("my-model.Q8_0.gguf".as_ref(), &loaded.tokenizer, &options)?;
    /// println!("{} tensors, pre-tokenizer {}", written.tensors, written.pre_tokenizer);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an existing `out`, a type that is not written, a family
    /// or config llama.cpp would compute differently; [`Error::Tokenizer`] for a tokenizer
    /// that cannot be stated in GGUF (see [`GgufExport::pre_tokenizer`]); write errors
    /// naming the file.
    pub fn export_gguf(
        &self,
        out: &Path,
        tokenizer: &Tokenizer,
        options: &GgufExport,
    ) -> Result<ExportedGguf> {
        if out.exists() {
            return Err(Error::InvalidInput(format!(
                "{}: it already exists (the model is written to a new file)",
                out.display()
            )));
        }
        let (kvs, pre) = self.gguf_metadata(tokenizer, options)?;
        let tensors = families::gguf_tensors(self)?;
        let ty = options.ty;
        let mut writer = gguf::write::Writer::new();
        for (key, value) in kvs {
            writer = writer.kv(&key, value);
        }
        let mut report = ExportedGguf {
            tensors: tensors.len(),
            types: BTreeMap::new(),
            as_f16: Vec::new(),
            pre_tokenizer: pre,
            bytes: 0,
        };
        for (name, tensor) in tensors {
            let shape = tensor.size();
            let how = Stored::of(&name, &shape, ty);
            if how == Stored::F16Instead {
                report.as_f16.push(name.clone());
            }
            let stored = how.ty(ty);
            let data = super::encode(&name, stored, &super::host_f32(&tensor)?)?;
            let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
            *report.types.entry(stored.to_string()).or_default() += 1;
            writer = writer.tensor(&name, &dims, stored, data);
        }
        let bytes = writer.to_bytes();
        report.bytes = bytes.len() as u64;
        factscope_common::write_atomic(out, &bytes)?;
        Ok(report)
    }

    /// Checks that [`Transformer::export_gguf`] can write this model and `tokenizer` with
    /// `options`, without writing anything (cheap: no tensor is converted), so that a caller
    /// can refuse before long work. Returns the pre-tokenizer name that would be written.
    ///
    /// # Errors
    /// What [`Transformer::export_gguf`] would refuse, but an existing file.
    pub fn check_gguf_export(&self, tokenizer: &Tokenizer, options: &GgufExport) -> Result<String> {
        Ok(self.gguf_metadata(tokenizer, options)?.1)
    }

    /// The new file's metadata and the pre-tokenizer name written.
    fn gguf_metadata(
        &self,
        tokenizer: &Tokenizer,
        options: &GgufExport,
    ) -> Result<(Vec<(String, MetadataValue)>, String)> {
        let ty = options.ty;
        let file_type = file_type(ty).ok_or_else(|| {
            Error::InvalidInput(format!(
                "GGUF type {ty} is not written (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K are)"
            ))
        })?;
        let mut kvs = families::gguf_metadata(&self.config)?;
        let (vocab, pre) = tokenizer_metadata(
            tokenizer,
            self.config.vocab_size,
            options.pre_tokenizer.as_deref(),
        )?;
        if let Some(name) = &options.name {
            kvs.push(("general.name".into(), MetadataValue::String(name.clone())));
        }
        kvs.push(("general.file_type".into(), MetadataValue::U32(file_type)));
        if !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            kvs.push(("general.quantization_version".into(), MetadataValue::U32(2)));
        }
        kvs.extend(vocab);
        if let Some(template) = &options.chat_template {
            kvs.push((
                "tokenizer.chat_template".into(),
                MetadataValue::String(template.clone()),
            ));
        }
        Ok((kvs, pre))
    }
}
