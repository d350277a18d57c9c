//! A minimal GGUF writer for tests.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code, missing_docs)]

use gguf::{GgmlType, MetadataValue};

pub use gguf::write::Writer;

/// A small valid file with metadata of every kind and a few tensors.
pub fn sample_writer() -> Writer {
    use MetadataValue as V;
    let f32_data: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.5 - 1.0).to_le_bytes())
        .collect();
    let f16_data: Vec<u8> = (0..8)
        .flat_map(|i| half::f16::from_f32(i as f32 - 3.0).to_le_bytes())
        .collect();
    // One Q8_0 block: d = 0.5, qs = -16..16
    let mut q8 = half::f16::from_f32(0.5).to_le_bytes().to_vec();
    q8.extend((-16i8..16).map(|q| q as u8));
    Writer::new()
        .kv("general.architecture", V::String("llama".into()))
        .kv("t.u8", V::U8(200))
        .kv("t.i8", V::I8(-100))
        .kv("t.u16", V::U16(60000))
        .kv("t.i16", V::I16(-30000))
        .kv("t.u32", V::U32(4_000_000_000))
        .kv("t.i32", V::I32(-2_000_000_000))
        .kv("t.f32", V::F32(1.5))
        .kv("t.bool", V::Bool(true))
        .kv("t.string", V::String("héllo wörld".into()))
        .kv("t.u64", V::U64(u64::MAX))
        .kv("t.i64", V::I64(i64::MIN))
        .kv("t.f64", V::F64(-2.25e300))
        .kv(
            "t.array.str",
            V::Array(vec![
                V::String("a".into()),
                V::String("".into()),
                V::String("ccc".into()),
            ]),
        )
        .kv(
            "t.array.i32",
            V::Array(vec![V::I32(1), V::I32(-2), V::I32(3)]),
        )
        .kv(
            "t.array.nested",
            V::Array(vec![
                V::Array(vec![V::U8(1), V::U8(2)]),
                V::Array(vec![V::U8(3)]),
            ]),
        )
        .kv("t.array.empty", V::Array(vec![]))
        .tensor("a.f32", &[4, 3], GgmlType::F32, f32_data)
        .tensor("b.f16", &[8], GgmlType::F16, f16_data)
        .tensor("c.q8_0", &[32, 1], GgmlType::Q8_0, q8)
}
