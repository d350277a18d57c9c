//! Quantisation to ggml's K-quant types Q4_K, Q5_K and Q6_K (256-element super-blocks of
//! sub-blocks whose scales are themselves quantised against one f16 scale), the inverse of
//! [`crate::dequantize`]'s `q4_k`, `q5_k` and `q6_k` up to each type's rounding.
//!
//! The codes are chosen in closed form, not by ggml's iterative search
//! (`make_qkx2_quants`, `make_qx_quants`), so the files are valid K-quant files with a
//! somewhat larger rounding error than llama.cpp's own quantiser gives; the bounds are
//! stated on [`q4_k`], [`q5_k`] and [`q6_k`] and property-tested.

use half::f16;

use crate::quant::signed_absmax;

/// Elements per super-block.
pub(crate) const QK_K: usize = 256;

/// `v` as f16, rounded up in magnitude (toward ±∞), so that a super-block scale derived
/// from it never makes the largest sub-block scale overflow its 6- or 8-bit code.
fn f16_at_least(v: f32) -> f16 {
    let h = f16::from_f32(v);
    if h.to_f32().abs() >= v.abs() || !h.is_finite() {
        h
    } else {
        f16::from_bits(h.to_bits() + 1)
    }
}

/// The 6-bit scales and mins of Q4_K/Q5_K packed into 12 bytes (the inverse of ggml's
/// `get_scale_min_k4`): sub-blocks 0–3 in the low 6 bits of bytes 0–7, sub-blocks 4–7 in
/// the nibbles of bytes 8–11 and the top 2 bits of bytes 0–7.
fn pack_scales(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = ls[j] & 63;
        s[j + 4] = lm[j] & 63;
    }
    for j in 4..8 {
        s[j + 4] = (ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4);
        s[j - 4] |= (ls[j] >> 4) << 6;
        s[j] |= (lm[j] >> 4) << 6;
    }
    s
}

