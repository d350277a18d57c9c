//! Proptest strategies for property tests against random models (feature `testing`).
//!
//! Downstream crates (tracing, editing, evaluation) test their invariants on many small
//! random models, prompts and matrices; these strategies are the shared way to draw them.
//!
//! `proptest` is re-exported ([`proptest`](crate::testing::proptest)), so a dependent needs
//! only `gpt-core` with feature `testing` (add `proptest` itself to use its macros by their
//! usual path in your own `Cargo.toml`, or import them from here as below).
//!
//! ```
//! use gpt_core::testing::proptest::prelude::*;
//! use gpt_core::testing::{arb_model, arb_prompts, PromptShape};
//! use gpt_core::HookableModel;
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(2))]
//!     // In a test file this function would carry `#[test]`.
//!     fn logits_are_finite(
//!         model in arb_model(),
//!         prompts in arb_prompts(PromptShape { vocab: 64, min_len: 1, max_len: 6, max_batch: 2 }),
//!     ) {
//!         let batch = gpt_core::TokenBatch::pad(&prompts, Default::default(), 0, model.device()).unwrap();
//!         let logits = model.forward(&batch).unwrap();
//!         prop_assert!(gpt_core::check_finite(&logits, "logits").is_ok());
//!     }
//! }
//! logits_are_finite();
//! ```

pub use proptest;

use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::config::{Architecture, ModelConfig};
use crate::hook::{BlockSite, HookPoint};
use crate::model::HookableModel;
use crate::random::{rotary_dim_for, tiny_config, RandomInit};
use crate::transformer::Transformer;

/// Every architecture family that loads (GPT-2, Llama, GPT-NeoX, GPT-J).
pub fn arb_architecture() -> impl Strategy<Value = Architecture> {
    proptest::sample::select(Architecture::ALL.to_vec())
}

/// Small random configs of every architecture: 1–3 layers, 1–4 query heads of size 2–8
/// (Llama: key/value heads dividing the query heads; GPT-NeoX and GPT-J: half of each head
/// rotated; NeoX: parallel or sequential residual), `d_mlp` 8–40, vocabulary 64, context 32.
pub fn arb_config() -> impl Strategy<Value = ModelConfig> {
    (
        arb_architecture(),
        1usize..=3,
        prop_oneof![Just(1usize), Just(2), Just(4)],
        prop_oneof![Just(2usize), Just(4), Just(8)],
        1usize..=5,
        any::<bool>(),
    )
        .prop_map(|(arch, n_layers, n_heads, d_head, mlp_mult, variant)| {
            let mut c = tiny_config(arch);
            c.n_layers = n_layers;
            c.n_heads = n_heads;
            c.d_head = d_head;
            c.d_model = n_heads * d_head;
            c.d_mlp = 8 * mlp_mult;
            // `variant` picks the one choice each family has: grouped key/value heads in
            // Llama, the parallel residual in NeoX.
            c.n_kv_heads = if arch == Architecture::Llama && variant && n_heads > 1 {
                n_heads / 2
            } else {
                n_heads
            };
            if c.rotary_dim.is_some() {
                c.rotary_dim = Some(rotary_dim_for(d_head));
            }
            if arch == Architecture::GptNeox {
                c.parallel_attn_mlp = variant;
            }
            c
        })
}

/// A random f32 CPU model of an [`arb_config`] with a random seed (weights of std 0.5, so
/// that activations are far from zero and bugs show).
pub fn arb_model() -> impl Strategy<Value = Transformer> {
    (arb_config(), 0i64..1_000_000).prop_filter_map("model", |(config, seed)| {
        Transformer::random(
            &config,
            RandomInit { seed, std: 0.5 },
            Device::Cpu,
            Kind::Float,
        )
        .ok()
    })
}

