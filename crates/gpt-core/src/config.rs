//! Model configuration: Hugging Face `config.json` wire formats and the validated config.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The architecture family, which fixes the block layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum Architecture {
    /// GPT-2 family: learned positions, LayerNorm, GELU (tanh) MLP, sequential attn → MLP,
    /// biases everywhere.
    Gpt2,
    /// Llama family (Llama, SmolLM2, Qwen2, Mistral): RMSNorm, SwiGLU MLP, rotary positions,
    /// grouped-query attention.
    Llama,
    /// GPT-NeoX / Pythia: LayerNorm, exact-GELU MLP, rotary positions on part of each head
    /// (half-split pairs), fused per-head q/k/v, biases, attention and MLP in parallel or in
    /// sequence (`use_parallel_residual`).
    GptNeox,
    /// GPT-J: one LayerNorm feeding attention and MLP in parallel, tanh-GELU MLP, rotary
    /// positions on the first `rotary_dim` dimensions (interleaved pairs), no q/k/v bias, an
    /// unembedding with bias.
    GptJ,
}

/// A rescaling of the rotary frequencies (`rope_scaling` / `rope_parameters.rope_type`), as
/// transformers' `ROPE_INIT_FUNCTIONS` apply them; the others (`dynamic`, `longrope`, …) are
/// refused when a config is read.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "rope_type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's: wavelengths longer than `original_max_position_embeddings /
    /// low_freq_factor` are divided by `factor`, shorter than `… / high_freq_factor` kept, and
    /// those between interpolated smoothly.
    Llama3 {
        /// The divisor of the low frequencies.
        factor: f64,
        /// Wavelength bound (as a fraction of the original context) of the low frequencies.
        low_freq_factor: f64,
        /// Wavelength bound of the high frequencies.
        high_freq_factor: f64,
        /// The context length the model was trained with.
        original_max_position_embeddings: f64,
    },
    /// YaRN (Peng et al., 2023): frequencies that turn fewer than `beta_slow` times over the
    /// original context are divided by `factor`, those that turn more than `beta_fast` times
    /// kept, a linear ramp over the dimensions between; cos and sin are multiplied by
    /// `attention_factor`.
    Yarn {
        /// The divisor of the interpolated frequencies.
        factor: f64,
        /// The context length the model was trained with.
        original_max_position_embeddings: f64,
        /// Rotations over the original context above which a frequency is kept (default 32).
        beta_fast: f64,
        /// Rotations below which a frequency is divided by `factor` (default 1).
        beta_slow: f64,
        /// Whether the ramp's ends are rounded to whole dimensions (default true).
        truncate: bool,
        /// The multiplier of cos and sin: given, or `0.1·ln(factor) + 1` (with `mscale` and
        /// `mscale_all_dim`, the ratio of two such terms), as transformers derives it.
        attention_factor: f64,
    },
}

impl RopeScaling {
    /// The factor cos and sin are multiplied by (YaRN's attention factor; 1 otherwise).
    pub fn attention_factor(&self) -> f64 {
        match self {
            RopeScaling::Yarn {
                attention_factor, ..
            } => *attention_factor,
            _ => 1.0,
        }
    }
}

/// A rotary embedding's base and rescaling (Gemma 3 gives its sliding layers their own).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rope {
    /// Rotary base (`rope_theta`).
    pub theta: f64,
    /// Rescaling of the frequencies; `None`: plain `θ^(−2i/d)`.
    pub scaling: Option<RopeScaling>,
}

/// A validated model configuration (sizes and numeric constants).
///
/// `#[non_exhaustive]`: fields will be added as architectures are; build one with
/// [`ModelConfig::from_hf_json`], the loaders, or [`crate::random::tiny_config`] and
/// change fields on the value.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct ModelConfig {
    /// Architecture family.
    pub arch: Architecture,
    /// Name of the model family as the checkpoint states it (`gpt2`, `llama`, `qwen2`, ...).
    pub model_type: String,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads (`n_heads` unless grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// Hidden width of the MLP (the dimension of ROME's keys).
    pub d_mlp: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Context length (maximum number of positions).
    pub n_ctx: usize,
    /// Epsilon of the normalisation layers.
    pub norm_eps: f64,
    /// Rotary base (`rope_theta`); `None` for learned positions.
    pub rope_theta: Option<f64>,
    /// How the rotary frequencies are rescaled for long contexts (`rope_scaling`); `None`:
    /// plain `θ^(−2i/d)`.
    pub rope_scaling: Option<RopeScaling>,
    /// How many dimensions of each head rotate (GPT-NeoX's `rotary_pct`, GPT-J's
    /// `rotary_dim`); `None`: all of `d_head`.
    pub rotary_dim: Option<usize>,
    /// Attention and MLP read the same block input and their outputs are added together
    /// (GPT-J; GPT-NeoX's `use_parallel_residual`).
    pub parallel_attn_mlp: bool,
    /// The GELU MLP uses the exact (erf) GELU (GPT-NeoX's `gelu`) rather than the tanh
    /// approximation (`gelu_new`).
    pub exact_gelu: bool,
    /// The gated MLP's gate is tanh-GELU (Gemma's GeGLU) instead of SiLU (SwiGLU).
    pub gelu_gate: bool,
    /// RMSNorm scales by `1 + w` in the reduction dtype before the cast back (Gemma) instead
    /// of by `w` after it (Llama).
    pub norm_plus_one: bool,
    /// Token embeddings are multiplied by this before they enter the residual stream
    /// (Gemma: `√d_model`, rounded to f32 as transformers does); `None`: not scaled.
    pub embed_scale: Option<f64>,
    /// Gemma 2's `query_pre_attn_scalar`: attention scores are scaled by `1/√this` instead of
    /// `1/√d_head`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 2's `attn_logit_softcapping` `c`: scores become `c·tanh(scores / c)` before the
    /// mask and softmax.
    pub attn_softcap: Option<f64>,
    /// Gemma 2's `final_logit_softcapping` `c`: logits become `c·tanh(logits / c)`.
    pub final_softcap: Option<f64>,
    /// Gemma 2's sandwich norms: attention's and the MLP's outputs are normalised again
    /// before they join the residual stream (`post_attention_layernorm`,
    /// `post_feedforward_layernorm`); the hook points `attn_out` / `mlp_out` stay the
    /// projections' outputs, before those norms.
    pub post_norms: bool,
    /// Gemma 3: RMSNorms (`1 + w`) over each head's queries and keys, before the rotation.
    pub qk_norm: bool,
    /// Gemma 3: the rotary base and scaling of the sliding-window layers, which differ from
    /// the full layers' (`rope_theta`, `rope_scaling`); `None`: every layer uses those.
    pub sliding_rope: Option<Rope>,
    /// Which layers use `sliding_window` (Gemma 2's `layer_types`); `None`: every layer.
    pub sliding_layers: Option<Vec<bool>>,
    /// Sliding-window attention (Mistral's `sliding_window`): a query attends only to the
    /// last `w` positions, itself included; `None`: the whole causal past.
    pub sliding_window: Option<usize>,
    /// Whether the unembedding shares the token-embedding matrix.
    pub tied_embeddings: bool,
    /// Whether the q/k/v projections have biases (GPT-2, Qwen2).
    pub qkv_bias: bool,
    /// Beginning-of-sequence token id, if the model has one.
    pub bos_token_id: Option<i64>,
    /// End-of-sequence token id, if the model has one.
    pub eos_token_id: Option<i64>,
}

