//! Quantisation of f32 values to ggml's block types, as ggml's reference
//! `quantize_row_*_ref` functions do it (the inverse of [`crate::dequantize`] up to each
//! type's rounding): F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0; and the K-quants
//! Q4_K, Q5_K and Q6_K (those llama.cpp's Q4_K_M / Q5_K_M files are made of) in closed form
//! ([`crate::quant_k`]). Q2_K and Q3_K are read, not written.

use half::f16;

use crate::error::{Error, Result};
use crate::quant_k::{q4_k, q5_k, q6_k, QK_K};
use crate::types::GgmlType;

/// Whether [`quantize`] can write `ty`.
pub fn can_quantize(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q4K
            | GgmlType::Q5K
            | GgmlType::Q6K
    )
}

/// Encodes `values` (in storage order, a whole number of blocks) as `ty`.
///
/// # Errors
/// [`Error::UnsupportedType`] for a type [`can_quantize`] refuses; [`Error::BadQuantInput`]
/// for a count that is not a whole number of blocks or non-finite values.
pub fn quantize(ty: GgmlType, values: &[f32]) -> Result<Vec<u8>> {
    if !can_quantize(ty) {
        return Err(Error::UnsupportedType { ty, tensor: None });
    }
    let bad = |msg: String| Error::BadQuantInput { ty, msg };
    let block = ty.block_size() as usize;
    if values.len() % block != 0 {
        return Err(bad(format!(
            "{} values is not a whole number of {block}-element blocks",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("value {i} is {}", values[i])));
    }
    let capacity = ty.bytes_for(values.len() as u64).unwrap_or(0) as usize;
    let mut out = Vec::with_capacity(capacity);
    match ty {
        GgmlType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&bf16_bits(*v).to_le_bytes())),
        GgmlType::Q4_0 => values.chunks_exact(32).for_each(|b| q4_0(b, &mut out)),
        GgmlType::Q4_1 => values.chunks_exact(32).for_each(|b| q4_1(b, &mut out)),
        GgmlType::Q5_0 => values.chunks_exact(32).for_each(|b| q5_0(b, &mut out)),
        GgmlType::Q5_1 => values.chunks_exact(32).for_each(|b| q5_1(b, &mut out)),
        GgmlType::Q8_0 => values.chunks_exact(32).for_each(|b| q8_0(b, &mut out)),
        GgmlType::Q4K => values.chunks_exact(QK_K).for_each(|b| q4_k(b, &mut out)),
        GgmlType::Q5K => values.chunks_exact(QK_K).for_each(|b| q5_k(b, &mut out)),
        GgmlType::Q6K => values.chunks_exact(QK_K).for_each(|b| q6_k(b, &mut out)),
        _ => return Err(Error::UnsupportedType { ty, tensor: None }),
    }
    Ok(out)
}

/// bf16 by round-to-nearest-even of the f32 bits (ggml's `ggml_compute_fp32_to_bf16`).
fn bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    ((bits.wrapping_add(rounding)) >> 16) as u16
}

fn push_f16(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// The element of largest magnitude, with its sign.
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    x.iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// Packs 32 codes of up to 5 bits: the low nibbles of elements `j` and `j + 16` share byte
/// `j`; the fifth bits go to a u32, bit `i` for element `i` (returned for Q5 types).
fn pack(codes: &[u8; 32], out: &mut Vec<u8>, with_high: bool) {
    let mut qh: u32 = 0;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let (a, b) = (codes[j], codes[j + 16]);
        qs[j] = (a & 0x0F) | ((b & 0x0F) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + 16);
    }
    if with_high {
        out.extend_from_slice(&qh.to_le_bytes());
    }
    out.extend_from_slice(&qs);
}

/// Symmetric 4- or 5-bit codes: `d = max / −half`, `q = min(top, ⌊x/d + half + ½⌋)`.
fn symmetric(x: &[f32], half: f32, top: u8, with_high: bool, out: &mut Vec<u8>) {
    let d = signed_absmax(x) / -half;
    let id = inverse(d);
    push_f16(out, d);
    let mut codes = [0u8; 32];
    for (c, &v) in codes.iter_mut().zip(x) {
        // `as` truncates toward zero and saturates, as C's (int8_t) cast does in range.
        *c = ((v * id + half + 0.5) as i32).clamp(0, i32::from(top)) as u8;
    }
    pack(&codes, out, with_high);
}

/// Affine 4- or 5-bit codes: `d = (max − min) / top`, `q = min(top, ⌊(x − min)/d + ½⌋)`.
fn affine(x: &[f32], top: u8, with_high: bool, out: &mut Vec<u8>) {
    let (lo, hi) = min_max(x);
    let d = (hi - lo) / f32::from(top);
    let id = inverse(d);
    push_f16(out, d);
    push_f16(out, lo);
    let mut codes = [0u8; 32];
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = (((v - lo) * id + 0.5) as i32).clamp(0, i32::from(top)) as u8;
    }
    pack(&codes, out, with_high);
}

fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    symmetric(x, 8.0, 15, false, out);
}

fn q4_1(x: &[f32], out: &mut Vec<u8>) {
    affine(x, 15, false, out);
}

fn q5_0(x: &[f32], out: &mut Vec<u8>) {
    // Block: d, qh, qs (the high bits before the nibbles).
    symmetric(x, 16.0, 31, true, out);
}

fn q5_1(x: &[f32], out: &mut Vec<u8>) {
    affine(x, 31, true, out);
}

fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    push_f16(out, d);
    for &v in x {
        out.push(((v * id).round() as i32).clamp(-128, 127) as i8 as u8);
    }
}
