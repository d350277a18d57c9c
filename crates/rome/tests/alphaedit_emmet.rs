//! Property tests of the mass-editing update math (f64, random shapes): AlphaEdit's
//! null-space projector and projected solve, the key history, and EMMET's
//! equality-constrained update.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use gpt_core::tch::{Device, Kind, Tensor};
use gpt_core::testing::{
    arb_ill_conditioned_spd, arb_matrix, arb_orthogonal, arb_singular_psd, arb_spd_matrix,
};
use proptest::prelude::*;
use rome::{
    alphaedit_update, emmet_update, memit_update, rank_one_update, solve_general, solve_spd,
    solve_spd_checked, Error, KeyHistory, NullSpaceProjector, REFERENCE_NULLSPACE_THRESHOLD,
};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn max_abs(t: &Tensor) -> f64 {
    if t.numel() == 0 {
        return 0.0;
    }
    t.abs().max().double_value(&[])
}

/// `‖a − b‖∞ / max(1, ‖b‖∞)`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    max_abs(&(a - b)) / max_abs(b).max(1.0)
}

/// Frobenius norm.
fn fro(t: &Tensor) -> f64 {
    t.pow_tensor_scalar(2)
        .sum(Kind::Double)
        .sqrt()
        .double_value(&[])
}

fn t(m: &Tensor) -> Tensor {
    m.transpose(0, 1)
}

/// The top-left `[rows, cols]` block of `m`.
fn block(m: &Tensor, rows: i64, cols: i64) -> Tensor {
    m.narrow(0, 0, rows).narrow(1, 0, cols)
}

/// The smallest and largest singular values of `m` (at most as many columns as rows): the
/// square roots of the eigenvalues of mᵀm.
fn singular_range(m: &Tensor) -> (f64, f64) {
    let s = Vec::<f64>::try_from(&t(m).matmul(m).linalg_eigvalsh("L")).unwrap();
    let hi = s.iter().copied().fold(0.0, f64::max);
    let lo = s.iter().copied().fold(f64::INFINITY, f64::min).max(0.0);
    (lo.sqrt(), hi.sqrt())
}

/// Smallest over largest singular value of `m`.
fn inverse_condition(m: &Tensor) -> f64 {
    let (lo, hi) = singular_range(m);
    lo / hi.max(1e-300)
}

