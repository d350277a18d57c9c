//! The Llama layout's checkpoint names: Hugging Face's and llama.cpp's GGUF names, as one
//! `Part` × `Layout` table.

/// The tensors of one Llama block, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    AttnNorm,
    /// The norm before the MLP (Llama's `post_attention_layernorm`).
    MlpNorm,
    /// Gemma 2's norm before the MLP (its `post_attention_layernorm` is [`Part::AttnOutNorm`]).
    PreMlpNorm,
    /// Gemma 2's norm of the attention output.
    AttnOutNorm,
    /// Gemma 2's norm of the MLP output.
    MlpOutNorm,
    /// Gemma 3's norm over each head's queries.
    QNorm,
    /// Gemma 3's norm over each head's keys.
    KNorm,
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

/// The two checkpoint layouts of Llama-family weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Hugging Face names (`model.layers.{i}.self_attn.q_proj`).
    HuggingFace,
    /// llama.cpp GGUF names (`blk.{i}.attn_q`); q/k rows permuted for its rotary layout.
    Gguf,
}

impl Layout {
    pub(super) fn embed(self) -> &'static str {
        match self {
            Layout::HuggingFace => "model.embed_tokens.weight",
            Layout::Gguf => "token_embd.weight",
        }
    }

    pub(super) fn final_norm(self) -> &'static str {
        match self {
            Layout::HuggingFace => "model.norm.weight",
            Layout::Gguf => "output_norm.weight",
        }
    }

    pub(super) fn lm_head(self) -> &'static str {
        match self {
            Layout::HuggingFace => "lm_head.weight",
            Layout::Gguf => "output.weight",
        }
    }

    /// The name of `part` of block `i`, without `.weight` / `.bias`.
    pub(super) fn block(self, i: usize, part: Part) -> String {
        match self {
            Layout::HuggingFace => {
                let name = match part {
                    Part::AttnNorm => "input_layernorm",
                    Part::MlpNorm | Part::AttnOutNorm => "post_attention_layernorm",
                    Part::PreMlpNorm => "pre_feedforward_layernorm",
                    Part::MlpOutNorm => "post_feedforward_layernorm",
                    Part::QNorm => "self_attn.q_norm",
                    Part::KNorm => "self_attn.k_norm",
                    Part::Q => "self_attn.q_proj",
                    Part::K => "self_attn.k_proj",
                    Part::V => "self_attn.v_proj",
                    Part::O => "self_attn.o_proj",
                    Part::Gate => "mlp.gate_proj",
                    Part::Up => "mlp.up_proj",
                    Part::Down => "mlp.down_proj",
                };
                format!("model.layers.{i}.{name}")
            }
            Layout::Gguf => {
                let name = match part {
                    Part::AttnNorm => "attn_norm",
                    Part::MlpNorm | Part::PreMlpNorm => "ffn_norm",
                    Part::AttnOutNorm => "post_attention_norm",
                    Part::MlpOutNorm => "post_ffw_norm",
                    Part::QNorm => "attn_q_norm",
                    Part::KNorm => "attn_k_norm",
                    Part::Q => "attn_q",
                    Part::K => "attn_k",
                    Part::V => "attn_v",
                    Part::O => "attn_output",
                    Part::Gate => "ffn_gate",
                    Part::Up => "ffn_up",
                    Part::Down => "ffn_down",
                };
                format!("blk.{i}.{name}")
            }
        }
    }
}
