//! Loading GPT-J weights into the [`Transformer`](crate::Transformer)'s parts (names in
//! the table of the family's module).

use crate::config::{Activation, ModelConfig};
use crate::error::Result;
use crate::families::tensors::{layer_norm, linear, unembed};
use crate::transformer::{Attention, Block, BlockLayout, Mlp, TransformerParts};
use crate::weights::Loader;

/// Per-layer buffers a GPT-J checkpoint may hold besides its weights (block-relative names):
/// `attn.bias`, the causal mask, and `attn.masked_bias`, the score masked positions get.
/// Older transformers saved these buffers (EleutherAI's GPT-J checkpoint holds them); the
/// model builds its own mask, so they carry nothing it needs.
pub(crate) const BUFFERS: &[&str] = &["attn.bias", "attn.masked_bias"];

/// Loads GPT-J weights from a Hugging Face `GPTJForCausalLM` checkpoint.
pub(crate) fn load(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    let d = config.d_model as i64;
    let d_mlp = config.d_mlp as i64;
    let vocab = config.vocab_size as i64;
    let eps = config.norm_eps;
    let embed = loader.tensor("transformer.wte.weight", &[vocab, d])?;
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let b = format!("transformer.h.{i}");
        let ln1 = layer_norm(loader, &format!("{b}.ln_1"), d, eps)?;
        let ln2 = ln1.shared();
        blocks.push(Block {
            ln1,
            attn: Attention {
                q: linear(loader, &format!("{b}.attn.q_proj"), d, d, false)?,
                k: linear(loader, &format!("{b}.attn.k_proj"), d, d, false)?,
                v: linear(loader, &format!("{b}.attn.v_proj"), d, d, false)?,
                o: linear(loader, &format!("{b}.attn.out_proj"), d, d, false)?,
                qk_norms: None,
            },
            ln2,
            mlp: Mlp::Gelu {
                fc_in: linear(loader, &format!("{b}.mlp.fc_in"), d_mlp, d, true)?,
                fc_out: linear(loader, &format!("{b}.mlp.fc_out"), d, d_mlp, true)?,
                exact: config.activation == Activation::Gelu,
            },
            layout: BlockLayout::of(config),
            post_norms: None,
        });
    }
    let ln_final = layer_norm(loader, "transformer.ln_f", d, eps)?;
    let unembed = unembed(
        loader,
        config.tied_embeddings,
        "lm_head.weight",
        &embed,
        "transformer.wte.weight",
    )?;
    let unembed_bias = Some(loader.tensor("lm_head.bias", &[vocab])?);
    Ok(TransformerParts {
        embed,
        pos_embed: None,
        blocks,
        ln_final,
        unembed,
        unembed_bias,
    })
}