/// The sizes every family's config states (the rest follows from the family).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub vocab_size: usize,
    pub n_ctx: usize,
    pub norm_eps: f64,
}

impl ModelConfig {
    /// GPT-2 of `sizes`: learned positions, LayerNorm, tanh-GELU MLP, q/k/v biases, tied
    /// unembedding, no special tokens. The one place that states the family's fixed facts;
    /// each GPT-2 reader sets what its file says on top (`..ModelConfig::gpt2(sizes)`).
    pub(crate) fn gpt2(sizes: Sizes) -> Self {
        Self::with_sizes(Architecture::Gpt2, "gpt2", sizes, None, true, true)
    }

    /// The Llama layout of `sizes` with Llama's details: rotary positions (θ = 10000, no
    /// rescaling), RMSNorm, SwiGLU MLP, no biases, untied unembedding, no window, no special
    /// tokens. Qwen2, Mistral and the Gemmas are set on top by their readers.
    pub(crate) fn llama(model_type: &str, sizes: Sizes) -> Self {
        Self::with_sizes(
            Architecture::Llama,
            model_type,
            sizes,
            Some(10000.0),
            false,
            false,
        )
    }

    /// The exhaustive literal behind [`ModelConfig::gpt2`] and [`ModelConfig::llama`]: every
    /// optional feature off.
    fn with_sizes(
        arch: Architecture,
        model_type: &str,
        sizes: Sizes,
        rope_theta: Option<f64>,
        tied_embeddings: bool,
        qkv_bias: bool,
    ) -> Self {
        let Sizes {
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            d_head,
            d_mlp,
            vocab_size,
            n_ctx,
            norm_eps,
        } = sizes;
        ModelConfig {
            arch,
            model_type: model_type.to_string(),
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            d_head,
            d_mlp,
            vocab_size,
            n_ctx,
            norm_eps,
            rope_theta,
            rope_scaling: None,
            rotary_dim: None,
            parallel_attn_mlp: false,
            exact_gelu: false,
            gelu_gate: false,
            norm_plus_one: false,
            embed_scale: None,
            query_pre_attn_scalar: None,
            attn_softcap: None,
            final_softcap: None,
            post_norms: false,
            qk_norm: false,
            sliding_rope: None,
            sliding_layers: None,
            sliding_window: None,
            tied_embeddings,
            qkv_bias,
            bos_token_id: None,
            eos_token_id: None,
        }
    }

    /// How many dimensions of each head the rotary embedding turns (`rotary_dim`, else
    /// `d_head`).
    pub fn rotary_dims(&self) -> usize {
        self.rotary_dim.unwrap_or(self.d_head)
    }

