//! The fast schedules (head scan, FV layer sweep) against the naive one-pass-per-edit
//! oracles, on random GPT-2 and grouped-query Llama models in f64.

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

mod common;

use function_vectors::extract::draw_prompts;
use function_vectors::resume::{answer_probs, BaseRun};
use function_vectors::rng::RandomState;
use function_vectors::{
    add_at_layer_naive, add_at_layers, function_vector, mean_head_activations, scan_prompt,
    top_heads, PromptBuilder, Schedule, Splits,
};
use gpt_core::tch::{Kind, Tensor};
use gpt_core::HookableModel;

#[test]
fn fast_head_scan_equals_naive() {
    for arch in common::ARCHS {
        let (model, tok) = common::tiny(arch, Kind::Double);
        let task = common::word_task(20);
        let builder = PromptBuilder::new(&tok, model.config(), &task).unwrap();
        let splits = Splits::new(task.len(), 1);
        let mut rng = RandomState::new(3);
        let clean = draw_prompts(
            &builder,
            &splits.train,
            &splits.valid,
            3,
            4,
            false,
            &mut rng,
        )
        .unwrap();
        let mean = mean_head_activations(&model, &clean, &mut gpt_core::progress::ignore).unwrap();
        let c = model.config();
        assert_eq!(
            mean.mean.size(),
            [c.n_layers as i64, c.n_heads as i64, c.d_head as i64]
        );
        let corrupted =
            draw_prompts(&builder, &splits.train, &splits.valid, 3, 2, true, &mut rng).unwrap();
        for p in &corrupted {
            // Small batches too, so that chunking is exercised.
            for max_rows in [512, 5] {
                let (p0f, fast) = scan_prompt(&model, p, &mean, Schedule::Fast, max_rows).unwrap();
                let (p0n, naive) = scan_prompt(&model, p, &mean, Schedule::Naive, 1).unwrap();
                assert!((p0f - p0n).abs() < 1e-9, "{arch:?}: P0 {p0f} vs {p0n}");
                let mut max_effect = 0.0f64;
                for (l, (a, b)) in fast.iter().zip(&naive).enumerate() {
                    assert_eq!(a.len(), c.n_heads);
                    for (h, (x, y)) in a.iter().zip(b).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-4,
                            "{arch:?} head ({l}, {h}): fast {x} naive {y}"
                        );
                        max_effect = max_effect.max(y.abs());
                    }
                }
                // Patching must do something, or the comparison proves nothing.
                assert!(max_effect > 1e-6, "{arch:?}: no head has any effect");
            }
        }
    }
}

#[test]
fn fast_layer_sweep_equals_naive_and_zero_vector_changes_nothing() {
    for arch in common::ARCHS {
        let (model, tok) = common::tiny(arch, Kind::Double);
        let task = common::word_task(20);
        let builder = PromptBuilder::new(&tok, model.config(), &task).unwrap();
        let splits = Splits::new(task.len(), 2);
        let mut rng = RandomState::new(4);
        let clean = draw_prompts(
            &builder,
            &splits.train,
            &splits.valid,
            3,
            3,
            false,
            &mut rng,
        )
        .unwrap();
        let mean = mean_head_activations(&model, &clean, &mut gpt_core::progress::ignore).unwrap();
        let heads = top_heads(
            &vec![vec![1.0; model.config().n_heads]; model.config().n_layers],
            4,
        );
        let v = function_vector(&model, &mean, &heads)
            .unwrap()
            .f_mul_scalar(5.0)
            .unwrap();
        let n_layers = model.config().n_layers;
        let layers: Vec<usize> = (0..n_layers).collect();
        for prompt in [builder.zero_shot(splits.test[0]).unwrap(), clean[0].clone()] {
            let base = BaseRun::new(&model, &prompt.ids, false).unwrap();
            let fast = add_at_layers(&model, &base, &v, &layers, 512).unwrap();
            for &l in &layers {
                let naive = add_at_layer_naive(&model, &prompt.ids, &v, l).unwrap();
                let diff = fast
                    .get(l as i64)
                    .f_sub(&naive)
                    .unwrap()
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff <= 1e-4,
                    "{arch:?} layer {l}: max |fast − naive| = {diff}"
                );
                let moved = naive
                    .f_sub(&base.logits)
                    .unwrap()
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(moved > 1e-6, "{arch:?} layer {l}: adding v changed nothing");
            }
            let zero = Tensor::zeros_like(&v);
            let same = add_at_layers(&model, &base, &zero, &layers, 512).unwrap();
            for l in 0..n_layers as i64 {
                let diff = same
                    .get(l)
                    .f_sub(&base.logits)
                    .unwrap()
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff <= 1e-9,
                    "{arch:?} layer {l}: a zero vector changed the logits by {diff}"
                );
            }
        }
        // The probabilities the scan reads agree with the base pass's.
        let base = BaseRun::new(&model, &clean[1].ids, false).unwrap();
        let p = answer_probs(&base.logits, clean[1].answer).unwrap();
        assert!(p[0] > 0.0 && p[0] < 1.0);
    }
}
