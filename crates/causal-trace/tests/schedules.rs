//! The fast schedule against the naive one-pass-per-cell oracle, on random-weight models of
//! both architectures, on the other families' fixtures and on the bundled model.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use causal_trace::noise::{Corruption, NoiseLevel};
use causal_trace::{
    GridSpec, Schedule, Sever, SubjectPrompt, TokenSelection, TraceGrid, TraceKind, TraceSetup,
    Tracer,
};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind};
use gpt_core::{load_hf_tokenizer, Architecture, RandomInit, Transformer};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

#[track_caller]
fn assert_grids_close(fast: &TraceGrid, naive: &TraceGrid, tol: f64) {
    assert_eq!(fast.rows, naive.rows);
    assert_eq!(fast.clean_score, naive.clean_score);
    for (r, (a, b)) in fast.scores.iter().zip(&naive.scores).enumerate() {
        for (l, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol,
                "{:?} row {r} layer {l}: fast {x} vs naive {y}",
                fast.kind
            );
            assert!(x.is_finite());
        }
    }
}

fn check_model(model: &Transformer, tokenizer: &gpt_core::Tokenizer, prompt: &str, subject: &str) {
    let prompt = SubjectPrompt::new(tokenizer, prompt, subject).expect("prompt");
    let setup = TraceSetup {
        samples: 3,
        corruption: Corruption::Gaussian {
            level: NoiseLevel::Std(0.5),
        },
        sigma: None,
        seed: 7,
    };
    let tracer = Tracer::new(model, tokenizer, prompt, setup, None).expect("tracer");
    for kind in TraceKind::ALL {
        let mut spec = GridSpec::new(kind);
        spec.window = 2;
        let fast = tracer.grid(&spec).expect("fast");
        spec.schedule = Schedule::Naive;
        let naive = tracer.grid(&spec).expect("naive");
        assert_grids_close(&fast, &naive, 1e-5);
        // A cell's restored distribution holds the cell's value as the answer's probability.
        let vocab = gpt_core::HookableModel::config(model).vocab_size;
        let last = naive.n_layers - 1;
        for (r, l) in [(0, 0), (naive.rows.len() - 1, last), (1, last.min(2))] {
            let top = tracer
                .restored_top_k(&spec, naive.rows[r], l, vocab)
                .expect("restored top-k");
            assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
            let p = top
                .iter()
                .find(|(id, _)| *id == naive.answer.id)
                .map(|(_, p)| *p)
                .expect("answer in the distribution");
            assert!(
                (p - naive.scores[r][l]).abs() < 1e-5,
                "{kind:?} cell ({r}, {l}): {p} vs {}",
                naive.scores[r][l]
            );
        }
    }
    for sever in [Sever::Mlp, Sever::Attn] {
        let mut spec = GridSpec::new(TraceKind::Hidden);
        spec.sever = Some(sever);
        spec.tokens = TokenSelection::Indices(vec![0, 2, 4]);
        let fast = tracer.grid(&spec).expect("fast");
        spec.schedule = Schedule::Naive;
        let naive = tracer.grid(&spec).expect("naive");
        assert_grids_close(&fast, &naive, 1e-5);
    }
}

#[test]
fn fast_equals_naive_on_random_models() {
    for (arch, fixture_name) in [
        (Architecture::Gpt2, "tiny-gpt2"),
        (Architecture::Llama, "tiny-llama"),
    ] {
        let tokenizer = load_hf_tokenizer(&fixture(fixture_name)).expect("tokenizer");
        let mut config = tiny_config(arch);
        config.vocab_size = tokenizer.vocab_size();
        config.n_layers = 4;
        let model = Transformer::random(
            &config,
            RandomInit { seed: 3, std: 0.5 },
            Device::Cpu,
            Kind::Float,
        )
        .expect("model");
        check_model(
            &model,
            &tokenizer,
            "The Eiffel Tower is located in the city of",
            "Eiffel Tower",
        );
    }
}

/// Qwen2 (q/k/v biases), Mistral (sliding window), Llama with llama3 rotary scaling, GPT-NeoX
/// (parallel and sequential) and GPT-J: the transformers fixtures, traced through the same
/// code path.
#[test]
fn fast_equals_naive_on_the_other_families() {
    for name in [
        "tiny-qwen2",
        "tiny-mistral",
        "tiny-llama-rope-llama3",
        "tiny-llama-rope-yarn",
        "tiny-gemma",
        "tiny-gemma2",
        "tiny-gemma3",
        "tiny-neox",
        "tiny-neox-sequential",
        "tiny-gptj",
    ] {
        let loaded = gpt_core::load_model(&fixture(name), Default::default()).expect(name);
        check_model(
            &loaded.model,
            &loaded.tokenizer,
            "The Eiffel Tower is located in the city of",
            "Eiffel Tower",
        );
    }
}