    /// Checks the sizes for consistency.
    ///
    /// # Errors
    /// [`Error::Config`] naming `source` and the inconsistent field.
    pub fn validate(&self, source: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Config {
                path: source.to_path_buf(),
                reason,
            })
        };
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("d_head", self.d_head),
            ("d_mlp", self.d_mlp),
            ("vocab_size", self.vocab_size),
            ("n_ctx", self.n_ctx),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if let Some(r) = self.rotary_dim {
            if r == 0 || r % 2 != 0 || r > self.d_head {
                return bad(format!(
                    "rotary_dim {r} must be even, positive and at most d_head {}",
                    self.d_head
                ));
            }
        }
        if self.arch != Architecture::Llama && self.n_heads * self.d_head != self.d_model {
            return bad(format!(
                "d_model {} is not n_heads {} x d_head {}",
                self.d_model, self.n_heads, self.d_head
            ));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return bad(format!(
                "n_heads {} is not a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.rope_theta.is_some() && self.rotary_dim.is_none() && self.d_head % 2 != 0 {
            return bad(format!(
                "rotary embeddings need an even d_head, got {}",
                self.d_head
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return bad(format!(
                "norm epsilon {} is not a finite non-negative number",
                self.norm_eps
            ));
        }
        if self.sliding_window == Some(0) {
            return bad("sliding_window must be positive".into());
        }
        if let Some(layers) = &self.sliding_layers {
            if layers.len() != self.n_layers {
                return bad(format!(
                    "sliding_layers has {} entries for {} layers",
                    layers.len(),
                    self.n_layers
                ));
            }
            if self.sliding_window.is_none() && layers.iter().any(|&s| s) {
                return bad("sliding layers without a sliding_window".into());
            }
        }
        if let Some(rope) = &self.sliding_rope {
            if !(rope.theta.is_finite() && rope.theta > 0.0) {
                return bad(format!(
                    "sliding layers' rope_theta {} must be positive",
                    rope.theta
                ));
            }
        }
        for (name, v) in [
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("attn_logit_softcapping", self.attn_softcap),
            ("final_logit_softcapping", self.final_softcap),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return bad(format!("{name} {v} must be positive"));
                }
            }
        }
        match self.rope_scaling {
            Some(RopeScaling::Linear { factor }) if !(factor.is_finite() && factor > 0.0) => {
                return bad(format!("rope_scaling factor {factor} must be positive"));
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) if !([
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            ]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
                && high_freq_factor > low_freq_factor) =>
            {
                return bad(
                    "llama3 rope_scaling needs positive factors with high_freq_factor > low_freq_factor"
                        .into(),
                );
            }
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                attention_factor,
                ..
            }) if !([
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
            ]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
                && attention_factor.is_finite()
                && attention_factor > 0.0) =>
            {
                return bad(
                    "yarn rope_scaling needs positive factor, original_max_position_embeddings, \
                     beta_fast, beta_slow and attention_factor"
                        .into(),
                );
            }
            _ => {}
        }
        if let Some(theta) = self.rope_theta {
            if !(theta.is_finite() && theta > 0.0) {
                return bad(format!("rope_theta {theta} must be positive"));
            }
        }
        for (name, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if let Some(id) = id {
                if id < 0 || id as usize >= self.vocab_size {
                    return bad(format!(
                        "{name} {id} is outside the vocabulary of {}",
                        self.vocab_size
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads and validates a Hugging Face `config.json`.
    ///
    /// # Errors
    /// [`Error::Io`] if unreadable, [`Error::Config`] for unknown architectures, missing
    /// fields or inconsistent sizes.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_json(&text, path)
    }

    /// Parses and validates the text of a Hugging Face `config.json`; `source` names it in
    /// errors.
    ///
    /// # Errors
    /// As [`ModelConfig::from_hf_file`].
    pub fn from_hf_json(text: &str, source: &Path) -> Result<Self> {
        let cfg_err = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        let probe: TypeProbe = serde_json::from_str(text).map_err(|e| cfg_err(e.to_string()))?;
        let model_type = probe.model_type.unwrap_or_default();
        let config = match model_type.as_str() {
            "gpt2" => serde_json::from_str::<Gpt2HfConfig>(text)
                .map_err(|e| cfg_err(e.to_string()))?
                .into_config(source)?,
            "llama" | "qwen2" | "mistral" | "gemma" | "gemma2" | "gemma3_text" => {
                serde_json::from_str::<LlamaHfConfig>(text)
                    .map_err(|e| cfg_err(e.to_string()))?
                    .into_config(&model_type, source)?
            }
            "gpt_neox" => serde_json::from_str::<NeoxHfConfig>(text)
                .map_err(|e| cfg_err(e.to_string()))?
                .into_config(source)?,
            "gptj" => serde_json::from_str::<GptjHfConfig>(text)
                .map_err(|e| cfg_err(e.to_string()))?
                .into_config(source)?,
            "" => return Err(cfg_err("no `model_type` field".into())),
            other => {
                return Err(cfg_err(format!(
                    "unknown architecture `{other}` (supported: gpt2, llama, qwen2, mistral, gpt_neox, gptj)"
                )))
            }
        };
        config.validate(source)?;
        Ok(config)
    }
}

#[derive(Deserialize)]
struct TypeProbe {
    model_type: Option<String>,
}

/// One token id or a list of them (HF allows both for `eos_token_id`).
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    fn first(&self) -> Option<i64> {
        match self {
            TokenIds::One(id) => Some(*id),
            TokenIds::Many(ids) => ids.first().copied(),
        }
    }
}

/// The fields of a GPT-2 `config.json` (Hugging Face names).
#[derive(Deserialize, Debug)]
struct Gpt2HfConfig {
    n_layer: usize,
    n_embd: usize,
    n_head: usize,
    n_positions: usize,
    vocab_size: usize,
    n_inner: Option<usize>,
    #[serde(default = "default_ln_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_gelu_new")]
    activation_function: String,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    reorder_and_upcast_attn: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

fn default_ln_eps() -> f64 {
    1e-5
}
fn default_gelu_new() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

impl Gpt2HfConfig {
    fn into_config(self, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh"
        ) {
            return Err(bad(format!(
                "activation_function `{}` is not supported (gelu_new only)",
                self.activation_function
            )));
        }
        if self.scale_attn_by_inverse_layer_idx || self.reorder_and_upcast_attn {
            return Err(bad(
                "scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported"
                    .into(),
            ));
        }
        if self.n_head == 0 || self.n_embd % self.n_head != 0 {
            return Err(bad(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            )));
        }
        Ok(ModelConfig {
            tied_embeddings: self.tie_word_embeddings,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
            ..ModelConfig::gpt2(Sizes {
                n_layers: self.n_layer,
                d_model: self.n_embd,
                n_heads: self.n_head,
                n_kv_heads: self.n_head,
                d_head: self.n_embd / self.n_head,
                d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
                vocab_size: self.vocab_size,
                n_ctx: self.n_positions,
                norm_eps: self.layer_norm_epsilon,
            })
        })
    }
}

/// The fields of a Llama / Qwen2 / Mistral `config.json` (Hugging Face names).
#[derive(Deserialize, Debug)]
struct LlamaHfConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    #[serde(default = "default_ctx")]
    max_position_embeddings: usize,
    #[serde(default = "default_rms_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5 writes `{"rope_theta": .., "rope_type": .., <scaling fields>}` here
    /// instead.
    rope_parameters: Option<serde_json::Value>,
    /// Gemma 2: scores scaled by `1/√query_pre_attn_scalar` (default 256).
    query_pre_attn_scalar: Option<f64>,
    /// Gemma 2: missing = 50, null = none.
    #[serde(default, deserialize_with = "present")]
    attn_logit_softcapping: Option<Option<f64>>,
    /// Gemma 2: missing = 30, null = none.
    #[serde(default, deserialize_with = "present")]
    final_logit_softcapping: Option<Option<f64>>,
    /// Gemma 2: `sliding_attention` / `full_attention` per layer (default: alternating,
    /// sliding first).
    layer_types: Option<Vec<String>>,
    /// Gemma 3 before transformers 5: the sliding layers' rotary base (default 10000).
    rope_local_base_freq: Option<f64>,
    /// Gemma 2: must not be true (bidirectional attention is not a language model).
    use_bidirectional_attention: Option<bool>,
    /// Phi-3 style: the pretraining context length outside the scaling object.
    original_max_position_embeddings: Option<f64>,
    /// Mistral (and Qwen2 when `use_sliding_window`): the attention window.
    sliding_window: Option<usize>,
    /// Qwen2: whether `sliding_window` applies at all.
    use_sliding_window: Option<bool>,
    /// Default: tied for Gemma, untied otherwise (as transformers' config classes).
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    /// Default: silu (Gemma: gelu_pytorch_tanh).
    hidden_act: Option<String>,
    /// Gemma configs of transformers 4.38–4.x: the activation, when set, is here.
    hidden_activation: Option<String>,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

fn default_ctx() -> usize {
    2048
}
fn default_rms_eps() -> f64 {
    1e-6
}
/// What a rotary scaling reads from outside its own object: the context lengths.
#[derive(Clone, Copy)]
struct RopeContext {
    /// `max_position_embeddings`.
    max_positions: usize,
    /// A top-level `original_max_position_embeddings` (Phi-3 style), which transformers
    /// prefers to the one inside the scaling object.
    original_max_positions: Option<f64>,
}

/// YaRN's attention-factor term `0.1·mscale·ln(scale) + 1` (1 for `scale ≤ 1`).
fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

/// The rotary scaling a `rope_scaling` or `rope_parameters` object asks for (`rope_type`, or
/// the older `type`): `None` for `default`; an error naming the option for what is not
/// implemented, so that no config that changes the math is read as if it did not. Missing
/// optional fields take transformers' defaults (`_compute_yarn_parameters`).
fn parse_rope_scaling(
    field: &str,
    value: &serde_json::Value,
    ctx: RopeContext,
) -> std::result::Result<Option<RopeScaling>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let kind = value
        .get("rope_type")
        .or_else(|| value.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let number = |key: &str| -> std::result::Result<f64, String> {
        value
            .get(key)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| format!("{field}: rope_type `{kind}` needs a number `{key}`"))
    };
    let optional = |key: &str| value.get(key).and_then(|v| v.as_f64());
    // transformers: the top-level value first, then the object's, then the context length.
    let original = || {
        ctx.original_max_positions
            .or_else(|| optional("original_max_position_embeddings"))
            .unwrap_or(ctx.max_positions as f64)
    };
    Ok(match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear {
            factor: number("factor")?,
        }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: number("factor")?,
            low_freq_factor: number("low_freq_factor")?,
            high_freq_factor: number("high_freq_factor")?,
            original_max_position_embeddings: number("original_max_position_embeddings")?,
        }),
        "yarn" => {
            let original = original();
            // A null factor means the ratio of the two context lengths (DeepSeek-V3 style).
            let factor = optional("factor").unwrap_or(ctx.max_positions as f64 / original);
            // `x or default` in transformers: a zero counts as missing.
            let nonzero = |key: &str| optional(key).filter(|v| *v != 0.0);
            let attention_factor = match (
                optional("attention_factor"),
                nonzero("mscale"),
                nonzero("mscale_all_dim"),
            ) {
                (Some(a), _, _) => a,
                (None, Some(m), Some(all)) => yarn_mscale(factor, m) / yarn_mscale(factor, all),
                _ => yarn_mscale(factor, 1.0),
            };
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                beta_fast: nonzero("beta_fast").unwrap_or(32.0),
                beta_slow: nonzero("beta_slow").unwrap_or(1.0),
                truncate: value
                    .get("truncate")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true),
                attention_factor,
            })
        }
        other => {
            return Err(format!(
                "{field}: rope_type `{other}` is not supported (default, linear, llama3, yarn)"
            ))
        }
    })
}
/// A field that may be missing (outer `None`) or explicitly null (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

