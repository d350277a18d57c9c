//! The "known" rule: whether the model's greedy next token after a fact's prompt is the
//! first token of `" " + attribute`.

use gpt_core::tch::{Device, Kind};
use gpt_core::{
    check_finite, first_target_token, ForwardOptions, HookableModel, NoHooks, TokenBatch, Tokenizer,
};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::facts::KnownFact;
use gpt_core::TokenText;

/// The outcome of the "known" rule for one fact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownCheck {
    /// Whether the greedy prediction is the expected token.
    pub known: bool,
    /// The model's greedy next token after the prompt.
    pub predicted: TokenText,
    /// The first token of `" " + attribute`.
    pub expected: TokenText,
}

/// The first token of `" " + attribute` (a BOS the tokenizer adds is skipped); see
/// [`gpt_core::first_target_token`].
///
/// # Errors
/// An attribute that tokenises to nothing; tokenizer errors.
pub fn expected_token(tokenizer: &Tokenizer, attribute: &str) -> Result<TokenText> {
    Ok(first_target_token(tokenizer, attribute)?)
}

/// Applies the "known" rule (data/README): the model knows `fact` when its greedy next
/// token after `fact.prompt` equals the first token of `" " + fact.attribute`.
///
/// # Errors
/// An empty prompt, a prompt longer than the context, tokenizer or model errors.
pub fn check_known(
    model: &dyn HookableModel,
    tokenizer: &Tokenizer,
    fact: &KnownFact,
) -> Result<KnownCheck> {
    let expected = expected_token(tokenizer, &fact.attribute)?;
    let enc = tokenizer.encode(&fact.prompt)?;
    if enc.ids.is_empty() {
        return Err(gpt_core::Error::EmptyPrompt.into());
    }
    let _guard = gpt_core::tch::no_grad_guard();
    let batch = TokenBatch::single(&enc.ids, model.device())?;
    let logits = model
        .forward_with(&batch, ForwardOptions::last(), &mut NoHooks)?
        .logits()?;
    check_finite(&logits, &format!("the logits after {:?}", fact.prompt))?;
    let top = logits
        .f_to_kind(Kind::Float)?
        .f_argmax(-1, false)?
        .f_to_device(Device::Cpu)?
        .f_int64_value(&[0])?;
    let predicted = TokenText {
        id: top,
        text: tokenizer.token_text(top)?,
    };
    Ok(KnownCheck {
        known: predicted.id == expected.id,
        predicted,
        expected,
    })
}
