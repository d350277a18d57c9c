//! ROME on tiny random models (hermetic): the edit writes v* where it should (and in bf16 near
//! where f32 does), the fast and naive schedules of the v* optimisation agree, key statistics
//! resume exactly, edits save and reload, and bad input is a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::ops::ControlFlow;
use std::path::Path;

use gpt_core::intervention::{read_sites, HookAction};
use gpt_core::progress::{self, Progress};
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    load_hf_tokenizer, Architecture, EditableModel, HookPoint, HookableModel, Layer, RandomInit,
    SubjectPrompt, TokenBatch, Tokenizer, Transformer, WeightId,
};
use rome::{
    compute_rome, context_templates, load_deltas, save_deltas, Corpus, Error, KeyStats,
    KeyStatsRun, RewriteRequest, RomeHparams, RomeVariant, Schedule, StatsOptions,
};

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

/// The key statistics `C` of each of `layers` over [`corpus`].
fn second_moments(m: &Transformer, tok: &Tokenizer, layers: &[usize]) -> Vec<Tensor> {
    layers
        .iter()
        .map(|&l| {
            KeyStatsRun::new(m, tok, &corpus(), &StatsOptions::new(l))
                .compute()
                .unwrap()
                .c()
                .unwrap()
        })
        .collect()
}

fn corpus() -> Corpus {
    let docs = (0..40)
        .map(|i| format!("The tower number {i} is located in the city of Paris, near the river. People visit it every day and take pictures {i}."))
        .collect();
    Corpus::from_documents("test sentences", docs)
}

fn hparams(layer: usize, variant: RomeVariant) -> RomeHparams {
    RomeHparams {
        layer,
        v_num_grad_steps: 6,
        context_template_length_params: vec![(4, 2)],
        variant,
        ..RomeHparams::smollm2()
    }
}

fn request() -> RewriteRequest {
    RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome").unwrap()
}

/// The key and MLP output at the subject's last token of `text`.
fn key_and_output(m: &Transformer, tok: &Tokenizer, text: &str, layer: usize) -> (Tensor, Tensor) {
    let p = SubjectPrompt::new(tok, text, "The Eiffel Tower").unwrap();
    let batch = TokenBatch::single(&p.ids, Device::Cpu).unwrap();
    let (_, cache) = m
        .run_with_cache(&batch, &|q| {
            q == HookPoint::mlp_post(layer) || q == HookPoint::mlp_out(layer)
        })
        .unwrap();
    let site = p.last_subject_site();
    let k = read_sites(
        HookPoint::mlp_post(layer),
        cache.try_get(HookPoint::mlp_post(layer)).unwrap(),
        &site,
    )
    .unwrap();
    let v = read_sites(
        HookPoint::mlp_out(layer),
        cache.try_get(HookPoint::mlp_out(layer)).unwrap(),
        &site,
    )
    .unwrap();
    (k.squeeze_dim(0), v.squeeze_dim(0))
}

/// The transformers fixture of another family (same tiny tokenizer), as a model to edit.
fn fixture_model(name: &str) -> Transformer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    gpt_core::load_model(&dir, Default::default())
        .unwrap()
        .model
}