/// The affine codes of one Q4_K/Q5_K super-block (`top` = 15 or 31): returns
/// `(d, dmin, scales, mins, codes)` with `x ≈ d·scales[j]·code − dmin·mins[j]` in sub-block
/// `j` (32 elements).
///
/// Each sub-block's range `[−m_j, −m_j + top·s_j]` is made to contain all its values (mins
/// and scales are rounded *up* to their 6-bit codes, and `d`, `dmin` up to f16), so the only
/// error is rounding to the nearest code: at most `s_j / 2`, where
/// `s_j ≤ (max_j + mins_j + dmin) / top + d`.
fn affine_k(x: &[f32], top: u8) -> (f16, f16, [u8; 8], [u8; 8], [u8; QK_K]) {
    let top_f = f32::from(top);
    let mut mins = [0f32; 8];
    let mut his = [0f32; 8];
    for (j, sub) in x.chunks_exact(32).enumerate() {
        let (lo, hi) = sub
            .iter()
            .fold((0f32, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        mins[j] = -lo;
        his[j] = hi;
    }
    let dmin = f16_at_least(mins.iter().fold(0f32, |m, &v| m.max(v)) / 63.0);
    let dmin_f = dmin.to_f32();
    let mut lm = [0u8; 8];
    let mut scales = [0f32; 8];
    for j in 0..8 {
        if dmin_f > 0.0 {
            lm[j] = (mins[j] / dmin_f).ceil().clamp(0.0, 63.0) as u8;
        }
        let m = dmin_f * f32::from(lm[j]);
        scales[j] = ((his[j] + m) / top_f).max(0.0);
    }
    let d = f16_at_least(scales.iter().fold(0f32, |m, &v| m.max(v)) / 63.0);
    let d_f = d.to_f32();
    let mut ls = [0u8; 8];
    let mut codes = [0u8; QK_K];
    for (j, sub) in x.chunks_exact(32).enumerate() {
        if d_f > 0.0 {
            ls[j] = (scales[j] / d_f).ceil().clamp(0.0, 63.0) as u8;
        }
        let step = d_f * f32::from(ls[j]);
        let m = dmin_f * f32::from(lm[j]);
        for (c, &v) in codes[j * 32..(j + 1) * 32].iter_mut().zip(sub) {
            *c = if step > 0.0 {
                ((v + m) / step).round().clamp(0.0, top_f) as u8
            } else {
                0
            };
        }
    }
    (d, dmin, ls, lm, codes)
}

/// Q4_K: block `d (f16), dmin (f16), scales[12], qs[128]`; element `l` of sub-block `g` is
/// nibble `g % 2` of byte `(g / 2)·32 + l` of `qs`. Error per element at most half of its
/// sub-block's step (see `affine_k`).
pub(crate) fn q4_k(x: &[f32], out: &mut Vec<u8>) {
    let (d, dmin, ls, lm, codes) = affine_k(x, 15);
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
    out.extend_from_slice(&pack_scales(&ls, &lm));
    out.extend_from_slice(&nibbles(&codes));
}

/// The low nibbles of Q4_K/Q5_K codes: sub-blocks `2k` and `2k + 1` share 32 bytes (low and
/// high nibble).
fn nibbles(codes: &[u8; QK_K]) -> [u8; QK_K / 2] {
    let mut qs = [0u8; QK_K / 2];
    for pair in 0..4 {
        for l in 0..32 {
            let a = codes[2 * pair * 32 + l] & 0x0F;
            let b = codes[(2 * pair + 1) * 32 + l] & 0x0F;
            qs[pair * 32 + l] = a | (b << 4);
        }
    }
    qs
}

/// Q5_K: block `d, dmin, scales[12], qh[32], qs[128]`: as Q4_K with 5-bit codes whose fifth
/// bit for element `l` of sub-block `g` is bit `g` of `qh[l]`.
pub(crate) fn q5_k(x: &[f32], out: &mut Vec<u8>) {
    let (d, dmin, ls, lm, codes) = affine_k(x, 31);
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
    out.extend_from_slice(&pack_scales(&ls, &lm));
    let mut qh = [0u8; 32];
    for (e, &c) in codes.iter().enumerate() {
        qh[e % 32] |= ((c >> 4) & 1) << (e / 32);
    }
    out.extend_from_slice(&qh);
    out.extend_from_slice(&nibbles(&codes));
}

/// Q6_K: block `ql[128], qh[64], scales[16] (i8), d (f16)`; 16 sub-blocks of 16 with
/// symmetric 6-bit codes `q ∈ [−32, 31]`, `x ≈ d·scales[j]·q`.
///
/// Sub-block `j`'s scale is `s_j = a_j / −32` (`a_j` its element of largest magnitude, so
/// that it lands on code −32), quantised against `d = −max|s| / 128` (rounded up to f16) as
/// an i8. Error per element at most `|s_j| + 16·|d|`: half a step where the code is in range,
/// a whole step for an element of `a_j`'s magnitude and the opposite sign (code +32 does not
/// exist, as in Q4_0), plus the rounding of the i8 scale.
pub(crate) fn q6_k(x: &[f32], out: &mut Vec<u8>) {
    let mut scales = [0f32; 16];
    for (j, sub) in x.chunks_exact(16).enumerate() {
        scales[j] = signed_absmax(sub) / -32.0;
    }
    let d = f16_at_least(signed_absmax(&scales) / -128.0);
    let d_f = d.to_f32();
    let mut ls = [0i8; 16];
    let mut codes = [32u8; QK_K];
    for (j, sub) in x.chunks_exact(16).enumerate() {
        if d_f != 0.0 {
            ls[j] = (scales[j] / d_f).round().clamp(-128.0, 127.0) as i8;
        }
        let step = d_f * f32::from(ls[j]);
        if step == 0.0 {
            continue;
        }
        for (c, &v) in codes[j * 16..(j + 1) * 16].iter_mut().zip(sub) {
            *c = ((v / step).round().clamp(-32.0, 31.0) + 32.0) as u8;
        }
    }
    let mut ql = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 4];
    for (e, &c) in codes.iter().enumerate() {
        let (half, k, l) = (e / 128, (e % 128) / 32, e % 32);
        ql[half * 64 + (k % 2) * 32 + l] |= (c & 0x0F) << (4 * (k / 2));
        qh[half * 32 + l] |= ((c >> 4) & 3) << (2 * k);
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend(ls.iter().map(|&s| s as u8));
    out.extend_from_slice(&d.to_le_bytes());
}
