//! In-context-learning prompts with the reference's template: clean, shuffled-label and
//! zero-shot variants, and the first answer token.
//!
//! Template (`word_pairs_to_prompt_data` with `prepend_space=True`):
//! `[BOS] Q: x₁\nA: y₁\n\n … Q: x_k\nA: y_k\n\nQ: x_q\nA:`; the target is `" " + y_q`, and
//! only its first token `y0` is scored.

use gpt_core::{ModelConfig, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::RandomState;
use crate::task::Task;

/// How a prompt starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bos {
    /// The tokenizer adds its own BOS (Llama-2 style `<s>`).
    Tokenizer,
    /// This id is put first (GPT-2 and SmolLM2: `<|endoftext|>`, as the reference prepends
    /// the text `<|endoftext|>` for models whose tokenizer adds no BOS).
    Inserted(i64),
    /// Nothing (the vocabulary has neither).
    None,
}

impl Bos {
    /// The reference's choice for this tokenizer: the tokenizer's BOS if it adds one, else
    /// the token `<|endoftext|>` if the vocabulary has it, else the config's BOS id.
    ///
    /// # Errors
    /// Tokenizer errors.
    pub fn for_model(tokenizer: &Tokenizer, config: &ModelConfig) -> Result<Self> {
        if !tokenizer.encode("")?.ids.is_empty() {
            return Ok(Bos::Tokenizer);
        }
        if let Some(id) = tokenizer.token_to_id("<|endoftext|>") {
            return Ok(Bos::Inserted(id));
        }
        Ok(config.bos_token_id.map_or(Bos::None, Bos::Inserted))
    }
}

/// Which variant of a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    /// Demonstrations with their own labels.
    Clean,
    /// Demonstration labels permuted among themselves (a plain permutation, not a
    /// derangement; the query is untouched).
    Shuffled,
    /// No demonstrations.
    ZeroShot,
}

/// One tokenised prompt with its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IclPrompt {
    /// Token ids, BOS included.
    pub ids: Vec<i64>,
    /// `y0`: the first token of `" " + output` after the prompt.
    pub answer: i64,
    /// Index of the query pair in the task.
    pub query: usize,
    /// Indices of the demonstration pairs, in prompt order.
    pub demos: Vec<usize>,
    /// Which variant this is.
    pub variant: Variant,
}

/// Builds the prompts of one task for one tokenizer.
#[derive(Debug)]
pub struct PromptBuilder<'a> {
    tokenizer: &'a Tokenizer,
    task: &'a Task,
    bos: Bos,
}

impl<'a> PromptBuilder<'a> {
    /// A builder, after checking that every output of the task tokenises (as `" " + output`)
    /// to at least one token.
    ///
    /// # Errors
    /// [`Error::BadRecord`] naming the file, the record index and the field `output`;
    /// tokenizer errors.
    pub fn new(tokenizer: &'a Tokenizer, config: &ModelConfig, task: &'a Task) -> Result<Self> {
        for (index, pair) in task.pairs.iter().enumerate() {
            if tokenizer
                .encode(&format!(" {}", pair.output))?
                .text_ids()
                .is_empty()
            {
                return Err(Error::BadRecord {
                    path: task.source.clone(),
                    index,
                    field: "output",
                    reason: format!("{:?} tokenises to nothing", pair.output),
                });
            }
        }
        Ok(Self {
            tokenizer,
            task,
            bos: Bos::for_model(tokenizer, config)?,
        })
    }

    /// The BOS rule used.
    pub fn bos(&self) -> Bos {
        self.bos
    }

    /// The task.
    pub fn task(&self) -> &Task {
        self.task
    }

    /// The prompt text (without an inserted BOS) of demonstrations `(input, output)` and a
    /// query input.
    pub fn text(demos: &[(&str, &str)], query: &str) -> String {
        let mut text = String::new();
        for (x, y) in demos {
            text.push_str(&format!("Q: {x}\nA: {y}\n\n"));
        }
        text.push_str(&format!("Q: {query}\nA:"));
        text
    }

    fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let mut ids = self.tokenizer.encode(text)?.ids;
        if let Bos::Inserted(id) = self.bos {
            ids.insert(0, id);
        }
        Ok(ids)
    }

    /// A prompt with demonstrations `demos` whose outputs are those of `labels` (equal to
    /// `demos` for clean prompts) and query `query`.
    ///
    /// # Errors
    /// Indices out of range ([`Error::InvalidInput`]); tokenizer errors.
    pub fn build(
        &self,
        demos: &[usize],
        labels: &[usize],
        query: usize,
        variant: Variant,
    ) -> Result<IclPrompt> {
        let pairs = &self.task.pairs;
        let get = |i: usize| {
            pairs.get(i).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "pair {i} of task {} (it has {})",
                    self.task.name,
                    pairs.len()
                ))
            })
        };
        if labels.len() != demos.len() {
            return Err(Error::InvalidInput(format!(
                "{} labels for {} demonstrations",
                labels.len(),
                demos.len()
            )));
        }
        let mut shown = Vec::with_capacity(demos.len());
        for (&d, &l) in demos.iter().zip(labels) {
            shown.push((get(d)?.input.as_str(), get(l)?.output.as_str()));
        }
        let q = get(query)?;
        let text = Self::text(&shown, &q.input);
        let ids = self.encode(&text)?;
        let answer = self.answer_id(&text, &ids, &q.output)?;
        Ok(IclPrompt {
            ids,
            answer,
            query,
            demos: demos.to_vec(),
            variant,
        })
    }

    /// `y0`: tokenise the prompt and prompt + `" " + output`, take the first id of the
    /// suffix (reference `get_answer_id`); where the prompt's ids are not a prefix (a token
    /// merged across the boundary), the first token of `" " + output` alone.
    fn answer_id(&self, text: &str, ids: &[i64], output: &str) -> Result<i64> {
        let full = self.encode(&format!("{text} {output}"))?;
        if full.len() > ids.len() && full[..ids.len()] == *ids {
            return Ok(full[ids.len()]);
        }
        Ok(gpt_core::first_target_token(self.tokenizer, output)?.id)
    }

    /// Clean prompt: demonstrations with their own outputs.
    ///
    /// # Errors
    /// As [`PromptBuilder::build`].
    pub fn clean(&self, demos: &[usize], query: usize) -> Result<IclPrompt> {
        self.build(demos, demos, query, Variant::Clean)
    }

    /// Shuffled-label prompt: the demonstrations' outputs permuted by `rng`
    /// (`np.random.permutation` of the labels).
    ///
    /// # Errors
    /// As [`PromptBuilder::build`].
    pub fn shuffled(
        &self,
        demos: &[usize],
        query: usize,
        rng: &mut RandomState,
    ) -> Result<IclPrompt> {
        let mut labels = demos.to_vec();
        rng.shuffle(&mut labels);
        self.build(demos, &labels, query, Variant::Shuffled)
    }

    /// Zero-shot prompt: `[BOS] Q: x\nA:`.
    ///
    /// # Errors
    /// As [`PromptBuilder::build`].
    pub fn zero_shot(&self, query: usize) -> Result<IclPrompt> {
        self.build(&[], &[], query, Variant::ZeroShot)
    }
}

/// Draws `shots` demonstrations from `train` (`choice(len(train), shots, replace=False)`),
/// as pair indices.
pub fn draw_demos(train: &[usize], shots: usize, rng: &mut RandomState) -> Vec<usize> {
    rng.choice(train.len(), shots)
        .into_iter()
        .map(|i| train[i])
        .collect()
}
