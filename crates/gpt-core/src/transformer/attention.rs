//! Causal multi-head self-attention with grouped-query heads and rotary positions.

use tch::{Device, Kind, Tensor};

use crate::config::RopeScaling;
use crate::error::Result;
use crate::transformer::layers::{reduction_kind, Linear, Norm};

/// Multi-head (grouped-query) self-attention projections.
#[derive(Debug)]
pub(crate) struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// Gemma 3's RMSNorms over each head's queries and keys (`[d_head]` weights), applied
    /// before the rotation.
    pub qk_norms: Option<(Norm, Norm)>,
}

/// Head counts of one attention layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub n_heads: i64,
    pub n_kv_heads: i64,
    pub d_head: i64,
    /// The scores' scale: `1/√d_head`, or Gemma 2's `1/√query_pre_attn_scalar`.
    pub scale: f64,
    /// Gemma 2's score soft cap `c`: `c·tanh(scores / c)`.
    pub softcap: Option<f64>,
}

/// What one attention call returns.
pub(crate) struct AttentionOutput {
    /// `[b, t − first_query, n_heads, d_head]`: per-head outputs (`hook_z`).
    pub z: Tensor,
    /// `(k, v)`, each `[b, n_kv_heads, past + t, d_head]` (past prepended): the KV cache.
    pub kv: (Tensor, Tensor),
}

/// The partner of each rotary dimension, unsigned: `cat(x₂, x₁)` over the last dimension split
/// in halves (transformers' `rotate_half` without its minus), or each neighbouring pair
/// swapped, `(x₁, x₀, x₃, x₂, …)` (GPT-J's `rotate_every_two` without its minus). The minus
/// lives in the sine table ([`RotaryTables::sin`]), so the rotation takes one copy and three
/// arithmetic operations instead of a negation, a concatenation and the copies around them:
/// the many small operations of a v* step are what keeps bf16 from paying off on CPUs. A sign
/// flip is exact, so the result is bit for bit the reference's.
fn partners(x: &Tensor, interleaved: bool) -> Result<Tensor> {
    let r = x.size().last().copied().unwrap_or(0);
    if interleaved {
        let mut pairs = x.size();
        pairs.pop();
        pairs.extend([r / 2, 2]);
        Ok(x.f_reshape(&pairs)?.f_flip([-1])?.f_flatten(-2, -1)?)
    } else {
        Ok(x.f_roll([r / 2], [-1])?)
    }
}

/// The cos/sin tables of some positions and how their dimensions pair up.
pub(crate) struct RotaryTables {
    /// `[batch, 1, pos, rotary_dim]`.
    pub cos: Tensor,
    /// `[batch, 1, pos, rotary_dim]`, negated where the partner enters with a minus (the
    /// first half, or each pair's first dimension when `interleaved`; see [`partners`]).
    pub sin: Tensor,
    /// GPT-J's pairing of neighbours `(2i, 2i+1)` instead of halves `(i, i + r/2)`.
    pub interleaved: bool,
}

impl RotaryTables {
    /// The tables of positions `from..from + len` (dimension 2).
    fn narrow(&self, from: i64, len: i64) -> Result<Self> {
        Ok(Self {
            cos: self.cos.f_narrow(2, from, len)?,
            sin: self.sin.f_narrow(2, from, len)?,
            interleaved: self.interleaved,
        })
    }

    /// Rotates the first `rotary_dim` dimensions of `x: [b, h, pos, d_head]` (the rest pass
    /// through): `x·cos + rotate(x)·sin`, computed as `x·cos + partners(x)·(±sin)`.
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let r = self.cos.size().last().copied().unwrap_or(0);
        let dh = x.size().last().copied().unwrap_or(0);
        let rot = if r < dh {
            x.f_narrow(-1, 0, r)?
        } else {
            x.shallow_clone()
        };
        let turned = partners(&rot, self.interleaved)?;
        let rotated = rot.f_mul(&self.cos)?.f_add(&turned.f_mul(&self.sin)?)?;
        if r < dh {
            Ok(Tensor::f_cat(&[rotated, x.f_narrow(-1, r, dh - r)?], -1)?)
        } else {
            Ok(rotated)
        }
    }
}

