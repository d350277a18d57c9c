//! The JSON form of a [`ModelConfig`].
//!
//! It is a cache key: rome's `model_fingerprint` hashes it, and statistics and result files
//! record that fingerprint and are refused for a model whose fingerprint differs. So the form
//! stays what it was before [`Activation`] and [`NormKind`] replaced three bools
//! (`exact_gelu`, `gelu_gate`, `norm_plus_one`, in that place): a config written with the old
//! fields gives the same text, and existing caches stay valid.
//!
//! The destructuring below names every field without `..`, so a new field does not compile
//! until it is added here too (and changes the fingerprint, as a new fact about the model
//! should).

use serde::{Serialize, Serializer};

use super::{Activation, Architecture, ModelConfig, NormKind, Rope, RopeScaling};

/// The serialized fields, in their historical order and names.
#[derive(Serialize)]
struct Wire<'a> {
    arch: Architecture,
    model_type: &'a str,
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
    n_kv_heads: usize,
    d_head: usize,
    d_mlp: usize,
    vocab_size: usize,
    n_ctx: usize,
    norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<RopeScaling>,
    rotary_dim: Option<usize>,
    parallel_attn_mlp: bool,
    exact_gelu: bool,
    gelu_gate: bool,
    norm_plus_one: bool,
    embed_scale: Option<f64>,
    query_pre_attn_scalar: Option<f64>,
    attn_softcap: Option<f64>,
    final_softcap: Option<f64>,
    post_norms: bool,
    qk_norm: bool,
    sliding_rope: Option<Rope>,
    sliding_layers: Option<&'a [bool]>,
    sliding_window: Option<usize>,
    tied_embeddings: bool,
    qkv_bias: bool,
    bos_token_id: Option<i64>,
    eos_token_id: Option<i64>,
}

impl Serialize for ModelConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ModelConfig {
            arch,
            model_type,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            d_head,
            d_mlp,
            vocab_size,
            n_ctx,
            norm_eps,
            rope_theta,
            rope_scaling,
            rotary_dim,
            parallel_attn_mlp,
            activation,
            norm,
            embed_scale,
            query_pre_attn_scalar,
            attn_softcap,
            final_softcap,
            post_norms,
            qk_norm,
            sliding_rope,
            sliding_layers,
            sliding_window,
            tied_embeddings,
            qkv_bias,
            bos_token_id,
            eos_token_id,
        } = self;
        // The old bools: exact GELU in a GELU MLP; a tanh-GELU gate in the (Llama layout's)
        // gated MLP.
        let gated = *arch == Architecture::Llama;
        Wire {
            arch: *arch,
            model_type,
            n_layers: *n_layers,
            d_model: *d_model,
            n_heads: *n_heads,
            n_kv_heads: *n_kv_heads,
            d_head: *d_head,
            d_mlp: *d_mlp,
            vocab_size: *vocab_size,
            n_ctx: *n_ctx,
            norm_eps: *norm_eps,
            rope_theta: *rope_theta,
            rope_scaling: *rope_scaling,
            rotary_dim: *rotary_dim,
            parallel_attn_mlp: *parallel_attn_mlp,
            exact_gelu: !gated && *activation == Activation::Gelu,
            gelu_gate: gated && *activation == Activation::GeluTanh,
            norm_plus_one: *norm == NormKind::RmsNormPlusOne,
            embed_scale: *embed_scale,
            query_pre_attn_scalar: *query_pre_attn_scalar,
            attn_softcap: *attn_softcap,
            final_softcap: *final_softcap,
            post_norms: *post_norms,
            qk_norm: *qk_norm,
            sliding_rope: *sliding_rope,
            sliding_layers: sliding_layers.as_deref(),
            sliding_window: *sliding_window,
            tied_embeddings: *tied_embeddings,
            qkv_bias: *qkv_bias,
            bos_token_id: *bos_token_id,
            eos_token_id: *eos_token_id,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::random::tiny_config;
    use crate::Architecture;

    /// The text of a GPT-2 and a Llama config as the derived form wrote it before the enums.
    #[test]
    fn json_form_is_unchanged() {
        let gpt2 = serde_json::to_string(&tiny_config(Architecture::Gpt2)).unwrap();
        assert_eq!(
            gpt2,
            r#"{"arch":"Gpt2","model_type":"gpt2","n_layers":2,"d_model":16,"n_heads":4,"n_kv_heads":4,"d_head":4,"d_mlp":32,"vocab_size":64,"n_ctx":32,"norm_eps":0.00001,"rope_theta":null,"rope_scaling":null,"rotary_dim":null,"parallel_attn_mlp":false,"exact_gelu":false,"gelu_gate":false,"norm_plus_one":false,"embed_scale":null,"query_pre_attn_scalar":null,"attn_softcap":null,"final_softcap":null,"post_norms":false,"qk_norm":false,"sliding_rope":null,"sliding_layers":null,"sliding_window":null,"tied_embeddings":true,"qkv_bias":true,"bos_token_id":null,"eos_token_id":0}"#
        );
        let llama = serde_json::to_string(&tiny_config(Architecture::Llama)).unwrap();
        assert_eq!(
            llama,
            r#"{"arch":"Llama","model_type":"llama","n_layers":2,"d_model":16,"n_heads":4,"n_kv_heads":2,"d_head":4,"d_mlp":32,"vocab_size":64,"n_ctx":32,"norm_eps":0.00001,"rope_theta":10000.0,"rope_scaling":null,"rotary_dim":null,"parallel_attn_mlp":false,"exact_gelu":false,"gelu_gate":false,"norm_plus_one":false,"embed_scale":null,"query_pre_attn_scalar":null,"attn_softcap":null,"final_softcap":null,"post_norms":false,"qk_norm":false,"sliding_rope":null,"sliding_layers":null,"sliding_window":null,"tied_embeddings":false,"qkv_bias":false,"bos_token_id":null,"eos_token_id":0}"#
        );
    }
}
