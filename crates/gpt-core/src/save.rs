//! Writing a model as a new Hugging Face folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`): e.g. an edited model, loadable by factscope and by transformers.

use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;
use tch::{Device, Kind};

use crate::config::Architecture;
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use crate::transformer::Transformer;

fn write_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(e.to_string()))
}

/// `v` as a JSON integer when it is whole (transformers checks some fields' types strictly).
fn whole_as_int(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// A rotary scaling as transformers reads it (`original_max_position_embeddings` an int for
/// its rope validation).
fn scaling_json(scaling: crate::config::RopeScaling) -> serde_json::Value {
    let mut v = json!(scaling);
    if let Some(n) = v
        .get("original_max_position_embeddings")
        .and_then(|n| n.as_f64())
    {
        v["original_max_position_embeddings"] = whole_as_int(n);
    }
    v
}

impl Transformer {
    /// The `config.json` of this model in transformers' format.
    pub fn hf_config(&self) -> serde_json::Value {
        let c = &self.config;
        match c.arch {
            Architecture::Gpt2 => json!({
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "n_layer": c.n_layers,
                "n_embd": c.d_model,
                "n_head": c.n_heads,
                "n_inner": c.d_mlp,
                "n_positions": c.n_ctx,
                "vocab_size": c.vocab_size,
                "layer_norm_epsilon": c.norm_eps,
                "activation_function": "gelu_new",
                "tie_word_embeddings": c.tied_embeddings,
                "bos_token_id": c.bos_token_id,
                "eos_token_id": c.eos_token_id,
                "torch_dtype": "float32",
            }),
            _ => self.llama_family_config(),
        }
    }

    /// `config.json` of the Llama-layout families (Llama, Qwen2, Mistral, Gemma 1–3).
    fn llama_family_config(&self) -> serde_json::Value {
        let c = &self.config;
        let mut config = json!({
                "architectures": [match c.model_type.as_str() {
                    "qwen2" => "Qwen2ForCausalLM",
                    "mistral" => "MistralForCausalLM",
                    "gemma" => "GemmaForCausalLM",
                    "gemma2" => "Gemma2ForCausalLM",
                    "gemma3_text" => "Gemma3ForCausalLM",
                    _ => "LlamaForCausalLM",
                }],
                "model_type": c.model_type,
                "num_hidden_layers": c.n_layers,
                "hidden_size": c.d_model,
                "num_attention_heads": c.n_heads,
                "num_key_value_heads": c.n_kv_heads,
                "head_dim": c.d_head,
                "intermediate_size": c.d_mlp,
                "max_position_embeddings": c.n_ctx,
                "vocab_size": c.vocab_size,
                "rms_norm_eps": c.norm_eps,
                "rope_theta": c.rope_theta,
                "rope_scaling": c.rope_scaling.map(scaling_json),
                "sliding_window": c.sliding_window,
                "tie_word_embeddings": c.tied_embeddings,
                "attention_bias": c.qkv_bias,
                "hidden_act": if c.gelu_gate { "gelu_pytorch_tanh" } else { "silu" },
                // Gemma 2's config class reads the activation from here.
                "hidden_activation": c.gelu_gate.then_some("gelu_pytorch_tanh"),
                "bos_token_id": c.bos_token_id,
                "eos_token_id": c.eos_token_id,
                "torch_dtype": "float32",
                // Gemma 2 (null elsewhere, where transformers ignores them).
                // An int in transformers' (strictly checked) Gemma2Config.
                "query_pre_attn_scalar": c.query_pre_attn_scalar.map(whole_as_int),
                "attn_logit_softcapping": c.attn_softcap,
                "final_logit_softcapping": c.final_softcap,
                "layer_types": c.sliding_layers.as_ref().map(|layers| {
                    layers
                        .iter()
                        .map(|&s| if s { "sliding_attention" } else { "full_attention" })
                        .collect::<Vec<_>>()
                }),
        });
        if let Some(sliding) = c.sliding_rope {
            // Gemma 3: one rope per layer type, nested as transformers ≥ 5 writes it.
            let rope = |theta: Option<f64>, scaling: Option<crate::config::RopeScaling>| {
                let mut v = scaling.map_or_else(|| json!({"rope_type": "default"}), scaling_json);
                v["rope_theta"] = json!(theta);
                v
            };
            config["rope_parameters"] = json!({
                "full_attention": rope(c.rope_theta, c.rope_scaling),
                "sliding_attention": rope(Some(sliding.theta), sliding.scaling),
            });
            if let Some(obj) = config.as_object_mut() {
                obj.remove("rope_theta");
                obj.remove("rope_scaling");
            }
        }
        config
    }

    /// Writes this model (its current weights, edits included) and `tokenizer` as a new
    /// Hugging Face folder `dir`: `config.json`, `model.safetensors` (f32), `tokenizer.json`.
    /// The folder is written beside `dir` under a temporary name and renamed into place, so
    /// `dir` appears whole or not at all; an existing `dir` is never touched.
    ///
    /// # Errors
    /// [`Error::Io`] if `dir` exists or cannot be written; libtorch errors.
    pub fn save_hf(&self, dir: &Path, tokenizer: &Tokenizer) -> Result<()> {
        if dir.exists() {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "it already exists (an edited model is written to a new folder)",
                ),
            ));
        }
        let name = dir
            .file_name()
            .ok_or_else(|| write_err(dir, "the path names no folder"))?
            .to_string_lossy()
            .into_owned();
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = self
            .write_folder(&tmp, tokenizer)
            .and_then(|()| std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e)));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_folder(&self, dir: &Path, tokenizer: &Tokenizer) -> Result<()> {
        std::fs::create_dir(dir).map_err(|e| Error::io(dir, e))?;
        let config = serde_json::to_vec_pretty(&self.hf_config()).map_err(|e| write_err(dir, e))?;
        let path = dir.join("config.json");
        std::fs::write(&path, config).map_err(|e| Error::io(&path, e))?;
        let tensors = match self.config.arch {
            Architecture::Gpt2 => crate::gpt2::hf_tensors(self)?,
            Architecture::Llama => {
                // transformers derives Gemma's details from `model_type` alone.
                let c = &self.config;
                let gemma_details = (
                    c.gelu_gate,
                    c.norm_plus_one,
                    c.embed_scale.is_some(),
                    c.post_norms,
                    c.qk_norm,
                );
                let expected = match c.model_type.as_str() {
                    "gemma" => (true, true, true, false, false),
                    "gemma2" => (true, true, true, true, false),
                    "gemma3_text" => (true, true, true, true, true),
                    _ => (false, false, false, false, false),
                };
                if gemma_details != expected {
                    return Err(Error::InvalidInput(format!(
                        "a `{}` model with (GeGLU gate, 1 + w norms, scaled embeddings, post norms, q/k norms) = {gemma_details:?} has no Hugging Face config",
                        c.model_type
                    )));
                }
                crate::llama::hf_tensors(self)?
            }
            Architecture::GptNeox | Architecture::GptJ => {
                return Err(Error::InvalidInput(format!(
                    "writing {:?} models as a Hugging Face folder is not implemented; save the weight changes with --save-delta instead",
                    self.config.arch
                )))
            }
        };
        let mut owned = Vec::with_capacity(tensors.len());
        for (name, t) in tensors {
            let t = t
                .f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Float)?
                .f_contiguous()?;
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            owned.push((name, shape, bytes));
        }
        let path = dir.join("model.safetensors");
        let views = owned
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| write_err(&path, e))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None).map_err(|e| write_err(&path, e))?;
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        let path = dir.join("tokenizer.json");
        tokenizer
            .inner()
            .save(&path, false)
            .map_err(|e| write_err(&path, e))?;
        Ok(())
    }
}
