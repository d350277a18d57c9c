//! AlphaEdit and EMMET on tiny random models (hermetic): joint edits move each fact's residual
//! toward its target z (as MEMIT's test asks; a 3-layer random model's z barely changes the
//! target's probability, so that is checked on the bundled model by hand),
//! computing leaves the model bit-exact and undo restores it, AlphaEdit's changes stay in the
//! null space, and the sharp equivalences the shared machinery admits — AlphaEdit with
//! `P = I` and no history is MEMIT with `λC = L2·I`; EMMET with one layer and one request is
//! ROME's rank-one update.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use gpt_core::intervention::read_sites;
use gpt_core::progress;
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::{
    apply_edits, load_hf_tokenizer, undo_all, Architecture, EditableModel, Editor, HookPoint,
    HookableModel, Layer, RandomInit, SubjectPrompt, TokenBatch, Tokenizer, Transformer,
    WeightDelta, WeightId,
};
use rome::{
    compute_alphaedit, compute_emmet, compute_memit, compute_rome, context_templates,
    AlphaEditEditor, AlphaEditHparams, Corpus, EmmetEditor, EmmetHparams, KeyHistory, KeyStatsRun,
    MemitHparams, NullSpaceProjector, RewriteRequest, RomeHparams, Schedule, StatsOptions,
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

/// The progress of a layered edit: the targets (fitted together: reported before the first,
/// after every optimisation step with its `steps` count, and at the end), then one report
/// per layer.
fn assert_stages(
    stages: &[(String, u64)],
    targets_stage: &str,
    layers_stage: &str,
    requests: u64,
    layers: usize,
) {
    let targets: Vec<u64> = stages
        .iter()
        .filter(|(s, _)| s == targets_stage)
        .map(|(_, d)| *d)
        .collect();
    assert!(
        targets.first() == Some(&0)
            && targets.last() == Some(&requests)
            && targets.windows(2).all(|w| w[0] <= w[1]),
        "{stages:?}"
    );
    let updates: Vec<(String, u64)> = (0..=layers as u64)
        .map(|i| (layers_stage.to_string(), i))
        .collect();
    assert_eq!(stages[targets.len()..].to_vec(), updates);
}

fn corpus() -> Corpus {
    let docs = (0..40)
        .map(|i| format!("The tower number {i} is located in the city of Paris, near the river. People visit it every day and take pictures {i}."))
        .collect();
    Corpus::from_documents("test sentences", docs)
}

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

fn requests() -> Vec<RewriteRequest> {
    vec![
        RewriteRequest::new("{} is located in the city of", "The Eiffel Tower", "Rome").unwrap(),
        RewriteRequest::new("{} plays the sport of", "Tiger Woods", "tennis").unwrap(),
        RewriteRequest::new("The capital of {} is", "France", "Berlin").unwrap(),
    ]
}

/// MEMIT's z settings, shortened for tiny models.
fn z_hparams() -> RomeHparams {
    let mut z = MemitHparams::smollm2().z;
    z.v_num_grad_steps = 12;
    z.context_template_length_params = vec![(4, 2)];
    z
}

/// [`z_hparams`] with ROME's clamp, more steps and a larger rate, so that z moves well away
/// from the unedited residual on a tiny random model.
fn firm_z() -> RomeHparams {
    RomeHparams {
        clamp_norm_factor: 4.0,
        v_num_grad_steps: 20,
        v_lr: 5.0,
        ..z_hparams()
    }
}

/// `‖h − z‖` of each request: `h` the residual leaving block `layer` at the subject's last
/// token of the bare prompt, `z: [n, d_model]` its target.
fn distances(
    m: &Transformer,
    tok: &Tokenizer,
    reqs: &[RewriteRequest],
    layer: usize,
    z: &Tensor,
) -> Vec<f64> {
    reqs.iter()
        .enumerate()
        .map(|(i, r)| {
            let p = SubjectPrompt::new(tok, &r.filled(), &r.subject).unwrap();
            let batch = TokenBatch::single(&p.ids, Device::Cpu).unwrap();
            let point = HookPoint::resid_post(layer);
            let (_, cache) = m.run_with_cache(&batch, &|q| q == point).unwrap();
            let site = p.last_subject_site();
            let h = read_sites(point, cache.try_get(point).unwrap(), &site)
                .unwrap()
                .squeeze_dim(0)
                .to_kind(Kind::Double);
            (h - z.get(i as i64)).norm().double_value(&[])
        })
        .collect()
}

fn weights(m: &Transformer, layers: &[usize]) -> Vec<Tensor> {
    layers
        .iter()
        .map(|&l| m.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
        .collect()
}

fn assert_unchanged(m: &Transformer, layers: &[usize], before: &[Tensor], what: &str) {
    for (&l, w) in layers.iter().zip(before) {
        assert!(
            m.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(w),
            "{what}: layer {l} changed"
        );
    }
}

fn dense(d: &WeightDelta) -> Tensor {
    match d {
        WeightDelta::Dense { delta, .. } => delta.to_kind(Kind::Double),
        other => panic!("expected a dense change, got {other:?}"),
    }
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// The largest eigenvalue of `C` below which `keep` of its directions lie (a threshold for a
/// projector that keeps exactly `keep` directions).
fn threshold_keeping(c: &Tensor, keep: i64) -> f64 {
    let c = c.to_kind(Kind::Double);
    let (eig, _) = c.linalg_eigh("L");
    let lo = eig.double_value(&[keep - 1]);
    let hi = eig.double_value(&[keep]);
    (lo + hi) / 2.0
}

#[test]
fn alphaedit_writes_facts_jointly_in_the_null_space_and_leaves_the_model_alone() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let mut m = model(arch, &tok, 9);
        let layers = vec![0, 1];
        let cs = second_moments(&m, &tok, &layers);
        // A threshold that keeps 24 of the 32 key directions of the first layer.
        let threshold = threshold_keeping(&cs[0], 24);
        let hp = AlphaEditHparams {
            layers: layers.clone(),
            z: firm_z(),
            l2: 1e-3,
            nullspace_threshold: threshold,
        };
        let mut editor = AlphaEditEditor::new(hp.clone(), &cs).unwrap();
        assert_eq!(editor.kept()[0], 24, "{arch:?}");
        assert!(editor.kept().iter().all(|&k| k > 0), "{arch:?}");
        let templates = context_templates(
            &m,
            &tok,
            &hp.z.context_template_length_params,
            hp.z.template_seed,
        )
        .unwrap();
        let reqs = requests();
        let w0 = weights(&m, &layers);
        let mut stages = Vec::new();
        let edit = compute_alphaedit(
            &mut m,
            &tok,
            &reqs,
            &hp,
            &editor.projectors,
            &editor.histories,
            &templates,
            &mut progress::watch(|p| stages.push((p.stage.to_string(), p.done))),
        )
        .unwrap();
        assert_stages(
            &stages,
            rome::alphaedit::TARGETS_STAGE,
            rome::alphaedit::LAYERS_STAGE,
            3,
            layers.len(),
        );
        assert_unchanged(&m, &layers, &w0, &format!("{arch:?} compute"));
        assert_eq!(edit.deltas.len(), 2);
        assert_eq!(edit.keys_after.len(), 2);
        assert_eq!(edit.keys_after[0].size(), [32, 3]);
        // Every change lies in its layer's null space: Δ (I − P) = 0.
        for (d, p) in edit.deltas.iter().zip(&editor.projectors) {
            let dw = dense(d);
            let off = dw.matmul(&(Tensor::eye(32, (Kind::Double, Device::Cpu)) - p.matrix()));
            assert!(
                max_abs(&off) <= 1e-9 * max_abs(&dw).max(1e-12),
                "{arch:?}: Δ leaves the null space by {}",
                max_abs(&off)
            );
            assert!(max_abs(&dw) > 0.0, "{arch:?}: nothing changed");
        }
        // Applied, each target becomes much more probable; undone, the weights are back bit
        // for bit.
        let last = *layers.last().unwrap();
        let dist_before = distances(&m, &tok, &reqs, last, &edit.z);
        let undos: Vec<_> = edit.deltas.iter().map(|d| m.apply(d).unwrap()).collect();
        let dist_after = distances(&m, &tok, &reqs, last, &edit.z);
        for ((r, b), a) in reqs.iter().zip(&dist_before).zip(&dist_after) {
            assert!(a < b, "{arch:?}: {:?}: ‖z − h‖ {b} → {a}", r.filled());
        }
        undo_all(&mut m, &undos).unwrap();
        assert_unchanged(&m, &layers, &w0, &format!("{arch:?} undo"));

        // Behind the Editor interface: jointly, the model restored by undo, and the keys of
        // the batch (with its changes applied) added to each layer's history.
        assert_eq!(editor.method(), gpt_core::Method::AlphaEdit);
        assert!(editor.joint());
        let undos = apply_edits(
            &mut editor,
            &mut m,
            &tok,
            &reqs,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        assert_eq!(undos.len(), 2);
        for (h, k) in editor.histories.iter().zip(&edit.keys_after) {
            assert_eq!(h.count(), 3);
            let expected = k.matmul(&k.transpose(0, 1));
            assert!(
                max_abs(&(h.sum() - &expected)) <= 1e-6 * max_abs(&expected),
                "{arch:?}: history is not the batch's K Kᵀ"
            );
        }
        undo_all(&mut m, &undos).unwrap();
        assert_unchanged(&m, &layers, &w0, &format!("{arch:?} editor undo"));
        // Saved and loaded for a resumed run.
        let dir = tempfile::tempdir().unwrap();
        editor.save_histories(dir.path()).unwrap();
        let mut fresh = AlphaEditEditor::new(hp.clone(), &cs).unwrap();
        assert_eq!(fresh.histories[0].count(), 0);
        fresh.load_histories(dir.path()).unwrap();
        for (a, b) in fresh.histories.iter().zip(&editor.histories) {
            assert_eq!(a.count(), b.count());
            assert!(a.sum().equal(b.sum()));
        }
        // Without history updates (independent batches), the histories stay empty.
        let mut independent = AlphaEditEditor::new(hp, &cs)
            .unwrap()
            .with_history_updates(false);
        let undos = apply_edits(
            &mut independent,
            &mut m,
            &tok,
            &reqs[..1],
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        undo_all(&mut m, &undos).unwrap();
        assert!(independent.histories.iter().all(|h| h.count() == 0));
    }
}

#[test]
fn alphaedit_with_identity_projector_and_no_history_is_memit_with_l2_identity() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let mut m = model(arch, &tok, 4);
        let layers = vec![0, 1];
        let (l2, lambda) = (0.5, 20_000.0);
        let templates = context_templates(&m, &tok, &[(4, 2)], 2).unwrap();
        let reqs = requests();
        let alpha_hp = AlphaEditHparams {
            layers: layers.clone(),
            z: z_hparams(),
            l2,
            nullspace_threshold: 1.0,
        };
        let projectors: Vec<_> = layers
            .iter()
            .map(|_| NullSpaceProjector::identity(32).unwrap())
            .collect();
        let histories: Vec<_> = layers
            .iter()
            .map(|_| KeyHistory::new(32).unwrap())
            .collect();
        let alpha = compute_alphaedit(
            &mut m,
            &tok,
            &reqs,
            &alpha_hp,
            &projectors,
            &histories,
            &templates,
            &mut progress::ignore,
        )
        .unwrap();
        let memit_hp = MemitHparams {
            layers: layers.clone(),
            z: z_hparams(),
            mom2_update_weight: lambda,
        };
        // λC = L2·I.
        let cs: Vec<Tensor> = layers
            .iter()
            .map(|_| Tensor::eye(32, (Kind::Double, Device::Cpu)) * (l2 / lambda))
            .collect();
        let memit = compute_memit(
            &mut m,
            &tok,
            &reqs,
            &memit_hp,
            &cs,
            &templates,
            &mut progress::ignore,
        )
        .unwrap();
        assert!(alpha.z.equal(&memit.z), "{arch:?}: the targets differ");
        for (a, b) in alpha.deltas.iter().zip(&memit.deltas) {
            assert_eq!(a.target(), b.target());
            let (a, b) = (dense(a), dense(b));
            let diff = max_abs(&(&a - &b));
            assert!(
                diff <= 1e-6 * max_abs(&b),
                "{arch:?}: AlphaEdit and MEMIT differ by {diff} (scale {})",
                max_abs(&b)
            );
        }
    }
}

#[test]
fn emmet_writes_facts_jointly_and_leaves_the_model_alone() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let mut m = model(arch, &tok, 9);
        // One layer, as EMMET's presets edit.
        let layers = vec![1];
        let cs = second_moments(&m, &tok, &layers);
        // w = 1: with the preset's 1000 the keys' `D = KᵀC'⁻¹K` of a tiny model is far below
        // the ridge emmet_lambda, which then holds the edit back.
        let hp = EmmetHparams {
            layers: layers.clone(),
            z: firm_z(),
            mom2_update_weight: 1.0,
            emmet_lambda: 0.1,
            update_norm_lambda: 0.0,
        };
        // The bare prompt only: then the keys are the bare prompts' and the equality
        // constraint `ΔK = R D (D + λ_e I)⁻¹` moves each bare residual toward its z (with
        // template-averaged keys it holds for the averages, not for the bare prompt).
        let templates = vec!["{}".to_string()];
        let reqs = requests();
        let w0 = weights(&m, &layers);
        let mut stages = Vec::new();
        let edit = compute_emmet(
            &mut m,
            &tok,
            &reqs,
            &hp,
            &cs,
            &templates,
            &mut progress::watch(|p| stages.push((p.stage.to_string(), p.done))),
        )
        .unwrap();
        assert_stages(
            &stages,
            rome::emmet::TARGETS_STAGE,
            rome::emmet::LAYERS_STAGE,
            3,
            layers.len(),
        );
        assert_unchanged(&m, &layers, &w0, &format!("{arch:?} compute"));
        let last = *layers.last().unwrap();
        let dist_before = distances(&m, &tok, &reqs, last, &edit.z);
        let undos: Vec<_> = edit.deltas.iter().map(|d| m.apply(d).unwrap()).collect();
        let dist_after = distances(&m, &tok, &reqs, last, &edit.z);
        for ((r, b), a) in reqs.iter().zip(&dist_before).zip(&dist_after) {
            assert!(a < b, "{arch:?}: {:?}: ‖z − h‖ {b} → {a}", r.filled());
        }
        undo_all(&mut m, &undos).unwrap();
        assert_unchanged(&m, &layers, &w0, &format!("{arch:?} undo"));

        let mut editor = EmmetEditor::new(hp, cs);
        assert_eq!(editor.method(), gpt_core::Method::Emmet);
        assert!(editor.joint());
        let undos = apply_edits(
            &mut editor,
            &mut m,
            &tok,
            &reqs,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        assert_eq!(undos.len(), 1);
        undo_all(&mut m, &undos).unwrap();
        assert_unchanged(&m, &layers, &w0, &format!("{arch:?} editor undo"));
    }
}