impl LlamaHfConfig {
    /// Gemma 3's two rotary embeddings `(global θ, global scaling, sliding rope)`: from
    /// `rope_parameters` nested by layer type (transformers ≥ 5), or from `rope_theta`
    /// (default 1e6), `rope_scaling` (global only) and `rope_local_base_freq` (default 1e4).
    fn gemma3_ropes(
        &self,
        ctx: RopeContext,
    ) -> std::result::Result<(f64, Option<RopeScaling>, Option<Rope>), String> {
        let nested = |kind: &str| {
            self.rope_parameters
                .as_ref()
                .and_then(|p| p.get(kind))
                .filter(|v| v.is_object())
        };
        let theta_of = |v: Option<&serde_json::Value>| {
            v.and_then(|v| v.get("rope_theta")).and_then(|t| t.as_f64())
        };
        let (full, sliding) = (nested("full_attention"), nested("sliding_attention"));
        let global_theta = theta_of(full).or(self.rope_theta).unwrap_or(1_000_000.0);
        let mut global_scaling = match full {
            Some(v) => parse_rope_scaling("rope_parameters.full_attention", v, ctx)?,
            None => None,
        };
        if let Some(v) = &self.rope_scaling {
            if let Some(scaling) = parse_rope_scaling("rope_scaling", v, ctx)? {
                global_scaling = Some(scaling);
            }
        }
        let local = Rope {
            theta: theta_of(sliding)
                .or(self.rope_local_base_freq)
                .unwrap_or(10_000.0),
            scaling: match sliding {
                Some(v) => parse_rope_scaling("rope_parameters.sliding_attention", v, ctx)?,
                None => None,
            },
        };
        Ok((global_theta, global_scaling, Some(local)))
    }

