//! Round-trip and validation tests using an in-test GGUF writer.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{sample_writer, Writer};
use gguf::{dequantize, Error, GgmlType, GgufFile, MetadataValue as V};

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("factscope-gguf-{}-{tag}.gguf", std::process::id()))
}

#[test]
fn metadata_and_tensors_round_trip() {
    let w = sample_writer();
    let bytes = w.to_bytes();
    let f = GgufFile::from_bytes(&bytes).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment, 32);
    assert_eq!(f.data_offset % 32, 0);
    assert_eq!(f.metadata.len(), w.kvs.len());
    for (k, v) in &w.kvs {
        assert_eq!(f.get(k), Some(v), "key {k}");
    }
    assert_eq!(f.tensors.len(), w.tensors.len());
    for ((t, want), off) in f.tensors.iter().zip(&w.tensors).zip(w.offsets()) {
        assert_eq!(t.name, want.name);
        assert_eq!(t.dims, want.dims);
        assert_eq!(t.ggml_type, want.ty);
        assert_eq!(t.offset, off);
        assert_eq!(t.n_bytes().unwrap(), want.data.len() as u64);
        assert_eq!(f.tensor_data(&bytes, t).unwrap(), &want.data[..]);
    }
    let a = f.tensor("a.f32").unwrap();
    assert_eq!(a.n_elements(), 12);
    assert_eq!(a.shape_outer_first(), vec![3, 4]);
    let vals = f.tensor_f32(&bytes, "a.f32").unwrap();
    assert_eq!(
        vals,
        (0..12).map(|i| i as f32 * 0.5 - 1.0).collect::<Vec<_>>()
    );
    let h = f.tensor_f32(&bytes, "b.f16").unwrap();
    assert_eq!(h, (0..8).map(|i| i as f32 - 3.0).collect::<Vec<_>>());
    let q = f.tensor_f32(&bytes, "c.q8_0").unwrap();
    assert_eq!(q, (-16..16).map(|i| i as f32 * 0.5).collect::<Vec<_>>());
    assert!(f.tensor("nope").is_none());
    assert_eq!(f.architecture(), Some("llama"));
}

