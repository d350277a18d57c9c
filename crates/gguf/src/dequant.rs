//! Dequantisation of ggml tensor data to f32, bit-exact with ggml's
//! reference `dequantize_row_*` functions and gguf-py's `gguf.quants`.
//!
//! Every block decoder receives a fixed-size array, so all indexing below
//! uses indices that are in range by construction.

use half::f16;

use crate::error::{Error, Result};
use crate::types::GgmlType;

/// Decodes `n_elements` values of type `ty` from `bytes` into f32, in
/// storage order (which is row-major for the reversed GGUF dims).
///
/// `bytes` must hold exactly the bytes of `n_elements` elements, and
/// `n_elements` must be a whole number of blocks. Types this crate cannot
/// decode (see [`GgmlType::can_dequantize`]) give [`Error::UnsupportedType`].
pub fn dequantize(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>> {
    if !ty.can_dequantize() {
        return Err(Error::UnsupportedType { ty, tensor: None });
    }
    let bad = |msg: String| Error::BadQuantInput { ty, msg };
    let expected = u64::try_from(n_elements)
        .ok()
        .and_then(|n| ty.bytes_for(n))
        .ok_or_else(|| {
            bad(format!(
                "{n_elements} elements is not a whole number of {}-element blocks",
                ty.block_size()
            ))
        })?;
    if expected != bytes.len() as u64 {
        return Err(bad(format!(
            "{n_elements} elements need {expected} bytes, got {}",
            bytes.len()
        )));
    }
    // `n_elements` is now bounded by a small multiple of `bytes.len()`.
    let mut out = Vec::with_capacity(n_elements);
    match ty {
        GgmlType::F32 => blocks::<4>(bytes, &mut out, |b, o| o.push(f32::from_le_bytes(*b))),
        GgmlType::F16 => blocks::<2>(bytes, &mut out, |b, o| o.push(f16_le(*b))),
        GgmlType::BF16 => blocks::<2>(bytes, &mut out, |b, o| {
            o.push(f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16));
        }),
        GgmlType::Q4_0 => blocks::<18>(bytes, &mut out, q4_0),
        GgmlType::Q4_1 => blocks::<20>(bytes, &mut out, q4_1),
        GgmlType::Q5_0 => blocks::<22>(bytes, &mut out, q5_0),
        GgmlType::Q5_1 => blocks::<24>(bytes, &mut out, q5_1),
        GgmlType::Q8_0 => blocks::<34>(bytes, &mut out, q8_0),
        GgmlType::Q2K => blocks::<84>(bytes, &mut out, q2_k),
        GgmlType::Q3K => blocks::<110>(bytes, &mut out, q3_k),
        GgmlType::Q4K => blocks::<144>(bytes, &mut out, q4_k),
        GgmlType::Q5K => blocks::<176>(bytes, &mut out, q5_k),
        GgmlType::Q6K => blocks::<210>(bytes, &mut out, q6_k),
        _ => return Err(Error::UnsupportedType { ty, tensor: None }),
    }
    if out.len() != n_elements {
        return Err(bad(format!(
            "decoded {} elements, expected {n_elements}",
            out.len()
        )));
    }
    Ok(out)
}

/// Runs `f` on each `N`-byte block of `bytes` (whose length is a multiple of `N`).
fn blocks<const N: usize>(bytes: &[u8], out: &mut Vec<f32>, f: impl Fn(&[u8; N], &mut Vec<f32>)) {
    for chunk in bytes.chunks_exact(N) {
        if let Ok(block) = <&[u8; N]>::try_from(chunk) {
            f(block, out);
        }
    }
}

fn f16_le(b: [u8; 2]) -> f32 {
    f16::from_le_bytes(b).to_f32()
}

/// Block: d (f16), qs[16]; y[j] = (q_lo - 8) * d, y[j+16] = (q_hi - 8) * d.
fn q4_0(b: &[u8; 18], out: &mut Vec<f32>) {
    let d = f16_le([b[0], b[1]]);
    for shift in [0, 4] {
        for j in 0..16 {
            let q = i32::from((b[2 + j] >> shift) & 0x0F) - 8;
            out.push(d * q as f32);
        }
    }
}

/// Block: d (f16), m (f16), qs[16]; y = q * d + m.
fn q4_1(b: &[u8; 20], out: &mut Vec<f32>) {
    let d = f16_le([b[0], b[1]]);
    let m = f16_le([b[2], b[3]]);
    for shift in [0, 4] {
        for j in 0..16 {
            let q = (b[4 + j] >> shift) & 0x0F;
            out.push(d * f32::from(q) + m);
        }
    }
}

/// Block: d (f16), qh (u32), qs[16]; element i's 5th bit is bit i of qh.
fn q5_0(b: &[u8; 22], out: &mut Vec<f32>) {
    let d = f16_le([b[0], b[1]]);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (half, shift) in [(0usize, 0), (1, 4)] {
        for j in 0..16 {
            let i = half * 16 + j;
            let lo = u32::from((b[6 + j] >> shift) & 0x0F);
            let hi = ((qh >> i) & 1) << 4;
            let q = (lo | hi) as i32 - 16;
            out.push(d * q as f32);
        }
    }
}

