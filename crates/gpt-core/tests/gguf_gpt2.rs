//! A GPT-2 GGUF file (llama.cpp's names and layout, byte-level BPE tokenizer in the metadata),
//! written here from the tiny transformers fixture, loads to the same model as the fixture.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use gguf::write::Writer;
use gguf::MetadataValue as V;
use gpt_core::tch::{Kind, Tensor};
use gpt_core::{load_model, HookableModel, LoadOptions, TokenBatch};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2")
}

/// llama.cpp's name for a Hugging Face GPT-2 tensor, and whether its `Conv1D` weight is
/// transposed to `[out, in]` on the way.
fn gguf_name(hf: &str) -> (String, bool) {
    let hf = hf.strip_prefix("transformer.").unwrap_or(hf);
    match hf {
        "wte.weight" => return ("token_embd.weight".into(), false),
        "wpe.weight" => return ("position_embd.weight".into(), false),
        _ => {}
    }
    if let Some(rest) = hf.strip_prefix("ln_f.") {
        return (format!("output_norm.{rest}"), false);
    }
    let rest = hf.strip_prefix("h.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let (module, param) = part.rsplit_once('.').unwrap();
    let name = match module {
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        other => panic!("unexpected tensor {other}"),
    };
    let conv = param == "weight" && !module.starts_with("ln_");
    (format!("blk.{layer}.{name}.{param}"), conv)
}

fn write_gguf(path: &Path) {
    let dir = fixture();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vocab.json")).unwrap()).unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in &vocab {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    let merges: Vec<V> = std::fs::read_to_string(dir.join("merges.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.is_empty())
        .map(|l| V::String(l.into()))
        .collect();
    let eos = config["eos_token_id"].as_u64().unwrap() as u32;
    let types: Vec<V> = (0..tokens.len())
        .map(|i| V::I32(if i as u32 == eos { 3 } else { 1 }))
        .collect();
    let u32_of = |key: &str| V::U32(config[key].as_u64().unwrap() as u32);
    let mut w = Writer::new()
        .kv("general.architecture", V::String("gpt2".into()))
        .kv("gpt2.block_count", u32_of("n_layer"))
        .kv("gpt2.embedding_length", u32_of("n_embd"))
        .kv(
            "gpt2.feed_forward_length",
            V::U32(4 * config["n_embd"].as_u64().unwrap() as u32),
        )
        .kv("gpt2.attention.head_count", u32_of("n_head"))
        .kv("gpt2.context_length", u32_of("n_positions"))
        .kv("gpt2.attention.layer_norm_epsilon", V::F32(1e-5))
        .kv("tokenizer.ggml.model", V::String("gpt2".into()))
        .kv(
            "tokenizer.ggml.tokens",
            V::Array(tokens.into_iter().map(V::String).collect()),
        )
        .kv("tokenizer.ggml.merges", V::Array(merges))
        .kv("tokenizer.ggml.token_type", V::Array(types))
        .kv("tokenizer.ggml.bos_token_id", V::U32(eos))
        .kv("tokenizer.ggml.eos_token_id", V::U32(eos));
    let mut tensors = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (hf, t) in tensors {
        if hf.ends_with(".attn.bias") || hf.ends_with(".attn.masked_bias") || hf == "lm_head.weight"
        {
            continue;
        }
        let (name, conv) = gguf_name(&hf);
        let t = if conv { t.transpose(0, 1) } else { t }
            .to_kind(Kind::Float)
            .contiguous();
        let shape: Vec<u64> = t.size().iter().map(|&d| d as u64).collect();
        let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        w = w.tensor_f32(&name, &shape, &values);
    }
    std::fs::write(path, w.to_bytes()).unwrap();
}

#[test]
fn gpt2_gguf_loads_the_same_model_as_the_safetensors_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny-gpt2.gguf");
    write_gguf(&path);
    let from_gguf = load_model(&path, LoadOptions::default()).unwrap();
    let from_hf = load_model(&fixture(), LoadOptions::default()).unwrap();
    assert_eq!(from_gguf.model.config().model_type, "gpt2");
    assert_eq!(
        from_gguf.model.config().n_layers,
        from_hf.model.config().n_layers
    );
    let prompts = [
        "The Eiffel Tower is located in the city of",
        "Once upon a time there was a small cat",
    ];
    let mut rows = Vec::new();
    for p in prompts {
        let a = from_gguf.tokenizer.encode(p).unwrap();
        let b = from_hf.tokenizer.encode(p).unwrap();
        assert_eq!(a.ids, b.ids, "tokens of {p:?}");
        rows.push(a.ids);
    }
    let batch = TokenBatch::pad(&rows, Default::default(), 0, gpt_core::tch::Device::Cpu).unwrap();
    let a = from_gguf.model.forward(&batch).unwrap();
    let b = from_hf.model.forward(&batch).unwrap();
    let diff = (&a - &b).abs().max().double_value(&[]);
    assert!(diff <= 1e-5, "logits differ by {diff}");
}