#[test]
fn accessors() {
    let f = GgufFile::from_bytes(&sample_writer().to_bytes()).unwrap();
    assert_eq!(f.get("t.u8").unwrap().as_u64(), Some(200));
    assert_eq!(f.get("t.i8").unwrap().as_u64(), None);
    assert_eq!(f.get("t.i8").unwrap().as_i64(), Some(-100));
    assert_eq!(f.get("t.i8").unwrap().as_f64(), Some(-100.0));
    assert_eq!(f.get("t.u64").unwrap().as_u64(), Some(u64::MAX));
    assert_eq!(f.get("t.f32").unwrap().as_f64(), Some(1.5));
    assert_eq!(f.get("t.f32").unwrap().as_u64(), None);
    assert_eq!(f.get("t.bool").unwrap().as_bool(), Some(true));
    assert_eq!(f.get("t.string").unwrap().as_str(), Some("héllo wörld"));
    assert_eq!(f.get("t.array.str").unwrap().as_array().unwrap().len(), 3);
    assert_eq!(f.require_u64("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.require_f64("t.f64").unwrap(), -2.25e300);
    assert!(f.require_bool("t.bool").unwrap());
    assert_eq!(f.require_array("t.array.i32").unwrap().len(), 3);
    let e = f.require_str("t.u32").unwrap_err().to_string();
    assert!(
        e.contains("`t.u32`") && e.contains("u32") && e.contains("string"),
        "{e}"
    );
    let e = f.require_u64("missing.key").unwrap_err().to_string();
    assert!(e.contains("`missing.key`"), "{e}");
}

#[test]
fn open_reads_tensors_and_errors_name_the_path() {
    let w = sample_writer();
    let path = temp_path("open");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let mut r = GgufFile::open(&path).unwrap();
    assert_eq!(r.path(), path.as_path());
    let info = r.file.tensor("c.q8_0").unwrap().clone();
    assert_eq!(r.read_raw(&info).unwrap(), w.tensors[2].data);
    assert_eq!(r.read_f32("b.f16").unwrap().len(), 8);
    let e = r.read_f32("nope").unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("`nope`"),
        "{e}"
    );
    // A description that points past the end of the file.
    let mut bad = info.clone();
    bad.offset = 1 << 40;
    let e = r.read_raw(&bad).unwrap_err().to_string();
    assert!(e.contains("c.q8_0") && e.contains("outside"), "{e}");
    std::fs::remove_file(&path).unwrap();

    let missing = temp_path("does-not-exist");
    let e = GgufFile::open(&missing).unwrap_err().to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");

    // A truncated file on disk: the parse error names the path and offset.
    let path = temp_path("trunc");
    let bytes = w.to_bytes();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let e = GgufFile::open(&path).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("c.q8_0"),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn read_from_seekable_stream_with_prefix() {
    // `read` starts at the stream's current position.
    let bytes = sample_writer().to_bytes();
    let mut prefixed = vec![0xAAu8; 7];
    prefixed.extend_from_slice(&bytes);
    let mut cur = std::io::Cursor::new(prefixed);
    cur.set_position(7);
    let f = GgufFile::read(&mut cur).unwrap();
    assert_eq!(f, GgufFile::from_bytes(&bytes).unwrap());
}

#[test]
fn custom_alignment() {
    let w = Writer::new()
        .kv("general.alignment", V::U32(64))
        .tensor("x", &[3], GgmlType::F32, vec![0; 12])
        .tensor("y", &[1], GgmlType::F32, 2.0f32.to_le_bytes().to_vec());
    let bytes = w.to_bytes();
    let f = GgufFile::from_bytes(&bytes).unwrap();
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_offset % 64, 0);
    assert_eq!(f.tensor("y").unwrap().offset, 64);
    assert_eq!(f.tensor_f32(&bytes, "y").unwrap(), vec![2.0]);
}

#[test]
fn version_2_is_accepted() {
    let mut w = sample_writer();
    w.version = 2;
    assert_eq!(GgufFile::from_bytes(&w.to_bytes()).unwrap().version, 2);
}

fn err_of(bytes: &[u8]) -> String {
    match GgufFile::from_bytes(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_writer().to_bytes();
    for n in 0..bytes.len() {
        assert!(
            GgufFile::from_bytes(&bytes[..n]).is_err(),
            "prefix of {n} bytes parsed"
        );
    }
    assert!(err_of(&bytes[..10]).contains("byte offset 8"));
}

#[test]
fn header_errors() {
    assert!(err_of(b"GGUX\x03\0\0\0").contains("bad magic"));
    let mut w = sample_writer();
    w.version = 1;
    assert!(err_of(&w.to_bytes()).contains("GGUFv1"));
    w.version = 3u32.swap_bytes();
    assert!(err_of(&w.to_bytes()).contains("big-endian"));
    w.version = 4;
    assert!(err_of(&w.to_bytes()).contains("version 4"));

    // Huge counts are rejected before any allocation.
    let mut b = b"GGUF\x03\0\0\0".to_vec();
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    assert!(err_of(&b).contains("tensor descriptions cannot fit"));
    let mut b = b"GGUF\x03\0\0\0".to_vec();
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(err_of(&b).contains("metadata entries cannot fit"));
}

#[test]
fn metadata_errors_name_the_key() {
    // String length larger than the input.
    let mut b = b"GGUF\x03\0\0\0".to_vec();
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&3u64.to_le_bytes());
    b.extend_from_slice(b"key");
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 50).to_le_bytes());
    let e = err_of(&b);
    assert!(e.contains("`key`") && e.contains("string length"), "{e}");

    // Array length larger than the input.
    let mut b = b"GGUF\x03\0\0\0".to_vec();
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&3u64.to_le_bytes());
    b.extend_from_slice(b"arr");
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    let e = err_of(&b);
    assert!(e.contains("`arr`") && e.contains("cannot fit"), "{e}");

    // Unknown value type.
    let mut b = b"GGUF\x03\0\0\0".to_vec();
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(b"k");
    b.extend_from_slice(&13u32.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    let e = err_of(&b);
    assert!(
        e.contains("`k`") && e.contains("type id 13") && e.contains("offset 33"),
        "{e}"
    );

    // Invalid UTF-8.
    let mut b = b"GGUF\x03\0\0\0".to_vec();
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(0xFF);
    b.extend_from_slice(&0u32.to_le_bytes());
    b.push(0);
    assert!(err_of(&b).contains("UTF-8"));

    // Arrays nested too deeply.
    let mut v = V::Array(vec![V::U8(1)]);
    for _ in 0..gguf::MAX_ARRAY_DEPTH {
        v = V::Array(vec![v]);
    }
    let e = err_of(&Writer::new().kv("deep", v).to_bytes());
    assert!(e.contains("`deep`") && e.contains("nested"), "{e}");

    let e = err_of(
        &Writer::new()
            .kv("dup", V::U8(1))
            .kv("dup", V::U8(2))
            .to_bytes(),
    );
    assert!(e.contains("duplicate metadata key `dup`"), "{e}");
}

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    for a in [0u32, 3, 48] {
        let e = err_of(&Writer::new().kv("general.alignment", V::U32(a)).to_bytes());
        assert!(
            e.contains("general.alignment") && e.contains("power of two"),
            "{e}"
        );
    }
    let e = err_of(&Writer::new().kv("general.alignment", V::U64(32)).to_bytes());
    assert!(e.contains("general.alignment") && e.contains("u64"), "{e}");
}

