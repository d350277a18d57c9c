//! Loading the layers several families store alike.

use tch::Tensor;

use crate::error::{Error, Result};
use crate::transformer::{Linear, Norm};
use crate::weights::Loader;

/// A LayerNorm of width `d` (`{prefix}.weight`, `{prefix}.bias`): GPT-2, GPT-NeoX, GPT-J.
pub(crate) fn layer_norm(loader: &mut Loader<'_>, prefix: &str, d: i64, eps: f64) -> Result<Norm> {
    Ok(Norm::Layer {
        weight: loader.tensor(&format!("{prefix}.weight"), &[d])?,
        bias: loader.tensor(&format!("{prefix}.bias"), &[d])?,
        eps,
    })
}

/// A `nn.Linear` (`[out, in]`), with its bias when `bias`: GPT-NeoX, GPT-J.
pub(crate) fn linear(
    loader: &mut Loader<'_>,
    prefix: &str,
    out: i64,
    inp: i64,
    bias: bool,
) -> Result<Linear> {
    Ok(Linear {
        weight: loader.tensor(&format!("{prefix}.weight"), &[out, inp])?,
        bias: if bias {
            Some(loader.tensor(&format!("{prefix}.bias"), &[out])?)
        } else {
            None
        },
    })
}

/// The unembedding `[vocab, d]`: the embedding itself when `tied`, else the tensor `head`.
///
/// A tied checkpoint may still store `head` (some writers save the tied copy; transformers
/// ignores it when loading): it is read, so it counts as used, and must equal the
/// embedding, since a different head means the config's `tie_word_embeddings` is wrong and
/// the model would answer with the wrong unembedding.
pub(crate) fn unembed(
    loader: &mut Loader<'_>,
    tied: bool,
    head: &str,
    embed: &Tensor,
    embed_name: &str,
) -> Result<Tensor> {
    if !tied {
        return loader.tensor(head, &embed.size());
    }
    if loader.contains(head) {
        let stored = loader.tensor(head, &embed.size())?;
        if !stored.f_equal(embed)? {
            return Err(Error::Checkpoint {
                path: loader.file_of(head),
                reason: format!(
                    "the config ties the unembedding to the embedding (`tie_word_embeddings`), but the checkpoint's `{head}` differs from `{embed_name}`: set `tie_word_embeddings` to false to use it"
                ),
            });
        }
    }
    Ok(embed.shallow_clone())
}
