//! Activation patching between clean prompts.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use causal_trace::{last_subject_sites, patch_run, PatchSite, SubjectPrompt};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind};
use gpt_core::{Architecture, HookPoint, HookableModel, RandomInit, TokenBatch, Transformer};

fn tiny() -> Transformer {
    Transformer::random(
        &tiny_config(Architecture::Llama),
        RandomInit { seed: 5, std: 0.5 },
        Device::Cpu,
        Kind::Float,
    )
    .expect("model")
}

fn clean_probs(model: &Transformer, ids: &[i64]) -> Vec<f32> {
    let logits = model
        .forward(&TokenBatch::single(ids, Device::Cpu).expect("batch"))
        .expect("forward");
    Vec::<f32>::try_from(&logits.select(1, -1).squeeze_dim(0).softmax(-1, Kind::Float))
        .expect("probs")
}

#[test]
fn patching_a_prompt_into_itself_changes_nothing() {
    let model = tiny();
    let ids = [3, 9, 12, 40, 7];
    let sites: Vec<PatchSite> = (0..2)
        .flat_map(|l| {
            (0..5).map(move |p| PatchSite {
                point: HookPoint::resid_post(l),
                source_pos: p,
                base_pos: p,
                head: None,
            })
        })
        .collect();
    let patched = patch_run(&model, &ids, &ids, &sites).expect("patch");
    let clean = clean_probs(&model, &ids);
    for (a, b) in patched.probs.iter().zip(&clean) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn patching_every_head_equals_patching_the_whole_z() {
    let model = tiny();
    let (source, base) = ([3, 9, 12, 40, 7], [5, 1, 22, 41, 8, 2]);
    let whole = [PatchSite {
        point: HookPoint::z(1),
        source_pos: 2,
        base_pos: 5,
        head: None,
    }];
    let heads: Vec<PatchSite> = (0..4)
        .map(|h| PatchSite {
            point: HookPoint::z(1),
            source_pos: 2,
            base_pos: 5,
            head: Some(h),
        })
        .collect();
    let by_whole = patch_run(&model, &source, &base, &whole).expect("patch");
    let by_heads = patch_run(&model, &source, &base, &heads).expect("patch");
    for (a, b) in by_whole.probs.iter().zip(&by_heads.probs) {
        assert!((a - b).abs() < 1e-6);
    }
    let one_head = patch_run(&model, &source, &base, &heads[..1]).expect("patch");
    let plain = clean_probs(&model, &base);
    let dist = |p: &[f32]| {
        p.iter()
            .zip(&plain)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
    };
    assert!(
        dist(&one_head.probs) > 1e-4,
        "patching one head changes the base run"
    );
    assert!(dist(&by_heads.probs) > 1e-4);
}

#[test]
fn bad_sites_are_errors_naming_the_site() {
    let model = tiny();
    let ids = [3, 9, 12];
    let err = patch_run(
        &model,
        &ids,
        &ids,
        &[PatchSite {
            point: HookPoint::resid_post(0),
            source_pos: 5,
            base_pos: 0,
            head: None,
        }],
    )
    .expect_err("out of range");
    assert!(err.to_string().contains("source position 5"), "{err}");
    let err = patch_run(
        &model,
        &ids,
        &ids,
        &[PatchSite {
            point: HookPoint::resid_post(0),
            source_pos: 0,
            base_pos: 0,
            head: Some(1),
        }],
    )
    .expect_err("head on resid");
    assert!(err.to_string().contains("hook_z"), "{err}");
    let err = patch_run(
        &model,
        &ids,
        &ids,
        &[PatchSite {
            point: HookPoint::z(0),
            source_pos: 0,
            base_pos: 0,
            head: Some(4),
        }],
    )
    .expect_err("head out of range");
    assert!(err.to_string().contains("head 4"), "{err}");
    let err = patch_run(
        &model,
        &ids,
        &ids,
        &[PatchSite {
            point: HookPoint::resid_post(7),
            source_pos: 0,
            base_pos: 0,
            head: None,
        }],
    )
    .expect_err("layer out of range");
    assert!(err.to_string().contains("blocks.7"), "{err}");
}

/// The paper's "Megan Rapinoe → Shaquille O'Neal" experiment, with a pair the bundled model
/// knows: the subject states of "Lionel Messi" (soccer) patched into "Tiger Woods" (golf)
/// at the last subject token move the prediction from golf to soccer.
#[test]
fn subject_states_carry_the_fact_on_the_bundled_model() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the bundled model {} is absent: run `bash scripts/setup.sh`, which installs it with libtorch",
        path.display()
    );
    let m = gpt_core::load_model(&path, Default::default()).expect("load");
    let source = SubjectPrompt::new(
        &m.tokenizer,
        "Lionel Messi is a professional",
        "Lionel Messi",
    )
    .expect("source");
    let base = SubjectPrompt::new(&m.tokenizer, "Tiger Woods is a professional", "Tiger Woods")
        .expect("base");
    let soccer = m.tokenizer.encode(" soccer").expect("encode").ids[0];
    let golf = m.tokenizer.encode(" golf").expect("encode").ids[0];
    let plain = patch_run(&m.model, &source.ids, &base.ids, &[]).expect("unpatched");
    assert_eq!(plain.top(), golf, "the base prompt's own answer");
    let sites = last_subject_sites(
        0..15,
        source.last_subject_token(),
        base.last_subject_token(),
    );
    let patched = patch_run(&m.model, &source.ids, &base.ids, &sites).expect("patched");
    eprintln!(
        "p(soccer) {:.3} -> {:.3}, p(golf) {:.3} -> {:.3}",
        plain.prob(soccer),
        patched.prob(soccer),
        plain.prob(golf),
        patched.prob(golf)
    );
    assert!(patched.prob(soccer) > patched.prob(golf));
    assert!(patched.prob(soccer) > 2.0 * plain.prob(soccer));
}
