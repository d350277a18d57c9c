//! GPT-2 checkpoint names: Hugging Face's (with or without the `transformer.` prefix) and
//! llama.cpp's GGUF names, as one `Part` × `Layout` table.

/// Where a GPT-2 checkpoint keeps its tensors: Hugging Face names (with or without the
/// `transformer.` prefix; `Conv1D` weights stored `[in, out]`), or llama.cpp's GGUF names
/// (the same weights stored `[out, in]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    HuggingFace { prefix: &'static str },
    Gguf,
}

/// The tensors of one GPT-2 block, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Ln1,
    Qkv,
    AttnOut,
    Ln2,
    FcIn,
    FcOut,
}

impl Layout {
    pub(super) fn embed(self) -> String {
        match self {
            Layout::HuggingFace { prefix } => format!("{prefix}wte.weight"),
            Layout::Gguf => "token_embd.weight".into(),
        }
    }

    pub(super) fn pos_embed(self) -> String {
        match self {
            Layout::HuggingFace { prefix } => format!("{prefix}wpe.weight"),
            Layout::Gguf => "position_embd.weight".into(),
        }
    }

    pub(super) fn final_norm(self) -> String {
        match self {
            Layout::HuggingFace { prefix } => format!("{prefix}ln_f"),
            Layout::Gguf => "output_norm".into(),
        }
    }

    pub(super) fn lm_head(self) -> &'static str {
        match self {
            Layout::HuggingFace { .. } => "lm_head.weight",
            Layout::Gguf => "output.weight",
        }
    }

    /// The name of `part` of block `i`, without `.weight` / `.bias`.
    pub(super) fn block(self, i: usize, part: Part) -> String {
        match self {
            Layout::HuggingFace { prefix } => {
                let name = match part {
                    Part::Ln1 => "ln_1",
                    Part::Qkv => "attn.c_attn",
                    Part::AttnOut => "attn.c_proj",
                    Part::Ln2 => "ln_2",
                    Part::FcIn => "mlp.c_fc",
                    Part::FcOut => "mlp.c_proj",
                };
                format!("{prefix}h.{i}.{name}")
            }
            Layout::Gguf => {
                let name = match part {
                    Part::Ln1 => "attn_norm",
                    Part::Qkv => "attn_qkv",
                    Part::AttnOut => "attn_output",
                    Part::Ln2 => "ffn_norm",
                    Part::FcIn => "ffn_up",
                    Part::FcOut => "ffn_down",
                };
                format!("blk.{i}.{name}")
            }
        }
    }
}