/// Rotary inverse frequencies `θ^(−2i/d)`, `[d_head / 2]`, in f32 (as transformers) or f64
/// for f64 models.
pub(crate) fn inv_freq(theta: f64, d_head: usize, kind: Kind, device: Device) -> Result<Tensor> {
    let d = d_head as i64;
    let exps = Tensor::f_arange_start_step(0, d, 2, (Kind::Int64, device))?
        .f_to_kind(reduction_kind(kind))?
        .f_div_scalar(d as f64)?;
    Ok(Tensor::f_pow_scalar(theta, &exps)?.f_reciprocal()?)
}

/// Rescales the inverse frequencies `inv_freq: [d_head / 2]` as `scaling` asks (transformers'
/// `_compute_linear_scaling_rope_parameters` / `_compute_llama3_parameters`):
/// - linear: `f / factor`;
/// - llama3: with wavelength `λ = 2π / f`, `f / factor` where `λ > L / low_freq_factor`, `f`
///   where `λ < L / high_freq_factor`, and between them `(1 − s)·f / factor + s·f` with
///   `s = (L / λ − low_freq_factor) / (high_freq_factor − low_freq_factor)`
///   (`L` = `original_max_position_embeddings`);
/// - yarn: `f / factor · (1 − e) + f · e` with `e = 1 − clamp((i − lo) / (hi − lo), 0, 1)` over
///   the frequency index `i`, where `lo`, `hi` are the dimensions (of `rotary_dim` = `d`) whose
///   frequencies turn `beta_fast` and `beta_slow` times over `L`:
///   `d·ln(L / (2π·β)) / (2·ln θ)`, rounded outwards when `truncate`, kept within `[0, d − 1]`.
///   (Its attention factor multiplies the cos/sin tables, see [`rotary_tables`].)
pub(crate) fn scale_inv_freq(
    inv_freq: Tensor,
    theta: f64,
    rotary_dim: usize,
    scaling: Option<RopeScaling>,
) -> Result<Tensor> {
    Ok(match scaling {
        None => inv_freq,
        Some(RopeScaling::Linear { factor }) => inv_freq.f_div_scalar(factor)?,
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old_len,
        }) => {
            let low_freq_wavelen = old_len / low_freq_factor;
            let high_freq_wavelen = old_len / high_freq_factor;
            let wavelen = inv_freq
                .f_reciprocal()?
                .f_mul_scalar(2.0 * std::f64::consts::PI)?;
            let divided = inv_freq.f_div_scalar(factor)?;
            let low = wavelen.f_gt(low_freq_wavelen)?;
            let f = divided.f_where_self(&low, &inv_freq)?;
            let smooth = wavelen
                .f_reciprocal()?
                .f_mul_scalar(old_len)?
                .f_sub_scalar(low_freq_factor)?
                .f_div_scalar(high_freq_factor - low_freq_factor)?;
            let smoothed = smooth
                .f_neg()?
                .f_add_scalar(1.0)?
                .f_mul(&f.f_div_scalar(factor)?)?
                .f_add(&smooth.f_mul(&f)?)?;
            let medium = wavelen
                .f_lt(high_freq_wavelen)?
                .f_logical_not()?
                .f_logical_and(&low.f_logical_not()?)?;
            smoothed.f_where_self(&medium, &f)?
        }
        Some(RopeScaling::Yarn {
            factor,
            original_max_position_embeddings: old_len,
            beta_fast,
            beta_slow,
            truncate,
            ..
        }) => {
            let d = rotary_dim as f64;
            let correction_dim = |rotations: f64| {
                d * (old_len / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
            };
            let (mut lo, mut hi) = (correction_dim(beta_fast), correction_dim(beta_slow));
            if truncate {
                (lo, hi) = (lo.floor(), hi.ceil());
            }
            let (lo, mut hi) = (lo.max(0.0), hi.min(d - 1.0));
            if lo == hi {
                hi += 0.001; // as transformers: no division by zero
            }
            let ramp = Tensor::f_arange(
                (rotary_dim / 2) as i64,
                (inv_freq.kind(), inv_freq.device()),
            )?
            .f_sub_scalar(lo)?
            .f_div_scalar(hi - lo)?
            .f_clamp(0.0, 1.0)?;
            let kept = ramp.f_neg()?.f_add_scalar(1.0)?;
            inv_freq
                .f_div_scalar(factor)?
                .f_mul(&ramp)?
                .f_add(&inv_freq.f_mul(&kept)?)?
        }
    })
}