/// Block: d (f16), m (f16), qh (u32), qs[16]; y = q * d + m.
fn q5_1(b: &[u8; 24], out: &mut Vec<f32>) {
    let d = f16_le([b[0], b[1]]);
    let m = f16_le([b[2], b[3]]);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (half, shift) in [(0usize, 0), (1, 4)] {
        for j in 0..16 {
            let i = half * 16 + j;
            let lo = u32::from((b[8 + j] >> shift) & 0x0F);
            let hi = ((qh >> i) & 1) << 4;
            out.push(d * (lo | hi) as f32 + m);
        }
    }
}

/// Block: d (f16), qs[32] (i8); y = q * d.
fn q8_0(b: &[u8; 34], out: &mut Vec<f32>) {
    let d = f16_le([b[0], b[1]]);
    for j in 0..32 {
        let q = i8::from_le_bytes([b[2 + j]]);
        out.push(f32::from(q) * d);
    }
}

/// Block: scales[16], qs[64], d (f16), dmin (f16).
fn q2_k(b: &[u8; 84], out: &mut Vec<f32>) {
    let d = f16_le([b[80], b[81]]);
    let dmin = f16_le([b[82], b[83]]);
    for e in 0..256 {
        let sc = b[e / 16];
        let dl = d * f32::from(sc & 0x0F);
        let ml = dmin * f32::from(sc >> 4);
        let q = (b[16 + (e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        out.push(dl * f32::from(q) - ml);
    }
}

/// Block: hmask[32], qs[64], scales[12] (16 packed 6-bit values), d (f16).
fn q3_k(b: &[u8; 110], out: &mut Vec<f32>) {
    let d = f16_le([b[108], b[109]]);
    let mut scales = [0f32; 16];
    for (k, s) in scales.iter_mut().enumerate() {
        let lo = if k < 8 {
            b[96 + k] & 0x0F
        } else {
            b[96 + k - 8] >> 4
        };
        let hi = (b[96 + 8 + k % 4] >> (2 * (k / 4))) & 3;
        *s = f32::from(i16::from(lo | (hi << 4)) - 32);
    }
    for e in 0..256 {
        let dl = d * scales[e / 16];
        let l = e % 32;
        let q = (b[32 + (e / 128) * 32 + l] >> (2 * ((e % 128) / 32))) & 3;
        let h = (b[l] >> (e / 32)) & 1;
        let v = i16::from(q) - if h == 1 { 0 } else { 4 };
        out.push(dl * f32::from(v));
    }
}

/// ggml's `get_scale_min_k4`: the j-th 6-bit scale and min of a Q4_K/Q5_K block.
fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

fn k_scales(b: &[u8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    if let Some(src) = b.get(4..16) {
        s.copy_from_slice(src);
    }
    s
}

/// Block: d (f16), dmin (f16), scales[12], qs[128].
fn q4_k(b: &[u8; 144], out: &mut Vec<f32>) {
    let d = f16_le([b[0], b[1]]);
    let dmin = f16_le([b[2], b[3]]);
    let s = k_scales(b);
    for g in 0..8 {
        let (sc, m) = scale_min_k4(g, &s);
        let d1 = d * f32::from(sc);
        let m1 = dmin * f32::from(m);
        let shift = 4 * (g % 2);
        for l in 0..32 {
            let q = (b[16 + (g / 2) * 32 + l] >> shift) & 0x0F;
            out.push(d1 * f32::from(q) - m1);
        }
    }
}

/// Block: d (f16), dmin (f16), scales[12], qh[32], qs[128].
fn q5_k(b: &[u8; 176], out: &mut Vec<f32>) {
    let d = f16_le([b[0], b[1]]);
    let dmin = f16_le([b[2], b[3]]);
    let s = k_scales(b);
    for g in 0..8 {
        let (sc, m) = scale_min_k4(g, &s);
        let d1 = d * f32::from(sc);
        let m1 = dmin * f32::from(m);
        let shift = 4 * (g % 2);
        for l in 0..32 {
            let lo = (b[48 + (g / 2) * 32 + l] >> shift) & 0x0F;
            let hi = ((b[16 + l] >> g) & 1) << 4;
            out.push(d1 * f32::from(lo | hi) - m1);
        }
    }
}

/// Block: ql[128], qh[64], scales[16] (i8), d (f16).
fn q6_k(b: &[u8; 210], out: &mut Vec<f32>) {
    let d = f16_le([b[208], b[209]]);
    for e in 0..256 {
        let half = e / 128;
        let k = (e % 128) / 32;
        let l = e % 32;
        let ql = (b[half * 64 + (k % 2) * 32 + l] >> (4 * (k / 2))) & 0x0F;
        let qh = (b[128 + half * 32 + l] >> (2 * k)) & 3;
        let q = i16::from(ql | (qh << 4)) - 32;
        let sc = i8::from_le_bytes([b[192 + e / 16]]);
        out.push(d * f32::from(sc) * f32::from(q));
    }
}