/// The tiny model of `arch` ([`tiny_config`]) with a random seed, in `kind` on the CPU.
pub fn arb_tiny_model(arch: Architecture, kind: Kind) -> impl Strategy<Value = Transformer> {
    (0i64..1_000_000).prop_filter_map("model", move |seed| {
        Transformer::random(
            &tiny_config(arch),
            RandomInit { seed, std: 0.5 },
            Device::Cpu,
            kind,
        )
        .ok()
    })
}

/// The shape of random prompts: token ids below `vocab`, `min_len..=max_len` tokens each, and
/// (for [`arb_prompts`]) 1 to `max_batch` prompts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptShape {
    /// Token ids are below this.
    pub vocab: i64,
    /// Fewest tokens in a prompt.
    pub min_len: usize,
    /// Most tokens in a prompt.
    pub max_len: usize,
    /// Most prompts in a batch.
    pub max_batch: usize,
}

/// One prompt of `shape.min_len..=shape.max_len` token ids below `shape.vocab`.
pub fn arb_prompt(shape: PromptShape) -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0..shape.vocab, shape.min_len..=shape.max_len)
}

/// 1 to `shape.max_batch` prompts of [`arb_prompt`].
pub fn arb_prompts(shape: PromptShape) -> impl Strategy<Value = Vec<Vec<i64>>> {
    prop::collection::vec(arb_prompt(shape), 1..=shape.max_batch.max(1))
}

/// One of the hook points `model` has ([`HookableModel::hook_points`]: every block site of
/// every layer, the embeddings, the final norm).
pub fn arb_hook_point_of(model: &dyn HookableModel) -> impl Strategy<Value = HookPoint> {
    prop::sample::select(model.hook_points())
}

/// A hook point of a model with `n_layers` layers (block sites of any layer, embeddings,
/// final norm; `hook_pos_embed` only when `learned_positions`). Prefer
/// [`arb_hook_point_of`] when a model is at hand.
pub fn arb_hook_point(
    n_layers: usize,
    learned_positions: bool,
) -> impl Strategy<Value = HookPoint> {
    let block = (0..n_layers.max(1), 0..BlockSite::ALL.len())
        .prop_map(|(l, s)| HookPoint::block(l, BlockSite::ALL[s]));
    let edge = if learned_positions {
        prop_oneof![
            Just(HookPoint::Embed),
            Just(HookPoint::PosEmbed),
            Just(HookPoint::LnFinal)
        ]
        .boxed()
    } else {
        prop_oneof![Just(HookPoint::Embed), Just(HookPoint::LnFinal)].boxed()
    };
    prop_oneof![4 => block, 1 => edge]
}

/// A matrix `[rows, cols]` of f64 entries in `-1..1`.
pub fn arb_matrix(rows: usize, cols: usize) -> impl Strategy<Value = Tensor> {
    prop::collection::vec(-1.0f64..1.0, rows * cols).prop_filter_map("matrix", move |v| {
        Tensor::f_from_slice(&v)
            .and_then(|t| t.f_reshape([rows as i64, cols as i64]))
            .ok()
    })
}

/// A well-conditioned symmetric positive definite f64 matrix `[n, n]`: `A Aᵀ / n + I`, whose
/// eigenvalues lie in `[1, 1 + n]` (condition number at most `n + 1`). The shape of ROME's
/// key second moment `C`, safe for Cholesky solves in property tests.
pub fn arb_spd_matrix(n: usize) -> impl Strategy<Value = Tensor> {
    arb_matrix(n, n).prop_filter_map("SPD matrix", move |a| {
        let spd = || -> Result<Tensor, tch::TchError> {
            let eye = Tensor::f_eye(n as i64, (Kind::Double, Device::Cpu))?;
            a.f_matmul(&a.f_transpose(0, 1)?)?
                .f_div_scalar(n as f64)?
                .f_add(&eye)
        };
        spd().ok()
    })
}

/// A vector `[n]` of f64 entries in `-1..1`.
pub fn arb_vector(n: usize) -> impl Strategy<Value = Tensor> {
    prop::collection::vec(-1.0f64..1.0, n)
        .prop_filter_map("vector", |v| Tensor::f_from_slice(&v).ok())
}

