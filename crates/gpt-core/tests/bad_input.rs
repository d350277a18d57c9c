//! Bad input never panics: broken model folders and files, bad prompts, bad token ids, bad
//! weight ids and deltas, bad hook names, bad sampling parameters and bad patches each give
//! the right [`Error`] variant with a message naming the file, tensor, layer or limit.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use gpt_core::cache::ActivationCache;
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    generate, load_model, Architecture, BlocksInput, EditableModel, Error, ForwardOptions,
    GenerateOptions, HookPoint, HookableModel, KvCache, Layer, LoadOptions, LogitsAt, NoHooks,
    Padding, Patch, RandomInit, ResumableModel, Sampling, Sites, TokenBatch, Transformer,
    WeightDelta, WeightId,
};
use tempfile::TempDir;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// A temporary copy of a fixture folder (the model is at `dir.path()`).
fn copy_fixture(name: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn load_err(path: &Path) -> Error {
    load_model(path, LoadOptions::default()).expect_err("loading should fail")
}

#[track_caller]
fn assert_mentions(err: &Error, needles: &[&str]) {
    let msg = err.to_string();
    for needle in needles {
        assert!(
            msg.contains(needle),
            "message `{msg}` does not mention `{needle}` ({err:?})"
        );
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// Rewrites `model.safetensors` after `edit` on its (name, tensor) list.
fn edit_checkpoint(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let path = dir.join("model.safetensors");
    let mut tensors = Tensor::read_safetensors(&path).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, &path).unwrap();
}

fn tiny(arch: Architecture) -> Transformer {
    Transformer::random(
        &tiny_config(arch),
        RandomInit { seed: 3, std: 0.5 },
        Device::Cpu,
        Kind::Float,
    )
    .unwrap()
}

fn opts(cache: &mut KvCache) -> ForwardOptions<'_> {
    ForwardOptions {
        kv_cache: Some(cache),
        logits: LogitsAt::Last,
    }
}

fn single(ids: &[i64]) -> TokenBatch {
    TokenBatch::single(ids, Device::Cpu).unwrap()
}

// ---------------------------------------------------------------------------------------
// Model folders and files
// ---------------------------------------------------------------------------------------

#[test]
fn fixtures_load() {
    for name in ["tiny-gpt2", "tiny-llama", "tiny-llama-tied"] {
        let dir = copy_fixture(name);
        load_model(dir.path(), LoadOptions::default()).unwrap();
    }
}

#[test]
fn missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-model");
    let err = load_err(&path);
    assert!(
        matches!(&err, Error::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert_mentions(&err, &["no-such-model"]);
}

#[test]
fn plain_file_is_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.bin");
    fs::write(&path, b"hello").unwrap();
    let err = load_err(&path);
    assert!(
        matches!(&err, Error::NotAModel { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert_mentions(&err, &["weights.bin"]);
}

#[test]
fn unsupported_dtype() {
    let dir = copy_fixture("tiny-gpt2");
    let options = LoadOptions {
        device: Device::Cpu,
        kind: Kind::Int64,
    };
    let err = load_model(dir.path(), options).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[test]
fn folder_without_config() {
    let dir = copy_fixture("tiny-gpt2");
    fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::NotAModel { path, .. } if path == dir.path()),
        "{err:?}"
    );
    assert_mentions(&err, &["config.json", &dir.path().display().to_string()]);
}

#[test]
fn config_is_not_json() {
    let dir = copy_fixture("tiny-llama");
    fs::write(dir.path().join("config.json"), "{ this is not json").unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Config { path, .. } if path.ends_with("config.json")),
        "{err:?}"
    );
    assert_mentions(&err, &["config.json"]);
}

#[test]
fn unknown_model_type() {
    let dir = copy_fixture("tiny-gpt2");
    edit_config(dir.path(), |c| c["model_type"] = "bert".into());
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_mentions(&err, &["bert", "config.json"]);
    // The message lists every model_type that loads.
    assert_mentions(
        &err,
        &[
            "gpt2",
            "llama",
            "qwen2",
            "mistral",
            "gemma",
            "gemma2",
            "gemma3_text",
            "gpt_neox",
            "gptj",
        ],
    );
}

#[test]
fn missing_model_type() {
    for name in ["tiny-gpt2", "tiny-llama"] {
        let dir = copy_fixture(name);
        edit_config(dir.path(), |c| {
            c.as_object_mut().unwrap().remove("model_type");
        });
        let err = load_err(dir.path());
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert_mentions(&err, &["model_type", "config.json"]);
    }
}

#[test]
fn missing_required_field() {
    let dir = copy_fixture("tiny-llama");
    edit_config(dir.path(), |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_mentions(&err, &["hidden_size", "config.json"]);
}

#[test]
fn gpt2_width_not_divisible_by_heads() {
    let dir = copy_fixture("tiny-gpt2");
    edit_config(dir.path(), |c| c["n_embd"] = 30.into());
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_mentions(&err, &["n_embd", "30", "n_head", "4", "config.json"]);
}

#[test]
fn llama_heads_not_multiple_of_kv_heads() {
    let dir = copy_fixture("tiny-llama");
    edit_config(dir.path(), |c| c["num_key_value_heads"] = 3.into());
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_mentions(&err, &["3", "4", "config.json"]);
}

#[test]
fn zero_sizes_are_config_errors() {
    for (name, field) in [
        ("tiny-gpt2", "n_head"),
        ("tiny-gpt2", "n_layer"),
        ("tiny-llama", "num_attention_heads"),
        ("tiny-llama", "num_key_value_heads"),
        ("tiny-llama", "vocab_size"),
    ] {
        let dir = copy_fixture(name);
        edit_config(dir.path(), |c| c[field] = 0.into());
        let err = load_err(dir.path());
        assert!(
            matches!(err, Error::Config { .. }),
            "{name} {field}: {err:?}"
        );
    }
}

#[test]
fn broken_or_missing_tokenizer() {
    let dir = copy_fixture("tiny-gpt2");
    let path = dir.path().join("tokenizer.json");
    fs::write(&path, "{ not a tokenizer").unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Tokenizer(_)), "{err:?}");
    assert_mentions(&err, &["tokenizer.json"]);

    // Without tokenizer.json the loader falls back to vocab.json + merges.txt ...
    fs::remove_file(&path).unwrap();
    load_model(dir.path(), LoadOptions::default()).unwrap();
    // ... and without those too the folder is not a model.
    fs::remove_file(dir.path().join("merges.txt")).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::NotAModel { .. }), "{err:?}");
    assert_mentions(&err, &["tokenizer.json", "merges.txt"]);
}

