//! How the passes of an intervention study are run: the fast schedule every method crate
//! has (compute only what the intervention can change, reuse the rest), or full passes as
//! the reference implementations run them — the fast schedule's correctness oracle.

use serde::{Deserialize, Serialize};

/// Fast or naive passes (serialised as `"fast"` / `"naive"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Reuse what the intervention cannot change — a base run's keys, values and residuals
    /// below the changed block and before the changed position — run only the positions and
    /// blocks it changes, and unembed only the positions read: causal tracing's grid (all
    /// layers of a token batched), the function-vector head scan (every head's lane
    /// batched), ROME's v* and MEMIT's z (each step from the subject on through blocks
    /// `L..`).
    #[default]
    Fast,
    /// One full forward pass per cell, head or step, unembedding every position, as the
    /// reference implementations do: the oracle the fast schedule is tested against.
    Naive,
}