/// The cos/sin tables `[batch, 1, pos, rotary_dim]` of `positions: [batch, pos]`: angle
/// `pos·fᵢ` at dimensions `i` and `i + r/2` (halves), or `2i` and `2i + 1` (`interleaved`);
/// both tables multiplied by `scale` (YaRN's attention factor) before the cast to `kind`, and
/// the sine negated at dimensions `i` (halves) or `2i` (`interleaved`), where the rotation
/// subtracts.
pub(crate) fn rotary_tables(
    inv_freq: &Tensor,
    positions: &Tensor,
    kind: Kind,
    interleaved: bool,
    scale: f64,
) -> Result<RotaryTables> {
    let freqs = positions
        .f_to_kind(inv_freq.kind())?
        .f_unsqueeze(-1)?
        .f_mul(inv_freq)?; // [b, t, r/2]
    let emb = if interleaved {
        Tensor::f_stack(&[&freqs, &freqs], -1)?.f_flatten(-2, -1)?
    } else {
        Tensor::f_cat(&[&freqs, &freqs], -1)?
    }
    .f_unsqueeze(1)?;
    let (mut cos, mut sin) = (emb.f_cos()?, emb.f_sin()?);
    let r = freqs.size().last().copied().unwrap_or(0) * 2;
    let signs: Vec<f32> = (0..r)
        .map(|i| {
            let subtracts = if interleaved { i % 2 == 0 } else { i < r / 2 };
            if subtracts {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    let minus = Tensor::f_from_slice(&signs)?
        .f_to_kind(sin.kind())?
        .f_to_device(sin.device())?;
    sin = sin.f_mul(&minus)?;
    if scale != 1.0 {
        cos = cos.f_mul_scalar(scale)?;
        sin = sin.f_mul_scalar(scale)?;
    }
    Ok(RotaryTables {
        cos: cos.f_to_kind(kind)?,
        sin: sin.f_to_kind(kind)?,
        interleaved,
    })
}

/// Boolean mask `[batch, 1, s, past + s]`: true where a query may attend (causal, within
/// the sliding `window` when there is one, and not padding), from `attention_mask:
/// [batch, past + s]`. Causality counts cache slots (`j ≤ i`); the window counts positions,
/// `pos(j) > pos(i) − w` with `pos = cumsum(attention_mask) − 1`: the same as transformers'
/// slot-based window for left- or right-padded batches, and also right for a right-padded
/// past (the fast schedules' cached prefixes of different lengths), where slots and positions
/// part.
pub(crate) fn attention_allowed(
    attention_mask: &Tensor,
    s: i64,
    past: i64,
    window: Option<usize>,
) -> Result<Tensor> {
    let total = past + s;
    let device = attention_mask.device();
    let q = Tensor::f_arange_start(past, total, (Kind::Int64, device))?.f_unsqueeze(1)?;
    let k = Tensor::f_arange(total, (Kind::Int64, device))?.f_unsqueeze(0)?;
    let causal = k.f_le_tensor(&q)?; // [s, total]
    let real = attention_mask.f_ne(0)?;
    let keys = real.f_unsqueeze(1)?.f_unsqueeze(1)?; // [b,1,1,total]
    let allowed = keys.f_logical_and(&causal.f_unsqueeze(0)?.f_unsqueeze(0)?)?;
    match window {
        None => Ok(allowed),
        Some(w) => {
            let pos = real
                .f_to_kind(Kind::Int64)?
                .f_cumsum(1, Kind::Int64)?
                .f_sub_scalar(1)?; // [b, total]
            let key_pos = pos.f_unsqueeze(1)?.f_unsqueeze(1)?; // [b,1,1,total]
            let query_pos = pos.f_narrow(1, past, s)?.f_unsqueeze(1)?.f_unsqueeze(-1)?; // [b,1,s,1]
            let recent = key_pos.f_gt_tensor(&query_pos.f_sub_scalar(w as i64)?)?;
            Ok(allowed.f_logical_and(&recent)?)
        }
    }
}

/// The most negative finite value of a dtype: f32::MIN overflows f16 and bf16 (libtorch then
/// refuses the fill), and -inf would turn fully masked rows (the padding queries of a
/// left-padded batch) into NaN.
fn masked_value(kind: Kind) -> f64 {
    match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.389_531_389_251_535_5e38,
        Kind::Double => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}

/// Where queries may attend, built once per pass for every layer: the boolean mask, and for
/// bf16 (without a soft cap) the same mask as an additive bias laid out as the grouped
/// scores, so that one `baddbmm` gives `q kᵀ · scale + bias`.
///
/// Why bf16 differs: on CPUs, a bf16 v* step is dominated by the number of small operations
/// (each one dispatch, one autograd node, one wake-up of the worker threads), not by their
/// arithmetic, so three operations become one there. The f32 and f64 paths keep the separate
/// product, scale and fill, whose results the parity tests pin bit for bit; f16 keeps them
/// too, because its most negative value plus a negative score overflows to −∞, and a padding
/// query with every score at −∞ would turn into NaN.
pub(crate) struct AttentionMask {
    /// `[b, 1, s, past + s]`: true where a query may attend.
    pub allowed: Tensor,
    /// `[b · n_kv_heads, rep · s, past + s]` (`rep = n_heads / n_kv_heads`, rows in the
    /// order of the grouped queries): 0 where allowed, bf16's most negative value where not;
    /// `None` for other dtypes or with a soft cap.
    bias: Option<Tensor>,
}

impl AttentionMask {
    /// The mask `allowed: [b, 1, s, past + s]` (see [`attention_allowed`]) for activations of
    /// dtype `kind`.
    pub(crate) fn new(allowed: Tensor, heads: Heads, kind: Kind) -> Result<Self> {
        let bias = if kind == Kind::BFloat16 && heads.softcap.is_none() {
            Some(grouped_bias(&allowed, heads, kind)?)
        } else {
            None
        };
        Ok(Self { allowed, bias })
    }

    /// The bias of the queries from `first_query` on.
    fn bias(&self, heads: Heads, first_query: i64, kind: Kind) -> Result<Option<Tensor>> {
        match &self.bias {
            None => Ok(None),
            Some(bias) if first_query == 0 => Ok(Some(bias.shallow_clone())),
            Some(_) => {
                let s = self.allowed.size().get(2).copied().unwrap_or(0);
                let allowed = self.allowed.f_narrow(2, first_query, s - first_query)?;
                Ok(Some(grouped_bias(&allowed, heads, kind)?))
            }
        }
    }
}

/// `allowed: [b, 1, tq, total]` as the additive bias of the grouped scores,
/// `[b · n_kv_heads, rep · tq, total]`.
fn grouped_bias(allowed: &Tensor, heads: Heads, kind: Kind) -> Result<Tensor> {
    let (b, _, tq, total) = allowed.size4()?;
    let rep = heads.n_heads / heads.n_kv_heads;
    let blocked = allowed
        .f_logical_not()?
        .f_repeat([1, heads.n_kv_heads, rep, 1])?;
    Ok(Tensor::f_zeros([1], (kind, allowed.device()))?
        .f_expand([b, heads.n_kv_heads, rep * tq, total], false)?
        .f_masked_fill(&blocked, masked_value(kind))?
        .f_reshape([b * heads.n_kv_heads, rep * tq, total])?)
}

impl Attention {
    /// Self-attention of `x: [b, t, d_model]` (already normalised).
    ///
    /// Queries (and so outputs) are computed only from position `first_query` on; keys and
    /// values everywhere. `mask`: where the `t` queries may attend; `rotary`: `(cos, sin)`
    /// tables of the `t` positions; `past`: cached `(k, v)` of earlier positions.
    /// `softmax(cap(q kᵀ · scale) + mask) v` (`scale` = `1/√d_head` unless the model says
    /// otherwise; `cap` = identity, or Gemma 2's soft cap), with each key/value head serving
    /// `n_heads / n_kv_heads` consecutive query heads.
    pub fn forward(
        &self,
        heads: Heads,
        x: &Tensor,
        mask: &AttentionMask,
        rotary: Option<&RotaryTables>,
        past: Option<(&Tensor, &Tensor)>,
        first_query: i64,
    ) -> Result<AttentionOutput> {
        let (b, t, _) = x.size3()?;
        let Heads {
            n_heads: h,
            n_kv_heads: kvh,
            d_head: dh,
            scale,
            softcap,
        } = heads;
        let tq = t - first_query;
        let split = |y: Tensor, n: i64, len: i64| -> Result<Tensor> {
            Ok(y.f_view([b, len, n, dh])?.f_transpose(1, 2)?)
        };
        let q = split(self.q.forward(&x.f_narrow(1, first_query, tq)?)?, h, tq)?;
        let k = split(self.k.forward(x)?, kvh, t)?;
        let v = split(self.v.forward(x)?, kvh, t)?;
        let (q, k) = match &self.qk_norms {
            Some((q_norm, k_norm)) => (q_norm.forward(&q)?, k_norm.forward(&k)?),
            None => (q, k),
        };
        let (q, k) = match rotary {
            Some(tables) => (
                tables.narrow(first_query, tq)?.apply(&q)?,
                tables.apply(&k)?,
            ),
            None => (q, k),
        };
        let (k, v) = match past {
            Some((pk, pv)) => (Tensor::f_cat(&[pk, &k], 2)?, Tensor::f_cat(&[pv, &v], 2)?),
            None => (k, v),
        };
        // Grouped-query attention without copying keys/values: each key/value head serves
        // `rep = n_heads / n_kv_heads` consecutive query heads (transformers' `repeat_kv`), so
        // those heads' queries are stacked as extra rows against the shared keys.
        let rep = h / kvh;
        let q = q.f_reshape([b, kvh, rep * tq, dh])?;
        let kind = x.kind();
        let weights = match mask.bias(heads, first_query, kind)? {
            // bf16: one product gives the scaled, masked scores, and the softmax runs in the
            // dtype (libtorch accumulates it in f32 and rounds once, as the f32
            // softmax cast back would, but for the last bit of some weights).
            Some(bias) => {
                let total = k.size().get(2).copied().unwrap_or(0);
                let q = q.f_reshape([b * kvh, rep * tq, dh])?;
                let kt = k.f_reshape([b * kvh, total, dh])?.f_transpose(-2, -1)?;
                bias.f_baddbmm(&q, &kt, 1.0, scale)?
                    .f_softmax(-1, kind)?
                    .f_reshape([b, kvh, rep * tq, total])?
            }
            None => {
                let mut scores = q.f_matmul(&k.f_transpose(-2, -1)?)?.f_mul_scalar(scale)?;
                if let Some(cap) = softcap {
                    scores = scores.f_div_scalar(cap)?.f_tanh()?.f_mul_scalar(cap)?;
                }
                let allowed = mask.allowed.f_narrow(2, first_query, tq)?;
                let allowed = if rep > 1 {
                    allowed.f_repeat([1, 1, rep, 1])?
                } else {
                    allowed
                };
                let scores = scores.f_masked_fill(&allowed.f_logical_not()?, masked_value(kind))?;
                scores
                    .f_softmax(-1, reduction_kind(kind))?
                    .f_to_kind(kind)?
            }
        };
        let z = weights
            .f_matmul(&v)?
            .f_reshape([b, h, tq, dh])?
            .f_transpose(1, 2)?
            .f_contiguous()?;
        Ok(AttentionOutput { z, kv: (k, v) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn linear(out: i64, inp: i64, seed: i64, kind: Kind) -> Linear {
        tch::manual_seed(seed);
        Linear {
            weight: Tensor::randn([out, inp], (Kind::Float, Device::Cpu))
                .f_mul_scalar(0.3)
                .unwrap()
                .to_kind(kind),
            bias: None,
        }
    }

    /// The rotation written as transformers and GPT-J write it: `x·cos + rotate(x)·sin` with
    /// the minus in `rotate` and the plain sine.
    fn reference_rotation(x: &Tensor, positions: &Tensor, interleaved: bool, r: i64) -> Tensor {
        let freqs = inv_freq(10_000.0, r as usize, Kind::Float, Device::Cpu).unwrap();
        let angles = positions.to_kind(Kind::Float).unsqueeze(-1) * freqs.unsqueeze(0);
        let emb = if interleaved {
            Tensor::stack(&[&angles, &angles], -1).flatten(-2, -1)
        } else {
            Tensor::cat(&[&angles, &angles], -1)
        }
        .unsqueeze(1);
        let rot = x.narrow(-1, 0, r);
        let turned = if interleaved {
            let even = rot.slice(-1, Some(0), None, 2);
            let odd = rot.slice(-1, Some(1), None, 2);
            Tensor::stack(&[-odd, even], -1).flatten(-2, -1)
        } else {
            let half = r / 2;
            Tensor::cat(&[-rot.narrow(-1, half, half), rot.narrow(-1, 0, half)], -1)
        };
        let rotated = &rot * emb.cos() + turned * emb.sin();
        let dh = x.size()[3];
        Tensor::cat(&[rotated, x.narrow(-1, r, dh - r)], -1)
    }

    /// Folding the minus into the sine table changes no bit: halves and pairs, whole and
    /// partial rotary dimensions.
    #[test]
    fn rotation_with_the_minus_in_the_sine_is_bit_exact() {
        tch::manual_seed(3);
        let x = Tensor::randn([2, 3, 5, 16], (Kind::Float, Device::Cpu));
        let positions = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 7, 8, 9, 10, 11]).view([2, 5]);
        for interleaved in [false, true] {
            for r in [16i64, 8] {
                let freqs = inv_freq(10_000.0, r as usize, Kind::Float, Device::Cpu).unwrap();
                let tables =
                    rotary_tables(&freqs, &positions, Kind::Float, interleaved, 1.0).unwrap();
                let got = tables.apply(&x).unwrap();
                let want = reference_rotation(&x, &positions, interleaved, r);
                assert!(
                    got.equal(&want),
                    "interleaved {interleaved}, rotary dims {r}: max difference {}",
                    (&got - &want).abs().max().double_value(&[])
                );
            }
        }
    }

    /// bf16's one-product scores (bias built once per pass, softmax in the dtype)
    /// give what the separate product, scale, fill and f32 softmax give, up to bf16
    /// rounding: grouped heads, a cached past, left padding (with fully masked padding
    /// queries, which must stay finite) and queries from `first_query` on.
    #[test]
    fn bf16_scores_in_one_product_match_the_separate_steps() {
        let kind = Kind::BFloat16;
        let (b, t, past, d) = (2i64, 5i64, 3i64, 32i64);
        let heads = Heads {
            n_heads: 4,
            n_kv_heads: 2,
            d_head: 8,
            scale: 1.0 / 8f64.sqrt(),
            softcap: None,
        };
        let attn = Attention {
            q: linear(32, d, 1, kind),
            k: linear(16, d, 2, kind),
            v: linear(16, d, 3, kind),
            o: linear(d, 32, 4, kind),
            qk_norms: None,
        };
        tch::manual_seed(5);
        let x = Tensor::randn([b, t, d], (Kind::Float, Device::Cpu)).to_kind(kind);
        let pk = Tensor::randn([b, 2, past, 8], (Kind::Float, Device::Cpu)).to_kind(kind);
        let pv = Tensor::randn([b, 2, past, 8], (Kind::Float, Device::Cpu)).to_kind(kind);
        // Row 1 is left-padded over its past and its first query.
        let attention_mask =
            Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]).view([2, 8]);
        let allowed = attention_allowed(&attention_mask, t, past, None).unwrap();
        let one_product = AttentionMask::new(allowed.shallow_clone(), heads, kind).unwrap();
        assert!(one_product.bias.is_some());
        let separate = AttentionMask {
            allowed,
            bias: None,
        };
        for first_query in [0i64, 2] {
            let run = |mask: &AttentionMask| {
                attn.forward(heads, &x, mask, None, Some((&pk, &pv)), first_query)
                    .unwrap()
                    .z
                    .to_kind(Kind::Float)
            };
            let (got, want) = (run(&one_product), run(&separate));
            assert_eq!(got.size(), vec![b, t - first_query, 4, 8]);
            assert!(bool::try_from(got.isfinite().all()).unwrap(), "non-finite");
            let real = attention_mask
                .narrow(1, past + first_query, t - first_query)
                .to_kind(Kind::Float)
                .view([b, t - first_query, 1, 1]);
            let diff = ((&got - &want) * &real).abs().max().double_value(&[]);
            let scale = want.abs().max().double_value(&[]);
            assert!(
                diff <= 0.02 * scale,
                "first query {first_query}: difference {diff} against values up to {scale}"
            );
        }
    }
}
