//! The methods of this crate behind [`gpt_core::Editor`], for evaluators and the command
//! line: each holds its hyperparameters and what it needs across edits (key statistics,
//! context templates generated once from the unedited model).

use gpt_core::tch::Tensor;
use gpt_core::{EditModel, Editor, Method, RewriteRequest, Tokenizer, WeightDelta};

use crate::error::{Error, Result};
use crate::ft::{compute_ft, FtHparams};
use crate::hparams::{RomeHparams, RomeVariant};
use crate::memit::{compute_memit, MemitHparams};
use crate::rome::{compute_rome, context_templates, VSchedule};

/// Wraps this crate's error for the [`Editor`] interface.
/// `rome::Error::from` gives the error back.
fn boxed(method: Method, e: Error) -> gpt_core::Error {
    match e {
        Error::Model(e) => e,
        other => gpt_core::Error::Edit {
            method,
            error: Box::new(other),
        },
    }
}

/// Context templates of `params`, generated on first use and kept.
fn templates_for(
    cache: &mut Option<Vec<String>>,
    model: &dyn EditModel,
    tokenizer: &Tokenizer,
    params: &[(usize, usize)],
    seed: u64,
) -> Result<Vec<String>> {
    if let Some(t) = cache {
        return Ok(t.clone());
    }
    let t = context_templates(model.as_hookable(), tokenizer, params, seed)?;
    *cache = Some(t.clone());
    Ok(t)
}

/// ROME (or r-ROME, by [`RomeHparams::variant`]), one request at a time.
#[derive(Debug)]
pub struct RomeEditor {
    /// The hyperparameters.
    pub hparams: RomeHparams,
    /// `[d_mlp, d_mlp]`: the key statistics `C` of `hparams.layer` (`None` only when
    /// `mom2_adjustment` is off).
    pub c: Option<Tensor>,
    /// How v* is optimised.
    pub schedule: VSchedule,
    templates: Option<Vec<String>>,
}

impl RomeEditor {
    /// An editor with `C` of the edited layer; templates are generated on the first edit.
    pub fn new(hparams: RomeHparams, c: Option<Tensor>) -> Self {
        Self {
            hparams,
            c,
            schedule: VSchedule::Fast,
            templates: None,
        }
    }

    /// Uses these context templates instead of generating them.
    pub fn with_templates(mut self, templates: Vec<String>) -> Self {
        self.templates = Some(templates);
        self
    }

    fn run(
        &mut self,
        model: &dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
    ) -> Result<Vec<WeightDelta>> {
        let templates = templates_for(
            &mut self.templates,
            model,
            tokenizer,
            &self.hparams.context_template_length_params,
            self.hparams.template_seed,
        )?;
        requests
            .iter()
            .map(|r| {
                compute_rome(
                    model,
                    tokenizer,
                    r,
                    &self.hparams,
                    self.c.as_ref(),
                    &templates,
                    self.schedule,
                )
                .map(|e| e.delta)
            })
            .collect()
    }
}

impl Editor for RomeEditor {
    fn method(&self) -> Method {
        match self.hparams.variant {
            RomeVariant::Original => Method::Rome,
            RomeVariant::RRome => Method::RRome,
        }
    }

    /// Each request is computed on the model as given; [`gpt_core::apply_edits`] passes one
    /// at a time, so sequential edits see the earlier ones.
    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        let method = self.method();
        self.run(&*model, tokenizer, requests)
            .map_err(|e| boxed(method, e))
    }
}

/// MEMIT: all requests of one call written jointly over several layers.
#[derive(Debug)]
pub struct MemitEditor {
    /// The hyperparameters.
    pub hparams: MemitHparams,
    /// The key statistics of each of `hparams.layers`, in order.
    pub cs: Vec<Tensor>,
    templates: Option<Vec<String>>,
}

impl MemitEditor {
    /// An editor with the statistics of each edited layer.
    pub fn new(hparams: MemitHparams, cs: Vec<Tensor>) -> Self {
        Self {
            hparams,
            cs,
            templates: None,
        }
    }
}

impl Editor for MemitEditor {
    fn method(&self) -> Method {
        Method::Memit
    }

    fn joint(&self) -> bool {
        true
    }

    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        let mut run = || -> Result<Vec<WeightDelta>> {
            let templates = templates_for(
                &mut self.templates,
                &*model,
                tokenizer,
                &self.hparams.z.context_template_length_params,
                self.hparams.z.template_seed,
            )?;
            let edit = compute_memit(
                &mut *model,
                tokenizer,
                requests,
                &self.hparams,
                &self.cs,
                &templates,
                &mut gpt_core::progress::ignore,
            )?;
            Ok(edit.deltas)
        };
        run().map_err(|e| boxed(Method::Memit, e))
    }
}

/// FT-L: all requests of one call fine-tuned together into one matrix.
#[derive(Debug)]
pub struct FtEditor {
    /// The hyperparameters.
    pub hparams: FtHparams,
}

impl Editor for FtEditor {
    fn method(&self) -> Method {
        Method::Ft
    }

    fn joint(&self) -> bool {
        true
    }

    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        compute_ft(&*model, tokenizer, requests, &self.hparams)
            .map(|e| vec![e.delta])
            .map_err(|e| boxed(Method::Ft, e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A method error crosses the `Editor` interface boxed and comes back as itself.
    #[test]
    fn editor_errors_come_back_as_this_crates_error() {
        let e = boxed(
            Method::Memit,
            Error::InvalidInput("λ must be positive".into()),
        );
        assert!(matches!(
            e,
            gpt_core::Error::Edit {
                method: Method::Memit,
                ..
            }
        ));
        assert!(e.method_error::<Error>().is_some());
        assert!(e.to_string().starts_with("memit: "), "{e}");
        match Error::from(e) {
            Error::InvalidInput(m) => assert_eq!(m, "λ must be positive"),
            other => panic!("got {other:?}"),
        }
        // Model errors pass through unboxed.
        let e = boxed(Method::Rome, Error::Model(gpt_core::Error::EmptySubject));
        assert!(matches!(e, gpt_core::Error::EmptySubject));
    }
}