#[test]
fn missing_safetensors() {
    let dir = copy_fixture("tiny-gpt2");
    fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::NotAModel { .. }), "{err:?}");
    assert_mentions(&err, &["model.safetensors"]);
}

#[test]
fn pytorch_pickles_are_refused_with_how_to_convert() {
    let dir = copy_fixture("tiny-gpt2");
    fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    // Bytes that would be a pickle: never opened, whatever they hold.
    fs::write(dir.path().join("pytorch_model.bin"), b"\x80\x02not really").unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::NotAModel { .. }), "{err:?}");
    assert_mentions(
        &err,
        &[
            &dir.path().display().to_string(),
            "pytorch_model.bin",
            "safe_serialization=True",
        ],
    );
}

#[test]
fn truncated_safetensors() {
    for name in ["tiny-gpt2", "tiny-llama"] {
        let dir = copy_fixture(name);
        let path = dir.path().join("model.safetensors");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_err(dir.path());
        assert!(
            matches!(&err, Error::Checkpoint { path: p, .. } if *p == path),
            "{name}: {err:?}"
        );
        assert_mentions(&err, &[&path.display().to_string()]);
    }
}

#[test]
fn garbage_safetensors() {
    for bytes in [&b""[..], &b"abc"[..], &[0xff; 64][..], &[0u8; 64][..]] {
        let dir = copy_fixture("tiny-llama");
        let path = dir.path().join("model.safetensors");
        fs::write(&path, bytes).unwrap();
        let err = load_err(dir.path());
        assert!(
            matches!(&err, Error::Checkpoint { path: p, .. } if *p == path),
            "{bytes:?}: {err:?}"
        );
    }
}

#[test]
fn tensor_of_wrong_shape() {
    for (fixture_name, tensor) in [
        ("tiny-gpt2", "transformer.h.0.mlp.c_fc.weight"),
        ("tiny-llama", "model.layers.1.self_attn.k_proj.weight"),
        ("tiny-llama", "model.norm.weight"),
    ] {
        let dir = copy_fixture(fixture_name);
        let mut expected = Vec::new();
        edit_checkpoint(dir.path(), |tensors| {
            let (_, t) = tensors.iter_mut().find(|(n, _)| n == tensor).unwrap();
            expected = t.size();
            let mut shape = t.size();
            shape[0] += 1;
            *t = Tensor::zeros(shape.as_slice(), (t.kind(), Device::Cpu));
        });
        let err = load_err(dir.path());
        match &err {
            Error::ShapeMismatch { name, got, .. } => {
                assert!(name.contains(tensor), "{err:?}");
                assert_eq!(got[0], expected[0] + 1);
            }
            other => panic!("{fixture_name} {tensor}: expected ShapeMismatch, got {other:?}"),
        }
        assert_mentions(&err, &[tensor]);
    }
}

#[test]
fn missing_tensor() {
    for (fixture_name, tensor) in [
        ("tiny-gpt2", "transformer.h.1.mlp.c_proj.weight"),
        ("tiny-gpt2", "transformer.wte.weight"),
        ("tiny-llama", "model.layers.1.mlp.down_proj.weight"),
        ("tiny-llama", "lm_head.weight"),
    ] {
        let dir = copy_fixture(fixture_name);
        edit_checkpoint(dir.path(), |tensors| tensors.retain(|(n, _)| n != tensor));
        let err = load_err(dir.path());
        assert!(
            matches!(&err, Error::MissingTensor { name, .. } if name == tensor),
            "{fixture_name} {tensor}: {err:?}"
        );
        assert_mentions(&err, &[tensor]);
    }
}

/// Splits `model.safetensors` into two shards with an index; `shard_names` are the names the
/// index gives (the files are written under the real names).
fn shard(dir: &Path, index_names: [&str; 2]) {
    let path = dir.join("model.safetensors");
    let tensors = Tensor::read_safetensors(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let (a, b) = tensors.split_at(tensors.len() / 2);
    let files = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    Tensor::write_safetensors(a, dir.join(files[0])).unwrap();
    Tensor::write_safetensors(b, dir.join(files[1])).unwrap();
    let mut map = serde_json::Map::new();
    for (name, _) in a {
        map.insert(name.clone(), index_names[0].into());
    }
    for (name, _) in b {
        map.insert(name.clone(), index_names[1].into());
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string(&index).unwrap(),
    )
    .unwrap();
}

#[test]
fn sharded_checkpoint_loads() {
    let dir = copy_fixture("tiny-llama");
    let whole = load_model(dir.path(), LoadOptions::default()).unwrap();
    shard(
        dir.path(),
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
    let sharded = load_model(dir.path(), LoadOptions::default()).unwrap();
    let batch = single(&[1, 2, 3]);
    let (a, b) = (
        whole.model.forward(&batch).unwrap(),
        sharded.model.forward(&batch).unwrap(),
    );
    assert!(a.equal(&b));
}

const MISSING_SHARD: &str = "model-00003-of-00002.safetensors";

#[test]
fn sharded_index_names_a_missing_shard() {
    let dir = copy_fixture("tiny-llama");
    shard(
        dir.path(),
        ["model-00001-of-00002.safetensors", MISSING_SHARD],
    );
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with(MISSING_SHARD)),
        "{err:?}"
    );
    assert_mentions(&err, &[MISSING_SHARD]);
}

