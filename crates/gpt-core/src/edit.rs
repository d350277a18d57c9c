//! Weight edits: which matrix ([`WeightId`]), what change ([`WeightDelta`]), and how to take
//! it back ([`EditUndo`]).

use std::fmt;

use tch::Tensor;

use crate::error::{Error, Result};
use crate::hook::Layer;

/// A weight matrix of a model, named by role rather than by checkpoint name (serialised as
/// e.g. `{"MlpOut": 4}` in run states).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum WeightId {
    /// Token embedding `[vocab, d_model]`.
    Embed,
    /// Unembedding `[vocab, d_model]` (the same storage as `Embed` when tied).
    Unembed,
    /// Query projection `[n_heads·d_head, d_model]`.
    AttnQ(Layer),
    /// Key projection `[n_kv_heads·d_head, d_model]`.
    AttnK(Layer),
    /// Value projection `[n_kv_heads·d_head, d_model]`.
    AttnV(Layer),
    /// Attention output projection `[d_model, n_heads·d_head]`.
    AttnOut(Layer),
    /// MLP input projection `[d_mlp, d_model]` (GPT-2 `c_fc`, Llama `up_proj`, GPT-NeoX
    /// `dense_h_to_4h`, GPT-J `fc_in`).
    MlpIn(Layer),
    /// MLP gate projection `[d_mlp, d_model]` (Llama `gate_proj`; absent in GPT-2).
    MlpGate(Layer),
    /// MLP output projection `[d_model, d_mlp]` (GPT-2 `c_proj`, Llama `down_proj`, GPT-NeoX
    /// `dense_4h_to_h`, GPT-J `fc_out`): the matrix ROME edits.
    MlpOut(Layer),
}

impl WeightId {
    /// Every per-layer weight of `layer`, attention then MLP (a family without a gate has no
    /// [`WeightId::MlpGate`]: [`crate::EditableModel::weight`] says so for it).
    pub fn of_layer(layer: Layer) -> [WeightId; 7] {
        [
            WeightId::AttnQ(layer),
            WeightId::AttnK(layer),
            WeightId::AttnV(layer),
            WeightId::AttnOut(layer),
            WeightId::MlpIn(layer),
            WeightId::MlpGate(layer),
            WeightId::MlpOut(layer),
        ]
    }

    /// The layer this weight belongs to, if any.
    pub fn layer(self) -> Option<Layer> {
        match self {
            WeightId::Embed | WeightId::Unembed => None,
            WeightId::AttnQ(l)
            | WeightId::AttnK(l)
            | WeightId::AttnV(l)
            | WeightId::AttnOut(l)
            | WeightId::MlpIn(l)
            | WeightId::MlpGate(l)
            | WeightId::MlpOut(l) => Some(l),
        }
    }
}

impl fmt::Display for WeightId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightId::Embed => f.write_str("embed"),
            WeightId::Unembed => f.write_str("unembed"),
            WeightId::AttnQ(l) => write!(f, "blocks.{l}.attn.W_Q"),
            WeightId::AttnK(l) => write!(f, "blocks.{l}.attn.W_K"),
            WeightId::AttnV(l) => write!(f, "blocks.{l}.attn.W_V"),
            WeightId::AttnOut(l) => write!(f, "blocks.{l}.attn.W_O"),
            WeightId::MlpIn(l) => write!(f, "blocks.{l}.mlp.W_in"),
            WeightId::MlpGate(l) => write!(f, "blocks.{l}.mlp.W_gate"),
            WeightId::MlpOut(l) => write!(f, "blocks.{l}.mlp.W_out"),
        }
    }
}

/// A change to one weight matrix `W` (`[out, in]`).
#[derive(Debug)]
pub enum WeightDelta {
    /// `ΔW = u vᵀ` with `u: [out]`, `v: [in]` (ROME's rank-one update).
    RankOne {
        /// The matrix to change.
        target: WeightId,
        /// Left vector `[out]`.
        u: Tensor,
        /// Right vector `[in]`.
        v: Tensor,
    },
    /// `ΔW = delta` with `delta: [out, in]`.
    Dense {
        /// The matrix to change.
        target: WeightId,
        /// The full change `[out, in]`.
        delta: Tensor,
    },
}

impl WeightDelta {
    /// The matrix this delta changes.
    pub fn target(&self) -> WeightId {
        match self {
            WeightDelta::RankOne { target, .. } | WeightDelta::Dense { target, .. } => *target,
        }
    }

    /// The dense `[out, in]` change, checked against `shape` (`[out, in]`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the vectors or matrix do not fit `shape`.
    pub fn to_dense(&self, shape: &[i64]) -> Result<Tensor> {
        let name = self.target().to_string();
        let mismatch = |expected: Vec<i64>, got: Vec<i64>| Error::ShapeMismatch {
            name: name.clone(),
            expected,
            got,
        };
        let [out, inp] = shape else {
            return Err(mismatch(vec![0, 0], shape.to_vec()));
        };
        match self {
            WeightDelta::RankOne { u, v, .. } => {
                if u.size() != [*out] {
                    return Err(mismatch(vec![*out], u.size()));
                }
                if v.size() != [*inp] {
                    return Err(mismatch(vec![*inp], v.size()));
                }
                Ok(u.f_outer(v)?)
            }
            WeightDelta::Dense { delta, .. } => {
                if delta.size() != shape {
                    return Err(mismatch(shape.to_vec(), delta.size()));
                }
                Ok(delta.shallow_clone())
            }
        }
    }
}

/// What [`EditableModel::apply`](crate::EditableModel::apply) returns: the original matrix,
/// kept so that [`EditableModel::undo`](crate::EditableModel::undo) restores it bit-exactly
/// (subtracting the delta would not, in floating point).
#[derive(Debug)]
#[must_use = "dropping an EditUndo makes the edit permanent"]
pub struct EditUndo {
    pub(crate) target: WeightId,
    pub(crate) original: Tensor,
    pub(crate) model_id: u64,
    pub(crate) serial: u64,
}

impl EditUndo {
    /// The edited matrix.
    pub fn target(&self) -> WeightId {
        self.target
    }

    /// The matrix as it was before the edit.
    pub fn original(&self) -> &Tensor {
        &self.original
    }
}