#[test]
fn tensor_errors_name_the_tensor() {
    let f32x = |n: usize| vec![0u8; 4 * n];
    let cases: Vec<(Writer, &str)> = vec![
        (
            Writer::new().tensor("zero", &[0, 2], GgmlType::F32, vec![]),
            "invalid size 0",
        ),
        (
            Writer::new().tensor("five", &[1, 1, 1, 1, 1], GgmlType::F32, f32x(1)),
            "5 dimensions",
        ),
        (
            Writer::new().tensor("blk", &[16, 2], GgmlType::Q8_0, vec![0; 34]),
            "not a multiple of the Q8_0 block size 32",
        ),
        (
            Writer::new().tensor("huge", &[1 << 40, 1 << 40], GgmlType::F32, vec![]),
            "overflows",
        ),
        (
            Writer::new().tensor("short", &[4], GgmlType::F32, f32x(3)),
            "past the end",
        ),
    ];
    for (w, want) in cases {
        let name = w.tensors[0].name.clone();
        let e = err_of(&w.to_bytes());
        assert!(e.contains(&format!("`{name}`")) && e.contains(want), "{e}");
    }

    // Duplicate names.
    let w = Writer::new()
        .tensor("t", &[1], GgmlType::F32, f32x(1))
        .tensor("t", &[1], GgmlType::F32, f32x(1));
    assert!(err_of(&w.to_bytes()).contains("duplicate tensor name `t`"));

    // Retired / unknown type ids.
    let mut bytes = Writer::new()
        .tensor("old", &[32], GgmlType::Q4_0, vec![0; 18])
        .to_bytes();
    let pos = find(&bytes, &GgmlType::Q4_0.id().to_le_bytes(), 24 + 3 + 4 + 8);
    bytes[pos..pos + 4].copy_from_slice(&4u32.to_le_bytes());
    let e = err_of(&bytes);
    assert!(
        e.contains("`old`") && e.contains("unknown ggml type id 4"),
        "{e}"
    );

    // Misaligned and overlapping offsets.
    let w = Writer::new()
        .tensor("a", &[16], GgmlType::F32, f32x(16))
        .tensor("b", &[16], GgmlType::F32, f32x(16));
    let mut bytes = w.to_bytes();
    let off_b = w.offsets()[1];
    let pos = find(&bytes, &off_b.to_le_bytes(), 24);
    bytes[pos..pos + 8].copy_from_slice(&(off_b - 8).to_le_bytes());
    let e = err_of(&bytes);
    assert!(e.contains("`b`") && e.contains("alignment"), "{e}");
    bytes[pos..pos + 8].copy_from_slice(&(off_b - 32).to_le_bytes());
    let e = err_of(&bytes);
    assert!(
        e.contains("`b`") && e.contains("overlaps") && e.contains("`a`"),
        "{e}"
    );
}

/// Position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> usize {
    from + hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn unsupported_types_give_a_typed_error() {
    let w = Writer::new().tensor(
        "blk.0.attn_q.weight",
        &[256],
        GgmlType::IQ2_XXS,
        vec![0; 66],
    );
    let bytes = w.to_bytes();
    let f = GgufFile::from_bytes(&bytes).unwrap();
    let e = f.tensor_f32(&bytes, "blk.0.attn_q.weight").unwrap_err();
    assert!(matches!(
        e,
        Error::UnsupportedType {
            ty: GgmlType::IQ2_XXS,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "unsupported tensor type IQ2_XXS for tensor `blk.0.attn_q.weight`"
    );
    let path = temp_path("unsupported");
    std::fs::write(&path, &bytes).unwrap();
    let mut r = GgufFile::open(&path).unwrap();
    let e = r.read_f32("blk.0.attn_q.weight").unwrap_err().to_string();
    assert!(
        e.contains("IQ2_XXS for tensor `blk.0.attn_q.weight`"),
        "{e}"
    );
    assert!(e.contains(&path.display().to_string()), "{e}");
    std::fs::remove_file(&path).unwrap();

    for &ty in GgmlType::ALL {
        let n = ty.block_size() as usize;
        let r = dequantize(ty, &vec![0u8; ty.type_size() as usize], n);
        assert_eq!(r.is_ok(), ty.can_dequantize(), "{ty}");
    }
}

#[test]
fn dequantize_checks_lengths() {
    let e = dequantize(GgmlType::Q4_0, &[0; 18], 16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Q4_0") && e.contains("block"), "{e}");
    let e = dequantize(GgmlType::Q4_0, &[0; 17], 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("18 bytes"), "{e}");
    assert!(dequantize(GgmlType::Q6K, &[], usize::MAX).is_err());
    assert_eq!(
        dequantize(GgmlType::Q4K, &[], 0).unwrap(),
        Vec::<f32>::new()
    );
}