    fn into_config(self, model_type: &str, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        let gemma3 = model_type == "gemma3_text";
        // Gemma 3's block is Gemma 2's (sandwich norms, windowed layers) without the caps.
        let gemma2 = model_type == "gemma2" || gemma3;
        let gemma = model_type == "gemma" || gemma2;
        let act = self
            .hidden_activation
            .as_deref()
            .filter(|_| gemma)
            .or(self.hidden_act.as_deref())
            .unwrap_or(if gemma { "gelu_pytorch_tanh" } else { "silu" });
        // Gemma's legacy `gelu` means the tanh approximation (transformers rewrites it).
        let gelu_gate = match (gemma, act) {
            (false, "silu") => false,
            (true, "gelu_pytorch_tanh" | "gelu") => true,
            (_, other) => {
                return Err(bad(format!(
                    "hidden_act `{other}` is not supported for {model_type} ({})",
                    if gemma { "gelu_pytorch_tanh" } else { "silu" }
                )))
            }
        };
        let ctx = RopeContext {
            max_positions: self.max_position_embeddings,
            original_max_positions: self.original_max_position_embeddings,
        };
        let (rope_theta, rope_scaling, sliding_rope) = if gemma3 {
            self.gemma3_ropes(ctx).map_err(&bad)?
        } else {
            let scaling = rope_scaling_of(
                self.rope_scaling.as_ref(),
                self.rope_parameters.as_ref(),
                ctx,
            )
            .map_err(&bad)?;
            let theta = self
                .rope_theta
                .or(self
                    .rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|t| t.as_f64()))
                .unwrap_or(10000.0);
            (theta, scaling, None)
        };
        // Mistral applies its window to every layer; Qwen2 only with `use_sliding_window`,
        // and then from layer `max_window_layers` on, which is not implemented.
        let sliding_window = match (model_type, self.use_sliding_window) {
            ("qwen2", Some(true)) => {
                return Err(bad(
                    "use_sliding_window = true (Qwen2's per-layer windows) is not supported".into(),
                ))
            }
            ("qwen2", _) => None,
            _ => self.sliding_window,
        };
        let (sliding_window, sliding_layers) = if gemma2 {
            if self.use_bidirectional_attention == Some(true) {
                return Err(bad(
                    "use_bidirectional_attention = true is not supported (causal models only)"
                        .into(),
                ));
            }
            let n = self.num_hidden_layers;
            // Gemma 2 alternates; Gemma 3 has five sliding layers to each full one.
            let pattern = if gemma3 { 6 } else { 2 };
            let layers = match &self.layer_types {
                None => (0..n).map(|i| (i + 1) % pattern != 0).collect(),
                Some(types) if types.len() != n => {
                    return Err(bad(format!(
                        "layer_types has {} entries for {n} layers",
                        types.len()
                    )))
                }
                Some(types) => types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| match t.as_str() {
                        "sliding_attention" => Ok(true),
                        "full_attention" => Ok(false),
                        other => Err(bad(format!(
                            "layer_types[{i}] `{other}` is not supported (sliding_attention, full_attention)"
                        ))),
                    })
                    .collect::<Result<Vec<bool>>>()?,
            };
            (Some(sliding_window.unwrap_or(4096)), Some(layers))
        } else {
            (sliding_window, None)
        };
        let softcap = |v: Option<Option<f64>>, default: f64| match (gemma3, gemma2) {
            // Gemma 3 has no caps unless its config sets them.
            (true, _) => v.flatten(),
            (false, true) => v.unwrap_or(Some(default)),
            _ => None,
        };
        if self.mlp_bias {
            return Err(bad("mlp_bias = true is not supported".into()));
        }
        if self.num_attention_heads == 0 {
            return Err(bad("num_attention_heads must be positive".into()));
        }
        // GemmaConfig's default head_dim is 256, not hidden_size / heads.
        let d_head = self.head_dim.unwrap_or(if gemma {
            256
        } else {
            self.hidden_size / self.num_attention_heads
        });
        Ok(ModelConfig {
            rope_theta: Some(rope_theta),
            rope_scaling,
            gelu_gate,
            norm_plus_one: gemma,
            // transformers: `torch.tensor(hidden_size ** 0.5)`, a float32, cast to the dtype.
            embed_scale: gemma.then(|| f64::from((self.hidden_size as f64).sqrt() as f32)),
            query_pre_attn_scalar: gemma2.then(|| self.query_pre_attn_scalar.unwrap_or(256.0)),
            attn_softcap: softcap(self.attn_logit_softcapping, 50.0),
            final_softcap: softcap(self.final_logit_softcapping, 30.0),
            post_norms: gemma2,
            qk_norm: gemma3,
            sliding_rope,
            sliding_layers,
            sliding_window,
            tied_embeddings: self.tie_word_embeddings.unwrap_or(gemma),
            // Qwen2 always has q/k/v biases; Llama and Mistral only with `attention_bias`.
            qkv_bias: model_type == "qwen2" || self.attention_bias,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
            ..ModelConfig::llama(
                model_type,
                Sizes {
                    n_layers: self.num_hidden_layers,
                    d_model: self.hidden_size,
                    n_heads: self.num_attention_heads,
                    n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
                    d_head,
                    d_mlp: self.intermediate_size,
                    vocab_size: self.vocab_size,
                    n_ctx: self.max_position_embeddings,
                    norm_eps: self.rms_norm_eps,
                },
            )
        })
    }
}

