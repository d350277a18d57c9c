//! The whole recipe on a tiny model: extraction (fast and naive agree), top heads, the
//! vector, evaluation with a layer sweep, and the composed list tasks.

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

mod common;

use function_vectors::arithmetic::{compose_list_task, compose_vectors, Select, Transform};
use function_vectors::{
    evaluate_items, extract, function_vector, summarize, top_heads, EvalOptions, ExtractSettings,
    PromptBuilder, Schedule, Variant,
};
use gpt_core::tch::Kind;
use gpt_core::HookableModel;

#[test]
fn extraction_and_evaluation_on_a_tiny_model() {
    for arch in common::ARCHS {
        let (model, tok) = common::tiny(arch, Kind::Double);
        let task = common::word_task(40);
        let builder = PromptBuilder::new(&tok, model.config(), &task).unwrap();
        let settings = ExtractSettings {
            shots: 3,
            mean_trials: 4,
            cie_trials: 2,
            seed: 5,
            schedule: Schedule::Fast,
            max_rows: 512,
        };
        let mut stages = Vec::new();
        let fast = extract(
            &model,
            &builder,
            &settings,
            &mut gpt_core::progress::watch(|p| stages.push((p.stage.to_string(), p.done, p.total))),
        )
        .unwrap();
        let naive = extract(
            &model,
            &builder,
            &ExtractSettings {
                schedule: Schedule::Naive,
                ..settings
            },
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        assert!(!stages.is_empty());
        // The three stages in turn, each from 0 to its total.
        assert_eq!(stages[0].0, function_vectors::VALID_ICL_STAGE);
        for (stage, n) in [
            (function_vectors::MEAN_ACTIVATIONS_STAGE, 4),
            (function_vectors::HEAD_SCAN_STAGE, 2),
        ] {
            let mine: Vec<_> = stages.iter().filter(|s| s.0 == stage).collect();
            let counts: Vec<u64> = mine.iter().map(|s| s.1).collect();
            assert_eq!(counts, (0..=n).collect::<Vec<_>>(), "{stage}");
            assert!(mine.iter().all(|s| s.2 == Some(n)));
        }
        assert_eq!(fast.scan.cie.len(), 2);
        for (a, b) in fast
            .scan
            .aie()
            .iter()
            .flatten()
            .zip(naive.scan.aie().iter().flatten())
        {
            assert!((a - b).abs() <= 1e-4, "{arch:?}: {a} vs {b}");
        }
        let heads = top_heads(&fast.scan.aie(), 3);
        assert_eq!(heads.len(), 3);
        assert!(heads.windows(2).all(|w| w[0].score >= w[1].score));
        let v = function_vector(&model, &fast.mean, &heads).unwrap();
        assert_eq!(v.size(), [model.config().d_model as i64]);

        let layers: Vec<usize> = (0..model.config().n_layers).collect();
        let options = EvalOptions {
            shots: 3,
            layers: layers.clone(),
            seed: 5,
            max_items: Some(4),
            max_rows: 64,
        };
        let items = evaluate_items(
            &model,
            &builder,
            &fast.splits,
            &v,
            &options,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        assert_eq!(items.len(), 4);
        let acc = summarize(&task.name, &items, &layers, 1, 3).unwrap();
        assert_eq!(acc.shots, 3);
        assert_eq!(acc.all.icl.n, 4);
        assert_eq!(acc.sweep.zero_shot_fv.len(), layers.len());
        assert_eq!(acc.all.zero_shot_fv, acc.sweep.zero_shot_fv[1]);
        assert_eq!(acc.icl_correct.icl.n, acc.all.icl.correct);
        assert!(summarize(&task.name, &items, &layers, 9, 3).is_err());
    }
}

#[test]
fn prompts_follow_the_template() {
    let (model, tok) = common::tiny(gpt_core::Architecture::Gpt2, Kind::Float);
    let task = common::word_task(20);
    let builder = PromptBuilder::new(&tok, model.config(), &task).unwrap();
    let p = builder.clean(&[0, 1], 2).unwrap();
    let text = tok.decode(&p.ids).unwrap();
    assert_eq!(
        text,
        "<|endoftext|>Q: hot\nA: cold\n\nQ: up\nA: down\n\nQ: big\nA:"
    );
    assert_eq!(
        p.answer,
        gpt_core::first_target_token(&tok, "small").unwrap().id
    );
    let z = builder.zero_shot(0).unwrap();
    assert_eq!(tok.decode(&z.ids).unwrap(), "<|endoftext|>Q: hot\nA:");
    assert_eq!(z.variant, Variant::ZeroShot);
    let mut rng = function_vectors::rng::RandomState::new(1);
    let demos: Vec<usize> = (0..8).collect();
    let s = builder.shuffled(&demos, 9, &mut rng).unwrap();
    let text = tok.decode(&s.ids).unwrap();
    // Inputs in order, outputs permuted among themselves, query untouched.
    for (i, d) in demos.iter().enumerate() {
        assert!(
            text.contains(&format!("Q: {}\n", task.pairs[*d].input)),
            "demo {i}"
        );
    }
    let mut shown: Vec<&str> = text
        .split("A: ")
        .skip(1)
        .map(|t| t.split('\n').next().unwrap())
        .collect();
    shown.sort_unstable();
    let mut want: Vec<&str> = demos
        .iter()
        .map(|&d| task.pairs[d].output.as_str())
        .collect();
    want.sort_unstable();
    assert_eq!(shown, want);
    assert!(text.ends_with("Q: open\nA:"));
}

#[test]
fn composed_list_tasks() {
    let base = common::word_task(20);
    let first = compose_list_task(&base, Select::First, Transform::Apply, 3, 10, 1).unwrap();
    let last = compose_list_task(&base, Select::Last, Transform::Copy, 3, 10, 1).unwrap();
    assert_eq!(first.name, "first-opposites");
    assert_eq!(last.name, "last-copy");
    for (f, l) in first.pairs.iter().zip(&last.pairs) {
        assert_eq!(f.input, l.input);
        let items: Vec<&str> = f.input.split(", ").collect();
        assert_eq!(items.len(), 3);
        let i0 = base.pairs.iter().position(|p| p.input == items[0]).unwrap();
        assert_eq!(f.output, base.pairs[i0].output);
        assert_eq!(l.output, items[2]);
    }
    assert!(compose_list_task(&base, Select::First, Transform::Copy, 0, 10, 1).is_err());
    let t = |x: f64| gpt_core::tch::Tensor::from_slice(&[x, 2.0 * x]);
    let v = compose_vectors(&t(1.0), &t(2.0), &t(0.5)).unwrap();
    assert_eq!(Vec::<f64>::try_from(&v).unwrap(), vec![2.5, 5.0]);
}