#[test]
fn rome_writes_v_star_and_schedules_agree() {
    let tok = tokenizer();
    let models = [
        ("gpt2", model(Architecture::Gpt2, &tok, 3)),
        ("llama", model(Architecture::Llama, &tok, 3)),
        // q/k/v biases; a sliding window; llama3 and yarn rotary scaling; Gemma's
        // GeGLU, (1 + w) norms and scaled embeddings; parallel blocks.
        ("mistral", fixture_model("tiny-mistral")),
        ("llama3-rope", fixture_model("tiny-llama-rope-llama3")),
        ("yarn-rope", fixture_model("tiny-llama-rope-yarn")),
        ("gemma", fixture_model("tiny-gemma")),
        // Sandwich norms: δ is added before the post-MLP norm, in W_out's output space.
        ("gemma2", fixture_model("tiny-gemma2")),
        ("gemma3", fixture_model("tiny-gemma3")),
        ("gpt-neox", fixture_model("tiny-neox")),
        ("gpt-j", fixture_model("tiny-gptj")),
        ("qwen2", fixture_model("tiny-qwen2")),
    ];
    for (arch, mut m) in models {
        let layer = 1;
        let c = second_moments(&m, &tok, &[layer]).remove(0);
        let hp = hparams(layer, RomeVariant::Original);
        let templates = context_templates(&m, &tok, &hp.context_template_length_params, 7).unwrap();
        assert_eq!(templates.len(), 3);
        assert_eq!(templates[0], "{}");
        let fast = compute_rome(
            &m,
            &tok,
            &request(),
            &hp,
            Some(&c),
            &templates,
            Schedule::Fast,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        let naive = compute_rome(
            &m,
            &tok,
            &request(),
            &hp,
            Some(&c),
            &templates,
            Schedule::Naive,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        // The fixtures' small weights (std 0.2, two blocks) leave layer 1's MLP little leverage
        // on the target: the loss stays flat, its gradients are tiny, and Adam's normalised
        // steps amplify rounding differences between the schedules (the Qwen2 fixture's losses
        // agree to 1e-6 at step 0 and part by 1e-3 by step 3). There the schedules must agree
        // on the first loss (the same forward pass); on the random models, on v* itself.
        let random = matches!(arch, "gpt2" | "llama");
        if random {
            let diff = (&fast.v_star - &naive.v_star).abs().max().double_value(&[]);
            assert!(diff <= 1e-4, "{arch}: fast and naive v* differ by {diff}");
        } else {
            let diff = (fast.losses[0] - naive.losses[0]).abs();
            assert!(
                diff <= 1e-5,
                "{arch}: fast and naive first losses differ by {diff}"
            );
        }
        assert_eq!(fast.losses.len(), naive.losses.len());
        // The loss went down (on the random models; see above for the fixtures).
        if random {
            assert!(
                fast.losses.last().unwrap() < &fast.losses[0],
                "{:?}",
                fast.losses
            );
        }

        // After the edit, the MLP output at the bare prompt's subject is v*.
        let undo = m.apply(&fast.delta).unwrap();
        let (_, v_after) = key_and_output(&m, &tok, &request().filled(), layer);
        let v_after = v_after.to_kind(Kind::Double);
        let rel = (&v_after - &fast.v_star).abs().max().double_value(&[])
            / fast.v_star.abs().max().double_value(&[]);
        assert!(rel <= 1e-4, "{arch}: W′k = v* off by {rel}");
        m.undo(&undo).unwrap();

        // r-ROME: W′k* + b = v* at the template-averaged key.
        let hp = hparams(layer, RomeVariant::RRome);
        let edit = compute_rome(
            &m,
            &tok,
            &request(),
            &hp,
            Some(&c),
            &templates,
            Schedule::Fast,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        let w = m
            .weight(WeightId::MlpOut(Layer(layer)))
            .unwrap()
            .to_kind(Kind::Double);
        let dense = match &edit.delta {
            gpt_core::WeightDelta::RankOne { u, v, .. } => u.outer(v),
            other => panic!("{other:?}"),
        };
        let moved = (&w + &dense).matmul(&edit.k_star) - w.matmul(&edit.k_star);
        assert!(moved.abs().max().double_value(&[]) > 0.0);
    }
}

#[test]
fn key_statistics_resume_exactly_and_refuse_other_caches() {
    let tok = tokenizer();
    let m = model(Architecture::Llama, &tok, 5);
    let dir = tempfile::tempdir().unwrap();
    let options = StatsOptions {
        checkpoint_every: 7,
        batch_tokens: 64,
        ..StatsOptions::new(2)
    };
    let whole_path = dir.path().join("whole.safetensors");
    let whole = KeyStatsRun::new(&m, &tok, &corpus(), &options)
        .checkpoint(&whole_path)
        .compute()
        .unwrap();
    assert!(whole.meta.complete);
    assert_eq!(whole.meta.texts, 40);

    // Killed after the second checkpoint, then resumed: the same C, bit for bit. (The first
    // report comes before any work, so the second checkpoint is the third report.)
    let path = dir.path().join("resumed.safetensors");
    let mut calls = 0;
    let err = KeyStatsRun::new(&m, &tok, &corpus(), &options)
        .checkpoint(&path)
        .progress(&mut |p: &Progress| {
            calls += 1;
            assert_eq!((p.stage.as_ref(), p.total), (rome::STATS_STAGE, Some(40)));
            if calls < 3 {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .compute()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Cancelled(c) if c.at.done == 14 && c.at.count("tokens").is_some_and(|t| t > 0)),
        "{err:?}"
    );
    let partial = KeyStats::load(&path).unwrap();
    assert!(!partial.meta.complete);
    let resumed = KeyStatsRun::new(&m, &tok, &corpus(), &options)
        .checkpoint(&path)
        .compute()
        .unwrap();
    assert_eq!(resumed.moment.count, whole.moment.count);
    assert!(
        resumed.moment.sum.equal(&whole.moment.sum),
        "resumed C differs"
    );
    let reloaded = KeyStats::load(&path).unwrap();
    assert!(reloaded.moment.sum.equal(&whole.moment.sum));

    // C is symmetric and positive semi-definite.
    let c = whole.c().unwrap();
    assert!((&c - c.transpose(0, 1)).abs().max().double_value(&[]) < 1e-12);

    // A cache for another layer or model is refused, with a reason.
    let fp = rome::model_fingerprint(&m, 2).unwrap();
    let err = reloaded.check_for(&path, &fp, 1).unwrap_err();
    assert!(err.to_string().contains("layer 2"), "{err}");
    let other = model(Architecture::Llama, &tok, 6);
    let other_fp = rome::model_fingerprint(&other, 2).unwrap();
    let err = reloaded.check_for(&path, &other_fp, 2).unwrap_err();
    assert!(err.to_string().contains("another model"), "{err}");
    // Continuing a file of another corpus is refused and the file is left alone.
    let before = std::fs::read(&path).unwrap();
    let other_corpus = Corpus::from_documents("x", vec!["Something else entirely.".into()]);
    let err = KeyStatsRun::new(&m, &tok, &other_corpus, &options)
        .checkpoint(&path)
        .compute()
        .unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Truncated and corrupt files are clear errors.
    std::fs::write(&path, &before[..before.len() / 2]).unwrap();
    let err = KeyStats::load(&path).unwrap_err();
    assert!(matches!(err, Error::Stats { .. }), "{err:?}");
    std::fs::write(&path, b"not a stats file").unwrap();
    assert!(KeyStats::load(&path).is_err());

    // Numbers that cannot be a second moment are refused at load, naming the file.
    type Corrupt = Box<dyn Fn(&Tensor) -> Tensor>;
    let bad_cases: [(&str, Corrupt, u64); 4] = [
        (
            "NaN",
            Box::new(|s: &Tensor| {
                let mut t = s.copy();
                let _ = t.fill_diagonal_(f64::NAN, false);
                t
            }),
            5,
        ),
        ("negative", Box::new(|s: &Tensor| s.zeros_like() - 1.0), 5),
        (
            "symmetric",
            Box::new(|s: &Tensor| s.triu(1) + s.diagonal(0, 0, 1).diag(0)),
            5,
        ),
        ("0 keys", Box::new(|s: &Tensor| s.shallow_clone()), 0),
    ];
    for (what, corrupt, count) in bad_cases {
        let mut bad = KeyStats::load(&whole_path).unwrap();
        bad.moment.sum = corrupt(&bad.moment.sum.copy());
        bad.moment.count = count;
        let bad_path = dir
            .path()
            .join(format!("bad-{}.safetensors", what.replace(' ', "-")));
        bad.save(&bad_path).unwrap();
        let err = KeyStats::load(&bad_path).unwrap_err().to_string();
        assert!(err.contains(what) && err.contains("bad-"), "{what}: {err}");
    }
}

/// A token budget stops inside a chunk: the provenance names exactly the documents used, the
/// statistics equal those of that many whole documents cut at the budget, and a budget of 0
/// is refused.
#[test]
fn key_statistics_budget_records_the_documents_it_used() {
    let tok = tokenizer();
    let m = model(Architecture::Llama, &tok, 5);
    let options = StatsOptions {
        checkpoint_every: 64,
        batch_tokens: 64,
        max_tokens: Some(20),
        ..StatsOptions::new(2)
    };
    let stats = KeyStatsRun::new(&m, &tok, &corpus(), &options)
        .compute()
        .unwrap();
    assert!(stats.meta.complete);
    assert_eq!(stats.meta.tokens, 20);
    // The documents whose tokens were counted, and no more.
    let lens: Vec<usize> = corpus()
        .documents
        .iter()
        .map(|d| tok.encode(d).unwrap().ids.len().min(m.config().n_ctx))
        .collect();
    let mut used = 0;
    let mut sum = 0;
    while sum < 20 {
        sum += lens[used];
        used += 1;
    }
    assert_eq!(stats.meta.texts, used, "{lens:?}");
    assert!(stats.meta.texts < 40);
    let err = KeyStatsRun::new(
        &m,
        &tok,
        &corpus(),
        &StatsOptions {
            max_tokens: Some(0),
            ..options
        },
    )
    .compute()
    .unwrap_err();
    assert!(err.to_string().contains("budget of 0"), "{err}");
}

#[test]
fn edits_save_and_reapply() {
    let tok = tokenizer();
    let mut m = model(Architecture::Gpt2, &tok, 4);
    let layer = 0;
    let stats = KeyStatsRun::new(&m, &tok, &corpus(), &StatsOptions::new(layer))
        .compute()
        .unwrap();
    let hp = hparams(layer, RomeVariant::Original);
    let templates = context_templates(&m, &tok, &hp.context_template_length_params, 1).unwrap();
    let edit = compute_rome(
        &m,
        &tok,
        &request(),
        &hp,
        Some(&stats.c().unwrap()),
        &templates,
        Schedule::Fast,
        &mut gpt_core::progress::ignore,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edit.safetensors");
    save_deltas(&path, &[&edit.delta], &[request()], &hp).unwrap();
    let saved = load_deltas(&path).unwrap();
    assert_eq!(saved.requests, vec![request()]);
    assert_eq!(
        serde_json::from_value::<RomeHparams>(saved.hparams).unwrap(),
        hp
    );
    let original = m.weight(WeightId::MlpOut(Layer(layer))).unwrap().copy();
    let a = m.apply(&edit.delta).unwrap();
    let edited = m.weight(WeightId::MlpOut(Layer(layer))).unwrap().copy();
    m.undo(&a).unwrap();
    let b = m.apply(&saved.deltas[0]).unwrap();
    assert!(m
        .weight(WeightId::MlpOut(Layer(layer)))
        .unwrap()
        .equal(&edited));
    m.undo(&b).unwrap();
    assert!(m
        .weight(WeightId::MlpOut(Layer(layer)))
        .unwrap()
        .equal(&original));
    // A truncated delta file is a clear error.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert!(load_deltas(&path).is_err());
}

#[test]
fn bad_requests_and_corpora_are_clear_errors() {
    let no_marker =
        RewriteRequest::new("The Eiffel Tower is in", "The Eiffel Tower", "Rome").unwrap_err();
    assert!(no_marker.to_string().contains("{}"), "{no_marker}");
    let empty_target = RewriteRequest::new("{} is in", "The Eiffel Tower", " ").unwrap_err();
    assert!(
        empty_target.to_string().contains("target"),
        "{empty_target}"
    );
    let empty_subject = RewriteRequest::new("{} is in", "", "Rome").unwrap_err();
    assert!(
        empty_subject.to_string().contains("subject"),
        "{empty_subject}"
    );

    let tok = tokenizer();
    let m = model(Architecture::Gpt2, &tok, 1);
    let mut hp = hparams(7, RomeVariant::Original);
    let err = compute_rome(
        &m,
        &tok,
        &request(),
        &hp,
        None,
        &["{}".into()],
        Schedule::Fast,
        &mut gpt_core::progress::ignore,
    )
    .unwrap_err();
    assert!(err.to_string().contains("layer 7"), "{err}");
    hp.layer = 0;
    let err = compute_rome(
        &m,
        &tok,
        &request(),
        &hp,
        None,
        &["{}".into()],
        Schedule::Fast,
        &mut gpt_core::progress::ignore,
    )
    .unwrap_err();
    assert!(err.to_string().contains("statistics"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("latin1.txt");
    std::fs::write(&bad, b"good text\n\ncaf\xe9 au lait").unwrap();
    let err = Corpus::from_path(&bad).unwrap_err();
    assert!(
        err.to_string().contains("offset 14") && err.to_string().contains("latin1.txt"),
        "{err}"
    );
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"\n\n  \n").unwrap();
    assert!(Corpus::from_path(&empty)
        .unwrap_err()
        .to_string()
        .contains("no text"));
    let jsonl = dir.path().join("docs.jsonl");
    std::fs::write(&jsonl, b"{\"text\": \"one\"}\n{\"title\": \"two\"}\n").unwrap();
    let err = Corpus::from_path(&jsonl).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    std::fs::write(&jsonl, b"{\"text\": \"one\"}\n\n{\"text\": \"two\"}\n").unwrap();
    assert_eq!(
        Corpus::from_path(&jsonl).unwrap().documents,
        vec!["one", "two"]
    );
    let _ = HookAction::Continue;
}

/// Mean log-probability of `" " + target` after `prompt`.
/// ROME on bf16 models (grouped heads for Llama; bf16 attention takes its one-product
/// scores and bf16 softmax, under autograd): the same weights give nearly the f32 first loss,
/// the loss goes down, v* lands near f32's, and the fast and naive schedules agree to bf16's
/// rounding.
#[test]
fn rome_in_bf16_follows_f32() {
    let tok = tokenizer();
    for arch in [Architecture::Gpt2, Architecture::Llama] {
        let mut c = tiny_config(arch);
        c.vocab_size = tok.vocab_size();
        c.n_layers = 3;
        let init = RandomInit { seed: 3, std: 0.5 };
        let f32m = Transformer::random(&c, init, Device::Cpu, Kind::Float).unwrap();
        let bf16m = Transformer::random(&c, init, Device::Cpu, Kind::BFloat16).unwrap();
        let layer = 1;
        let cov = second_moments(&f32m, &tok, &[layer]).remove(0);
        let hp = hparams(layer, RomeVariant::Original);
        let templates =
            context_templates(&f32m, &tok, &hp.context_template_length_params, 7).unwrap();
        let edit = |m: &Transformer, schedule| {
            compute_rome(
                m,
                &tok,
                &request(),
                &hp,
                Some(&cov),
                &templates,
                schedule,
                &mut gpt_core::progress::ignore,
            )
            .unwrap()
        };
        let (want, got, naive) = (
            edit(&f32m, Schedule::Fast),
            edit(&bf16m, Schedule::Fast),
            edit(&bf16m, Schedule::Naive),
        );
        assert!(
            got.losses.iter().all(|l| l.is_finite()),
            "{arch:?}: {:?}",
            got.losses
        );
        let first = (got.losses[0] - want.losses[0]).abs() / want.losses[0];
        assert!(
            first <= 0.08,
            "{arch:?}: first loss {} in bf16 against {} in f32",
            got.losses[0],
            want.losses[0]
        );
        assert!(
            got.losses.last().unwrap() < &got.losses[0],
            "{arch:?}: {:?}",
            got.losses
        );
        let rel =
            |a: &Tensor, b: &Tensor| (a - b).norm().double_value(&[]) / b.norm().double_value(&[]);
        let v_rel = rel(&got.v_star, &want.v_star);
        assert!(v_rel <= 0.1, "{arch:?}: bf16 v* {v_rel} from f32's");
        let schedules = (got.losses[0] - naive.losses[0]).abs() / naive.losses[0];
        assert!(
            schedules <= 0.02,
            "{arch:?}: fast and naive first losses part by {schedules}"
        );
    }
}

fn target_logp(m: &Transformer, tok: &Tokenizer, prompt: &str, target: &str) -> f64 {
    let p = tok.encode(prompt).unwrap().ids;
    let t = gpt_core::target_tokens(tok, target).unwrap();
    let ids: Vec<i64> = p.iter().chain(&t).copied().collect();
    let logits = m
        .forward(&TokenBatch::single(&ids, Device::Cpu).unwrap())
        .unwrap();
    let lp = logits.squeeze_dim(0).log_softmax(-1, Kind::Double);
    t.iter()
        .enumerate()
        .map(|(j, &tok)| lp.double_value(&[(p.len() + j - 1) as i64, tok]))
        .sum::<f64>()
        / t.len() as f64
}

#[test]
fn memit_writes_several_facts_at_once_and_leaves_the_model_alone() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let mut m = model(arch, &tok, 9);
        let layers = vec![0, 1];
        let cs = second_moments(&m, &tok, &layers);
        let mut hp = rome::MemitHparams::smollm2();
        hp.layers = layers.clone();
        hp.mom2_update_weight = 1.0;
        hp.z.v_num_grad_steps = 8;
        hp.z.context_template_length_params = vec![(4, 2)];
        let templates =
            context_templates(&m, &tok, &hp.z.context_template_length_params, 2).unwrap();
        let requests = vec![
            RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome")
                .unwrap(),
            RewriteRequest::new("{} plays the sport of", "Tiger Woods", "tennis").unwrap(),
            RewriteRequest::new("The capital of {} is", "France", "Berlin").unwrap(),
        ];
        let before: Vec<f64> = requests
            .iter()
            .map(|r| target_logp(&m, &tok, &r.filled(), &r.target))
            .collect();
        let weights: Vec<Tensor> = layers
            .iter()
            .map(|&l| m.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
            .collect();
        let mut stages = Vec::new();
        let edit = rome::compute_memit(
            &mut m,
            &tok,
            &requests,
            &hp,
            &cs,
            &templates,
            &mut progress::watch(|p| stages.push((p.stage.to_string(), p.done))),
        )
        .unwrap();
        // Targets are fitted together: reports before the first, after every optimisation
        // step (with its `steps` count), and at the end; then one per layer.
        let targets: Vec<u64> = stages
            .iter()
            .filter(|(s, _)| s == rome::memit::TARGETS_STAGE)
            .map(|(_, d)| *d)
            .collect();
        assert!(
            targets.first() == Some(&0)
                && targets.last() == Some(&3)
                && targets.windows(2).all(|w| w[0] <= w[1]),
            "{stages:?}"
        );
        let updates = (0..=layers.len() as u64).map(|i| (rome::memit::LAYERS_STAGE.to_string(), i));
        assert_eq!(
            stages[targets.len()..].to_vec(),
            updates.collect::<Vec<_>>()
        );
        assert_eq!(edit.deltas.len(), layers.len());
        assert_eq!(edit.z.size(), [3, m.config().d_model as i64]);
        // Stopped after the first layer's update: cancelled, and the interim edit undone.
        let err = rome::compute_memit(
            &mut m,
            &tok,
            &requests,
            &hp,
            &cs,
            &templates,
            &mut |p: &Progress| {
                if p.stage == rome::memit::LAYERS_STAGE && p.done == 1 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Cancelled(c) if c.at.done == 1),
            "{err:?}"
        );
        // Computing changed nothing.
        for (&l, w) in layers.iter().zip(&weights) {
            assert!(
                m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w),
                "{arch:?}: layer {l} changed"
            );
        }
        // The residual at the last edited layer moves toward each fact's z, and the targets
        // become more probable on average.
        let last = *layers.last().unwrap();
        let resid = |m: &Transformer, r: &RewriteRequest| -> Tensor {
            let p = SubjectPrompt::new(&tok, &r.filled(), &r.subject).unwrap();
            let batch = TokenBatch::single(&p.ids, Device::Cpu).unwrap();
            let point = HookPoint::resid_post(last);
            let (_, cache) = m.run_with_cache(&batch, &|q| q == point).unwrap();
            let site = p.last_subject_site();
            read_sites(point, cache.try_get(point).unwrap(), &site)
                .unwrap()
                .squeeze_dim(0)
                .to_kind(Kind::Double)
        };
        let dist_before: Vec<f64> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (resid(&m, r) - edit.z.get(i as i64))
                    .norm()
                    .double_value(&[])
            })
            .collect();
        let undos: Vec<_> = edit.deltas.iter().map(|d| m.apply(d).unwrap()).collect();
        let mut gain = 0.0;
        for (i, (r, b)) in requests.iter().zip(&before).enumerate() {
            let d = (resid(&m, r) - edit.z.get(i as i64))
                .norm()
                .double_value(&[]);
            assert!(
                d < dist_before[i],
                "{arch:?}: {:?}: ‖z − h‖ {} → {d}",
                r.filled(),
                dist_before[i]
            );
            gain += target_logp(&m, &tok, &r.filled(), &r.target) - b;
        }
        assert!(gain > 0.0, "{arch:?}: mean log p(target) fell by {gain}");
        for u in undos.iter().rev() {
            m.undo(u).unwrap();
        }
    }
}

#[test]
fn ft_l_stays_within_its_constraint_and_raises_the_target() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let m = model(arch, &tok, 5);
        let hp = rome::FtHparams {
            norm_constraint: 0.05,
            lr: 0.05,
            num_steps: 10,
            ..rome::FtHparams::constrained(1)
        };
        let w = m.weight(WeightId::MlpOut(Layer(1))).unwrap().copy();
        let before = target_logp(&m, &tok, &request().filled(), "Rome");
        let edit =
            rome::compute_ft(&m, &tok, &[request()], &hp, &mut gpt_core::progress::ignore).unwrap();
        assert!(m.weight(WeightId::MlpOut(Layer(1))).unwrap().equal(&w));
        let dense = edit.delta.to_dense(&w.size()).unwrap();
        let max = dense.abs().max().double_value(&[]);
        assert!(max <= 0.05 + 1e-7, "{arch:?}: |ΔW|∞ = {max}");
        assert!(max > 0.0, "{arch:?}: nothing changed");
        assert!(
            edit.losses.last().unwrap() < &edit.losses[0],
            "{arch:?}: {:?}",
            edit.losses
        );
        // The loss FT-L reports is what the edited model computes.
        let mut m = m;
        let undo = m.apply(&edit.delta).unwrap();
        let after = target_logp(&m, &tok, &request().filled(), "Rome");
        assert!(after > before, "{arch:?}: log p(Rome) {before} → {after}");
        m.undo(&undo).unwrap();
        assert!(m.weight(WeightId::MlpOut(Layer(1))).unwrap().equal(&w));
    }
}