/// The fields of a GPT-NeoX / Pythia `config.json` (Hugging Face names; transformers ≥ 5
/// moves `rotary_pct` / `rotary_emb_base` into `rope_parameters`).
#[derive(Deserialize, Debug)]
struct NeoxHfConfig {
    hidden_size: usize,
    intermediate_size: Option<usize>,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    vocab_size: usize,
    #[serde(default = "default_ctx")]
    max_position_embeddings: usize,
    #[serde(default = "default_ln_eps")]
    layer_norm_eps: f64,
    rotary_pct: Option<f64>,
    rotary_emb_base: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    #[serde(default = "default_true")]
    use_parallel_residual: bool,
    #[serde(default = "default_gelu")]
    hidden_act: String,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "default_true")]
    attention_bias: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

fn default_gelu() -> String {
    "gelu".into()
}

/// Rotary scaling from either field of a config (`rope_scaling`, `rope_parameters`).
fn rope_scaling_of(
    rope_scaling: Option<&serde_json::Value>,
    rope_parameters: Option<&serde_json::Value>,
    ctx: RopeContext,
) -> std::result::Result<Option<RopeScaling>, String> {
    let mut found = None;
    for (field, value) in [
        ("rope_scaling", rope_scaling),
        ("rope_parameters", rope_parameters),
    ] {
        if let Some(value) = value {
            if let Some(scaling) = parse_rope_scaling(field, value, ctx)? {
                found = Some(scaling);
            }
        }
    }
    Ok(found)
}

impl NeoxHfConfig {
    fn into_config(self, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        let exact_gelu = match self.hidden_act.as_str() {
            "gelu" => true,
            "gelu_new" | "gelu_pytorch_tanh" => false,
            other => {
                return Err(bad(format!(
                    "hidden_act `{other}` is not supported (gelu, gelu_new)"
                )))
            }
        };
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        let params = self.rope_parameters.as_ref();
        let param = |key: &str| params.and_then(|p| p.get(key)).and_then(|v| v.as_f64());
        // transformers' default `rotary_pct` is 0.25.
        let pct = param("partial_rotary_factor")
            .or(self.rotary_pct)
            .unwrap_or(0.25);
        let d_head = self.hidden_size / self.num_attention_heads;
        let rotary_dim = (d_head as f64 * pct) as usize;
        Ok(ModelConfig {
            arch: Architecture::GptNeox,
            model_type: "gpt_neox".into(),
            n_layers: self.num_hidden_layers,
            d_model: self.hidden_size,
            n_heads: self.num_attention_heads,
            n_kv_heads: self.num_attention_heads,
            d_head,
            d_mlp: self.intermediate_size.unwrap_or(4 * self.hidden_size),
            vocab_size: self.vocab_size,
            n_ctx: self.max_position_embeddings,
            norm_eps: self.layer_norm_eps,
            rope_theta: Some(
                param("rope_theta")
                    .or(self.rotary_emb_base)
                    .unwrap_or(10000.0),
            ),
            rope_scaling: rope_scaling_of(
                self.rope_scaling.as_ref(),
                params,
                RopeContext {
                    max_positions: self.max_position_embeddings,
                    original_max_positions: None,
                },
            )
            .map_err(bad)?,
            rotary_dim: Some(rotary_dim),
            parallel_attn_mlp: self.use_parallel_residual,
            exact_gelu,
            gelu_gate: false,
            norm_plus_one: false,
            embed_scale: None,
            query_pre_attn_scalar: None,
            attn_softcap: None,
            final_softcap: None,
            post_norms: false,
            qk_norm: false,
            sliding_rope: None,
            sliding_layers: None,
            sliding_window: None,
            tied_embeddings: self.tie_word_embeddings,
            qkv_bias: self.attention_bias,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
        })
    }
}

