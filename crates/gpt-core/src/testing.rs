//! Proptest strategies for property tests against random models (feature `testing`).
//!
//! Downstream crates (tracing, editing, evaluation) test their invariants on many small
//! random models, prompts and matrices; these strategies are the shared way to draw them.
//!
//! ```
//! use gpt_core::testing::{arb_model, arb_prompts};
//! use gpt_core::HookableModel;
//! use proptest::prelude::*;
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(2))]
//!     // In a test file this function would carry `#[test]`.
//!     fn logits_are_finite(model in arb_model(), prompts in arb_prompts(64, 1, 6, 2)) {
//!         let batch = gpt_core::TokenBatch::pad(&prompts, Default::default(), 0, model.device()).unwrap();
//!         let logits = model.forward(&batch).unwrap();
//!         prop_assert!(gpt_core::check_finite(&logits, "logits").is_ok());
//!     }
//! }
//! logits_are_finite();
//! ```

use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::config::{Architecture, ModelConfig};
use crate::hook::{BlockSite, HookPoint};
use crate::random::{tiny_config, RandomInit};
use crate::transformer::Transformer;

/// Either architecture family.
pub fn arb_architecture() -> impl Strategy<Value = Architecture> {
    prop_oneof![Just(Architecture::Gpt2), Just(Architecture::Llama)]
}

/// Small random configs of either architecture: 1–3 layers, 1–4 query heads of size 2–8
/// (Llama: key/value heads dividing the query heads), `d_mlp` 8–40, vocabulary 64,
/// context 32.
pub fn arb_config() -> impl Strategy<Value = ModelConfig> {
    (
        arb_architecture(),
        1usize..=3,
        prop_oneof![Just(1usize), Just(2), Just(4)],
        prop_oneof![Just(2usize), Just(4), Just(8)],
        1usize..=5,
        any::<bool>(),
    )
        .prop_map(|(arch, n_layers, n_heads, d_head, mlp_mult, grouped)| {
            let mut c = tiny_config(arch);
            c.n_layers = n_layers;
            c.n_heads = n_heads;
            c.d_head = d_head;
            c.d_model = n_heads * d_head;
            c.d_mlp = 8 * mlp_mult;
            c.n_kv_heads = if arch == Architecture::Llama && grouped && n_heads > 1 {
                n_heads / 2
            } else {
                n_heads
            };
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

/// One prompt of `min_len..=max_len` token ids below `vocab`.
pub fn arb_prompt(vocab: i64, min_len: usize, max_len: usize) -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0..vocab, min_len..=max_len)
}

/// 1 to `max_batch` prompts of `min_len..=max_len` tokens each.
pub fn arb_prompts(
    vocab: i64,
    min_len: usize,
    max_len: usize,
    max_batch: usize,
) -> impl Strategy<Value = Vec<Vec<i64>>> {
    prop::collection::vec(arb_prompt(vocab, min_len, max_len), 1..=max_batch.max(1))
}

/// A hook point of a model with `n_layers` layers (block sites of any layer, embeddings,
/// final norm; `hook_pos_embed` only when `learned_positions`).
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