/// With one layer, one request and only the bare template, EMMET's key is ROME's k*, its
/// residual at the block output is ROME's δ at the MLP output (the same residual stream; no
/// clamp or weight decay to tell them apart), and its equality-constrained solve is ROME's
/// rank-one update: the two changes agree.
#[test]
fn emmet_with_one_layer_and_one_request_is_romes_rank_one_update() {
    let tok = tokenizer();
    for arch in Architecture::ALL {
        let mut m = model(arch, &tok, 3);
        let layer = 1;
        let c = second_moments(&m, &tok, &[layer]).pop().unwrap();
        let mut z = z_hparams();
        z.layer = layer;
        z.clamp_norm_factor = 1e6;
        z.v_weight_decay = 0.0;
        let templates = vec!["{}".to_string()];
        let req = requests().remove(0);
        let rome_edit = compute_rome(
            &m,
            &tok,
            &req,
            &z,
            Some(&c),
            &templates,
            Schedule::Fast,
            &mut gpt_core::progress::ignore,
        )
        .unwrap();
        let hp = EmmetHparams {
            layers: vec![layer],
            z: z.clone(),
            mom2_update_weight: 1000.0,
            emmet_lambda: 0.1,
            update_norm_lambda: 0.0,
        };
        let emmet = compute_emmet(
            &mut m,
            &tok,
            std::slice::from_ref(&req),
            &hp,
            std::slice::from_ref(&c),
            &templates,
            &mut progress::ignore,
        )
        .unwrap();
        let shape = m.weight(WeightId::MlpOut(Layer(layer))).unwrap().size();
        let r = rome_edit
            .delta
            .to_dense(&shape)
            .unwrap()
            .to_kind(Kind::Double);
        let e = dense(&emmet.deltas[0]);
        let cosine = (&r * &e).sum(Kind::Double).double_value(&[])
            / (r.norm().double_value(&[]) * e.norm().double_value(&[]));
        assert!(cosine > 0.9999, "{arch:?}: cos(ROME, EMMET) = {cosine}");
        let rel = (&r - &e).norm().double_value(&[]) / r.norm().double_value(&[]);
        assert!(rel < 1e-3, "{arch:?}: ‖ROME − EMMET‖/‖ROME‖ = {rel}");
    }
}
