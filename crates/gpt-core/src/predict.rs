//! The most probable next tokens after a prompt: the first thing one looks at before and
//! after an intervention or an edit.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use crate::error::{check_finite, Error, Result};
use crate::input::TokenBatch;
use crate::intervention::{Intervention, NoHooks};
use crate::model::{ForwardOptions, HookableModel};
use crate::tokenizer::Tokenizer;

/// One candidate next token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Token id.
    pub id: i64,
    /// Decoded token text.
    pub text: String,
    /// Probability at the prompt's last position.
    pub probability: f64,
}

/// The prediction after one prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The prompt text.
    pub prompt: String,
    /// Its token ids.
    pub token_ids: Vec<i64>,
    /// The top-`k` next tokens, most probable first.
    pub top: Vec<Candidate>,
}

impl Prediction {
    /// The probability of token `id` if it is among the top candidates.
    pub fn probability_of(&self, id: i64) -> Option<f64> {
        self.top.iter().find(|c| c.id == id).map(|c| c.probability)
    }
}

/// The `k` most probable next tokens after `prompt` (softmax of the last position's logits,
/// in f32), most probable first; `k` is clamped to `1..=vocab`.
///
/// ```no_run
/// # fn main() -> gpt_core::Result<()> {
/// let m = gpt_core::load_model("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), Default::default())?;
/// let p = gpt_core::top_k(&m.model, &m.tokenizer, "The Eiffel Tower is located in the city of", 5)?;
/// assert_eq!(p.top[0].text, " Paris");
/// # Ok(()) }
/// ```
///
/// # Errors
/// An empty prompt, one longer than the context, non-finite logits, model errors.
pub fn top_k(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    prompt: &str,
    k: usize,
) -> Result<Prediction> {
    top_k_with(model, tokenizer, prompt, k, &mut NoHooks)
}

/// [`top_k`] with `hooks` applied during the pass (e.g. a
/// [`SteeringVector`](crate::steering::SteeringVector)'s writes).
///
/// # Errors
/// As [`top_k`], and the interventions' errors.
pub fn top_k_with(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    prompt: &str,
    k: usize,
    hooks: &mut dyn Intervention,
) -> Result<Prediction> {
    let enc = tokenizer.encode(prompt)?;
    if enc.ids.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let batch = TokenBatch::single(&enc.ids, model.device())?;
    let _guard = tch::no_grad_guard();
    // `[1, vocab]`: the last position's logits only.
    let logits = model
        .forward_with(&batch, ForwardOptions::last(), hooks)?
        .logits()?;
    let last = logits.f_squeeze_dim(0)?;
    check_finite(&last, &format!("the logits after {prompt:?}"))?;
    let probs = last.f_softmax(-1, Kind::Float)?;
    let k = k.clamp(1, model.config().vocab_size) as i64;
    let (values, indices) = probs.f_topk(k, -1, true, true)?;
    let values = Vec::<f64>::try_from(&values.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?)?;
    let indices = Vec::<i64>::try_from(&indices.f_to_device(Device::Cpu)?)?;
    let top = indices
        .iter()
        .zip(values)
        .map(|(&id, probability)| {
            Ok(Candidate {
                id,
                text: tokenizer.token_text(id)?,
                probability,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prediction {
        prompt: prompt.to_string(),
        token_ids: enc.ids,
        top,
    })
}