#[test]
fn editors_write_requests_and_undo_bit_exactly() {
    use gpt_core::{apply_edits, undo_all, Editor};
    let tok = tokenizer();
    let mut m = model(Architecture::Llama, &tok, 4);
    let layer = 1;
    let c = KeyStatsRun::new(&m, &tok, &corpus(), &StatsOptions::new(layer))
        .compute()
        .unwrap()
        .c()
        .unwrap();
    let snapshot: Vec<Tensor> = (0..m.config().n_layers)
        .map(|l| m.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
        .collect();
    let requests = vec![
        request(),
        RewriteRequest::new("{} plays the sport of", "Tiger Woods", "tennis").unwrap(),
    ];
    let mut editors: Vec<Box<dyn Editor>> = vec![
        Box::new(rome::RomeEditor::new(
            hparams(layer, RomeVariant::Original),
            Some(c.shallow_clone()),
        )),
        Box::new(rome::RomeEditor::new(
            hparams(layer, RomeVariant::RRome),
            Some(c.shallow_clone()),
        )),
        Box::new(rome::FtEditor {
            hparams: rome::FtHparams::constrained(layer),
        }),
    ];
    for editor in &mut editors {
        let undos = apply_edits(
            editor.as_mut(),
            &mut m,
            &tok,
            &requests,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        // One-at-a-time methods apply one change per request; FT-L one for all.
        let expected = if editor.joint() { 1 } else { 2 };
        assert_eq!(undos.len(), expected, "{}", editor.method());
        assert!(!m
            .weight(WeightId::MlpOut(Layer(layer)))
            .unwrap()
            .equal(&snapshot[layer]));
        undo_all(&mut m, &undos).unwrap();
        for (l, w) in snapshot.iter().enumerate() {
            assert!(m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w));
        }
    }
    assert_eq!(editors[1].method(), gpt_core::Method::RRome);
    // A failing request leaves the model as it was, even after an earlier one was applied.
    let bad = vec![
        request(),
        RewriteRequest {
            prompt: "no subject here".into(),
            subject: "X".into(),
            target: "Y".into(),
        },
    ];
    let err = apply_edits(
        editors[0].as_mut(),
        &mut m,
        &tok,
        &bad,
        &mut gpt_core::progress::ignore,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no `{}`"), "{err}");
    for (l, w) in snapshot.iter().enumerate() {
        assert!(m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w));
    }
}

#[test]
fn memit_targets_fitted_together_equal_one_request_at_a_time() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let mut m = model(arch, &tok, 9);
        let layers = vec![0, 1];
        let cs = second_moments(&m, &tok, &layers);
        let mut hp = rome::MemitHparams::smollm2();
        hp.layers = layers.clone();
        hp.z.v_num_grad_steps = 10;
        hp.z.v_lr = 0.5;
        hp.z.context_template_length_params = vec![(4, 2)];
        let templates =
            context_templates(&m, &tok, &hp.z.context_template_length_params, 2).unwrap();
        let requests = vec![
            RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome")
                .unwrap(),
            RewriteRequest::new("{} plays the sport of", "Tiger Woods", "tennis").unwrap(),
            RewriteRequest::new("The capital of {} is", "France", "Berlin").unwrap(),
            RewriteRequest::new("{} works as a", "Marie Curie", "lawyer").unwrap(),
        ];
        let mut memit = |requests: &[RewriteRequest], hp: &rome::MemitHparams| {
            rome::compute_memit(
                &mut m,
                &tok,
                requests,
                hp,
                &cs,
                &templates,
                &mut progress::ignore,
            )
            .unwrap()
        };
        // An early stop between the requests' losses, so that some leave the batch first.
        let free = memit(&requests, &hp);
        let mut finals: Vec<f64> = free.losses.iter().map(|l| l[l.len() / 2]).collect();
        finals.sort_by(f64::total_cmp);
        hp.z.early_stop_loss = (finals[1] + finals[2]) / 2.0;
        let joint = memit(&requests, &hp);
        let steps: Vec<usize> = joint.losses.iter().map(Vec::len).collect();
        assert!(
            steps.iter().any(|&s| s != steps[0]),
            "{arch:?}: every request stopped at the same step ({steps:?}), the test proves nothing"
        );
        for (i, r) in requests.iter().enumerate() {
            let alone = memit(std::slice::from_ref(r), &hp);
            assert_eq!(
                alone.losses[0].len(),
                joint.losses[i].len(),
                "{arch:?} request {i}"
            );
            for (a, b) in alone.losses[0].iter().zip(&joint.losses[i]) {
                assert!(
                    (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                    "{arch:?} request {i}: {a} vs {b}"
                );
            }
            let diff = alone
                .z
                .f_select(0, 0)
                .unwrap()
                .f_sub(&joint.z.f_select(0, i as i64).unwrap())
                .unwrap()
                .abs()
                .max()
                .double_value(&[]);
            let scale = alone.z.abs().max().double_value(&[]).max(1.0);
            assert!(
                diff <= 1e-4 * scale,
                "{arch:?} request {i}: z differs by {diff}"
            );
        }
    }
}