/// A key second moment `C = Q diag(λ) Qᵀ` with a null part and a dominant part:
/// `(C, Q, small)` where the first `small` columns of `Q` have eigenvalues in `[0, 1e-3)`
/// (far below the reference threshold 2e-2) and the others in `[1, 10)` (far above).
fn mixed_spectrum() -> impl Strategy<Value = (Tensor, Tensor, i64)> {
    (6usize..=12)
        .prop_flat_map(|d| (Just(d), 1..d))
        .prop_flat_map(|(d, small)| {
            (
                arb_orthogonal(d),
                prop::collection::vec(0.0f64..1e-3, small),
                prop::collection::vec(1.0f64..10.0, d - small),
                Just(small as i64),
            )
        })
        .prop_map(|(q, low, high, small)| {
            let eigenvalues: Vec<f64> = low.into_iter().chain(high).collect();
            let c = (&q * Tensor::from_slice(&eigenvalues).unsqueeze(0)).matmul(&t(&q));
            let c = (&c + t(&c)) / 2.0;
            (c, q, small)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The general (LU) solve solves non-symmetric systems; it and the checked Cholesky solve
    /// refuse singular and badly conditioned systems by their condition estimate, which is at
    /// most the true 1-norm condition number and within a small factor of it.
    #[test]
    fn general_solve_solves_and_refuses_by_condition(
        (a, b) in (1usize..=10).prop_flat_map(|n| (arb_matrix(n, n), arb_matrix(n, 3))),
        (ill, rank_deficient) in (3usize..=10).prop_flat_map(|n| (
            arb_ill_conditioned_spd(n, 1e16),
            (1..n).prop_flat_map(move |r| arb_singular_psd(n, r)),
        )),
        skew in arb_matrix(10, 10),
    ) {
        let n = a.size()[0];
        // Diagonally dominant, not symmetric: well-conditioned.
        let a = a + Tensor::eye(n, F64) * (n as f64 + 1.0);
        let x = solve_general(&a, &b, "A").unwrap();
        prop_assert!(rel_err(&a.matmul(&x), &b) <= 1e-12);
        let column = solve_general(&a, &b.select(1, 0), "A").unwrap();
        prop_assert!(rel_err(&column, &x.select(1, 0)) <= 1e-12);

        // The checked Cholesky solve agrees with the plain one on a well-conditioned A, and
        // refuses the singular and 1e16-conditioned ones that rounding lets Cholesky factor.
        let spd = a.matmul(&t(&a));
        let plain = solve_spd(&spd, &b, "A").unwrap();
        prop_assert!(solve_spd_checked(&spd, &b, "A").unwrap().equal(&plain));
        let m = ill.size()[0];
        for (matrix, what) in [(&ill, "ill"), (&rank_deficient, "singular")] {
            let err = solve_spd_checked(matrix, &Tensor::ones([m], F64), "A").unwrap_err();
            prop_assert!(matches!(err, Error::NotPositiveDefinite { .. } | Error::IllConditioned { .. }), "{what}: {err:?}");
        }

        // Condition 1e16 (made non-symmetric by a skew part that keeps it as bad), and exactly
        // rank-deficient matrices: refused, never a silent answer.
        let skew = block(&skew, m, m);
        let ill = &ill + (&skew - t(&skew)) * 1e-12;
        for (matrix, what) in [(&ill, "ill"), (&rank_deficient, "singular")] {
            let err = solve_general(matrix, &Tensor::ones([m], F64), "A").unwrap_err();
            match err {
                Error::IllConditioned { condition, .. } => prop_assert!(condition > 1e14, "{what}: {condition}"),
                other => prop_assert!(false, "{what}: {other:?}"),
            }
        }
    }

    /// P is symmetric and idempotent, its rank (and trace) is `kept`, it fixes the eigenvectors
    /// of C below the threshold and annihilates the others.
    #[test]
    fn projector_is_symmetric_idempotent_of_rank_kept((c, q, small) in mixed_spectrum()) {
        let d = c.size()[0];
        let p = NullSpaceProjector::from_second_moment(&c, REFERENCE_NULLSPACE_THRESHOLD).unwrap();
        prop_assert_eq!(p.kept() as i64, small);
        prop_assert_eq!(p.dim() as i64, d);
        prop_assert_eq!(p.threshold(), REFERENCE_NULLSPACE_THRESHOLD);
        let m = p.matrix();
        prop_assert!(m.equal(&t(m)));
        prop_assert!(max_abs(&(m.matmul(m) - m)) <= 1e-12);
        let rank = m.linalg_matrix_rank(1e-8, true).int64_value(&[]);
        prop_assert_eq!(rank, small);
        prop_assert!((m.trace().double_value(&[]) - small as f64).abs() <= 1e-10);
        let null = q.narrow(1, 0, small);
        let dominant = q.narrow(1, small, d - small);
        prop_assert!(max_abs(&(p.apply(&null).unwrap() - &null)) <= 1e-12);
        prop_assert!(max_abs(&p.apply(&dominant).unwrap()) <= 1e-12);
    }

    /// With a well-conditioned C and any threshold, `kept` counts the eigenvalues below the
    /// threshold and P is still an orthogonal projector.
    #[test]
    fn projector_keeps_the_eigenvalues_below_the_threshold(
        c in (2usize..=10).prop_flat_map(arb_spd_matrix),
        threshold in 0.5f64..12.0,
    ) {
        let p = NullSpaceProjector::from_second_moment(&c, threshold).unwrap();
        let eig = Vec::<f64>::try_from(&c.linalg_eigvalsh("L")).unwrap();
        prop_assume!(eig.iter().all(|e| (e - threshold).abs() > 1e-9));
        prop_assert_eq!(p.kept(), eig.iter().filter(|&&e| e < threshold).count());
        let m = p.matrix();
        prop_assert!(max_abs(&(m.matmul(m) - m)) <= 1e-12);
        // P projects onto an invariant subspace of C: P and C commute.
        prop_assert!(max_abs(&(m.matmul(&c) - c.matmul(m))) <= 1e-10);
    }

    /// For a singular C, the null space is exactly its kernel: P C = 0 and rank P = d − rank C.
    #[test]
    fn projector_of_a_singular_moment_is_its_kernel(
        (c, rank) in (3usize..=10).prop_flat_map(|d| (1..d).prop_flat_map(move |r| (arb_singular_psd(d, r), Just(r)))),
    ) {
        let d = c.size()[0] as usize;
        let p = NullSpaceProjector::from_second_moment(&c, REFERENCE_NULLSPACE_THRESHOLD).unwrap();
        prop_assert_eq!(p.kept(), d - rank);
        prop_assert!(max_abs(&p.matrix().matmul(&c)) <= 1e-12);
    }

    /// AlphaEdit's Δ satisfies Δ = ΔP, so keys in C's dominant span keep their outputs:
    /// ‖Δ K₀‖ ≪ ‖Δ‖ ‖K₀‖, whatever the new keys, residuals and earlier keys.
    #[test]
    fn alphaedit_leaves_the_dominant_span_unchanged(
        (c, q, small) in mixed_spectrum(),
        (n, d_out, m) in (1i64..5, 1i64..5, 0i64..4),
        keys in arb_matrix(12, 4),
        residuals in arb_matrix(4, 4),
        earlier in arb_matrix(12, 3),
        coefficients in arb_matrix(12, 3),
        l2 in prop_oneof![1e-3f64..1.0, 1.0f64..20.0],
    ) {
        let d = c.size()[0];
        let p = NullSpaceProjector::from_second_moment(&c, REFERENCE_NULLSPACE_THRESHOLD).unwrap();
        let (k1, r) = (block(&keys, d, n), block(&residuals, d_out, n));
        let kp = block(&earlier, d, m);
        let delta = alphaedit_update(&p, &k1, &r, &kp.matmul(&t(&kp)), l2).unwrap();
        prop_assert_eq!(delta.size(), vec![d_out, d]);
        let k0 = q.narrow(1, small, d - small).matmul(&block(&coefficients, d - small, 3));
        let scale = fro(&delta) * fro(&k0);
        prop_assert!(fro(&delta.matmul(&k0)) <= 1e-9 * scale.max(1e-300), "{} vs {scale}", fro(&delta.matmul(&k0)));
        prop_assert!(fro(&(delta.matmul(p.matrix()) - &delta)) <= 1e-9 * fro(&delta).max(1e-300));
    }

    /// The solution zeroes the gradient of ‖ΔK₁ − R‖² + ‖ΔK_p‖² + L2‖Δ‖² on the null space,
    /// ((ΔK₁ − R)K₁ᵀ + ΔK_pK_pᵀ)P + L2Δ = 0, so its objective is at most that of Δ = 0:
    /// the edited keys move toward their targets, ‖(W + Δ)K₁ − (WK₁ + R)‖ ≤ ‖R‖, strictly
    /// when the null space sees the residuals (R K₁ᵀ P ≠ 0).
    #[test]
    fn alphaedit_moves_edited_keys_toward_their_targets(
        (c, _q, _small) in mixed_spectrum(),
        (n, d_out, m) in (1i64..5, 1i64..5, 0i64..4),
        w in arb_matrix(4, 12),
        keys in arb_matrix(12, 4),
        residuals in arb_matrix(4, 4),
        earlier in arb_matrix(12, 3),
        l2 in prop_oneof![1e-3f64..1.0, 1.0f64..20.0],
    ) {
        let d = c.size()[0];
        let p = NullSpaceProjector::from_second_moment(&c, REFERENCE_NULLSPACE_THRESHOLD).unwrap();
        let (k1, r, kp) = (block(&keys, d, n), block(&residuals, d_out, n), block(&earlier, d, m));
        let w = block(&w, d_out, d);
        let delta = alphaedit_update(&p, &k1, &r, &kp.matmul(&t(&kp)), l2).unwrap();
        let pm = p.matrix();
        let grad = ((delta.matmul(&k1) - &r).matmul(&t(&k1)) + delta.matmul(&kp).matmul(&t(&kp))).matmul(pm)
            + &delta * l2;
        let scale = 1.0 + fro(&r.matmul(&t(&k1)).matmul(pm));
        prop_assert!(fro(&grad) <= 1e-9 * scale, "{} vs {scale}", fro(&grad));

        let miss = fro(&((&w + &delta).matmul(&k1) - (w.matmul(&k1) + &r)));
        let objective = miss.powi(2) + fro(&delta.matmul(&kp)).powi(2) + l2 * fro(&delta).powi(2);
        prop_assert!(objective <= fro(&r).powi(2) * (1.0 + 1e-9));
        prop_assert!(miss <= fro(&r) * (1.0 + 1e-9));
        if fro(&r.matmul(&t(&k1)).matmul(pm)) > 1e-6 {
            prop_assert!(miss < fro(&r), "{miss} vs {}", fro(&r));
        }
    }

    /// Keys inside the null space (earlier keys in the dominant span): Δ K₁ = R G (G + L2·I)⁻¹
    /// with G = K₁ᵀK₁, so as L2 → 0 the keys are written exactly.
    #[test]
    fn alphaedit_writes_null_space_keys_exactly_as_l2_vanishes(
        (c, q, small) in mixed_spectrum(),
        (n, d_out, m) in (1i64..5, 1i64..5, 0i64..4),
        coefficients in arb_matrix(12, 4),
        residuals in arb_matrix(4, 4),
        earlier in arb_matrix(12, 3),
        l2 in 1e-3f64..10.0,
    ) {
        let d = c.size()[0];
        let n = n.min(small);
        let coefficients = block(&coefficients, small, n);
        // ‖ΔK₁ − R‖ ≤ ‖R‖ L2 / σ_min(G): keep σ_min(G) = σ_min(coefficients)² ≥ 0.09.
        prop_assume!(singular_range(&coefficients).0 > 0.3);
        let p = NullSpaceProjector::from_second_moment(&c, REFERENCE_NULLSPACE_THRESHOLD).unwrap();
        let k1 = q.narrow(1, 0, small).matmul(&coefficients);
        let r = block(&residuals, d_out, n);
        let kp = q.narrow(1, small, d - small).matmul(&block(&earlier, d - small, m));
        let kp_kpt = kp.matmul(&t(&kp));

        let delta = alphaedit_update(&p, &k1, &r, &kp_kpt, l2).unwrap();
        let g = t(&k1).matmul(&k1);
        let shrunk = r.matmul(&g).matmul(&(&g + Tensor::eye(n, F64) * l2).inverse());
        prop_assert!(rel_err(&delta.matmul(&k1), &shrunk) <= 1e-8);

        let exact = alphaedit_update(&p, &k1, &r, &kp_kpt, 1e-10).unwrap();
        prop_assert!(rel_err(&exact.matmul(&k1), &r) <= 1e-8, "{}", rel_err(&exact.matmul(&k1), &r));
    }

    /// With P = I and no earlier keys, AlphaEdit is MEMIT's solve R Kᵀ(KKᵀ + L2·I)⁻¹, i.e.
    /// `memit_update` with C = I and λ = L2.
    #[test]
    fn alphaedit_with_the_identity_projector_is_memit(
        (d, n, d_out) in (2i64..=10, 1i64..6, 1i64..5),
        keys in arb_matrix(10, 5),
        residuals in arb_matrix(4, 5),
        l2 in prop_oneof![1e-3f64..1.0, 1.0f64..100.0],
    ) {
        let (k, r) = (block(&keys, d, n), block(&residuals, d_out, n));
        let p = NullSpaceProjector::identity(d as usize).unwrap();
        let zeros = Tensor::zeros([d, d], F64);
        let alpha = alphaedit_update(&p, &k, &r, &zeros, l2).unwrap();
        let memit = memit_update(&Tensor::eye(d, F64), l2, &k, &r).unwrap();
        prop_assert!(rel_err(&alpha, &memit) <= 1e-9, "{}", rel_err(&alpha, &memit));
    }

    /// The key history is K_pK_pᵀ over all batches added, and saves and loads bit for bit;
    /// so does the projector.
    #[test]
    fn key_history_and_projector_accumulate_and_round_trip(
        (c, _q, _small) in mixed_spectrum(),
        sizes in prop::collection::vec(0i64..4, 1..4),
        keys in arb_matrix(12, 12),
    ) {
        let d = c.size()[0];
        let dir = tempfile::tempdir().unwrap();
        let mut history = KeyHistory::new(d as usize).unwrap();
        let mut start = 0;
        for &s in &sizes {
            history.add(&keys.narrow(0, 0, d).narrow(1, start, s)).unwrap();
            start += s;
        }
        let all = keys.narrow(0, 0, d).narrow(1, 0, start);
        prop_assert_eq!(history.count(), start as u64);
        prop_assert!(rel_err(history.sum(), &all.matmul(&t(&all))) <= 1e-12);
        let path = dir.path().join("history.safetensors");
        history.save(&path).unwrap();
        let loaded = KeyHistory::load(&path).unwrap();
        prop_assert_eq!(loaded.count(), history.count());
        prop_assert!(loaded.sum().equal(history.sum()));

        let p = NullSpaceProjector::from_second_moment(&c, REFERENCE_NULLSPACE_THRESHOLD).unwrap();
        let path = dir.path().join("projector.safetensors");
        p.save(&path).unwrap();
        let loaded = NullSpaceProjector::load(&path).unwrap();
        prop_assert!(loaded.matrix().equal(p.matrix()));
        prop_assert_eq!((loaded.kept(), loaded.threshold()), (p.kept(), p.threshold()));
        let rebuilt = NullSpaceProjector::from_parts(p.to_tensor().unwrap(), p.threshold(), p.kept()).unwrap();
        prop_assert!(rebuilt.matrix().equal(p.matrix()));
    }

    /// EMMET without its ridge writes every key exactly, W′K = WK + R (n ≤ d independent
    /// keys), with the least C'-norm change: Δ C' lies in the span of the keys' rows.
    #[test]
    fn emmet_without_lambda_writes_every_key_exactly(
        (c, n, d_out) in (4usize..=12).prop_flat_map(|d| (arb_spd_matrix(d), 1i64..=(d as i64), 1i64..5)),
        w in arb_matrix(4, 12),
        keys in arb_matrix(12, 12),
        residuals in arb_matrix(4, 12),
        weight in prop_oneof![1e-1f64..10.0, 10.0f64..2e4],
        ridge in prop_oneof![Just(0.0f64), 1e-3f64..10.0],
    ) {
        let d = c.size()[0];
        let (k, r, w) = (block(&keys, d, n), block(&residuals, d_out, n), block(&w, d_out, d));
        prop_assume!(inverse_condition(&k) > 0.05);
        let delta = emmet_update(&c, weight, ridge, 0.0, &k, &r).unwrap();
        prop_assert_eq!(delta.size(), vec![d_out, d]);
        let written = (&w + &delta).matmul(&k);
        let wanted = w.matmul(&k) + &r;
        prop_assert!(rel_err(&written, &wanted) <= 1e-8, "{}", rel_err(&written, &wanted));

        // Lagrange condition of min tr(Δ C' Δᵀ) s.t. ΔK = R: Δ C' = Λ Kᵀ.
        let c_prime = &c * weight + Tensor::eye(d, F64) * ridge;
        let span = k.matmul(&t(&k).matmul(&k).inverse()).matmul(&t(&k));
        let outside = delta.matmul(&c_prime).matmul(&(Tensor::eye(d, F64) - span));
        prop_assert!(max_abs(&outside) <= 1e-8 * max_abs(&delta.matmul(&c_prime)).max(1e-300));
    }

    /// With its ridge, EMMET writes ΔK = R D₀(D₀ + λI)⁻¹ (D₀ = KᵀC'⁻¹K): toward the targets,
    /// not onto them; this works even with more keys than dimensions.
    #[test]
    fn emmet_lambda_shrinks_the_write(
        (c, n, d_out) in (2usize..=8).prop_flat_map(|d| (arb_spd_matrix(d), 2i64..=12, 1i64..5)),
        keys in arb_matrix(8, 12),
        residuals in arb_matrix(4, 12),
        weight in 1e-1f64..1e3,
        lambda in 1e-2f64..10.0,
    ) {
        let d = c.size()[0];
        let (k, r) = (block(&keys, d, n), block(&residuals, d_out, n));
        let delta = emmet_update(&c, weight, 0.0, lambda, &k, &r).unwrap();
        let d0 = t(&k).matmul(&(&c * weight).inverse()).matmul(&k);
        let expected = r.matmul(&d0).matmul(&(&d0 + Tensor::eye(n, F64) * lambda).inverse());
        prop_assert!(rel_err(&delta.matmul(&k), &expected) <= 1e-8);
    }

    /// EMMET with one key is ROME's rank-one update with C' = w·C + update_norm_lambda·I
    /// (its emmet_lambda is not used).
    #[test]
    fn emmet_with_one_key_is_rome_with_c_prime(
        (c, d_out) in (2usize..=10).prop_flat_map(|d| (arb_spd_matrix(d), 1i64..5)),
        key in arb_matrix(10, 1),
        residual in arb_matrix(4, 1),
        weight in 1e-1f64..1e4,
        ridge in prop_oneof![Just(0.0f64), 1e-3f64..10.0],
        lambda in 0.0f64..1.0,
    ) {
        let d = c.size()[0];
        let (k, r) = (key.narrow(0, 0, d), residual.narrow(0, 0, d_out));
        prop_assume!(max_abs(&k) > 1e-3);
        let emmet = emmet_update(&c, weight, ridge, lambda, &k, &r).unwrap();
        let c_prime = &c * weight + Tensor::eye(d, F64) * ridge;
        let k1 = k.squeeze_dim(1);
        let rome = rank_one_update(&c_prime, &k1, &k1, &r.squeeze_dim(1)).unwrap().dense().unwrap();
        prop_assert!(rel_err(&emmet, &rome) <= 1e-9, "{}", rel_err(&emmet, &rome));
    }

    /// Singular statistics and singular systems are errors, never panics: EMMET with a
    /// singular C and no ridge; AlphaEdit with L2 = 0 and a proper projector.
    #[test]
    fn singular_inputs_are_errors(
        (c, d) in (3usize..=10).prop_flat_map(|d| (1..d).prop_flat_map(move |r| (arb_singular_psd(d, r), Just(d as i64)))),
        keys in arb_matrix(10, 3),
        residuals in arb_matrix(2, 3),
    ) {
        let (k, r) = (block(&keys, d, 3), residuals);
        let err = emmet_update(&c, 1.0, 0.0, 0.1, &k, &r).unwrap_err();
        prop_assert!(matches!(err, Error::NotPositiveDefinite { .. } | Error::IllConditioned { .. }), "{err:?}");
        // A ridge on C' makes it solvable.
        prop_assert!(emmet_update(&c, 1.0, 1.0, 0.1, &k, &r).is_ok());

        let p = NullSpaceProjector::from_second_moment(&c, REFERENCE_NULLSPACE_THRESHOLD).unwrap();
        let zeros = Tensor::zeros([d, d], F64);
        let err = alphaedit_update(&p, &k, &r, &zeros, 0.0).unwrap_err();
        prop_assert!(matches!(err, Error::IllConditioned { .. }), "{err:?}");
        prop_assert!(alphaedit_update(&p, &k, &r, &zeros, 1.0).is_ok());
    }
}

#[test]
fn bad_inputs_are_named_errors() {
    let c = Tensor::eye(3, F64);
    let k = Tensor::ones([3, 2], F64);
    let r = Tensor::ones([2, 2], F64);
    let zeros = Tensor::zeros([3, 3], F64);

    // Projector construction.
    let err = NullSpaceProjector::from_second_moment(&Tensor::ones([3, 2], F64), 0.1).unwrap_err();
    assert!(matches!(err, Error::Shape { what: "C", .. }), "{err:?}");
    for threshold in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = NullSpaceProjector::from_second_moment(&c, threshold).unwrap_err();
        assert!(err.to_string().contains("threshold"), "{err}");
    }
    let asymmetric = Tensor::from_slice(&[1.0f64, 0.5, 0.0, 1.0]).reshape([2, 2]);
    let err = NullSpaceProjector::from_second_moment(&asymmetric, 0.1).unwrap_err();
    assert!(err.to_string().contains("not symmetric"), "{err}");
    let indefinite = Tensor::from_slice(&[1.0f64, -1.0]).diagflat(0);
    let err = NullSpaceProjector::from_second_moment(&indefinite, 0.1).unwrap_err();
    assert!(err.to_string().contains("not a second moment"), "{err}");
    let nan = Tensor::from_slice(&[1.0f64, f64::NAN]).diagflat(0);
    assert!(NullSpaceProjector::from_second_moment(&nan, 0.1).is_err());
    // Tiny negative rounding below the threshold is a null direction, as in the reference's SVD.
    let rounded = Tensor::from_slice(&[1.0f64, -1e-12]).diagflat(0);
    assert_eq!(
        NullSpaceProjector::from_second_moment(&rounded, 0.1)
            .unwrap()
            .kept(),
        1
    );
    let err = NullSpaceProjector::from_parts(Tensor::eye(3, F64), 0.1, 2).unwrap_err();
    assert!(err.to_string().contains("trace"), "{err}");
    let err = NullSpaceProjector::from_parts(Tensor::eye(3, F64), 0.1, 4).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(NullSpaceProjector::from_parts(asymmetric.shallow_clone(), 0.1, 2).is_err());
    // The identity's infinite threshold survives a save and load.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    NullSpaceProjector::identity(3)
        .unwrap()
        .save(&path)
        .unwrap();
    let loaded = NullSpaceProjector::load(&path).unwrap();
    assert_eq!((loaded.kept(), loaded.threshold()), (3, f64::INFINITY));
    // A file of another kind is refused, naming what is missing.
    let err = KeyHistory::load(&path).unwrap_err();
    assert!(matches!(err, Error::Stats { .. }), "{err:?}");

    // AlphaEdit shapes and L2.
    let p = NullSpaceProjector::identity(3).unwrap();
    let err = alphaedit_update(&p, &Tensor::ones([4, 2], F64), &r, &zeros, 1.0).unwrap_err();
    assert!(matches!(err, Error::Shape { what: "keys", .. }), "{err:?}");
    let err = alphaedit_update(&p, &k, &Tensor::ones([2, 3], F64), &zeros, 1.0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Shape {
                what: "residuals",
                ..
            }
        ),
        "{err:?}"
    );
    let err = alphaedit_update(&p, &k, &r, &Tensor::zeros([2, 2], F64), 1.0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Shape {
                what: "K_pK_pᵀ",
                ..
            }
        ),
        "{err:?}"
    );
    for l2 in [-1.0, f64::NAN, f64::INFINITY] {
        let err = alphaedit_update(&p, &k, &r, &zeros, l2).unwrap_err();
        assert!(err.to_string().contains("L2"), "{err}");
    }
    let err = p.apply(&Tensor::ones([4], F64)).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    let mut history = KeyHistory::new(3).unwrap();
    assert!(matches!(
        history.add(&Tensor::ones([2, 3], F64)),
        Err(Error::Shape { .. })
    ));

    // EMMET shapes, parameters, and too many keys without the ridge.
    let err = emmet_update(&c, 1.0, 0.0, 0.1, &Tensor::ones([4, 2], F64), &r).unwrap_err();
    assert!(matches!(err, Error::Shape { what: "keys", .. }), "{err:?}");
    let err = emmet_update(&c, 1.0, 0.0, 0.1, &k, &Tensor::ones([2, 3], F64)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Shape {
                what: "residuals",
                ..
            }
        ),
        "{err:?}"
    );
    let err = emmet_update(
        &c,
        1.0,
        0.0,
        0.1,
        &Tensor::ones([3, 0], F64),
        &Tensor::ones([2, 0], F64),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    for (w, u, e, name) in [
        (-1.0, 0.0, 0.1, "mom2_update_weight"),
        (1.0, f64::NAN, 0.1, "update_norm_lambda"),
        (1.0, 0.0, -0.1, "emmet_lambda"),
    ] {
        let err = emmet_update(&c, w, u, e, &k, &r).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    let many = Tensor::from_slice(&[
        1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, -1.0, 1.0,
    ])
    .reshape([3, 4]);
    let err = emmet_update(&c, 1.0, 0.0, 0.0, &many, &Tensor::ones([2, 4], F64)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotPositiveDefinite { .. } | Error::IllConditioned { .. }
        ),
        "{err:?}"
    );
    assert!(emmet_update(&c, 1.0, 0.0, 0.1, &many, &Tensor::ones([2, 4], F64)).is_ok());
}
