//! Hook points: the typed, ordered names of the activations a model exposes.
//!
//! [`HookPoint`] prints TransformerLens names (`hook_embed`, `blocks.3.hook_resid_pre`,
//! `blocks.3.mlp.hook_post`, …) and parses them back with [`std::str::FromStr`]. Its `Ord` is
//! execution order: a forward pass visits hook points in sorted order.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A block (layer) index. A newtype so it is never confused with a token position.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Layer(pub usize);

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A site inside one transformer block. Declaration order is execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BlockSite {
    /// `blocks.{l}.hook_resid_pre`: residual stream entering the block, `[batch, pos, d_model]`.
    ResidPre,
    /// `blocks.{l}.attn.hook_z`: per-head attention output before the output projection,
    /// `[batch, pos, n_heads, d_head]`.
    Z,
    /// `blocks.{l}.hook_attn_out`: attention output added to the residual, `[batch, pos, d_model]`.
    AttnOut,
    /// `blocks.{l}.hook_resid_mid`: residual after attention, `[batch, pos, d_model]`.
    ResidMid,
    /// `blocks.{l}.mlp.hook_post`: the MLP key, input of the MLP output projection,
    /// `[batch, pos, d_mlp]`. ROME's key `k`.
    MlpPost,
    /// `blocks.{l}.hook_mlp_out`: MLP output added to the residual, `[batch, pos, d_model]`.
    /// ROME's value `v`.
    MlpOut,
    /// `blocks.{l}.hook_resid_post`: residual stream leaving the block (the "hidden state" of
    /// causal tracing), `[batch, pos, d_model]`.
    ResidPost,
}

impl BlockSite {
    /// All sites in execution order.
    pub const ALL: [BlockSite; 7] = [
        BlockSite::ResidPre,
        BlockSite::Z,
        BlockSite::AttnOut,
        BlockSite::ResidMid,
        BlockSite::MlpPost,
        BlockSite::MlpOut,
        BlockSite::ResidPost,
    ];

    fn suffix(self) -> &'static str {
        match self {
            BlockSite::ResidPre => "hook_resid_pre",
            BlockSite::Z => "attn.hook_z",
            BlockSite::AttnOut => "hook_attn_out",
            BlockSite::ResidMid => "hook_resid_mid",
            BlockSite::MlpPost => "mlp.hook_post",
            BlockSite::MlpOut => "hook_mlp_out",
            BlockSite::ResidPost => "hook_resid_post",
        }
    }
}

/// A named activation of a model. `Ord` is execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HookPoint {
    /// `hook_embed`: token embeddings (before positional embeddings), `[batch, pos, d_model]`.
    /// Causal tracing corrupts this.
    Embed,
    /// `hook_pos_embed`: learned positional embeddings (GPT-2 only), `[batch, pos, d_model]`.
    PosEmbed,
    /// A site inside block `layer`.
    Block(Layer, BlockSite),
    /// `ln_final.hook_normalized`: the final normalised residual, `[batch, pos, d_model]`.
    LnFinal,
}

impl HookPoint {
    /// Shorthand for `HookPoint::Block(Layer(layer), site)`.
    pub fn block(layer: usize, site: BlockSite) -> Self {
        HookPoint::Block(Layer(layer), site)
    }

    /// `blocks.{layer}.hook_resid_pre`.
    pub fn resid_pre(layer: usize) -> Self {
        Self::block(layer, BlockSite::ResidPre)
    }

    /// `blocks.{layer}.hook_resid_post`.
    pub fn resid_post(layer: usize) -> Self {
        Self::block(layer, BlockSite::ResidPost)
    }

    /// `blocks.{layer}.hook_attn_out`.
    pub fn attn_out(layer: usize) -> Self {
        Self::block(layer, BlockSite::AttnOut)
    }

    /// `blocks.{layer}.hook_mlp_out`.
    pub fn mlp_out(layer: usize) -> Self {
        Self::block(layer, BlockSite::MlpOut)
    }

    /// `blocks.{layer}.mlp.hook_post` (the MLP key).
    pub fn mlp_post(layer: usize) -> Self {
        Self::block(layer, BlockSite::MlpPost)
    }

    /// `blocks.{layer}.attn.hook_z`.
    pub fn z(layer: usize) -> Self {
        Self::block(layer, BlockSite::Z)
    }

    /// The block this point belongs to, if any.
    pub fn layer(self) -> Option<Layer> {
        match self {
            HookPoint::Block(layer, _) => Some(layer),
            _ => None,
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Embed => f.write_str("hook_embed"),
            HookPoint::PosEmbed => f.write_str("hook_pos_embed"),
            HookPoint::Block(layer, site) => write!(f, "blocks.{}.{}", layer.0, site.suffix()),
            HookPoint::LnFinal => f.write_str("ln_final.hook_normalized"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || Error::UnknownHookPoint(s.to_string());
        match s {
            "hook_embed" => return Ok(HookPoint::Embed),
            "hook_pos_embed" => return Ok(HookPoint::PosEmbed),
            "ln_final.hook_normalized" => return Ok(HookPoint::LnFinal),
            _ => {}
        }
        let rest = s.strip_prefix("blocks.").ok_or_else(unknown)?;
        let (layer, suffix) = rest.split_once('.').ok_or_else(unknown)?;
        // Reject "+1", "01" and the like so that parsing is the exact inverse of printing.
        if layer.is_empty()
            || !layer.bytes().all(|b| b.is_ascii_digit())
            || (layer.len() > 1 && layer.starts_with('0'))
        {
            return Err(unknown());
        }
        let layer: usize = layer.parse().map_err(|_| unknown())?;
        let site = BlockSite::ALL
            .into_iter()
            .find(|site| site.suffix() == suffix)
            .ok_or_else(unknown)?;
        Ok(HookPoint::Block(Layer(layer), site))
    }
}

impl serde::Serialize for HookPoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HookPoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
