//! Quantisation (property-tested against dequantisation: each type's round trip stays within
//! its step) and rewriting a file with some tensors replaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;

use gguf::write::Writer;
use gguf::{dequantize, quantize, rewrite, GgmlType, GgufFile, MetadataValue, Replacement};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The largest error one element of `block` may have after a round trip through `ty`: half a
/// step (a whole step for the symmetric types, whose one clamped code is a step short), plus
/// the rounding of the f16 scale and minimum.
fn bound(ty: GgmlType, block: &[f32]) -> f32 {
    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (lo, hi) = block
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let f16_eps = 1.0 / 1024.0;
    let slack = f16_eps * (amax + lo.abs() + hi.abs()) + 1e-6;
    match ty {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => f16_eps * amax + 1e-7,
        GgmlType::BF16 => amax / 128.0,
        GgmlType::Q4_0 => amax / 8.0 + slack,
        GgmlType::Q5_0 => amax / 16.0 + slack,
        GgmlType::Q4_1 => (hi - lo) / 15.0 / 2.0 + slack,
        GgmlType::Q5_1 => (hi - lo) / 31.0 / 2.0 + slack,
        GgmlType::Q8_0 => amax / 127.0 / 2.0 + slack,
        _ => f32::INFINITY,
    }
}

const TYPES: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
];

proptest! {
    #[test]
    fn round_trips_stay_within_each_types_step(
        values in prop::collection::vec(-100.0f32..100.0, 64),
        scale in prop::sample::select(vec![1e-3f32, 1.0, 30.0]),
        t in 0usize..8,
    ) {
        let ty = TYPES[t];
        let x: Vec<f32> = values.iter().map(|v| v * scale).collect();
        let bytes = quantize(ty, &x).unwrap();
        prop_assert_eq!(bytes.len() as u64, ty.bytes_for(x.len() as u64).unwrap());
        let y = dequantize(ty, &bytes, x.len()).unwrap();
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let limit = bound(ty, xb);
            for (i, (a, c)) in xb.iter().zip(yb).enumerate() {
                prop_assert!((a - c).abs() <= limit, "{ty}: block {b} element {i}: {a} → {c} (bound {limit})");
            }
        }
    }
}

/// The largest error an element of sub-block `j` of the 256-element super-block `x` may have
/// after a round trip through a K-quant (the bounds stated in `gguf`'s `quant_k`), with a
/// margin of 2⁻⁹ for f16 rounding and 1e-6 of the block's magnitude for f32 arithmetic.
fn k_bounds(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let up = 1.0 + 1.0 / 512.0;
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let slack = 1e-6 * amax + 1e-30;
    match ty {
        GgmlType::Q4K | GgmlType::Q5K => {
            let top = if ty == GgmlType::Q4K { 15.0 } else { 31.0 };
            let subs: Vec<(f32, f32)> = x
                .chunks(32)
                .map(|s| {
                    s.iter()
                        .fold((0f32, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)))
                })
                .collect();
            let dmin = subs.iter().fold(0f32, |m, &(lo, _)| m.max(-lo)) / 63.0 * up;
            let scales: Vec<f32> = subs
                .iter()
                .map(|&(lo, hi)| (hi - lo + dmin) / top * up)
                .collect();
            let d = scales.iter().fold(0f32, |m, &v| m.max(v)) / 63.0 * up;
            scales.iter().map(|s| (s + d) / 2.0 * up + slack).collect()
        }
        GgmlType::Q6K => {
            let scales: Vec<f32> = x
                .chunks(16)
                .map(|s| s.iter().fold(0f32, |m, v| m.max(v.abs())) / 32.0)
                .collect();
            let d = scales.iter().fold(0f32, |m, &v| m.max(v)) / 128.0 * up;
            scales.iter().map(|s| (s + 16.0 * d) * up + slack).collect()
        }
        _ => unreachable!("not a K-quant: {ty}"),
    }
}

const K_TYPES: [GgmlType; 3] = [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K];

/// Checks `x` → `ty` → back against [`k_bounds`], returning the worst error over its bound.
fn k_round_trip(ty: GgmlType, x: &[f32]) -> Result<f32, TestCaseError> {
    let bytes = quantize(ty, x).unwrap();
    prop_assert_eq!(bytes.len() as u64, ty.bytes_for(x.len() as u64).unwrap());
    let y = dequantize(ty, &bytes, x.len()).unwrap();
    let sub = if ty == GgmlType::Q6K { 16 } else { 32 };
    let mut worst = 0f32;
    for (b, (xb, yb)) in x.chunks(256).zip(y.chunks(256)).enumerate() {
        let bounds = k_bounds(ty, xb);
        for (i, (a, c)) in xb.iter().zip(yb).enumerate() {
            let limit = bounds[i / sub];
            prop_assert!(
                (a - c).abs() <= limit,
                "{ty}: block {b} element {i}: {a} → {c} (bound {limit})"
            );
            if limit > 0.0 {
                worst = worst.max((a - c).abs() / limit);
            }
        }
    }
    Ok(worst)
}

proptest! {
    /// K-quants: sub-blocks of very different spreads and signs in one super-block (what the
    /// shared super-block scale must serve), at three magnitudes.
    #[test]
    fn k_quant_round_trips_stay_within_their_bounds(
        values in prop::collection::vec(-100.0f32..100.0, 512),
        spreads in prop::collection::vec(prop::sample::select(vec![0.0f32, 1e-3, 0.1, 1.0]), 32),
        shifts in prop::collection::vec(-1.0f32..1.0, 32),
        scale in prop::sample::select(vec![1e-3f32, 1.0, 30.0]),
        t in 0usize..3,
    ) {
        let x: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v * spreads[i / 16] + 100.0 * shifts[i / 16]) * scale)
            .collect();
        k_round_trip(K_TYPES[t], &x)?;
    }
}