/// The fields of a GPT-J `config.json` (Hugging Face names).
#[derive(Deserialize, Debug)]
struct GptjHfConfig {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_positions: usize,
    vocab_size: usize,
    rotary_dim: Option<usize>,
    n_inner: Option<usize>,
    #[serde(default = "default_gelu_new")]
    activation_function: String,
    #[serde(default = "default_ln_eps")]
    layer_norm_epsilon: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

impl GptjHfConfig {
    fn into_config(self, source: &Path) -> Result<ModelConfig> {
        let bad = |reason: String| Error::Config {
            path: source.to_path_buf(),
            reason,
        };
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh"
        ) {
            return Err(bad(format!(
                "activation_function `{}` is not supported (gelu_new only)",
                self.activation_function
            )));
        }
        if self.n_head == 0 || self.n_embd % self.n_head != 0 {
            return Err(bad(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            )));
        }
        // Without `rotary_dim`, transformers' GPT-J builds tables of the whole width and
        // applies them per head; no released GPT-J does that, so it is refused.
        let rotary_dim = self
            .rotary_dim
            .ok_or_else(|| bad("GPT-J without rotary_dim is not supported".into()))?;
        Ok(ModelConfig {
            arch: Architecture::GptJ,
            model_type: "gptj".into(),
            n_layers: self.n_layer,
            d_model: self.n_embd,
            n_heads: self.n_head,
            n_kv_heads: self.n_head,
            d_head: self.n_embd / self.n_head,
            d_mlp: self.n_inner.unwrap_or(4 * self.n_embd),
            vocab_size: self.vocab_size,
            n_ctx: self.n_positions,
            norm_eps: self.layer_norm_epsilon,
            // GPT-J's tables use base 10000 (fixed in transformers' `create_sinusoidal_positions`).
            rope_theta: Some(10000.0),
            rope_scaling: None,
            rotary_dim: Some(rotary_dim),
            parallel_attn_mlp: true,
            exact_gelu: false,
            gelu_gate: false,
            norm_plus_one: false,
            embed_scale: None,
            query_pre_attn_scalar: None,
            attn_softcap: None,
            final_softcap: None,
            post_norms: false,
            qk_norm: false,
            sliding_rope: None,
            sliding_layers: None,
            sliding_window: None,
            tied_embeddings: self.tie_word_embeddings,
            qkv_bias: false,
            bos_token_id: self.bos_token_id.and_then(|t| t.first()),
            eos_token_id: self.eos_token_id.and_then(|t| t.first()),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn llama_json(model_type: &str, extra: &str) -> String {
        format!(
            r#"{{"model_type": "{model_type}", "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "vocab_size": 100{extra}}}"#
        )
    }

    fn parse(model_type: &str, extra: &str) -> Result<ModelConfig> {
        ModelConfig::from_hf_json(&llama_json(model_type, extra), Path::new("m/config.json"))
    }

    #[test]
    fn rope_scaling_is_read_in_both_spellings() {
        let old = parse(
            "llama",
            r#", "rope_scaling": {"type": "linear", "factor": 4.0}"#,
        )
        .unwrap();
        assert_eq!(old.rope_scaling, Some(RopeScaling::Linear { factor: 4.0 }));
        let new = parse(
            "llama",
            r#", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}"#,
        )
        .unwrap();
        assert_eq!(new.rope_theta, Some(500000.0));
        assert_eq!(
            new.rope_scaling,
            Some(RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0
            })
        );
        let plain = parse("llama", r#", "rope_parameters": {"rope_type": "default"}"#).unwrap();
        assert_eq!(plain.rope_scaling, None);
    }

    #[test]
    fn gemma_takes_its_config_class_defaults() {
        // No head_dim, no tie_word_embeddings, the legacy `gelu`: GemmaConfig's defaults.
        let g = parse("gemma", r#", "hidden_act": "gelu""#).unwrap();
        assert_eq!(parse("gemma", "").unwrap(), g);
        assert!(g.gelu_gate && g.norm_plus_one && g.tied_embeddings);
        assert_eq!(g.d_head, 256);
        assert_eq!(g.embed_scale, Some(f64::from(32f32.sqrt())));
        // transformers 4.x's `hidden_activation` wins over `hidden_act`.
        let g = parse(
            "gemma",
            r#", "hidden_act": "silu", "hidden_activation": "gelu_pytorch_tanh", "head_dim": 8,
                "tie_word_embeddings": false"#,
        )
        .unwrap();
        assert_eq!((g.d_head, g.tied_embeddings), (8, false));
        let e = parse("gemma", r#", "hidden_act": "relu""#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("relu") && e.contains("gemma"), "{e}");
        // Llama is untouched by Gemma's details.
        let l = parse("llama", "").unwrap();
        assert!(!l.gelu_gate && !l.norm_plus_one && !l.tied_embeddings);
        assert_eq!((l.d_head, l.embed_scale), (8, None));
    }

    #[test]
    fn gemma2_takes_its_config_class_defaults() {
        let g = parse("gemma2", "").unwrap();
        assert!(g.post_norms && g.gelu_gate && g.norm_plus_one && g.tied_embeddings);
        assert_eq!(
            (g.query_pre_attn_scalar, g.attn_softcap, g.final_softcap),
            (Some(256.0), Some(50.0), Some(30.0))
        );
        assert_eq!(g.sliding_window, Some(4096));
        assert_eq!(g.sliding_layers, Some(vec![true, false]));
        // Explicit nulls switch the caps off; layer_types are read by name.
        let g = parse(
            "gemma2",
            r#", "attn_logit_softcapping": null, "final_logit_softcapping": null,
                "layer_types": ["full_attention", "sliding_attention"], "sliding_window": 8"#,
        )
        .unwrap();
        assert_eq!((g.attn_softcap, g.final_softcap), (None, None));
        assert_eq!(g.sliding_layers, Some(vec![false, true]));
        for (extra, words) in [
            (
                r#", "layer_types": ["full_attention"]"#,
                &["layer_types", "1 entries"][..],
            ),
            (
                r#", "layer_types": ["full_attention", "chunked_attention"]"#,
                &["layer_types[1]", "chunked_attention"][..],
            ),
            (
                r#", "use_bidirectional_attention": true"#,
                &["bidirectional"][..],
            ),
            (
                r#", "attn_logit_softcapping": -1.0"#,
                &["attn_logit_softcapping"][..],
            ),
        ] {
            let e = parse("gemma2", extra).unwrap_err().to_string();
            for w in words {
                assert!(e.contains(w), "{e} should name {w}");
            }
        }
        // Llama ignores Gemma 2's fields.
        let l = parse("llama", r#", "attn_logit_softcapping": 50.0"#).unwrap();
        assert_eq!(
            (l.attn_softcap, l.post_norms, l.sliding_layers),
            (None, false, None)
        );
    }

    #[test]
    fn gemma3_reads_both_rope_spellings() {
        // Defaults: five sliding layers to one full, no caps, bases 1e6 / 1e4.
        let json = |extra: &str| {
            llama_json("gemma3_text", extra)
                .replace(r#""num_hidden_layers": 2"#, r#""num_hidden_layers": 7"#)
        };
        let g = ModelConfig::from_hf_json(&json(""), Path::new("m/config.json")).unwrap();
        assert!(g.qk_norm && g.post_norms);
        assert_eq!((g.attn_softcap, g.final_softcap), (None, None));
        let six = vec![true, true, true, true, true, false, true];
        assert_eq!(g.sliding_layers, Some(six));
        assert_eq!((g.rope_theta, g.rope_scaling), (Some(1e6), None));
        assert_eq!(g.sliding_rope.map(|r| r.theta), Some(1e4));
        // transformers 4.x: rope_scaling is the global rope's, rope_local_base_freq the local base.
        let old = ModelConfig::from_hf_json(
            &json(
                r#", "rope_theta": 500000.0, "rope_local_base_freq": 20000.0,
                    "rope_scaling": {"rope_type": "linear", "factor": 8.0}"#,
            ),
            Path::new("m/config.json"),
        )
        .unwrap();
        assert_eq!(
            (old.rope_theta, old.rope_scaling),
            (Some(5e5), Some(RopeScaling::Linear { factor: 8.0 }))
        );
        assert_eq!(
            old.sliding_rope,
            Some(Rope {
                theta: 2e4,
                scaling: None
            })
        );
        let e = ModelConfig::from_hf_json(
            &json(r#", "rope_parameters": {"full_attention": {"rope_type": "dynamic"}}"#),
            Path::new("m/config.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("rope_parameters.full_attention") && e.contains("dynamic"),
            "{e}"
        );
    }

    #[test]
    fn yarn_takes_transformers_defaults() {
        // Qwen2.5's spelling: the factor and the original context only.
        let qwen = parse(
            "qwen2",
            r#", "rope_scaling": {"type": "yarn", "factor": 4.0,
                "original_max_position_embeddings": 32768}"#,
        )
        .unwrap();
        assert_eq!(
            qwen.rope_scaling,
            Some(RopeScaling::Yarn {
                factor: 4.0,
                original_max_position_embeddings: 32768.0,
                beta_fast: 32.0,
                beta_slow: 1.0,
                truncate: true,
                attention_factor: 0.1 * 4f64.ln() + 1.0,
            })
        );
        // DeepSeek style: mscale terms, a null factor (the ratio of the context lengths,
        // here 2048 / 512) and the original context from outside the object.
        let deepseek = parse(
            "llama",
            r#", "original_max_position_embeddings": 512, "rope_scaling": {"rope_type": "yarn",
                "factor": null, "mscale": 1.0, "mscale_all_dim": 0.5, "beta_fast": 0,
                "truncate": false, "original_max_position_embeddings": 4}"#,
        )
        .unwrap();
        let Some(RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast,
            truncate,
            attention_factor,
            ..
        }) = deepseek.rope_scaling
        else {
            panic!("{:?}", deepseek.rope_scaling)
        };
        assert_eq!((factor, original_max_position_embeddings), (4.0, 512.0));
        assert_eq!((beta_fast, truncate), (32.0, false));
        let expected = (0.1 * 4f64.ln() + 1.0) / (0.05 * 4f64.ln() + 1.0);
        assert!((attention_factor - expected).abs() < 1e-12);
        let given = parse(
            "llama",
            r#", "rope_parameters": {"rope_type": "yarn", "factor": 2.0, "attention_factor": 0.5}"#,
        )
        .unwrap();
        assert_eq!(given.rope_scaling.map(|s| s.attention_factor()), Some(0.5));
        let e = parse(
            "llama",
            r#", "rope_parameters": {"rope_type": "yarn", "factor": -2.0}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("yarn") && e.contains("positive"), "{e}");
    }

    #[test]
    fn unimplemented_options_are_refused_by_name() {
        for (extra, words) in [
            (
                r#", "rope_scaling": {"rope_type": "longrope", "factor": 4.0}"#,
                &["rope_scaling", "longrope", "m/config.json"][..],
            ),
            (
                r#", "rope_parameters": {"rope_type": "dynamic", "factor": 2.0}"#,
                &["rope_parameters", "dynamic"][..],
            ),
            (
                r#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#,
                &["low_freq_factor"][..],
            ),
        ] {
            let e = parse("llama", extra).unwrap_err().to_string();
            for w in words {
                assert!(e.contains(w), "{e} should name {w}");
            }
        }
        let e = parse(
            "qwen2",
            r#", "use_sliding_window": true, "sliding_window": 8"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("use_sliding_window"), "{e}");
    }

    #[test]
    fn sliding_window_is_mistrals_and_only_qwen2s_when_asked() {
        assert_eq!(
            parse("mistral", r#", "sliding_window": 4096"#)
                .unwrap()
                .sliding_window,
            Some(4096)
        );
        assert_eq!(
            parse("mistral", r#", "sliding_window": null"#)
                .unwrap()
                .sliding_window,
            None
        );
        let qwen = parse(
            "qwen2",
            r#", "use_sliding_window": false, "sliding_window": 8"#,
        )
        .unwrap();
        assert_eq!(qwen.sliding_window, None);
        assert!(qwen.qkv_bias);
        assert!(parse("mistral", r#", "sliding_window": 0"#).is_err());
    }
}
