//! Loading GPT-NeoX weights into the [`Transformer`](crate::Transformer)'s parts (names in
//! the table of the family's module).

use tch::Tensor;

use crate::config::{Activation, ModelConfig};
use crate::error::Result;
use crate::families::tensors::{layer_norm, linear, unembed};
use crate::transformer::{Attention, Block, BlockLayout, Linear, Mlp, TransformerParts};
use crate::weights::Loader;

/// Per-layer buffers a GPT-NeoX checkpoint may hold besides its weights (block-relative
/// names): `attention.bias`, the causal mask, `attention.masked_bias`, the score masked
/// positions get, and `attention.rotary_emb.inv_freq`, the rotary frequencies (which follow
/// from `rotary_emb_base`). Older transformers saved these buffers (Pythia's checkpoints
/// hold them); the model builds its own mask and frequencies, so they carry nothing it needs.
pub(crate) const BUFFERS: &[&str] = &[
    "attention.bias",
    "attention.masked_bias",
    "attention.rotary_emb.inv_freq",
];

/// Splits the per-head fused projection (`[heads·3·d_head, in]` rows `[q_h k_h v_h]` per head)
/// into q, k and v (`[heads·d_head, in]` each, heads in order).
fn split_per_head(fused: Linear, heads: i64, d_head: i64) -> Result<(Linear, Linear, Linear)> {
    let part = |t: &Tensor, i: i64| -> Result<Tensor> {
        let rest: Vec<i64> = t.size()[1..].to_vec();
        let mut grouped = vec![heads, 3, d_head];
        grouped.extend(&rest);
        let mut flat = vec![heads * d_head];
        flat.extend(&rest);
        Ok(t.f_view(grouped.as_slice())?
            .f_select(1, i)?
            .f_contiguous()?
            .f_view(flat.as_slice())?)
    };
    let mk = |i: i64| -> Result<Linear> {
        Ok(Linear {
            weight: part(&fused.weight, i)?,
            bias: fused.bias.as_ref().map(|b| part(b, i)).transpose()?,
        })
    };
    Ok((mk(0)?, mk(1)?, mk(2)?))
}

/// Loads GPT-NeoX weights from a Hugging Face `GPTNeoXForCausalLM` checkpoint.
pub(crate) fn load(config: &ModelConfig, loader: &mut Loader<'_>) -> Result<TransformerParts> {
    let d = config.d_model as i64;
    let d_mlp = config.d_mlp as i64;
    let vocab = config.vocab_size as i64;
    let (heads, d_head) = (config.n_heads as i64, config.d_head as i64);
    let (eps, bias) = (config.norm_eps, config.qkv_bias);
    let embed = loader.tensor("gpt_neox.embed_in.weight", &[vocab, d])?;
    let layout = BlockLayout::of(config);
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let b = format!("gpt_neox.layers.{i}");
        let fused = linear(
            loader,
            &format!("{b}.attention.query_key_value"),
            3 * d,
            d,
            bias,
        )?;
        let (q, k, v) = split_per_head(fused, heads, d_head)?;
        blocks.push(Block {
            ln1: layer_norm(loader, &format!("{b}.input_layernorm"), d, eps)?,
            attn: Attention {
                q,
                k,
                v,
                o: linear(loader, &format!("{b}.attention.dense"), d, d, bias)?,
                qk_norms: None,
            },
            ln2: layer_norm(loader, &format!("{b}.post_attention_layernorm"), d, eps)?,
            mlp: Mlp::Gelu {
                fc_in: linear(loader, &format!("{b}.mlp.dense_h_to_4h"), d_mlp, d, true)?,
                fc_out: linear(loader, &format!("{b}.mlp.dense_4h_to_h"), d, d_mlp, true)?,
                exact: config.activation == Activation::Gelu,
            },
            layout,
            post_norms: None,
        });
    }
    let ln_final = layer_norm(loader, "gpt_neox.final_layer_norm", d, eps)?;
    let unembed = unembed(
        loader,
        config.tied_embeddings,
        "embed_out.weight",
        &embed,
        "gpt_neox.embed_in.weight",
    )?;
    Ok(TransformerParts {
        embed,
        pos_embed: None,
        blocks,
        ln_final,
        unembed,
        unembed_bias: None,
    })
}