#[test]
fn target_residuals_are_cached_by_content() {
    let tok = tokenizer();
    let mut m = model(Architecture::Llama, &tok, 9);
    let dir = tempfile::tempdir().unwrap();
    let cache = rome::TargetCache::new(dir.path());
    let layers = vec![0, 1];
    let cs = second_moments(&m, &tok, &layers);
    let mut hp = rome::MemitHparams::smollm2();
    hp.layers = layers.clone();
    hp.z.v_num_grad_steps = 4;
    hp.z.context_template_length_params = vec![(4, 2)];
    let templates = context_templates(&m, &tok, &hp.z.context_template_length_params, 2).unwrap();
    let requests = vec![
        RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome").unwrap(),
        RewriteRequest::new("{} plays the sport of", "Tiger Woods", "tennis").unwrap(),
    ];
    // A planted entry for request 0 is used as it is; request 1 is fitted and stored.
    let state = rome::TargetCache::model_state(&m).unwrap();
    // The key's z settings name the layer z sits at (the last edited one).
    let mut z = hp.z.clone();
    z.layer = 1;
    let d = m.config().d_model as i64;
    let planted = Tensor::ones([d], (Kind::Double, Device::Cpu));
    cache
        .put(&state, (1, &requests[0], &z, &templates), &planted, &[42.0])
        .unwrap();
    let edit = rome::compute_memit_cached(
        &mut m,
        &tok,
        &requests,
        &hp,
        &cs,
        &templates,
        &mut progress::ignore,
        Some(&cache),
    )
    .unwrap();
    assert_eq!(edit.losses[0], vec![42.0]);
    assert!(edit.z.f_select(0, 0).unwrap().equal(&planted));
    let (z1, losses1) = cache
        .get(&state, 1, &requests[1], &z, &templates)
        .unwrap()
        .expect("request 1's z was stored");
    assert!(z1.equal(&edit.z.f_select(0, 1).unwrap()));
    assert_eq!(losses1, edit.losses[1]);
    // Another λ reuses both; other z settings or an edited model use neither.
    hp.mom2_update_weight *= 2.0;
    let again = rome::compute_memit_cached(
        &mut m,
        &tok,
        &requests,
        &hp,
        &cs,
        &templates,
        &mut progress::ignore,
        Some(&cache),
    )
    .unwrap();
    assert!(again.z.equal(&edit.z));
    let mut other = z.clone();
    other.v_lr *= 2.0;
    assert!(cache
        .get(&state, 1, &requests[1], &other, &templates)
        .unwrap()
        .is_none());
    let undo = m.apply(&edit.deltas[0]).unwrap();
    let edited = rome::TargetCache::model_state(&m).unwrap();
    assert_ne!(edited, state);
    assert!(cache
        .get(&edited, 1, &requests[1], &z, &templates)
        .unwrap()
        .is_none());
    m.undo(&undo).unwrap();
}