#[test]
fn sharded_index_is_not_json_or_escapes_the_folder() {
    let dir = copy_fixture("tiny-llama");
    shard(
        dir.path(),
        [
            "model-00001-of-00002.safetensors",
            "../model-00002-of-00002.safetensors",
        ],
    );
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    assert_mentions(&err, &["model.safetensors.index.json", "../model-00002"]);

    fs::write(dir.path().join("model.safetensors.index.json"), "[1, 2").unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    assert_mentions(&err, &["model.safetensors.index.json"]);
}

/// The fixture copy `name` with `config.json` saying one layer fewer than the checkpoint
/// holds (and Gemma's per-layer `layer_types` cut to match).
fn one_layer_fewer(name: &str) -> (TempDir, usize) {
    let dir = copy_fixture(name);
    let mut kept = 0;
    edit_config(dir.path(), |c| {
        let key = ["num_hidden_layers", "n_layer"]
            .into_iter()
            .find(|k| c.get(*k).is_some())
            .unwrap();
        kept = c[key].as_u64().unwrap() as usize - 1;
        c[key] = kept.into();
        if let Some(types) = c.get_mut("layer_types").and_then(|t| t.as_array_mut()) {
            types.truncate(kept);
        }
    });
    (dir, kept)
}

/// A config with fewer layers than the checkpoint no longer loads with the last layer
/// silently dropped: the error names the file, a tensor of that layer and the count.
#[test]
fn config_with_fewer_layers_than_the_checkpoint() {
    for (name, last_layer) in [
        ("tiny-gpt2", "transformer.h.1."),
        ("tiny-llama", "model.layers.1."),
        ("tiny-qwen2", "model.layers.1."),
        ("tiny-gemma3", "model.layers.1."),
        ("tiny-neox", "gpt_neox.layers.1."),
        ("tiny-gptj", "transformer.h.1."),
    ] {
        let (dir, kept) = one_layer_fewer(name);
        let err = load_err(dir.path());
        match &err {
            Error::UnusedTensors {
                path, names, count, ..
            } => {
                assert!(path.ends_with("model.safetensors"), "{name}: {err:?}");
                assert!(names.iter().all(|n| n.starts_with(last_layer)), "{err:?}");
                assert!(*count >= names.len(), "{err:?}");
            }
            other => panic!("{name}: expected UnusedTensors, got {other:?}"),
        }
        let says = format!("config.json says {kept} layer(s)");
        assert_mentions(&err, &[last_layer, "model.safetensors", &says, "layer 1"]);
    }
}

/// Sharded: the error names the shard that holds the unused tensors.
#[test]
fn config_with_fewer_layers_than_a_sharded_checkpoint() {
    let (dir, _) = one_layer_fewer("tiny-llama");
    shard(
        dir.path(),
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
    let err = load_err(dir.path());
    let Error::UnusedTensors { path, names, .. } = &err else {
        panic!("expected UnusedTensors, got {err:?}");
    };
    let shard_of_first = Tensor::read_safetensors(path).unwrap();
    assert!(
        shard_of_first.iter().any(|(n, _)| *n == names[0]),
        "{err:?}"
    );
    assert_mentions(&err, &["model.layers.1.", "-of-00002.safetensors"]);
}

/// A tensor no family reads, or a bias the config leaves out, is refused by name.
#[test]
fn unknown_or_unconfigured_tensor() {
    for (fixture_name, extra, shape) in [
        ("tiny-llama", "model.layers.0.mlp.mystery.weight", vec![4]),
        ("tiny-llama", "mystery", vec![2, 2]),
        // `attention_bias` is false: a q_proj bias would be dropped.
        (
            "tiny-llama",
            "model.layers.0.self_attn.q_proj.bias",
            vec![32],
        ),
        ("tiny-gpt2", "transformer.h.0.attn.c_attn.extra", vec![1]),
        ("tiny-neox", "gpt_neox.layers.1.attention.extra", vec![1]),
        ("tiny-gptj", "transformer.h.0.attn.q_proj.bias", vec![32]),
    ] {
        let dir = copy_fixture(fixture_name);
        edit_checkpoint(dir.path(), |tensors| {
            tensors.push((
                extra.to_string(),
                Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu)),
            ))
        });
        let err = load_err(dir.path());
        assert!(
            matches!(&err, Error::UnusedTensors { names, count: 1, .. } if names == &[extra]),
            "{fixture_name} {extra}: {err:?}"
        );
        assert_mentions(&err, &[extra, "model.safetensors", "config.json"]);
    }
}

