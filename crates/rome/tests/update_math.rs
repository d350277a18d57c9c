//! Property tests of the update math (f64, random shapes): ROME's rank-one update, MEMIT's
//! batched solve, the streaming second moment, and exact undo of the resulting edits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use gpt_core::random::tiny_config;
use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::testing::{arb_matrix, arb_spd_matrix, arb_vector};
use gpt_core::{EditableModel, Layer, RandomInit, Transformer, WeightId};
use proptest::prelude::*;
use rome::{memit_update, rank_one_update, solve_spd, Error, SecondMoment};

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// `‖a − b‖∞ / max(1, ‖b‖∞)`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    max_abs(&(a - b)) / max_abs(b).max(1.0)
}

/// `tr(Δ C Δᵀ)`: the squared norm of a weight change in the metric of the keys.
fn c_norm(delta: &Tensor, c: &Tensor) -> f64 {
    delta
        .matmul(c)
        .matmul(&delta.transpose(0, 1))
        .trace()
        .double_value(&[])
}

/// Shapes `(d_out, d_in)` and the tensors of one ROME problem.
fn rome_case() -> impl Strategy<Value = (Tensor, Tensor, Tensor, Tensor)> {
    (1usize..7, 2usize..9).prop_flat_map(|(d_out, d_in)| {
        (
            arb_matrix(d_out, d_in),
            arb_spd_matrix(d_in),
            arb_vector(d_in),
            arb_vector(d_out),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After the update, W′k* = v* (relative error ≤ 1e-6); keys C-orthogonal to k*
    /// (xᵀC⁻¹k* = 0) keep their outputs; the change has rank one.
    #[test]
    fn rome_writes_v_star_at_k_star_and_nothing_orthogonal(
        (w, c, k_star, v_star) in rome_case(),
        x in arb_vector(8),
    ) {
        prop_assume!(max_abs(&k_star) > 1e-3);
        let residual = &v_star - w.matmul(&k_star);
        let update = rank_one_update(&c, &k_star, &k_star, &residual).unwrap();
        let w_new = &w + update.dense().unwrap();
        prop_assert!(rel_err(&w_new.matmul(&k_star), &v_star) <= 1e-6);

        let d_in = k_star.size()[0];
        let u = solve_spd(&c, &k_star, "C").unwrap();
        let x = x.narrow(0, 0, d_in);
        let x_orth = &x - &u * (u.dot(&x) / u.dot(&u));
        prop_assert!(u.dot(&x_orth).double_value(&[]).abs() < 1e-9);
        prop_assert!(rel_err(&w_new.matmul(&x_orth), &w.matmul(&x_orth)) <= 1e-9);

        // Rank one: ΔWᵀΔW has one non-zero eigenvalue.
        let d = update.dense().unwrap();
        let mut eig = Vec::<f64>::try_from(&d.transpose(0, 1).matmul(&d).linalg_eigvalsh("L")).unwrap();
        eig.sort_by(|a, b| b.total_cmp(a));
        prop_assert!(eig.iter().skip(1).all(|&v| v.abs() <= 1e-9 * eig[0].max(1e-300)), "{eig:?}");
    }

    /// Among all updates with ΔW k* = v* − W k*, ROME's has the least C-norm tr(ΔW C ΔWᵀ):
    /// adding any E with E k* = 0 never lowers it.
    #[test]
    fn rome_update_is_the_minimum_c_norm_solution(
        (w, c, k_star, v_star) in rome_case(),
        a in arb_matrix(6, 8),
    ) {
        prop_assume!(max_abs(&k_star) > 1e-3);
        let (d_out, d_in) = (w.size()[0], w.size()[1]);
        let residual = &v_star - w.matmul(&k_star);
        let delta = rank_one_update(&c, &k_star, &k_star, &residual).unwrap().dense().unwrap();
        let k = k_star.unsqueeze(1);
        let projector = Tensor::eye(d_in, (Kind::Double, Device::Cpu))
            - k.matmul(&k.transpose(0, 1)) / k.pow_tensor_scalar(2).sum(Kind::Double);
        let e = a.narrow(0, 0, d_out).narrow(1, 0, d_in).matmul(&projector);
        prop_assert!(max_abs(&e.matmul(&k_star)) < 1e-9);
        let other = &delta + &e;
        prop_assert!(rel_err(&other.matmul(&k_star), &residual) <= 1e-9);
        let (best, alt) = (c_norm(&delta, &c), c_norm(&other, &c));
        prop_assert!(alt >= best - 1e-9 * best.max(1.0), "{alt} < {best}");
    }

    /// MEMIT with one fact equals ROME's update (k_dir = k) scaled by kᵀC⁻¹k / (λ + kᵀC⁻¹k),
    /// so it tends to ROME as λ → 0.
    #[test]
    fn memit_with_one_fact_is_rome_up_to_lambda(
        (w, c, k, v) in rome_case(),
        lambda in prop_oneof![1e-6f64..1e-3, 1e-3f64..1e3],
    ) {
        prop_assume!(max_abs(&k) > 1e-3);
        let residual = &v - w.matmul(&k);
        let rome = rank_one_update(&c, &k, &k, &residual).unwrap().dense().unwrap();
        let memit = memit_update(&c, lambda, &k.unsqueeze(1), &residual.unsqueeze(1)).unwrap();
        let q = solve_spd(&c, &k, "C").unwrap().dot(&k).double_value(&[]);
        let expected = rome * (q / (lambda + q));
        prop_assert!(rel_err(&memit, &expected) <= 1e-6);
    }

    /// MEMIT's solution zeroes the gradient of ‖ΔW K − R‖² + λ tr(ΔW C ΔWᵀ):
    /// (ΔW K − R) Kᵀ + λ ΔW C = 0.
    #[test]
    fn memit_solution_zeroes_the_gradient(
        (c, keys, residuals) in (1usize..6, 2usize..9, 1usize..5).prop_flat_map(|(d_out, d_in, n)| {
            (arb_spd_matrix(d_in), arb_matrix(d_in, n), arb_matrix(d_out, n))
        }),
        lambda in 1e-3f64..1e2,
    ) {
        let delta = memit_update(&c, lambda, &keys, &residuals).unwrap();
        let grad = (delta.matmul(&keys) - &residuals).matmul(&keys.transpose(0, 1))
            + delta.matmul(&c) * lambda;
        prop_assert!(max_abs(&grad) <= 1e-9 * (1.0 + lambda), "{}", max_abs(&grad));
    }

    /// C from merged shards equals C from one pass; C is symmetric positive semi-definite.
    #[test]
    fn second_moment_merges_and_is_psd(
        d in 1usize..8,
        sizes in prop::collection::vec(1usize..6, 1..4),
        values in prop::collection::vec(-3.0f64..3.0, 200),
    ) {
        let total: usize = sizes.iter().sum();
        let keys = Tensor::from_slice(&values[..total * d]).reshape([total as i64, d as i64]);
        let mut whole = SecondMoment::new(d).unwrap();
        whole.add(&keys).unwrap();
        let mut merged = SecondMoment::new(d).unwrap();
        let mut start = 0i64;
        for &s in &sizes {
            let mut shard = SecondMoment::new(d).unwrap();
            shard.add(&keys.narrow(0, start, s as i64)).unwrap();
            merged.merge(&shard).unwrap();
            start += s as i64;
        }
        prop_assert_eq!(merged.count, whole.count);
        let (a, b) = (merged.moment().unwrap(), whole.moment().unwrap());
        prop_assert!(rel_err(&a, &b) <= 1e-12);
        prop_assert!(max_abs(&(&a - a.transpose(0, 1))) <= 1e-12);
        let eig = Vec::<f64>::try_from(&a.linalg_eigvalsh("L")).unwrap();
        prop_assert!(eig.iter().all(|&e| e >= -1e-9), "{eig:?}");
    }

    /// Rank-one edits applied to a model and undone in reverse restore every weight bit for
    /// bit; an out-of-order undo is an error that changes nothing and loses no record.
    #[test]
    fn edits_apply_and_undo_exactly(
        arch in gpt_core::testing::arb_architecture(),
        layers in prop::collection::vec(0usize..2, 1..4),
        seed in 0i64..1000,
    ) {
        let config = tiny_config(arch);
        let mut model = Transformer::random(&config, RandomInit { seed, std: 0.5 }, Device::Cpu, Kind::Float).unwrap();
        let originals: Vec<Tensor> = (0..config.n_layers)
            .map(|l| model.weight(WeightId::MlpOut(Layer(l))).unwrap().copy())
            .collect();
        let mut undos = Vec::new();
        for (i, &l) in layers.iter().enumerate() {
            let d_in = config.d_mlp as i64;
            let c = Tensor::eye(d_in, (Kind::Double, Device::Cpu)) * (1.0 + i as f64);
            let k = Tensor::ones([d_in], (Kind::Double, Device::Cpu)) / (d_in as f64);
            let residual = Tensor::full([config.d_model as i64], 0.1 * (i as f64 + 1.0), (Kind::Double, Device::Cpu));
            let update = rank_one_update(&c, &k, &k, &residual).unwrap();
            undos.push(model.apply(&update.into_delta(WeightId::MlpOut(Layer(l)))).unwrap());
        }
        if undos.len() > 1 {
            let err = model.undo(&undos[0]).unwrap_err();
            prop_assert!(matches!(err, gpt_core::Error::UndoOutOfOrder { .. }), "{err:?}");
        }
        for undo in undos.iter().rev() {
            model.undo(undo).unwrap();
        }
        for (l, original) in originals.iter().enumerate() {
            prop_assert!(model.weight(WeightId::MlpOut(Layer(l))).unwrap().equal(original));
        }
    }
}

#[test]
fn singular_and_degenerate_inputs_are_errors() {
    let f = (Kind::Double, Device::Cpu);
    let singular = Tensor::zeros([3, 3], f);
    let k = Tensor::ones([3], f);
    let r = Tensor::ones([2], f);
    let err = rank_one_update(&singular, &k, &k, &r).unwrap_err();
    assert!(matches!(err, Error::NotPositiveDefinite { .. }), "{err:?}");
    assert!(err.to_string().contains("positive definite"), "{err}");
    // Positive definite but nearly singular: refused with its condition number.
    let nearly = Tensor::from_slice(&[1.0f64, 1e-16, 1e-16]).diagflat(0);
    let err = rank_one_update(&nearly, &k, &k, &r).unwrap_err();
    match &err {
        Error::IllConditioned { condition, .. } => assert!(*condition > 1e15, "{condition}"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("ill-conditioned"), "{err}");
    // Well-conditioned enough: solved.
    let fine = Tensor::from_slice(&[1.0f64, 1e-6, 1e-6]).diagflat(0);
    assert!(rank_one_update(&fine, &k, &k, &r).is_ok());
    // A key the edited direction cannot reach.
    let c = Tensor::eye(3, f);
    let k_dir = Tensor::from_slice(&[1.0f64, 0.0, 0.0]);
    let k_orth = Tensor::from_slice(&[0.0f64, 1.0, 0.0]);
    let err = rank_one_update(&c, &k_dir, &k_orth, &r).unwrap_err();
    assert!(matches!(err, Error::Degenerate { .. }), "{err:?}");
    // Shapes are named.
    let err = rank_one_update(&c, &Tensor::ones([4], f), &k, &r).unwrap_err();
    assert!(err.to_string().contains("k_dir"), "{err}");
    let err = memit_update(&c, -1.0, &k.unsqueeze(1), &r.unsqueeze(1)).unwrap_err();
    assert!(err.to_string().contains("λ"), "{err}");
    let err = SecondMoment::new(3).unwrap().moment().unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}
