//! Property tests of gpt-core over random-weight tiny GPT-2, Llama, GPT-NeoX and GPT-J models: hook names,
//! no-op interventions, cache and patch, hook order, exact edit undo, padding, KV-cache
//! decoding, stop/replace semantics, autograd through interventions, resuming passes with
//! `forward_blocks`, reduced precision and seed reproducibility.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::path::Path;

use gpt_core::intervention::from_fn;
use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, IndexOp, Kind, Tensor};
use gpt_core::{
    generate, load_model, Architecture, BlockSite, BlocksInput, EditableModel, Error,
    ForwardOptions, GenerateOptions, HookAction, HookPoint, HookableModel, KvCache, Layer,
    LoadOptions, NoHooks, Outcome, Padding, Patch, RandomInit, ResumableModel, Sampling, Sites,
    TokenBatch, Transformer, WeightDelta, WeightId,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

const VOCAB: i64 = 64;

const TOL_F32: f64 = 1e-4;

/// `cases` cases, or `PROPTEST_CASES` when set (for longer local runs).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn model(arch: Architecture, seed: i64) -> Transformer {
    model_of_kind(arch, seed, Kind::Float)
}

fn model_of_kind(arch: Architecture, seed: i64, kind: Kind) -> Transformer {
    Transformer::random(
        &tiny_config(arch),
        RandomInit { seed, std: 0.5 },
        Device::Cpu,
        kind,
    )
    .expect("random model")
}

/// f32 for the stated tolerance, f64 to show that the remaining differences are rounding.
fn float_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![3 => Just(Kind::Float), 1 => Just(Kind::Double)]
}

/// Tolerance of comparisons between passes that differ only in summation order (batch
/// shape, padding, KV cache), relative to `max(1, max |logit|)`: 1e-10 in f64, 1e-4 in f32.
///
/// With `std: 0.5` weights the residual stream reaches ~50 while logits stay ~5-10, so f32
/// rounding alone gives differences of up to ~1e-5 *relative* (seen: 6e-5 at |logit| 6.9,
/// 1.3e-5 at 8.8), where the same cases in f64 differ by 0 to 2e-15. The f64 cases are what
/// show the computations agree; the f32 bound is that 1e-5 with a 10x margin
/// for the tail.
fn tol(kind: Kind) -> f64 {
    if kind == Kind::Double {
        1e-10
    } else {
        TOL_F32
    }
}

/// Every family that loads (the strategy downstream crates get).
fn arch() -> impl Strategy<Value = Architecture> {
    gpt_core::testing::arb_architecture()
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![Just(Padding::Left), Just(Padding::Right)]
}

/// Token sequences of length `min_len..=12` over the vocabulary of 64.
fn tokens(min_len: usize) -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0..VOCAB, min_len..=12)
}

/// Batches of 1 to 3 sequences of random lengths.
fn seqs(min_len: usize) -> impl Strategy<Value = Vec<Vec<i64>>> {
    prop::collection::vec(tokens(min_len), 1..=3)
}

/// Logits at each row's last real token only.
fn last_only() -> ForwardOptions<'static> {
    ForwardOptions::last()
}

fn bit_equal(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.equal(b)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a - b).abs().max().double_value(&[])
}

fn prop_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.size(), b.size(), "{}: shapes differ", what);
    let d = max_diff(a, b);
    prop_assert!(d <= tol, "{}: max abs difference {:e} > {:e}", what, d, tol);
    Ok(())
}