/// A symmetric positive definite f64 matrix `[n, n]` with condition number exactly
/// `condition` (≥ 1): `Q diag(λ) Qᵀ` for a random orthogonal `Q` and eigenvalues spread
/// geometrically from 1 to `condition`. For testing how code handles badly conditioned key
/// statistics (e.g. a solver's refusal above its condition limit).
pub fn arb_ill_conditioned_spd(n: usize, condition: f64) -> impl Strategy<Value = Tensor> {
    let eigenvalues: Vec<f64> = (0..n)
        .map(|i| condition.max(1.0).powf(i as f64 / (n.max(2) - 1) as f64))
        .collect();
    arb_orthogonal(n).prop_filter_map("ill-conditioned SPD matrix", move |q| {
        with_spectrum(&q, &eigenvalues).ok()
    })
}

/// A symmetric positive semi-definite f64 matrix `[n, n]` of rank `rank < n` (so singular):
/// `Q diag(1, …, 1, 0, …, 0) Qᵀ`, for tests of error paths (rounding can leave its zero
/// eigenvalues at ±1e-16, so a plain Cholesky may not fail on it: check the condition).
pub fn arb_singular_psd(n: usize, rank: usize) -> impl Strategy<Value = Tensor> {
    let eigenvalues: Vec<f64> = (0..n).map(|i| if i < rank { 1.0 } else { 0.0 }).collect();
    arb_orthogonal(n).prop_filter_map("singular PSD matrix", move |q| {
        with_spectrum(&q, &eigenvalues).ok()
    })
}

/// A random orthogonal f64 matrix `[n, n]` (the Q of a QR decomposition of a random matrix).
pub fn arb_orthogonal(n: usize) -> impl Strategy<Value = Tensor> {
    arb_matrix(n, n).prop_filter_map("orthogonal matrix", |a| {
        Tensor::f_linalg_qr(&a, "reduced").ok().map(|(q, _)| q)
    })
}

/// `Q diag(eigenvalues) Qᵀ`, symmetrised against rounding.
fn with_spectrum(q: &Tensor, eigenvalues: &[f64]) -> Result<Tensor, tch::TchError> {
    let d = Tensor::f_from_slice(eigenvalues)?;
    let m = q
        .f_mul(&d.f_unsqueeze(0)?)?
        .f_matmul(&q.f_transpose(0, 1)?)?;
    m.f_add(&m.f_transpose(0, 1)?)?.f_div_scalar(2.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn eigenvalues(m: &Tensor) -> Vec<f64> {
        let e = m.f_linalg_eigvalsh("L").unwrap();
        Vec::<f64>::try_from(&e).unwrap()
    }

    #[test]
    fn ill_conditioned_and_singular_matrices_have_the_promised_spectrum() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..4 {
            let m = arb_ill_conditioned_spd(6, 1e8)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let e = eigenvalues(&m);
            let (lo, hi) = (e[0], e[e.len() - 1]);
            assert!((hi / lo / 1e8 - 1.0).abs() < 1e-3, "{e:?}");
            assert!(m.allclose(&m.f_transpose(0, 1).unwrap(), 0.0, 0.0, false));

            let s = arb_singular_psd(5, 3)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let e = eigenvalues(&s);
            assert!(e[0].abs() < 1e-12 && e[1].abs() < 1e-12, "{e:?}");
            assert!((e[2] - 1.0).abs() < 1e-12, "{e:?}");
        }
    }

    #[test]
    fn hook_points_are_drawn_from_the_model() {
        let model = Transformer::random(
            &tiny_config(Architecture::Gpt2),
            RandomInit { seed: 1, std: 0.5 },
            Device::Cpu,
            Kind::Float,
        )
        .unwrap();
        let points = model.hook_points();
        let mut runner = TestRunner::deterministic();
        for _ in 0..20 {
            let p = arb_hook_point_of(&model)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            assert!(points.contains(&p));
        }
    }
}