#[test]
fn fast_equals_naive_on_bundled_model() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the bundled model {} is absent: run `bash scripts/setup.sh`, which installs it with libtorch",
        path.display()
    );
    let m = gpt_core::load_model(&path, Default::default()).expect("load");
    let prompt = SubjectPrompt::new(
        &m.tokenizer,
        "The Eiffel Tower is located in the city of",
        "The Eiffel Tower",
    )
    .expect("prompt");
    let sigma =
        causal_trace::noise::embedding_std(&m.model, &m.tokenizer, &["The Eiffel Tower".into()])
            .expect("sigma");
    let setup = TraceSetup {
        samples: 10,
        corruption: Corruption::paper_default(),
        sigma: Some(sigma),
        seed: 1,
    };
    let tracer = Tracer::new(&m.model, &m.tokenizer, prompt, setup, None).expect("tracer");
    assert_eq!(tracer.answer().text, " Paris");
    let t0 = std::time::Instant::now();
    let fast = tracer
        .grid(&GridSpec::new(TraceKind::Hidden))
        .expect("fast");
    let t1 = std::time::Instant::now();
    let mut spec = GridSpec::new(TraceKind::Hidden);
    spec.schedule = Schedule::Naive;
    spec.tokens = TokenSelection::Indices(vec![3, 9]);
    let naive = tracer.grid(&spec).expect("naive");
    let t2 = std::time::Instant::now();
    eprintln!(
        "fast full grid {:?}, naive 2 rows {:?}; clean {} low {}",
        t1 - t0,
        t2 - t1,
        fast.clean_score,
        fast.corrupted_score
    );
    for (i, &row) in [3usize, 9].iter().enumerate() {
        for l in 0..fast.n_layers {
            let (x, y) = (fast.scores[row][l], naive.scores[i][l]);
            assert!(
                (x - y).abs() <= 1e-4,
                "row {row} layer {l}: fast {x} naive {y}"
            );
        }
    }
    // Restoring the last token's final state restores the clean prediction.
    let last = fast
        .scores
        .last()
        .and_then(|r| r.last())
        .copied()
        .unwrap_or(f64::NAN);
    assert!((last - fast.clean_score).abs() < 1e-4);
    assert!(fast.corrupted_score < fast.clean_score);
}

/// A model that only runs hooked passes (a `HookableModel`, not a `ResumableModel`) traces
/// with the naive schedule — the same grid as the full model's naive and fast grids — and
/// is told plainly that the fast schedule needs more.
#[test]
fn a_hookable_only_model_traces_with_the_naive_schedule() {
    let tokenizer = load_hf_tokenizer(&fixture("tiny-llama")).expect("tokenizer");
    let mut config = tiny_config(Architecture::Llama);
    config.vocab_size = tokenizer.vocab_size();
    let model = Transformer::random(
        &config,
        RandomInit { seed: 5, std: 0.5 },
        Device::Cpu,
        Kind::Float,
    )
    .expect("model");
    let setup = TraceSetup {
        samples: 2,
        corruption: Corruption::Gaussian {
            level: NoiseLevel::Std(0.5),
        },
        sigma: None,
        seed: 3,
    };
    let prompt = |t: &gpt_core::Tokenizer| {
        SubjectPrompt::new(t, "The Eiffel Tower is in", "Eiffel Tower").expect("prompt")
    };
    let hookable: &dyn gpt_core::HookableModel = &model;
    let only = Tracer::for_hookable(
        hookable,
        &tokenizer,
        prompt(&tokenizer),
        setup.clone(),
        None,
    )
    .expect("tracer");
    let full = Tracer::new(&model, &tokenizer, prompt(&tokenizer), setup, None).expect("tracer");
    let mut spec = GridSpec::new(TraceKind::Mlp);
    spec.window = 2;
    let fast = full.grid(&spec).expect("fast");
    let err = only.grid(&spec).unwrap_err().to_string();
    assert!(err.contains("Schedule::Naive"), "{err}");
    spec.schedule = Schedule::Naive;
    let naive = only.grid(&spec).expect("naive");
    assert_eq!(naive.scores, full.grid(&spec).expect("naive").scores);
    assert_grids_close(&fast, &naive, 1e-5);
}