/// The buffers older transformers saved with the weights (causal masks, rotary
/// frequencies) still load, in every layer the config has.
#[test]
fn saved_buffers_are_not_unused_tensors() {
    for (fixture_name, buffers) in [
        ("tiny-gpt2", &["attn.bias", "attn.masked_bias"][..]),
        ("tiny-llama", &["self_attn.rotary_emb.inv_freq"][..]),
        (
            "tiny-neox",
            &[
                "attention.bias",
                "attention.masked_bias",
                "attention.rotary_emb.inv_freq",
            ][..],
        ),
        ("tiny-gptj", &["attn.bias", "attn.masked_bias"][..]),
    ] {
        let dir = copy_fixture(fixture_name);
        let prefix = match fixture_name {
            "tiny-llama" => "model.layers",
            "tiny-neox" => "gpt_neox.layers",
            _ => "transformer.h",
        };
        edit_checkpoint(dir.path(), |tensors| {
            for layer in 0..2 {
                for buffer in buffers {
                    tensors.push((
                        format!("{prefix}.{layer}.{buffer}"),
                        Tensor::ones([1, 1, 4, 4], (Kind::Float, Device::Cpu)),
                    ));
                }
            }
        });
        load_model(dir.path(), LoadOptions::default())
            .unwrap_or_else(|e| panic!("{fixture_name}: {e}"));
    }
}

/// A tied checkpoint that stores its head anyway loads if the head is the embedding, and
/// is refused if not (the config's `tie_word_embeddings` would then be wrong).
#[test]
fn tied_checkpoint_with_a_stored_head() {
    for (fixture_name, embed) in [
        ("tiny-llama-tied", "model.embed_tokens.weight"),
        ("tiny-gpt2", "transformer.wte.weight"),
    ] {
        let dir = copy_fixture(fixture_name);
        edit_checkpoint(dir.path(), |tensors| {
            let (_, e) = tensors.iter().find(|(n, _)| n == embed).unwrap();
            let copy = e.copy();
            tensors.push(("lm_head.weight".into(), copy));
        });
        load_model(dir.path(), LoadOptions::default())
            .unwrap_or_else(|e| panic!("{fixture_name}: {e}"));

        edit_checkpoint(dir.path(), |tensors| {
            let (_, head) = tensors
                .iter_mut()
                .find(|(n, _)| n == "lm_head.weight")
                .unwrap();
            *head = &*head + 1.0;
        });
        let err = load_err(dir.path());
        assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
        assert_mentions(
            &err,
            &[
                "lm_head.weight",
                embed,
                "tie_word_embeddings",
                "model.safetensors",
            ],
        );
    }
}

/// A missing tensor names the checkpoint file (the index of a sharded one) and the tensor.
#[test]
fn missing_tensor_names_the_file() {
    let tensor = "model.layers.1.mlp.up_proj.weight";
    let dir = copy_fixture("tiny-llama");
    edit_checkpoint(dir.path(), |tensors| tensors.retain(|(n, _)| n != tensor));
    let err = load_err(dir.path());
    assert!(matches!(err, Error::MissingTensor { .. }), "{err:?}");
    assert_mentions(&err, &[tensor, "model.safetensors"]);

    shard(
        dir.path(),
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
    let err = load_err(dir.path());
    assert!(matches!(err, Error::MissingTensor { .. }), "{err:?}");
    assert_mentions(&err, &[tensor, "model.safetensors.index.json"]);
}

/// A tensor stored in two shards is refused, naming both files.
#[test]
fn tensor_in_two_shards() {
    let dir = copy_fixture("tiny-llama");
    shard(
        dir.path(),
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
    let second = dir.path().join("model-00002-of-00002.safetensors");
    let first =
        Tensor::read_safetensors(dir.path().join("model-00001-of-00002.safetensors")).unwrap();
    let mut tensors = Tensor::read_safetensors(&second).unwrap();
    let dup = first[0].0.clone();
    tensors.push((dup.clone(), first[0].1.copy()));
    Tensor::write_safetensors(&tensors, &second).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    assert_mentions(
        &err,
        &[
            &dup,
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// GGUF files
// ---------------------------------------------------------------------------------------

fn smollm2_gguf() -> Option<PathBuf> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    path.is_file().then_some(path)
}

#[test]
fn truncated_gguf_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.gguf");
    let bytes = match smollm2_gguf() {
        Some(src) => {
            let mut bytes = fs::read(src).unwrap();
            bytes.truncate(1000);
            bytes
        }
        None => {
            // Magic, version 3, 1 tensor, 1000 metadata entries, then nothing.
            let mut bytes = b"GGUF".to_vec();
            bytes.extend(3u32.to_le_bytes());
            bytes.extend(1u64.to_le_bytes());
            bytes.extend(1000u64.to_le_bytes());
            bytes
        }
    };
    fs::write(&path, bytes).unwrap();
    let err = load_err(&path);
    assert!(matches!(err, Error::Gguf(_)), "{err:?}");
    assert_mentions(&err, &[&path.display().to_string()]);
}

#[test]
fn random_bytes_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for (name, content) in [
        ("random.gguf", bytes.clone()),
        (
            "magic-then-random.gguf",
            [b"GGUF".as_slice(), &bytes].concat(),
        ),
        ("empty.gguf", Vec::new()),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, content).unwrap();
        let err = load_err(&path);
        assert!(matches!(err, Error::Gguf(_)), "{name}: {err:?}");
        assert_mentions(&err, &[&path.display().to_string()]);
    }
}

/// A GGUF whose header is whole but whose tensor data is cut short: the error names the file
/// and the tensor.
#[test]
fn truncated_gguf_data() {
    let Some(src) = smollm2_gguf() else {
        panic!("the bundled model models/SmolLM2-135M-Instruct.Q4_1.gguf is absent: run `bash scripts/setup.sh`, which installs it with libtorch");
    };
    let reader = gguf::GgufFile::open(&src).unwrap();
    let info = reader.file.tensor("token_embd.weight").unwrap().clone();
    let (_, end) = reader.file.data_range(&info).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    let mut bytes = fs::read(&src).unwrap();
    bytes.truncate(usize::try_from(end).unwrap() - 1);
    fs::write(&path, bytes).unwrap();
    let err = load_err(&path);
    assert!(matches!(err, Error::Gguf(_)), "{err:?}");
    assert_mentions(&err, &[&path.display().to_string(), "token_embd.weight"]);
}

/// llama.cpp's name for a tensor of the tiny Llama fixture (q/k rows are not permuted: the
/// tests below check which files load, not what they compute).
fn llama_gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let (module, param) = part.rsplit_once('.').unwrap();
    let name = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        other => panic!("unexpected tensor {other}"),
    };
    format!("blk.{layer}.{name}.{param}")
}

