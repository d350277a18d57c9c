//! Loading the layers several families store alike.

use crate::error::Result;
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
