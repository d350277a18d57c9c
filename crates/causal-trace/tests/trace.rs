//! Properties and bad input of single traces, on random-weight models.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::path::Path;

use causal_trace::noise::{Corruption, NoiseLevel};
use causal_trace::{
    Error, GridSpec, LogitDiff, Schedule, Sever, SubjectPrompt, TokenSelection, TraceGrid,
    TraceKind, TraceSetup, Tracer,
};
use gpt_core::progress::{self, Progress};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind};
use gpt_core::{load_hf_tokenizer, Architecture, RandomInit, Tokenizer, Transformer};
use proptest::prelude::*;

fn tokenizer() -> Tokenizer {
    load_hf_tokenizer(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2"))
        .unwrap()
}

fn model(arch: Architecture, tok: &Tokenizer, seed: i64) -> Transformer {
    let mut c = tiny_config(arch);
    c.vocab_size = tok.vocab_size();
    c.n_layers = 3;
    Transformer::random(&c, RandomInit { seed, std: 0.5 }, Device::Cpu, Kind::Float).unwrap()
}

const PROMPT: &str = "The Eiffel Tower is located in the city of";

fn setup(corruption: Corruption) -> TraceSetup {
    TraceSetup {
        samples: 4,
        corruption,
        sigma: None,
        seed: 11,
    }
}

fn gaussian(std: f64) -> Corruption {
    Corruption::Gaussian {
        level: NoiseLevel::Std(std),
    }
}

#[test]
fn zero_noise_gives_the_clean_score_everywhere() {
    let tok = tokenizer();
    let m = model(Architecture::Llama, &tok, 1);
    let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
    let tracer = Tracer::new(&m, &tok, prompt, setup(gaussian(0.0)), None).unwrap();
    assert!((tracer.clean_score() - tracer.corrupted_score()).abs() < 1e-6);
    for kind in TraceKind::ALL {
        let g = tracer
            .grid(&GridSpec {
                window: 2,
                ..GridSpec::new(kind)
            })
            .unwrap();
        for v in g.scores.iter().flatten() {
            assert!(
                (v - g.clean_score).abs() < 1e-5,
                "{kind:?}: {v} vs {}",
                g.clean_score
            );
        }
    }
}

#[test]
fn restoring_the_last_state_restores_the_clean_score() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let m = model(arch, &tok, 2);
        let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
        let tracer = Tracer::new(&m, &tok, prompt, setup(gaussian(1.0)), None).unwrap();
        let g = tracer.grid(&GridSpec::new(TraceKind::Hidden)).unwrap();
        let last = g.scores.last().unwrap().last().unwrap();
        assert!((last - g.clean_score).abs() < 1e-5);
        // Tokens before the subject are untouched by the corruption: no effect there.
        let first_subject = g.subject_range.0;
        for row in &g.scores[..first_subject] {
            for v in row {
                assert!((v - g.corrupted_score).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn grid_layout_and_json_round_trip() {
    let tok = tokenizer();
    let m = model(Architecture::Gpt2, &tok, 3);
    let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
    let n_tokens = prompt.len();
    let tracer = Tracer::new(&m, &tok, prompt, setup(gaussian(0.5)), None).unwrap();
    let mut spec = GridSpec::new(TraceKind::Mlp);
    spec.window = 2;
    let g = tracer.grid(&spec).unwrap();
    assert_eq!(g.rows, (0..n_tokens).collect::<Vec<_>>());
    assert_eq!(g.scores.len(), n_tokens);
    assert!(g.scores.iter().all(|r| r.len() == 3));
    assert_eq!(g.window, 2);
    assert_eq!(g.tokens.len(), n_tokens);
    let json = serde_json::to_string(&g).unwrap();
    let back: TraceGrid = serde_json::from_str(&json).unwrap();
    assert_eq!(back, g);
    spec.tokens = TokenSelection::SubjectLast;
    let g = tracer.grid(&spec).unwrap();
    assert_eq!(g.rows, vec![g.subject_range.1 - 1]);

    // Progress: one report before the first row and one after each; a stop is an error.
    let mut seen = Vec::new();
    let full = GridSpec {
        tokens: TokenSelection::All,
        ..spec.clone()
    };
    let with = tracer
        .grid_with_progress(
            &full,
            &mut progress::watch(|p| seen.push((p.stage.to_string(), p.done, p.total))),
        )
        .unwrap();
    assert_eq!(with, tracer.grid(&full).unwrap());
    let n = n_tokens as u64;
    let expected: Vec<_> = (0..=n)
        .map(|i| ("mlp trace".to_string(), i, Some(n)))
        .collect();
    assert_eq!(seen, expected);
    let err = tracer
        .grid_with_progress(&full, &mut |p: &Progress| {
            if p.done == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Cancelled(c) if c.at.done == 2),
        "{err:?}"
    );
}

#[test]
fn window_rule_matches_the_reference() {
    let spec = GridSpec {
        window: 10,
        ..GridSpec::new(TraceKind::Mlp)
    };
    assert_eq!(spec.layers_for(0, 30), 0..5);
    assert_eq!(spec.layers_for(7, 30), 2..12);
    assert_eq!(spec.layers_for(28, 30), 23..30);
    let odd = GridSpec {
        window: 3,
        ..GridSpec::new(TraceKind::Attn)
    };
    assert_eq!(odd.layers_for(5, 30), 4..7);
    assert_eq!(GridSpec::new(TraceKind::Hidden).layers_for(4, 30), 4..5);
}

#[test]
fn same_seed_same_grid_other_seed_other_grid() {
    let tok = tokenizer();
    let m = model(Architecture::Llama, &tok, 4);
    let grid = |seed| {
        let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
        let s = TraceSetup {
            seed,
            ..setup(gaussian(1.0))
        };
        Tracer::new(&m, &tok, prompt, s, None)
            .unwrap()
            .grid(&GridSpec::new(TraceKind::Hidden))
            .unwrap()
    };
    assert_eq!(grid(1).scores, grid(1).scores);
    assert_ne!(grid(1).scores, grid(2).scores);
}

#[test]
fn other_corruptions_and_metrics_agree_across_schedules() {
    let tok = tokenizer();
    let m = model(Architecture::Gpt2, &tok, 5);
    let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
    let span = prompt.subject_range.len();
    let corruptions = [
        Corruption::Uniform {
            level: NoiseLevel::Std(1.0),
        },
        Corruption::ReplaceGaussian {
            level: NoiseLevel::Std(0.3),
        },
        Corruption::Substitute {
            tokens: vec![vec![5; span], vec![17; span]],
        },
    ];
    for corruption in corruptions {
        let metric = Box::new(LogitDiff { a: 3, b: 4 });
        let tracer = Tracer::new(
            &m,
            &tok,
            prompt.clone(),
            setup(corruption.clone()),
            Some(metric),
        )
        .unwrap();
        let fast = tracer.grid(&GridSpec::new(TraceKind::Hidden)).unwrap();
        let naive = tracer
            .grid(&GridSpec {
                schedule: Schedule::Naive,
                ..GridSpec::new(TraceKind::Hidden)
            })
            .unwrap();
        for (a, b) in fast
            .scores
            .iter()
            .flatten()
            .zip(naive.scores.iter().flatten())
        {
            assert!((a - b).abs() < 1e-4, "{corruption:?}: {a} vs {b}");
        }
        assert_eq!(fast.metric, "logit[3] - logit[4]");
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let tok = tokenizer();
    let m = model(Architecture::Gpt2, &tok, 6);
    match SubjectPrompt::new(&tok, PROMPT, "Colosseum") {
        Err(e @ gpt_core::Error::SubjectNotFound { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("Colosseum") && msg.contains("Eiffel"), "{msg}");
        }
        other => panic!("expected SubjectNotFound, got {other:?}"),
    }
    assert!(matches!(
        SubjectPrompt::new(&tok, PROMPT, ""),
        Err(gpt_core::Error::EmptySubject)
    ));
    assert!(matches!(
        SubjectPrompt::new(&tok, PROMPT, "  "),
        Err(gpt_core::Error::EmptySubject)
    ));
    // A subject that occurs twice: the first occurrence by default, counted and selectable.
    let twice = "Paris is Paris";
    let first = SubjectPrompt::new(&tok, twice, "Paris").unwrap();
    assert_eq!((first.occurrences, first.occurrence), (2, 0));
    let second = SubjectPrompt::with_occurrence(&tok, twice, "Paris", 1).unwrap();
    assert!(second.subject_range.start > first.subject_range.start);
    let third = SubjectPrompt::with_occurrence(&tok, twice, "Paris", 2).unwrap_err();
    assert!(third.to_string().contains("occurs 2 time"), "{third}");
    let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
    let zero = TraceSetup {
        samples: 0,
        ..setup(gaussian(1.0))
    };
    assert!(matches!(
        Tracer::new(&m, &tok, prompt.clone(), zero, None),
        Err(Error::InvalidInput(_))
    ));
    let relative = TraceSetup {
        corruption: Corruption::paper_default(),
        ..setup(gaussian(1.0))
    };
    let err = Tracer::new(&m, &tok, prompt.clone(), relative, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("sigma"), "{err}");
    let negative = setup(gaussian(-1.0));
    assert!(Tracer::new(&m, &tok, prompt.clone(), negative, None).is_err());
    let tracer = Tracer::new(&m, &tok, prompt, setup(gaussian(1.0)), None).unwrap();
    for window in [0, 4] {
        let spec = GridSpec {
            window,
            ..GridSpec::new(TraceKind::Mlp)
        };
        let err = tracer.grid(&spec).err().unwrap();
        assert!(
            err.to_string().contains(&format!("window {window}")),
            "{err}"
        );
    }
    let spec = GridSpec {
        sever: Some(Sever::Mlp),
        ..GridSpec::new(TraceKind::Attn)
    };
    assert!(matches!(tracer.grid(&spec), Err(Error::InvalidInput(_))));
    let spec = GridSpec {
        tokens: TokenSelection::Indices(vec![99]),
        ..GridSpec::new(TraceKind::Hidden)
    };
    let err = tracer.grid(&spec).err().unwrap();
    assert!(err.to_string().contains("token index 99"), "{err}");
    let bad_sub = Corruption::Substitute {
        tokens: vec![vec![1]],
    };
    let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
    assert!(Tracer::new(&m, &tok, prompt, setup(bad_sub), None).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Fast and naive schedules agree for random models, prompts cut at random lengths,
    /// subjects at random places, kinds, windows and severing.
    #[test]
    fn fast_equals_naive(seed in 0i64..1000, cut in 4usize..10, start in 0usize..3, len in 1usize..3, window in 1usize..4, kind in 0usize..5) {
        let tok = tokenizer();
        let m = model(if seed % 2 == 0 { Architecture::Gpt2 } else { Architecture::Llama }, &tok, seed);
        let words: Vec<&str> = PROMPT.split(' ').take(cut).collect();
        let text = words.join(" ");
        let subject = words[start..(start + len).min(words.len())].join(" ");
        let prompt = SubjectPrompt::new(&tok, &text, &subject).unwrap();
        let tracer = Tracer::new(&m, &tok, prompt, setup(gaussian(1.0)), None).unwrap();
        let mut spec = match kind {
            0 => GridSpec::new(TraceKind::Hidden),
            1 => GridSpec::new(TraceKind::Mlp),
            2 => GridSpec::new(TraceKind::Attn),
            3 => GridSpec { sever: Some(Sever::Mlp), ..GridSpec::new(TraceKind::Hidden) },
            _ => GridSpec { sever: Some(Sever::Attn), ..GridSpec::new(TraceKind::Hidden) },
        };
        spec.window = window;
        let fast = tracer.grid(&spec).unwrap();
        spec.schedule = Schedule::Naive;
        let naive = tracer.grid(&spec).unwrap();
        for (a, b) in fast.scores.iter().flatten().zip(naive.scores.iter().flatten()) {
            prop_assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

/// CPU and CUDA give the same grid for the same seed (noise is drawn on the CPU and copied).
/// Needs a CUDA device: `cargo test --features cuda-tests` on a machine with one.
#[test]
#[cfg_attr(
    not(feature = "cuda-tests"),
    ignore = "needs a CUDA device: cargo test --features cuda-tests"
)]
fn cpu_and_cuda_grids_agree() {
    assert!(gpt_core::tch::Cuda::is_available(), "no CUDA device");
    let tok = tokenizer();
    let mut c = tiny_config(Architecture::Llama);
    c.vocab_size = tok.vocab_size();
    c.n_layers = 3;
    let init = RandomInit { seed: 8, std: 0.5 };
    let cpu = Transformer::random(&c, init, Device::Cpu, Kind::Float).unwrap();
    let cuda = Transformer::random(&c, init, Device::Cuda(0), Kind::Float).unwrap();
    let grids = |m: &Transformer| {
        let prompt = SubjectPrompt::new(&tok, PROMPT, "Eiffel Tower").unwrap();
        let tracer = Tracer::new(m, &tok, prompt, setup(gaussian(1.0)), None).unwrap();
        TraceKind::ALL.map(|k| {
            tracer
                .grid(&GridSpec {
                    window: 2,
                    ..GridSpec::new(k)
                })
                .unwrap()
        })
    };
    for (a, b) in grids(&cpu).iter().zip(grids(&cuda).iter()) {
        for (x, y) in a.scores.iter().flatten().zip(b.scores.iter().flatten()) {
            assert!((x - y).abs() < 1e-4, "{:?}: cpu {x} cuda {y}", a.kind);
        }
    }
}