/// Writes the tiny Llama fixture as a GGUF file at `path` whose metadata says `blocks`
/// layers, with its (llama.cpp-named) tensors after `edit`.
fn write_llama_gguf(path: &Path, blocks: u32, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    use gguf::MetadataValue as V;
    let dir = fixture("tiny-llama");
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&fs::read_to_string(dir.join("vocab.json")).unwrap()).unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in &vocab {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    let merges: Vec<V> = fs::read_to_string(dir.join("merges.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.is_empty())
        .map(|l| V::String(l.into()))
        .collect();
    let mut w = gguf::write::Writer::new()
        .kv("general.architecture", V::String("llama".into()))
        .kv("llama.block_count", V::U32(blocks))
        .kv("llama.embedding_length", V::U32(32))
        .kv("llama.feed_forward_length", V::U32(64))
        .kv("llama.attention.head_count", V::U32(4))
        .kv("llama.attention.head_count_kv", V::U32(2))
        .kv("llama.context_length", V::U32(64))
        .kv("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5))
        .kv("llama.rope.freq_base", V::F32(1e5))
        .kv("tokenizer.ggml.model", V::String("gpt2".into()))
        .kv(
            "tokenizer.ggml.tokens",
            V::Array(tokens.into_iter().map(V::String).collect()),
        )
        .kv("tokenizer.ggml.merges", V::Array(merges))
        .kv("tokenizer.ggml.eos_token_id", V::U32(0));
    let mut tensors: Vec<(String, Tensor)> =
        Tensor::read_safetensors(dir.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(name, t)| (llama_gguf_name(&name), t))
            .collect();
    edit(&mut tensors);
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in tensors {
        let t = t.to_kind(Kind::Float).contiguous();
        let shape: Vec<u64> = t.size().iter().map(|&d| d as u64).collect();
        let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        w = w.tensor_f32(&name, &shape, &values);
    }
    fs::write(path, w.to_bytes()).unwrap();
}

/// GGUF files: metadata with fewer blocks than the tensors, a stray tensor or a missing one
/// are refused naming the file and tensor; rope frequency factors load only if all 1.
#[test]
fn gguf_tensors_must_match_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-llama.gguf");
    write_llama_gguf(&path, 2, |_| {});
    load_model(&path, LoadOptions::default()).unwrap();
    let file = path.display().to_string();

    write_llama_gguf(&path, 1, |_| {});
    let err = load_err(&path);
    assert!(matches!(err, Error::UnusedTensors { .. }), "{err:?}");
    assert_mentions(&err, &[&file, "blk.1.", "GGUF metadata says 1 layer(s)"]);

    write_llama_gguf(&path, 2, |t| {
        t.push((
            "mystery.weight".into(),
            Tensor::ones([3], (Kind::Float, Device::Cpu)),
        ))
    });
    let err = load_err(&path);
    assert!(
        matches!(err, Error::UnusedTensors { count: 1, .. }),
        "{err:?}"
    );
    assert_mentions(&err, &[&file, "mystery.weight"]);

    write_llama_gguf(&path, 2, |t| {
        t.retain(|(n, _)| n != "blk.1.ffn_down.weight")
    });
    let err = load_err(&path);
    assert!(matches!(err, Error::MissingTensor { .. }), "{err:?}");
    assert_mentions(&err, &[&file, "blk.1.ffn_down.weight"]);

    let ones = || Tensor::ones([4], (Kind::Float, Device::Cpu));
    write_llama_gguf(&path, 2, |t| t.push(("rope_freqs.weight".into(), ones())));
    load_model(&path, LoadOptions::default()).unwrap();

    write_llama_gguf(&path, 2, |t| {
        t.push(("rope_freqs.weight".into(), ones() * 2.0))
    });
    let err = load_err(&path);
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    assert_mentions(&err, &[&file, "rope_freqs.weight"]);
}

// ---------------------------------------------------------------------------------------
// Prompts and token ids
// ---------------------------------------------------------------------------------------

#[test]
fn empty_prompt() {
    let dev = Device::Cpu;
    for seqs in [vec![], vec![vec![]], vec![vec![1, 2], vec![]]] {
        let err = TokenBatch::pad(&seqs, Padding::Left, 0, dev).unwrap_err();
        assert!(matches!(err, Error::EmptyPrompt), "{seqs:?}: {err:?}");
    }
    let loaded = load_model(&fixture("tiny-gpt2"), LoadOptions::default()).unwrap();
    let enc = loaded.tokenizer.encode("").unwrap();
    assert!(enc.is_empty());
    let err = TokenBatch::single(&enc.ids, dev).unwrap_err();
    assert!(matches!(err, Error::EmptyPrompt), "{err:?}");

    // A hand-built batch with no positions reaches the model.
    let ids = Tensor::from_slice(&enc.ids).view([1, 0]);
    let batch = TokenBatch::from_ids_and_mask(ids.shallow_clone(), ids.ones_like()).unwrap();
    let err = loaded.model.forward(&batch).unwrap_err();
    assert!(matches!(err, Error::EmptyPrompt), "{err:?}");
    let err = loaded.model.embed_tokens(&ids).unwrap_err();
    assert!(matches!(err, Error::EmptyPrompt), "{err:?}");

    let options = GenerateOptions {
        max_new_tokens: 3,
        sampling: Sampling::Greedy,
        stop_tokens: Vec::new(),
    };
    let err = generate(&loaded.model, &[], &options).unwrap_err();
    assert!(matches!(err, Error::EmptyPrompt), "{err:?}");
}

#[test]
fn prompt_longer_than_context() {
    for arch in Architecture::ALL {
        let model = tiny(arch);
        let ids: Vec<i64> = (0..33).collect();
        let err = model.forward(&single(&ids)).unwrap_err();
        assert!(
            matches!(err, Error::ContextOverflow { len: 33, n_ctx: 32 }),
            "{err:?}"
        );
        assert_mentions(&err, &["33", "32"]);
        // Exactly the context is fine.
        let _ = model.forward(&single(&ids[..32])).unwrap();

        // Through the KV cache: 30 cached + 3 new.
        let mut cache = KvCache::new();
        model
            .forward_with(&single(&ids[..30]), opts(&mut cache), &mut NoHooks)
            .unwrap();
        let step = TokenBatch::with_positions(
            Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]),
            Tensor::ones([1, 33], (Kind::Int64, Device::Cpu)),
            Tensor::from_slice(&[30i64, 31, 32]).view([1, 3]),
        )
        .unwrap();
        let err = model
            .forward_with(&step, opts(&mut cache), &mut NoHooks)
            .unwrap_err();
        assert!(
            matches!(err, Error::ContextOverflow { len: 33, n_ctx: 32 }),
            "{err:?}"
        );
        assert_eq!(cache.len(), 30, "a failed pass must not extend the cache");

        // Explicit positions past the context.
        let far = TokenBatch::with_positions(
            Tensor::from_slice(&[1i64, 2]).view([1, 2]),
            Tensor::ones([1, 2], (Kind::Int64, Device::Cpu)),
            Tensor::from_slice(&[31i64, 32]).view([1, 2]),
        )
        .unwrap();
        let err = model.forward(&far).unwrap_err();
        assert!(
            matches!(err, Error::ContextOverflow { n_ctx: 32, .. }),
            "{err:?}"
        );

        let options = GenerateOptions {
            max_new_tokens: 3,
            sampling: Sampling::Greedy,
            stop_tokens: Vec::new(),
        };
        let err = generate(&model, &ids[..30], &options).unwrap_err();
        assert!(
            matches!(err, Error::ContextOverflow { n_ctx: 32, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn token_id_outside_vocabulary() {
    for arch in Architecture::ALL {
        let model = tiny(arch);
        for bad in [64i64, -1, i64::MAX, i64::MIN] {
            let err = model.forward(&single(&[1, bad, 2])).unwrap_err();
            assert!(
                matches!(err, Error::TokenOutOfVocabulary { id, vocab_size: 64 } if id == bad),
                "{bad}: {err:?}"
            );
            assert_mentions(&err, &[&bad.to_string(), "64"]);
            let err = model.embed_tokens(&Tensor::from_slice(&[bad])).unwrap_err();
            assert_mentions(&err, &[&bad.to_string()]);
            let options = GenerateOptions {
                max_new_tokens: 1,
                sampling: Sampling::Greedy,
                stop_tokens: Vec::new(),
            };
            let err = generate(&model, &[bad], &options).unwrap_err();
            assert_mentions(&err, &[&bad.to_string()]);
        }
        // A pad id outside the vocabulary is rejected too, although it is masked out.
        let batch =
            TokenBatch::pad(&[vec![1], vec![1, 2]], Padding::Left, -1, Device::Cpu).unwrap();
        let err = model.forward(&batch).unwrap_err();
        assert_mentions(&err, &["-1"]);
    }
}

#[test]
fn attention_mask_of_wrong_shape() {
    let model = tiny(Architecture::Gpt2);
    let ids = Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]);
    let err = TokenBatch::from_ids_and_mask(
        ids.shallow_clone(),
        Tensor::ones([1, 2], (Kind::Int64, Device::Cpu)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert_mentions(&err, &["attention_mask"]);

    let err = TokenBatch::with_positions(
        ids.shallow_clone(),
        Tensor::ones([1, 3], (Kind::Int64, Device::Cpu)),
        Tensor::zeros([1, 2], (Kind::Int64, Device::Cpu)),
    )
    .unwrap_err();
    assert_mentions(&err, &["positions"]);

    // A mask longer than the positions without a KV cache.
    let batch = TokenBatch::with_positions(
        ids.shallow_clone(),
        Tensor::ones([1, 5], (Kind::Int64, Device::Cpu)),
        Tensor::from_slice(&[0i64, 1, 2]).view([1, 3]),
    )
    .unwrap();
    let err = model.forward(&batch).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert_mentions(&err, &["attention_mask"]);
}

// ---------------------------------------------------------------------------------------
// Weights and edits
// ---------------------------------------------------------------------------------------

#[test]
fn weight_of_missing_layer() {
    for arch in Architecture::ALL {
        let mut model = tiny(arch);
        let err = model.weight(WeightId::MlpOut(Layer(99))).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LayerOutOfRange {
                    layer: 99,
                    n_layers: 2
                }
            ),
            "{err:?}"
        );
        assert_mentions(&err, &["99", "2"]);
        let err = model.weight(WeightId::AttnQ(Layer(2))).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LayerOutOfRange {
                    layer: 2,
                    n_layers: 2
                }
            ),
            "{err:?}"
        );
        let delta = WeightDelta::Dense {
            target: WeightId::MlpOut(Layer(99)),
            delta: Tensor::zeros([16, 32], (Kind::Float, Device::Cpu)),
        };
        let err = model.apply(&delta).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LayerOutOfRange {
                    layer: 99,
                    n_layers: 2
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn mlp_gate_on_gpt2() {
    let mut model = tiny(Architecture::Gpt2);
    let id = WeightId::MlpGate(Layer(0));
    let err = model.weight(id).unwrap_err();
    assert!(matches!(err, Error::NoSuchWeight { .. }), "{err:?}");
    assert_mentions(&err, &["blocks.0.mlp.W_gate"]);
    let delta = WeightDelta::Dense {
        target: id,
        delta: Tensor::zeros([32, 16], (Kind::Float, Device::Cpu)),
    };
    let err = model.apply(&delta).unwrap_err();
    assert!(matches!(err, Error::NoSuchWeight { .. }), "{err:?}");
    assert_mentions(&err, &["W_gate"]);
    // Llama has it, [d_mlp, d_model].
    let llama = tiny(Architecture::Llama);
    assert_eq!(llama.weight(id).unwrap().size(), vec![32, 16]);
}

#[test]
fn delta_of_wrong_shape() {
    let mut model = tiny(Architecture::Llama);
    let target = WeightId::MlpOut(Layer(0)); // [16, 32]
    let before = model.weight(target).unwrap().copy();
    let f = (Kind::Float, Device::Cpu);
    let deltas = [
        WeightDelta::Dense {
            target,
            delta: Tensor::ones([32, 16], f),
        },
        WeightDelta::Dense {
            target,
            delta: Tensor::ones([16 * 32], f),
        },
        WeightDelta::RankOne {
            target,
            u: Tensor::ones([32], f),
            v: Tensor::ones([16], f),
        },
        WeightDelta::RankOne {
            target,
            u: Tensor::ones([16], f),
            v: Tensor::ones([1, 32], f),
        },
    ];
    for delta in &deltas {
        let err = model.apply(delta).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, .. } if name == "blocks.0.mlp.W_out"),
            "{delta:?}: {err:?}"
        );
        assert_mentions(&err, &["blocks.0.mlp.W_out"]);
        assert!(
            model.weight(target).unwrap().equal(&before),
            "weight changed"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hook names, patches, sampling
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_hook_names() {
    for name in [
        "blocks.x.hook_resid_pre",
        "blocks.01.hook_resid_pre",
        "blocks.+1.hook_resid_pre",
        "blocks.-1.hook_resid_pre",
        "blocks..hook_resid_pre",
        "blocks.1",
        "blocks.1.",
        "blocks.1.hook_resid_pre ",
        " hook_embed",
        "blocks.99999999999999999999999.hook_resid_pre",
        "blocks.0.hook_z",
        "blocks.0.mlp.hook_pre",
        "hook_nothing",
        "HOOK_EMBED",
        "",
    ] {
        let err = name.parse::<HookPoint>().unwrap_err();
        assert!(
            matches!(&err, Error::UnknownHookPoint(s) if s == name),
            "{name:?}: {err:?}"
        );
        assert_mentions(&err, &[&format!("`{name}`")]);
        let json = serde_json::to_string(name).unwrap();
        assert!(
            serde_json::from_str::<HookPoint>(&json).is_err(),
            "{name:?}"
        );
    }
}

#[test]
fn generate_with_bad_sampling() {
    let model = tiny(Architecture::Llama);
    for (k, temperature) in [
        (0, 1.0),
        (5, 0.0),
        (5, -1.0),
        (5, f64::NAN),
        (5, f64::INFINITY),
    ] {
        let options = GenerateOptions {
            max_new_tokens: 2,
            sampling: Sampling::TopK {
                k,
                temperature,
                seed: 1,
            },
            stop_tokens: Vec::new(),
        };
        let err = generate(&model, &[1, 2, 3], &options).unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(_)),
            "k={k} t={temperature}: {err:?}"
        );
    }
    // k larger than the vocabulary is clamped, not an error.
    let options = GenerateOptions {
        max_new_tokens: 2,
        sampling: Sampling::TopK {
            k: 1000,
            temperature: 1.0,
            seed: 1,
        },
        stop_tokens: Vec::new(),
    };
    assert_eq!(generate(&model, &[1, 2, 3], &options).unwrap().len(), 2);
}

#[test]
fn patch_out_of_range() {
    let model = tiny(Architecture::Gpt2);
    let batch = single(&[1, 2, 3]);
    let (_, cache) = model
        .run_with_cache(&batch, &|p| p == HookPoint::resid_pre(1))
        .unwrap();
    // Negative positions count from the end: -1 is the last, -4 is before the first.
    for bad in [3i64, 100, -4] {
        let mut patch = Patch::new(&cache, Sites::positions([0, bad]));
        let err = model.forward_hooked(&batch, &mut patch).unwrap_err();
        assert!(
            matches!(err, Error::SiteOutOfRange { what: "position", index, len: 3, .. } if index == bad),
            "{bad}: {err:?}"
        );
        assert_mentions(&err, &[&bad.to_string(), "blocks.1.hook_resid_pre"]);
    }

    // A cache from a longer prompt does not fit.
    let longer = single(&[1, 2, 3, 4]);
    let (_, long_cache) = model
        .run_with_cache(&longer, &|p| p == HookPoint::mlp_post(0))
        .unwrap();
    let err = model
        .forward_hooked(&batch, &mut Patch::new(&long_cache, Sites::all()))
        .unwrap_err();
    assert!(
        matches!(err, Error::SiteValuesShape { point, .. } if point == HookPoint::mlp_post(0)),
        "{err:?}"
    );
    assert_mentions(&err, &["blocks.0.mlp.hook_post"]);

    // A batch of 2 does not broadcast into a batch of 3.
    let two = TokenBatch::pad(
        &[vec![1, 2, 3], vec![4, 5, 6]],
        Padding::Left,
        0,
        Device::Cpu,
    )
    .unwrap();
    let three = TokenBatch::pad(&vec![vec![1, 2, 3]; 3], Padding::Left, 0, Device::Cpu).unwrap();
    let (_, cache2) = model
        .run_with_cache(&two, &|p| p == HookPoint::Embed)
        .unwrap();
    let err = model
        .forward_hooked(&three, &mut Patch::new(&cache2, Sites::all()))
        .unwrap_err();
    assert!(matches!(err, Error::SiteValuesShape { .. }), "{err:?}");

    // Asking an empty cache for a point names it.
    let err = ActivationCache::new().try_get(HookPoint::z(1)).unwrap_err();
    assert!(matches!(err, Error::NoSuchHookPoint { .. }), "{err:?}");
    assert_mentions(&err, &["blocks.1.attn.hook_z"]);
}

#[test]
fn intervention_errors_propagate() {
    let model = tiny(Architecture::Llama);
    let mut failing = gpt_core::intervention::from_fn(
        |p| p == HookPoint::resid_post(0),
        |p, _| Err(Error::InvalidInput(format!("refused at {p}"))),
    );
    let err = model
        .forward_hooked(&single(&[1, 2]), &mut failing)
        .unwrap_err();
    assert_mentions(&err, &["refused at blocks.0.hook_resid_post"]);
}

// ---------------------------------------------------------------------------------------
// Resuming passes and KV caches
// ---------------------------------------------------------------------------------------

#[test]
fn kv_cache_misuse() {
    let model = tiny(Architecture::Llama);
    let mut cache = KvCache::new();
    let _ = model
        .forward_with(&single(&[1, 2, 3]), opts(&mut cache), &mut NoHooks)
        .unwrap();
    let err = cache.prefix(4).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_mentions(&err, &["4", "3"]);

    // A step whose mask does not cover the cached positions.
    let step = TokenBatch::pad(&[vec![4]], Padding::Right, 0, Device::Cpu).unwrap();
    let err = model
        .forward_with(&step, opts(&mut cache), &mut NoHooks)
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert_mentions(&err, &["attention_mask"]);

    // A step with a different batch size than the cache: an error, not a panic.
    let step = TokenBatch::with_positions(
        Tensor::from_slice(&[4i64, 5]).view([2, 1]),
        Tensor::ones([2, 4], (Kind::Int64, Device::Cpu)),
        Tensor::from_slice(&[3i64, 3]).view([2, 1]),
    )
    .unwrap();
    assert!(model
        .forward_with(&step, opts(&mut cache), &mut NoHooks)
        .is_err());
    assert_eq!(cache.len(), 3);

    let f = (Kind::Float, Device::Cpu);
    let err = KvCache::from_layers(
        5,
        vec![Some((
            Tensor::zeros([1, 2, 4, 4], f),
            Tensor::zeros([1, 2, 4, 4], f),
        ))],
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_mentions(&err, &["layer 0", "5"]);
}

#[test]
fn forward_blocks_misuse() {
    let model = tiny(Architecture::Gpt2);
    let batch = single(&[1, 2, 3]);
    let (_, cache) = model
        .run_with_cache(&batch, &|p| p == HookPoint::resid_pre(1))
        .unwrap();
    let resid = cache.try_get(HookPoint::resid_pre(1)).unwrap();
    let input = |layers: std::ops::Range<usize>, resid: Tensor, positions: Tensor| BlocksInput {
        layers,
        resid,
        positions,
        past: None,
        attention_mask: None,
        last_position_only: false,
    };

    let err = model
        .forward_blocks(
            input(1..3, resid.shallow_clone(), batch.positions.shallow_clone()),
            &mut NoHooks,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LayerOutOfRange {
                layer: 3,
                n_layers: 2
            }
        ),
        "{err:?}"
    );

    let err = model
        .forward_blocks(
            input(
                1..2,
                Tensor::zeros([1, 3, 15], (Kind::Float, Device::Cpu)),
                batch.positions.shallow_clone(),
            ),
            &mut NoHooks,
        )
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");

    let err = model
        .forward_blocks(
            input(
                1..2,
                resid.shallow_clone(),
                Tensor::from_slice(&[0i64, 1]).view([1, 2]),
            ),
            &mut NoHooks,
        )
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");

    let err = model
        .forward_blocks(
            input(
                1..2,
                resid.shallow_clone(),
                Tensor::from_slice(&[30i64, 31, 32]).view([1, 3]),
            ),
            &mut NoHooks,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::ContextOverflow { n_ctx: 32, .. }),
        "{err:?}"
    );

    // A past cache that lacks the layers to run.
    let past = KvCache::from_layers(0, vec![]).unwrap();
    let err = model
        .forward_blocks(
            BlocksInput {
                layers: 1..2,
                resid: resid.shallow_clone(),
                positions: batch.positions.shallow_clone(),
                past: Some(&past),
                attention_mask: None,
                last_position_only: false,
            },
            &mut NoHooks,
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_mentions(&err, &["layer 1"]);
}
