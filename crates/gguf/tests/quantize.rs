//! Quantisation (property-tested against dequantisation: each type's round trip stays within
//! its step) and rewriting a file with some tensors replaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;

use gguf::write::Writer;
use gguf::{dequantize, quantize, rewrite, GgmlType, GgufFile, MetadataValue, Replacement};
use proptest::prelude::*;

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
    let e = quantize(GgmlType::Q6K, &[0.0; 256]).unwrap_err();
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
