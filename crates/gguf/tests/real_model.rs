//! Tests against the real SmolLM2-135M-Instruct Q4_1 model, when present
//! (`models/` at the workspace root). Skipped when the file is absent.
//! Reference values come from gguf-py via `tests/data/make_smollm_reference.py`.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use gguf::{GgmlType, GgufFile, GgufReader};

/// The bundled model; its absence is a failure, not a skip (setup installs it together with
/// libtorch, without which nothing here builds).
fn model_path() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "the bundled model {} is absent: run `bash scripts/setup.sh`, which installs it with libtorch", p.display());
    Some(p)
}

fn open() -> Option<GgufReader> {
    model_path().map(|p| GgufFile::open(p).unwrap())
}

#[test]
fn metadata() {
    let Some(r) = open() else { return };
    let f = &r.file;
    assert_eq!(f.version, 3);
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.require_u64("llama.block_count").unwrap(), 30);
    assert_eq!(f.require_u64("llama.embedding_length").unwrap(), 576);
    assert_eq!(f.require_u64("llama.attention.head_count").unwrap(), 9);
    assert_eq!(f.require_u64("llama.attention.head_count_kv").unwrap(), 3);
    assert!(f.require_f64("llama.rope.freq_base").unwrap() > 0.0);
    assert_eq!(f.tensors.len(), 272);
    assert_eq!(f.alignment, 32);
    let emb = f.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.ggml_type, GgmlType::Q8_0);
    assert_eq!(emb.dims, vec![576, 49152]);
    assert_eq!(emb.shape_outer_first(), vec![49152, 576]);
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.ggml_type, GgmlType::Q4_1);
    assert_eq!(q.n_elements(), 576 * 576);
}

#[test]
fn tokenizer_arrays() {
    let Some(r) = open() else { return };
    let f = &r.file;
    let tokens = f.require_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert!(tokens.iter().all(|t| t.as_str().is_some()));
    let merges = f.require_array("tokenizer.ggml.merges").unwrap();
    assert_eq!(merges.len(), 48900);
    assert!(merges
        .iter()
        .all(|m| m.as_str().is_some_and(|s| s.contains(' '))));
    assert_eq!(
        f.require_array("tokenizer.ggml.token_type").unwrap().len(),
        49152
    );
    assert_eq!(f.require_str("tokenizer.ggml.model").unwrap(), "gpt2");
}

struct Reference {
    name: String,
    ty: String,
    dims: Vec<u64>,
    sum: f64,
    abs_sum: f64,
    values: Vec<(usize, u32)>,
}

fn references() -> (usize, u64, Vec<Reference>) {
    let text = include_str!("data/smollm2_reference.txt");
    let (mut n_tensors, mut data_offset, mut refs) = (0, 0, Vec::<Reference>::new());
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "n_tensors" => n_tensors = w[1].parse().unwrap(),
            "data_offset" => data_offset = w[1].parse().unwrap(),
            "tensor" => refs.push(Reference {
                name: w[1].into(),
                ty: w[2].into(),
                dims: w[3].split(',').map(|d| d.parse().unwrap()).collect(),
                sum: w[4].parse().unwrap(),
                abs_sum: w[5].parse().unwrap(),
                values: vec![],
            }),
            "value" => {
                let r = refs.iter_mut().find(|r| r.name == w[1]).unwrap();
                let bits = u32::from_str_radix(w[3], 16).unwrap();
                r.values.push((w[2].parse().unwrap(), bits));
            }
            other => panic!("unknown line kind {other}"),
        }
    }
    (n_tensors, data_offset, refs)
}

#[test]
fn dequantised_tensors_match_gguf_py() {
    let Some(mut r) = open() else { return };
    let (n_tensors, data_offset, refs) = references();
    assert_eq!(r.file.tensors.len(), n_tensors);
    assert_eq!(r.file.data_offset, data_offset);
    assert!(refs.iter().any(|x| x.ty == "Q8_0") && refs.iter().any(|x| x.ty == "Q4_1"));
    for reference in &refs {
        let info = r.file.tensor(&reference.name).unwrap().clone();
        assert_eq!(info.ggml_type.name(), reference.ty);
        assert_eq!(info.dims, reference.dims);
        let x = r.read_f32(&reference.name).unwrap();
        assert_eq!(x.len() as u64, info.n_elements());
        for &(i, bits) in &reference.values {
            assert_eq!(x[i].to_bits(), bits, "{}[{i}]", reference.name);
        }
        let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
        let abs_sum: f64 = x.iter().map(|&v| f64::from(v).abs()).sum();
        let tol = 1e-9 * reference.abs_sum.max(1.0);
        assert!(
            (sum - reference.sum).abs() <= tol,
            "{}: sum {sum} vs {}",
            reference.name,
            reference.sum
        );
        assert!(
            (abs_sum - reference.abs_sum).abs() <= tol,
            "{}: abs sum {abs_sum} vs {}",
            reference.name,
            reference.abs_sum
        );
    }
}

#[test]
fn every_tensor_is_readable() {
    let Some(mut r) = open() else { return };
    let infos = r.file.tensors.clone();
    for info in infos
        .iter()
        .filter(|t| t.name.starts_with("blk.1.") || t.name == "output_norm.weight")
    {
        let x = r.read_f32(&info.name).unwrap();
        assert_eq!(x.len() as u64, info.n_elements(), "{}", info.name);
        assert!(x.iter().all(|v| v.is_finite()), "{}", info.name);
    }
    // All tensors' data ranges lie in the file (checked at open) and their
    // byte sizes are consistent.
    let total: u64 = infos.iter().map(|t| t.n_bytes().unwrap()).sum();
    assert!(r.file.data_offset + total <= r.file_len());
}