/// Every editor hears its progress at least once per optimisation step, and a caller that
/// stops it (here at the third event) gets `Error::Cancelled` with the model bit for bit as
/// it was — with several requests, after earlier ones were applied too.
#[test]
fn editors_report_their_steps_and_stop_when_asked() {
    use gpt_core::{apply_edits, Editor};
    let tok = tokenizer();
    let mut m = model(Architecture::Gpt2, &tok, 6);
    let layers = [1usize];
    let cs = second_moments(&m, &tok, &layers);
    let snapshot: Vec<Tensor> = (0..m.config().n_layers)
        .map(|l| m.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
        .collect();
    let requests = vec![
        request(),
        RewriteRequest::new("{} plays the sport of", "Tiger Woods", "tennis").unwrap(),
    ];
    let mut z = hparams(1, RomeVariant::Original);
    // Never early: every step is taken, so there are steps to stop at.
    z.early_stop_loss = 0.0;
    let mut memit = rome::MemitHparams::smollm2();
    memit.layers = layers.to_vec();
    memit.z = z.clone();
    let mut editors: Vec<(Box<dyn Editor>, &str)> = vec![
        (
            Box::new(rome::RomeEditor::new(
                z.clone(),
                Some(cs[0].shallow_clone()),
            )),
            rome::V_STAGE,
        ),
        (
            Box::new(rome::FtEditor {
                hparams: rome::FtHparams {
                    early_stop_loss: 0.0,
                    ..rome::FtHparams::constrained(1)
                },
            }),
            rome::FT_STAGE,
        ),
        (
            Box::new(rome::MemitEditor::new(
                memit,
                cs.iter().map(Tensor::shallow_clone).collect(),
            )),
            rome::memit::TARGETS_STAGE,
        ),
    ];
    for (editor, stage) in &mut editors {
        let method = editor.method();
        let mut events: Vec<Progress> = Vec::new();
        let mut watch = |p: &Progress| {
            events.push(p.clone());
            ControlFlow::Continue(())
        };
        let undos = apply_edits(editor.as_mut(), &mut m, &tok, &requests, &mut watch).unwrap();
        let steps = events.iter().filter(|p| p.stage == *stage).count();
        assert!(steps > 3, "{method}: {steps} events of {stage}: {events:?}");
        gpt_core::undo_all(&mut m, &undos).unwrap();

        let mut seen = 0;
        let mut stop = |_: &Progress| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let err = apply_edits(editor.as_mut(), &mut m, &tok, &requests, &mut stop).unwrap_err();
        assert!(
            matches!(err, gpt_core::Error::Cancelled(_)),
            "{method}: {err:?}"
        );
        assert!(matches!(Error::from(err), Error::Cancelled(_)));
        for (l, w) in snapshot.iter().enumerate() {
            assert!(
                m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w),
                "{method}"
            );
        }
    }
}
