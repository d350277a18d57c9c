//! Bit-exactness against gguf-py: `tests/data/quant_blocks.gguf` (made by
//! `tests/data/make_quant_fixture.py`) holds random raw blocks of every
//! supported type next to the F32 values gguf-py dequantises them to.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use gguf::{dequantize, GgmlType, GgufFile};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant_blocks.gguf")
}

#[test]
fn every_type_matches_gguf_py_bit_for_bit() {
    let mut r = GgufFile::open(fixture()).unwrap();
    let raws: Vec<_> = r
        .file
        .tensors
        .iter()
        .filter(|t| t.name.ends_with(".raw"))
        .cloned()
        .collect();
    let mut seen = Vec::new();
    for raw in &raws {
        let stem = raw.name.trim_end_matches(".raw");
        let expected_info = r.file.tensor(&format!("{stem}.expected")).unwrap().clone();
        assert_eq!(expected_info.ggml_type, GgmlType::F32);
        assert_eq!(raw.dims, expected_info.dims, "{stem}");
        let got = r.read_f32(&raw.name).unwrap();
        let want = r.read_f32(&expected_info.name).unwrap();
        assert_eq!(got.len(), want.len(), "{stem}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{stem}[{i}]: got {g:e}, gguf-py {w:e}"
            );
        }
        // The free function agrees with the reader.
        let bytes = r.read_raw(raw).unwrap();
        let direct = dequantize(raw.ggml_type, &bytes, got.len()).unwrap();
        assert_eq!(direct, got);
        seen.push(raw.ggml_type);
    }
    for ty in [
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        assert!(seen.contains(&ty), "fixture lacks {ty}");
    }
}

#[test]
fn fixture_is_small_and_from_bytes_agrees() {
    let bytes = std::fs::read(fixture()).unwrap();
    assert!(bytes.len() < 100_000);
    let f = GgufFile::from_bytes(&bytes).unwrap();
    let r = GgufFile::open(fixture()).unwrap();
    assert_eq!(f, r.file);
    let a = f.tensor_f32(&bytes, "q4_k.raw").unwrap();
    let b = f.tensor_f32(&bytes, "q4_k.expected").unwrap();
    assert_eq!(
        a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}