/// `prop_close` with `tol` scaled by `max(1, max |b|)`.
fn prop_close_rel(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<(), TestCaseError> {
    let scale = b.abs().max().double_value(&[]).max(1.0);
    prop_close(what, a, b, tol * scale)
}

fn any_hook_point() -> impl Strategy<Value = HookPoint> {
    prop_oneof![
        Just(HookPoint::Embed),
        Just(HookPoint::PosEmbed),
        Just(HookPoint::LnFinal),
        (0usize..1000, 0usize..BlockSite::ALL.len())
            .prop_map(|(l, s)| HookPoint::block(l, BlockSite::ALL[s])),
    ]
}

/// Strings near the hook-name grammar: valid names with one character inserted, removed or
/// replaced, and free-form strings over the alphabet of hook names.
fn hook_like_string() -> impl Strategy<Value = String> {
    let mutated =
        (any_hook_point(), any::<Index>(), 0u8..3, "[a-z0-9._+ -]").prop_map(|(p, at, op, c)| {
            let mut s: Vec<char> = p.to_string().chars().collect();
            let i = at.index(s.len() + 1);
            match op {
                0 => s.insert(i, c.chars().next().unwrap_or('x')),
                1 if i < s.len() => {
                    s.remove(i);
                }
                _ if i < s.len() => s[i] = c.chars().next().unwrap_or('x'),
                _ => {}
            }
            s.into_iter().collect()
        });
    prop_oneof![
        mutated,
        "(blocks\\.)?[0-9+-]{0,3}\\.?(attn\\.|mlp\\.|ln_final\\.)?(hook_)?[a-z_]{0,14}",
        "\\PC{0,30}",
    ]
}

/// The model's activation shape at `point` for a batch of `b` rows and `t` positions.
fn expected_shape(model: &Transformer, point: HookPoint, b: i64, t: i64) -> Vec<i64> {
    let c = model.config();
    let d = c.d_model as i64;
    match point {
        HookPoint::Block(_, BlockSite::Z) => vec![b, t, c.n_heads as i64, c.d_head as i64],
        HookPoint::Block(_, BlockSite::MlpPost) => vec![b, t, c.d_mlp as i64],
        _ => vec![b, t, d],
    }
}

/// Every weight id of a 2-layer model of `arch`.
fn weight_ids(arch: Architecture) -> Vec<WeightId> {
    let mut ids = vec![WeightId::Embed, WeightId::Unembed];
    for l in 0..2 {
        let l = Layer(l);
        ids.extend([
            WeightId::AttnQ(l),
            WeightId::AttnK(l),
            WeightId::AttnV(l),
            WeightId::AttnOut(l),
            WeightId::MlpIn(l),
            WeightId::MlpOut(l),
        ]);
        if arch == Architecture::Llama {
            ids.push(WeightId::MlpGate(l));
        }
    }
    ids
}

/// Deterministic pseudo-random values `scale · sin(a·i + b)` (zero only where `a·i + b` is a
/// multiple of π, which for `b ∉ πℤ` and the `a` drawn here does not happen in `0..n`).
fn wave(n: i64, a: f64, b: f64, scale: f64) -> Tensor {
    (Tensor::arange(n, (Kind::Float, Device::Cpu)) * a + b).sin() * scale
}

#[derive(Clone, Debug)]
struct EditSpec {
    which: Index,
    rank_one: bool,
    scale: f64,
    a: f64,
    b: f64,
}

fn edit_spec() -> impl Strategy<Value = EditSpec> {
    (
        any::<Index>(),
        any::<bool>(),
        0.1f64..2.0,
        0.3f64..3.0,
        0.1f64..1.5,
    )
        .prop_map(|(which, rank_one, scale, a, b)| EditSpec {
            which,
            rank_one,
            scale,
            a,
            b,
        })
}

fn make_delta(model: &Transformer, spec: &EditSpec) -> WeightDelta {
    let ids = weight_ids(model.architecture());
    let target = ids[spec.which.index(ids.len())];
    let shape = model.weight(target).expect("valid weight id").size();
    let (out, inp) = (shape[0], shape[1]);
    if spec.rank_one {
        WeightDelta::RankOne {
            target,
            u: wave(out, spec.a, spec.b, spec.scale),
            v: wave(inp, spec.a * 0.7, -spec.b, 1.0),
        }
    } else {
        WeightDelta::Dense {
            target,
            delta: wave(out * inp, spec.a, spec.b, spec.scale).reshape([out, inp]),
        }
    }
}

/// Copies of every weight of the model.
fn snapshot(model: &Transformer) -> Vec<(WeightId, Tensor)> {
    weight_ids(model.architecture())
        .into_iter()
        .map(|id| (id, model.weight(id).expect("weight").copy()))
        .collect()
}

fn same_weights(model: &Transformer, snap: &[(WeightId, Tensor)]) -> Option<WeightId> {
    snap.iter()
        .find(|(id, w)| !bit_equal(model.weight(*id).expect("weight"), w))
        .map(|(id, _)| *id)
}

#[test]
fn every_hook_point_prints_and_parses_back() {
    let mut points = vec![HookPoint::Embed, HookPoint::PosEmbed, HookPoint::LnFinal];
    for l in [0, 1, 9, 10, 47, 999] {
        points.extend(BlockSite::ALL.iter().map(|&s| HookPoint::block(l, s)));
    }
    for p in points {
        let name = p.to_string();
        let back: HookPoint = name.parse().expect("parse printed name");
        assert_eq!(back, p, "{name}");
        let json = serde_json::to_string(&p).expect("serialize");
        assert_eq!(json, format!("\"{name}\""));
        let de: HookPoint = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(de, p);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Property 1: Printing then parsing a hook point is the identity.
    #[test]
    fn hook_names_round_trip(p in any_hook_point()) {
        let name = p.to_string();
        let back: HookPoint = name.parse()?;
        prop_assert_eq!(back, p);
    }

    /// Property 1: A string either fails to parse (with `UnknownHookPoint` naming it) or is
    /// exactly the printed form of what it parses to.
    #[test]
    fn hook_name_parsing_is_strict(s in hook_like_string()) {
        match s.parse::<HookPoint>() {
            Ok(p) => prop_assert_eq!(p.to_string(), s),
            Err(Error::UnknownHookPoint(name)) => prop_assert_eq!(name, s),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Property 2: Interventions that change nothing give bit-identical logits.
    #[test]
    fn noop_interventions_are_exact(
        arch in arch(), seed in 0i64..1000, seqs in seqs(1), padding in padding(),
        pad_id in 0..VOCAB,
    ) {
        let model = model(arch, seed);
        let batch = TokenBatch::pad(&seqs, padding, pad_id, Device::Cpu)?;
        let plain = model.forward(&batch)?;
        let t = batch.len() as i64;
        prop_assert_eq!(plain.size(), vec![seqs.len() as i64, t, VOCAB]);

        let no_hooks = model.forward_hooked(&batch, &mut NoHooks)?.logits()?;
        prop_assert!(bit_equal(&plain, &no_hooks), "NoHooks");

        let mut visits = 0usize;
        let mut watch_all = from_fn(|_| true, |_, _| {
            visits += 1;
            Ok(HookAction::Continue)
        });
        let watched = model.forward_hooked(&batch, &mut watch_all)?.logits()?;
        prop_assert!(bit_equal(&plain, &watched), "from_fn Continue");
        prop_assert_eq!(visits, model.hook_points().len());

        let mut copy_all = from_fn(|_| true, |_, act| Ok(HookAction::Replace(act.copy())));
        let copied = model.forward_hooked(&batch, &mut copy_all)?.logits()?;
        prop_assert!(bit_equal(&plain, &copied), "Replace with an identical copy");
    }

    /// Property 3: Patching a run's own activations back into it changes nothing.
    #[test]
    fn cache_then_patch_is_identity(
        arch in arch(), seed in 0i64..1000, seqs in seqs(1), padding in padding(),
        positions in prop::collection::vec(any::<Index>(), 0..6),
        only in prop::collection::vec(any::<Index>(), 1..5),
    ) {
        let model = model(arch, seed);
        let batch = TokenBatch::pad(&seqs, padding, 0, Device::Cpu)?;
        let (logits, cache) = model.run_with_cache(&batch, &|_| true)?;
        prop_assert!(bit_equal(&logits, &model.forward(&batch)?));
        prop_assert_eq!(cache.points().collect::<Vec<_>>(), model.hook_points());

        let all = model
            .forward_hooked(&batch, &mut Patch::new(&cache, Sites::all()))?
            .logits()?;
        prop_close("Sites::all()", &all, &logits, 1e-6)?;

        let t = batch.len();
        let positions: Vec<i64> = positions.iter().map(|i| i.index(t) as i64).collect();
        let some = model
            .forward_hooked(&batch, &mut Patch::new(&cache, Sites::positions(positions)))?
            .logits()?;
        prop_close("Sites::positions", &some, &logits, 1e-6)?;

        let points = model.hook_points();
        let chosen: Vec<HookPoint> = only.iter().map(|i| points[i.index(points.len())]).collect();
        let restricted = model
            .forward_hooked(&batch, &mut Patch::new(&cache, Sites::all()).only(chosen))?
            .logits()?;
        prop_close("Patch::only", &restricted, &logits, 1e-6)?;
    }

    /// Property 3: A one-row cache patched into a batch of copies of that row (broadcast over the
    /// batch) gives the one-row logits in every row.
    #[test]
    fn patch_broadcasts_a_single_row(
        arch in arch(), seed in 0i64..1000, seq in tokens(1), rows in 2usize..=3,
        kind in float_kind(),
    ) {
        let model = model_of_kind(arch, seed, kind);
        let one = TokenBatch::single(&seq, Device::Cpu)?;
        let (logits, cache) = model.run_with_cache(&one, &|_| true)?;
        let many = TokenBatch::pad(&vec![seq.clone(); rows], Padding::Right, 0, Device::Cpu)?;
        let patched = model
            .forward_hooked(&many, &mut Patch::new(&cache, Sites::all()))?
            .logits()?;
        for r in 0..rows as i64 {
            prop_close_rel("broadcast patch row", &patched.i(r..r + 1), &logits, tol(kind))?;
        }
    }

    /// Property 4: Hook points are visited once each, in sorted order, exactly `hook_points()`,
    /// with the documented shapes.
    #[test]
    fn hook_points_are_visited_in_order(
        arch in arch(), seed in 0i64..1000, seqs in seqs(1), padding in padding(),
    ) {
        let model = model(arch, seed);
        let points = model.hook_points();
        prop_assert!(points.windows(2).all(|w| w[0] < w[1]), "hook_points() not strictly sorted");
        prop_assert_eq!(points.contains(&HookPoint::PosEmbed), arch == Architecture::Gpt2);
        // Seven sites per block; a parallel block has no `hook_resid_mid` (there is no
        // residual between its attention and its MLP).
        let per_block = if tiny_config(arch).parallel_attn_mlp { 6 } else { 7 };
        prop_assert_eq!(points.len(), 2 + per_block * 2 + usize::from(arch == Architecture::Gpt2));

        let batch = TokenBatch::pad(&seqs, padding, 0, Device::Cpu)?;
        let (b, t) = (seqs.len() as i64, batch.len() as i64);
        let visited = RefCell::new(Vec::new());
        let mut record = from_fn(|_| true, |p, act| {
            visited.borrow_mut().push((p, act.size()));
            Ok(HookAction::Continue)
        });
        let _ = model.forward_hooked(&batch, &mut record)?.logits()?;
        let visited = visited.into_inner();
        let order: Vec<HookPoint> = visited.iter().map(|(p, _)| *p).collect();
        prop_assert_eq!(&order, &points);
        for (p, shape) in visited {
            prop_assert_eq!(shape, expected_shape(&model, p, b, t), "shape at {}", p);
        }
    }

    /// Property 5: Edits change the model; undoing them in reverse order restores every weight
    /// bit-exactly; an undo out of order is an error that changes nothing.
    #[test]
    fn edits_undo_exactly(
        arch in arch(), seed in 0i64..1000, seq in tokens(2),
        specs in prop::collection::vec(edit_spec(), 1..=4),
        pair in (edit_spec(), edit_spec()),
    ) {
        let mut model = model(arch, seed);
        let batch = TokenBatch::single(&seq, Device::Cpu)?;
        let original = snapshot(&model);
        let logits0 = model.forward(&batch)?;

        // Each edit alone changes the weight and the logits, and its undo restores both.
        for spec in &specs {
            let delta = make_delta(&model, spec);
            let undo = model.apply(&delta)?;
            prop_assert!(
                same_weights(&model, &original).is_some(),
                "{} unchanged by the edit", delta.target()
            );
            prop_assert!(
                !bit_equal(&model.forward(&batch)?, &logits0),
                "editing {} did not change the logits", delta.target()
            );
            model.undo(&undo)?;
            prop_assert_eq!(same_weights(&model, &original), None);
            prop_assert!(bit_equal(&model.forward(&batch)?, &logits0));
        }

        // A stack of edits (later ones may hit the same matrix) undone in reverse order.
        // (Logits are not compared edit by edit here: earlier edits can saturate a softmax or
        // an activation so that a later edit leaves the logits bit-identical.)
        let mut undos = Vec::new();
        for spec in &specs {
            let delta = make_delta(&model, spec);
            let before = model.weight(delta.target())?.copy();
            let undo = model.apply(&delta)?;
            prop_assert_eq!(undo.target(), delta.target());
            prop_assert!(bit_equal(undo.original(), &before));
            prop_assert!(
                !bit_equal(model.weight(delta.target())?, &before),
                "{} unchanged by the edit", delta.target()
            );
            undos.push(undo);
        }
        prop_assert!(!bit_equal(&model.forward(&batch)?, &logits0));
        while let Some(undo) = undos.pop() {
            model.undo(&undo)?;
        }
        prop_assert_eq!(same_weights(&model, &original), None);
        prop_assert!(bit_equal(&model.forward(&batch)?, &logits0));

        // Out of order: apply A then B, undo A first.
        let undo_a = model.apply(&make_delta(&model, &pair.0))?;
        let after_a = snapshot(&model);
        let undo_b = model.apply(&make_delta(&model, &pair.1))?;
        let after_b = snapshot(&model);
        let logits_b = model.forward(&batch)?;
        let err = model.undo(&undo_a);
        prop_assert!(
            matches!(err, Err(Error::UndoOutOfOrder { .. })),
            "out-of-order undo gave {err:?}"
        );
        prop_assert_eq!(same_weights(&model, &after_b), None);
        prop_assert!(bit_equal(&model.forward(&batch)?, &logits_b));
        // B is still the top of the stack and undoes cleanly; A's record was not lost by the
        // failed call and now undoes too, restoring every bit.
        model.undo(&undo_b)?;
        prop_assert_eq!(same_weights(&model, &after_a), None);
        model.undo(&undo_a)?;
        prop_assert_eq!(same_weights(&model, &original), None);
        let again = model.undo(&undo_a);
        prop_assert!(matches!(again, Err(Error::AlreadyUndone { .. })), "{again:?}");
    }

    /// Property 6: Left and right padding give the same logits for real tokens, and each padded row
    /// equals that row run alone.
    #[test]
    fn padding_does_not_change_real_tokens(
        arch in arch(), seed in 0i64..1000, seqs in seqs(1), pad_id in 0..VOCAB,
        kind in float_kind(),
    ) {
        let model = model_of_kind(arch, seed, kind);
        let left = TokenBatch::pad(&seqs, Padding::Left, pad_id, Device::Cpu)?;
        let right = TokenBatch::pad(&seqs, Padding::Right, pad_id, Device::Cpu)?;
        let (ll, rl) = (model.forward(&left)?, model.forward(&right)?);
        let last_left = model
            .forward_with(&left, last_only(), &mut NoHooks)?
            .logits()?;
        let last_right = model
            .forward_with(&right, last_only(), &mut NoHooks)?
            .logits()?;
        let t = left.len() as i64;
        for (r, seq) in seqs.iter().enumerate() {
            let (r, n) = (r as i64, seq.len() as i64);
            let alone = model.forward(&TokenBatch::single(seq, Device::Cpu)?)?.i(0);
            let l = ll.i((r, t - n..t));
            let rr = rl.i((r, 0..n));
            prop_close_rel("left vs right", &l, &rr, tol(kind))?;
            prop_close_rel("right vs alone", &rr, &alone, tol(kind))?;
            prop_close_rel("left vs alone", &l, &alone, tol(kind))?;
            prop_close_rel("LogitsAt::Last, left", &last_left.i(r), &alone.i(n - 1), tol(kind))?;
            prop_close_rel("LogitsAt::Last, right", &last_right.i(r), &alone.i(n - 1), tol(kind))?;
        }
    }

    /// Property 7: A prefix pass into a KV cache followed by one-token passes gives the full pass's
    /// logits at each later position.
    #[test]
    fn kv_cache_decoding_matches_full_pass(
        arch in arch(), seed in 0i64..1000, seq in tokens(2), split in any::<Index>(),
        kind in float_kind(),
    ) {
        let model = model_of_kind(arch, seed, kind);
        let n = seq.len();
        let k = 1 + split.index(n - 1); // prefix length in 1..n
        let full = model.forward(&TokenBatch::single(&seq, Device::Cpu)?)?.i(0);

        let mut cache = KvCache::new();
        let prefix = TokenBatch::single(&seq[..k], Device::Cpu)?;
        let last = model
            .forward_with(
                &prefix,
                ForwardOptions::last().with_cache(&mut cache),
                &mut NoHooks,
            )?
            .logits()?;
        prop_assert_eq!(cache.len(), k);
        prop_close_rel("prefix last logits", &last.i(0), &full.i(k as i64 - 1), tol(kind))?;

        for (j, &tok) in seq.iter().enumerate().skip(k) {
            let j = j as i64;
            let step = TokenBatch::with_positions(
                Tensor::from_slice(&[tok]).view([1, 1]),
                Tensor::ones([1, j + 1], (Kind::Int64, Device::Cpu)),
                Tensor::from_slice(&[j]).view([1, 1]),
            )?;
            let logits = model
                .forward_with(
                    &step,
                    ForwardOptions::last().with_cache(&mut cache),
                    &mut NoHooks,
                )?
                .logits()?;
            prop_assert_eq!(cache.len(), j as usize + 1);
            prop_close_rel("one-token pass", &logits.i(0), &full.i(j), tol(kind))?;
        }
    }

    /// Property 7: The same for a padded batch: a padded prefix in the cache, then each row's last
    /// token in one pass.
    #[test]
    fn kv_cache_decoding_with_padding(
        arch in arch(), seed in 0i64..1000, seqs in seqs(2), padding in padding(),
        kind in float_kind(),
    ) {
        let model = model_of_kind(arch, seed, kind);
        let prefixes: Vec<Vec<i64>> = seqs.iter().map(|s| s[..s.len() - 1].to_vec()).collect();
        let prefix = TokenBatch::pad(&prefixes, padding, 0, Device::Cpu)?;
        let mut cache = KvCache::new();
        let _ = model
            .forward_with(
                &prefix,
                ForwardOptions::last().with_cache(&mut cache),
                &mut NoHooks,
            )?
            .logits()?;
        let b = seqs.len() as i64;
        let last: Vec<i64> = seqs.iter().map(|s| s[s.len() - 1]).collect();
        let pos: Vec<i64> = seqs.iter().map(|s| s.len() as i64 - 1).collect();
        let step = TokenBatch::with_positions(
            Tensor::from_slice(&last).view([b, 1]),
            Tensor::cat(
                &[&prefix.attention_mask, &Tensor::ones([b, 1], (Kind::Int64, Device::Cpu))],
                1,
            ),
            Tensor::from_slice(&pos).view([b, 1]),
        )?;
        let logits = model
            .forward_with(
                &step,
                ForwardOptions::last().with_cache(&mut cache),
                &mut NoHooks,
            )?
            .logits()?;
        for (r, seq) in seqs.iter().enumerate() {
            let alone = model.forward(&TokenBatch::single(seq, Device::Cpu)?)?;
            let want = alone.i((0, seq.len() as i64 - 1));
            prop_close_rel("padded KV step", &logits.i(r as i64), &want, tol(kind))?;
        }
    }

    /// Property 8: `Stop` ends the pass at its point; a replacement of the wrong shape is an error
    /// naming the point.
    #[test]
    fn stop_and_bad_replacement(
        arch in arch(), seed in 0i64..1000, seqs in seqs(1), at in any::<Index>(),
    ) {
        let model = model(arch, seed);
        let batch = TokenBatch::pad(&seqs, Padding::Left, 0, Device::Cpu)?;
        let points = model.hook_points();
        let target = points[at.index(points.len())];

        let mut seen = Vec::new();
        let mut stop = from_fn(|_| true, |p, _| {
            seen.push(p);
            Ok(if p == target { HookAction::Stop } else { HookAction::Continue })
        });
        match model.forward_hooked(&batch, &mut stop)? {
            Outcome::Stopped(p) => prop_assert_eq!(p, target),
            Outcome::Logits(_) => prop_assert!(false, "not stopped at {}", target),
        }
        prop_assert_eq!(seen.last().copied(), Some(target));
        prop_assert_eq!(seen.len(), points.iter().position(|&p| p == target).unwrap() + 1);
        let stopped = model.forward_hooked(&batch, &mut gpt_core::intervention::StopAt(target))?;
        prop_assert!(stopped.logits().is_err());

        let mut bad = from_fn(|p| p == target, |_, act| {
            let mut shape = act.size();
            *shape.last_mut().unwrap() += 1;
            Ok(HookAction::Replace(Tensor::zeros(shape.as_slice(), (act.kind(), act.device()))))
        });
        match model.forward_hooked(&batch, &mut bad) {
            Err(e @ Error::ReplacementShape { .. }) => {
                let Error::ReplacementShape { point, expected, got } = &e else { unreachable!() };
                prop_assert_eq!(*point, target);
                let t = batch.len() as i64;
                let want = expected_shape(&model, target, seqs.len() as i64, t);
                prop_assert_eq!(expected, &want);
                prop_assert_eq!(got.last().copied(), want.last().map(|d| d + 1));
                prop_assert!(e.to_string().contains(&target.to_string()), "{}", e);
            }
            other => prop_assert!(false, "expected ReplacementShape, got {other:?}"),
        }
    }

    /// Property 10: `forward_blocks` resumes a pass from a cached residual (the whole sequence, or
    /// its suffix after a KV-cached prefix), firing the block hooks of its layers in order;
    /// `unembed` of its result gives the full pass's logits.
    #[test]
    fn forward_blocks_resumes_a_pass(
        arch in arch(), seed in 0i64..1000, seq in tokens(2), rows in 1usize..=2,
        start in 0usize..=2, split in any::<Index>(), kind in float_kind(),
    ) {
        let model = model_of_kind(arch, seed, kind);
        let n_layers = model.config().n_layers;
        let batch = TokenBatch::pad(&vec![seq.clone(); rows], Padding::Right, 0, Device::Cpu)?;
        let mut kv = KvCache::new();
        let logits = model
            .forward_with(
                &batch,
                ForwardOptions::all().with_cache(&mut kv),
                &mut NoHooks,
            )?
            .logits()?;
        let (_, cache) = model.run_with_cache(&batch, &|_| true)?;
        let last = cache.try_get(HookPoint::resid_post(n_layers - 1))?;
        let entering = if start == n_layers {
            last
        } else {
            cache.try_get(HookPoint::resid_pre(start))?
        };

        let visited = RefCell::new(Vec::new());
        let mut record = from_fn(|_| true, |p, _| {
            visited.borrow_mut().push(p);
            Ok(HookAction::Continue)
        });
        let out = model
            .forward_blocks(
                BlocksInput {
                    layers: start..n_layers,
                    resid: entering.shallow_clone(),
                    positions: batch.positions.shallow_clone(),
                    past: None,
                    attention_mask: None,
                    last_position_only: false,
                },
                &mut record,
            )?
            .resid()?;
        let want: Vec<HookPoint> = model
            .hook_points()
            .into_iter()
            .filter(|p| p.layer().is_some_and(|l| l.0 >= start))
            .collect();
        prop_assert_eq!(visited.into_inner(), want);
        prop_close_rel("forward_blocks", &out, last, tol(kind))?;
        prop_close_rel("unembed", &model.unembed(&out)?, &logits, tol(kind))?;

        let n = seq.len() as i64;
        let k = 1 + split.index(seq.len() - 1) as i64;
        let past = kv.prefix(k as usize)?;
        prop_assert_eq!(past.len(), k as usize);
        let suffix = model
            .forward_blocks(
                BlocksInput {
                    layers: start..n_layers,
                    resid: entering.narrow(1, k, n - k),
                    positions: batch.positions.narrow(1, k, n - k),
                    past: Some(&past),
                    attention_mask: None,
                    last_position_only: false,
                },
                &mut NoHooks,
            )?
            .resid()?;
        let want = last.narrow(1, k, n - k);
        prop_close_rel("forward_blocks after a prefix", &suffix, &want, tol(kind))?;

        // Only the last position of the last block: the same value as the full pass there.
        let last_only = model
            .forward_blocks(
                BlocksInput {
                    layers: start..n_layers,
                    resid: entering.narrow(1, k, n - k),
                    positions: batch.positions.narrow(1, k, n - k),
                    past: Some(&past),
                    attention_mask: None,
                    last_position_only: true,
                },
                &mut NoHooks,
            )?
            .resid()?;
        prop_assert_eq!(last_only.size()[1], if start < n_layers { 1 } else { n - k });
        let want_last = last.narrow(1, n - last_only.size()[1], last_only.size()[1]);
        prop_close_rel("forward_blocks, last position only", &last_only, &want_last, tol(kind))?;
    }

    /// Property 11: bf16 and f16 models run padded batches without error or NaN and stay near the
    /// f32 model with the same weights.
    #[test]
    fn reduced_precision_runs(
        arch in arch(), seed in 0i64..1000, seqs in seqs(1), padding in padding(),
        kind in prop_oneof![Just(Kind::BFloat16), Just(Kind::Half)],
    ) {
        let model = model_of_kind(arch, seed, kind);
        let reference = model_of_kind(arch, seed, Kind::Float);
        let batch = TokenBatch::pad(&seqs, padding, 0, Device::Cpu)?;
        let logits = model.forward(&batch)?;
        prop_assert_eq!(logits.kind(), kind);
        let logits = logits.to_kind(Kind::Float);
        prop_assert!(bool::try_from(logits.isfinite().all())?, "non-finite logits");
        let want = reference.forward(&batch)?;
        let mask = batch.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
        let scale = want.abs().max().double_value(&[]).max(1.0);
        let err = ((&logits - &want) * &mask).abs().max().double_value(&[]) / scale;
        let n_real = batch.attention_mask.sum(Kind::Float).double_value(&[]) * VOCAB as f64;
        let diff = (&logits - &want) * &mask;
        let mean_err = diff.abs().sum(Kind::Float).double_value(&[]) / n_real;
        let mean_abs = (&want * &mask).abs().sum(Kind::Float).double_value(&[]) / n_real;
        // Rounding scales with the dtype's epsilon (bf16 8x f16). Over a few thousand cases
        // the worst seen were: max error / max |logit| 0.61 (bf16, also without padding),
        // 0.023 (f16); mean error / mean |logit| 0.066 (bf16), 0.009 (f16). A masking or NaN
        // bug gives errors of order 1 everywhere, which the mean bound catches.
        let (max_bound, mean_bound) =
            if kind == Kind::BFloat16 { (1.0, 0.15) } else { (0.2, 0.03) };
        prop_assert!(err < max_bound, "{:?}: max error {} of the logit scale", kind, err);
        let mean_rel = mean_err / mean_abs;
        prop_assert!(mean_rel < mean_bound, "{:?}: mean relative error {}", kind, mean_rel);
    }

    /// Property 9: Interventions work under autograd: a gradient reaches a tensor added at a hook.
    #[test]
    fn gradient_flows_through_a_replacement(
        arch in arch(), seed in 0i64..1000, seq in tokens(1), layer in 0usize..2,
        a in 0.3f64..3.0,
    ) {
        let model = model(arch, seed);
        let batch = TokenBatch::single(&seq, Device::Cpu)?;
        let d = model.config().d_model as i64;
        let delta = (wave(d, a, 0.0, 0.1)).set_requires_grad(true);
        prop_assert!(delta.requires_grad() && delta.is_leaf());
        let point = HookPoint::mlp_out(layer);
        let mut add = from_fn(|p| p == point, |_, act| Ok(HookAction::Replace(act + &delta)));
        let logits = model.forward_hooked(&batch, &mut add)?.logits()?;
        prop_assert!(logits.requires_grad());
        logits.sum(Kind::Float).backward();
        let grad = delta.grad();
        prop_assert!(grad.defined(), "no gradient");
        prop_assert_eq!(grad.size(), vec![d]);
        prop_assert!(bool::try_from(grad.isfinite().all()).unwrap(), "non-finite gradient");
        prop_assert!(grad.abs().max().double_value(&[]) > 0.0, "zero gradient");
    }
}

/// Property 9: The documented example position: `blocks.0.hook_mlp_out` of both architectures, and
/// weights stay out of the graph.
#[test]
fn gradient_at_block_0_mlp_out() {
    for arch in Architecture::ALL {
        let model = model(arch, 7);
        let point: HookPoint = "blocks.0.hook_mlp_out".parse().unwrap();
        let batch = TokenBatch::single(&[1, 2, 3, 4], Device::Cpu).unwrap();
        let delta = Tensor::zeros([1, 4, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut add = from_fn(
            |p| p == point,
            |_, act| Ok(HookAction::Replace(act + &delta)),
        );
        let logits = model
            .forward_hooked(&batch, &mut add)
            .unwrap()
            .logits()
            .unwrap();
        logits.sum(Kind::Float).backward();
        let grad = delta.grad();
        assert!(grad.defined());
        assert!(bool::try_from(grad.isfinite().all()).unwrap());
        assert!(
            grad.abs().max().double_value(&[]) > 0.0,
            "{arch:?}: zero gradient"
        );
        for id in weight_ids(arch) {
            assert!(
                !model.weight(id).unwrap().requires_grad(),
                "{id} requires grad"
            );
        }
    }
}

/// Property 5: An undo record from another model is rejected and changes nothing.
#[test]
fn undo_from_another_model_is_rejected() {
    let mut a = model(Architecture::Llama, 1);
    let mut b = model(Architecture::Llama, 1);
    let before = snapshot(&b);
    let target = WeightId::MlpOut(Layer(0));
    let delta = WeightDelta::RankOne {
        target,
        u: Tensor::ones([16], (Kind::Float, Device::Cpu)),
        v: Tensor::ones([32], (Kind::Float, Device::Cpu)),
    };
    let undo = a.apply(&delta).unwrap();
    let err = b.undo(&undo).unwrap_err();
    assert!(matches!(err, Error::UndoFromAnotherModel { .. }), "{err:?}");
    assert_eq!(same_weights(&b, &before), None);
}

/// `Transformer::random` gives the same weights for the same seed even while other threads
/// build random models at the same time (libtorch's generator is process-global).
#[test]
fn random_weights_depend_only_on_the_seed() {
    let reference = snapshot(&model(Architecture::Llama, 5));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..12)
                    .filter_map(|i| {
                        let seed = if i % 2 == 0 { 5 } else { 100 + t };
                        let m = model(Architecture::Llama, seed);
                        (seed == 5).then(|| snapshot(&m))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for snap in thread.join().unwrap() {
            for ((id, w), (_, r)) in snap.iter().zip(&reference) {
                assert!(bit_equal(w, r), "{id} differs between two seed-5 models");
            }
        }
    }
}

/// Property 11: Checkpoints loaded in bf16 / f16 run left-padded batches and KV-cached generation
/// (f32::MIN as the attention mask fill overflowed bf16, and libtorch refused it).
#[test]
fn reduced_precision_checkpoints_run() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    for name in ["tiny-gpt2", "tiny-llama"] {
        for kind in [Kind::BFloat16, Kind::Half] {
            let options = LoadOptions {
                device: Device::Cpu,
                kind,
            };
            let loaded = load_model(&fixtures.join(name), options).unwrap();
            let seqs = vec![vec![5, 6, 7, 8, 9], vec![10, 11]];
            for padding in [Padding::Left, Padding::Right] {
                let batch = TokenBatch::pad(&seqs, padding, 0, Device::Cpu).unwrap();
                let logits = loaded.model.forward(&batch).unwrap();
                assert_eq!(logits.kind(), kind);
                assert!(
                    bool::try_from(logits.isfinite().all()).unwrap(),
                    "{name} {kind:?} {padding:?}: non-finite logits"
                );
            }
            let options = GenerateOptions {
                max_new_tokens: 4,
                sampling: Sampling::Greedy,
                stop_tokens: Vec::new(),
            };
            assert_eq!(
                generate(&loaded.model, &[5, 6, 7], &options).unwrap().len(),
                4
            );
        }
    }
}
