//! Analytic floating-point operation counts of the matrix products of a forward pass (2 per
//! multiply-add), used to report how close a schedule runs to the machine's matmul rate.

use gpt_core::{Architecture, ModelConfig};

/// FLOPs of one block on `rows × s` new positions attending to `past + s` positions.
pub fn block(c: &ModelConfig, rows: usize, s: usize, past: usize) -> u64 {
    let (d, dh) = (c.d_model as u64, c.d_head as u64);
    let (h, kvh, dm) = (c.n_heads as u64, c.n_kv_heads as u64, c.d_mlp as u64);
    let tokens = (rows * s) as u64;
    let proj = d * (h * dh) * 2 + d * (kvh * dh) * 2;
    let mlp = match c.arch {
        Architecture::Gpt2 => 2 * d * dm,
        // SwiGLU (Llama) and any gated MLP to come: gate, up and down projections.
        _ => 3 * d * dm,
    };
    let keys = (past + s) as u64;
    let attn = 2 * h * dh * keys; // scores and weighted values, per query
    2 * tokens * (proj + mlp + attn)
}

/// FLOPs of a block that computes outputs only at the last of `s` positions: keys and
/// values for all `rows × s`, everything else for `rows` positions.
pub fn last_block(c: &ModelConfig, rows: usize, s: usize, past: usize) -> u64 {
    let (d, dh, kvh) = (c.d_model as u64, c.d_head as u64, c.n_kv_heads as u64);
    let kv = 2 * (rows * s) as u64 * d * (kvh * dh) * 2;
    let rest = block(c, rows, 1, past + s - 1) - 2 * rows as u64 * d * (kvh * dh) * 2;
    kv + rest
}

/// FLOPs of the unembedding of `rows` positions.
pub fn unembed(c: &ModelConfig, rows: usize) -> u64 {
    2 * rows as u64 * c.d_model as u64 * c.vocab_size as u64
}

/// FLOPs of a full forward pass of `rows × s` tokens after `past` cached positions,
/// unembedding `logit_rows` positions.
pub fn forward(c: &ModelConfig, rows: usize, s: usize, past: usize, logit_rows: usize) -> u64 {
    c.n_layers as u64 * block(c, rows, s, past) + unembed(c, logit_rows)
}