/// K-quants on edge super-blocks: zeros stay zero, constants, one extreme value, all
/// negative, all positive; and Q6_K's worst case (an element of the sub-block's largest
/// magnitude with the opposite sign) is within its bound.
#[test]
fn k_quant_edge_blocks() {
    let blocks: Vec<Vec<f32>> = vec![
        vec![0.0; 256],
        vec![0.25; 256],
        (0..256).map(|i| if i == 7 { -50.0 } else { 0.5 }).collect(),
        (0..256).map(|i| -1.0 - i as f32 / 256.0).collect(),
        (0..256).map(|i| 3.0 + (i % 7) as f32).collect(),
        (0..256)
            .map(|i| {
                if i % 16 == 0 {
                    -2.0
                } else if i % 16 == 1 {
                    2.0
                } else {
                    0.1
                }
            })
            .collect(),
    ];
    for ty in K_TYPES {
        for (n, x) in blocks.iter().enumerate() {
            let worst = k_round_trip(ty, x)
                .map_err(|e| format!("{ty} block {n}: {e}"))
                .unwrap();
            assert!(worst <= 1.0, "{ty} block {n}: {worst}");
        }
        let y = dequantize(ty, &quantize(ty, &blocks[0]).unwrap(), 256).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{ty}: zeros stay zero");
        let y = dequantize(ty, &quantize(ty, &blocks[1]).unwrap(), 256).unwrap();
        assert!(
            y.iter().all(|&v| (v - 0.25).abs() < 0.25 / 30.0),
            "{ty}: {:?}",
            &y[..4]
        );
    }
    let e = quantize(GgmlType::Q4K, &[1.0; 255]).unwrap_err();
    assert!(e.to_string().contains("whole number"), "{e}");
}

#[test]
fn edge_blocks_and_bad_input() {
    for ty in TYPES {
        // A constant block, a zero block and one extreme value.
        let mut x = vec![0.25f32; 32];
        x.extend([0.0f32; 32]);
        x.extend((0..32).map(|i| if i == 7 { -50.0 } else { 0.5 }));
        let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let limit = bound(ty, xb);
            assert!(
                xb.iter().zip(yb).all(|(a, c)| (a - c).abs() <= limit),
                "{ty} block {b}: {xb:?} → {yb:?}"
            );
        }
        assert!(y[32..64].iter().all(|&v| v == 0.0), "{ty}: zeros stay zero");
    }
    let e = quantize(GgmlType::Q4_1, &[1.0; 31]).unwrap_err();
    assert!(e.to_string().contains("whole number"), "{e}");
    let e = quantize(GgmlType::Q8_0, &[f32::NAN; 32]).unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
    let e = quantize(GgmlType::Q3K, &[0.0; 256]).unwrap_err();
    assert!(e.to_string().contains("unsupported"), "{e}");
}

#[test]
fn rewriting_replaces_only_what_it_is_asked_to() {
    let a: Vec<f32> = (0..64).map(|i| i as f32 / 7.0).collect();
    let b: Vec<f32> = (0..64).map(|i| (i as f32).sin()).collect();
    let src = Writer::new()
        .kv(
            "general.architecture",
            MetadataValue::String("llama".into()),
        )
        .kv("llama.block_count", MetadataValue::U32(1))
        .kv("general.alignment", MetadataValue::U32(64))
        .tensor(
            "a",
            &[32, 2],
            GgmlType::Q4_1,
            quantize(GgmlType::Q4_1, &a).unwrap(),
        )
        .tensor(
            "b",
            &[64],
            GgmlType::Q8_0,
            quantize(GgmlType::Q8_0, &b).unwrap(),
        )
        .to_bytes();
    let before = GgufFile::from_bytes(&src).unwrap();
    let edited: Vec<f32> = a.iter().map(|v| v + 0.5).collect();
    let out = rewrite(
        &src,
        &BTreeMap::from([(
            "a".to_string(),
            Replacement {
                ty: GgmlType::F32,
                data: quantize(GgmlType::F32, &edited).unwrap(),
            },
        )]),
    )
    .unwrap();
    let after = GgufFile::from_bytes(&out).unwrap();
    assert_eq!(after.metadata, before.metadata);
    assert_eq!((after.version, after.alignment), (before.version, 64));
    let names: Vec<_> = after.tensors.iter().map(|t| (&t.name, &t.dims)).collect();
    assert_eq!(
        names,
        before
            .tensors
            .iter()
            .map(|t| (&t.name, &t.dims))
            .collect::<Vec<_>>()
    );
    let (ta, tb) = (after.tensor("a").unwrap(), after.tensor("b").unwrap());
    assert_eq!(ta.ggml_type, GgmlType::F32);
    assert_eq!(after.tensor_f32(&out, "a").unwrap(), edited);
    assert_eq!(
        after.tensor_data(&out, tb).unwrap(),
        before
            .tensor_data(&src, before.tensor("b").unwrap())
            .unwrap(),
        "an untouched tensor is copied byte for byte"
    );
    // Replacements must name a tensor and fit it.
    let bad = |name: &str, ty: GgmlType, n: usize| {
        rewrite(
            &src,
            &BTreeMap::from([(
                name.to_string(),
                Replacement {
                    ty,
                    data: vec![0; n],
                },
            )]),
        )
        .unwrap_err()
        .to_string()
    };
    assert!(bad("c", GgmlType::F32, 256).contains("no tensor named `c`"));
    let e = bad("a", GgmlType::F32, 255);
    assert!(e.contains("`a`") && e.contains("255 bytes"), "{e}");
}
