//! The methods of this crate behind [`gpt_core::Editor`], for evaluators and the command
//! line: each holds its hyperparameters and what it needs across edits (key statistics,
//! context templates generated once from the unedited model).

use std::path::{Path, PathBuf};

use gpt_core::progress::ProgressFn;
use gpt_core::tch::Tensor;
use gpt_core::{EditModel, Editor, Method, RewriteRequest, Tokenizer, WeightDelta};

use crate::alphaedit::{compute_alphaedit_cached, AlphaEditHparams};
use crate::emmet::{compute_emmet_cached, EmmetHparams};
use crate::error::{Error, Result};
use crate::ft::{compute_ft, FtHparams};
use crate::hparams::{RomeHparams, RomeVariant};
use crate::layered::LayeredEdit;
use crate::memit::{compute_memit_cached, MemitHparams};
use crate::nullspace::{KeyHistory, NullSpaceProjector};
use crate::rome::{compute_rome, context_templates, Schedule};
use crate::target_cache::TargetCache;

/// Wraps this crate's error for the [`Editor`] interface.
/// `rome::Error::from` gives the error back.
fn boxed(method: Method, e: Error) -> gpt_core::Error {
    match e {
        Error::Model(e) => e,
        Error::Cancelled(c) => gpt_core::Error::Cancelled(c),
        other => gpt_core::Error::Edit {
            method,
            error: Box::new(other),
        },
    }
}

/// The context templates of `hp` (its length parameters and seed), generated on first use and
/// kept.
fn templates_for(
    cache: &mut Option<Vec<String>>,
    model: &dyn EditModel,
    tokenizer: &Tokenizer,
    hp: &RomeHparams,
) -> Result<Vec<String>> {
    if let Some(t) = cache {
        return Ok(t.clone());
    }
    let t = context_templates(
        model.as_hookable(),
        tokenizer,
        &hp.context_template_length_params,
        hp.template_seed,
    )?;
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
    pub schedule: Schedule,
    templates: Option<Vec<String>>,
}

impl RomeEditor {
    /// An editor with `C` of the edited layer; templates are generated on the first edit.
    pub fn new(hparams: RomeHparams, c: Option<Tensor>) -> Self {
        Self {
            hparams,
            c,
            schedule: Schedule::Fast,
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
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<WeightDelta>> {
        let templates = templates_for(&mut self.templates, model, tokenizer, &self.hparams)?;
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
                    &mut *progress,
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
    /// at a time, so sequential edits see the earlier ones. `progress` hears
    /// [`V_STAGE`](crate::rome::V_STAGE) for each request.
    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        progress: &mut ProgressFn<'_>,
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        let method = self.method();
        self.run(&*model, tokenizer, requests, progress)
            .map_err(|e| boxed(method, e))
    }
}

/// A joint method that writes with the key statistics `C` of each edited layer (MEMIT,
/// EMMET): what its hyperparameters name and how one call is computed.
pub trait StatsMethod: std::fmt::Debug {
    /// Which method this is.
    const METHOD: Method;

    /// The z settings (context templates, optimisation).
    fn z(&self) -> &RomeHparams;

    /// The edited layers, ascending.
    fn layers(&self) -> &[usize];

    /// Writes `requests` jointly: the method's `compute_*_cached` (`cs`: `C` of each edited
    /// layer; `progress` hears its stages).
    ///
    /// # Errors
    /// The method's errors.
    #[allow(clippy::too_many_arguments)]
    fn compute(
        &self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        cs: &[Tensor],
        templates: &[String],
        cache: Option<&TargetCache>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<LayeredEdit>;
}

impl StatsMethod for MemitHparams {
    const METHOD: Method = Method::Memit;

    fn z(&self) -> &RomeHparams {
        &self.z
    }

    fn layers(&self) -> &[usize] {
        &self.layers
    }

    fn compute(
        &self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        cs: &[Tensor],
        templates: &[String],
        cache: Option<&TargetCache>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<LayeredEdit> {
        compute_memit_cached(
            model, tokenizer, requests, self, cs, templates, progress, cache,
        )
    }
}

impl StatsMethod for EmmetHparams {
    const METHOD: Method = Method::Emmet;

    fn z(&self) -> &RomeHparams {
        &self.z
    }

    fn layers(&self) -> &[usize] {
        &self.layers
    }

    fn compute(
        &self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        cs: &[Tensor],
        templates: &[String],
        cache: Option<&TargetCache>,
        progress: &mut ProgressFn<'_>,
    ) -> Result<LayeredEdit> {
        compute_emmet_cached(
            model, tokenizer, requests, self, cs, templates, progress, cache,
        )
    }
}

/// A [`StatsMethod`] behind [`Editor`]: all requests of one call written jointly, with the
/// key statistics of each edited layer, the context templates generated once, and an
/// optional [`TargetCache`]. [`MemitEditor`] and [`EmmetEditor`] are its two instances.
#[derive(Debug)]
pub struct StatsEditor<H: StatsMethod> {
    /// The hyperparameters.
    pub hparams: H,
    /// The key statistics of each edited layer, in order.
    pub cs: Vec<Tensor>,
    templates: Option<Vec<String>>,
    target_cache: Option<TargetCache>,
}

/// MEMIT: all requests of one call written jointly over several layers.
pub type MemitEditor = StatsEditor<MemitHparams>;

/// EMMET: all requests of one call written jointly, with equality constraints.
pub type EmmetEditor = StatsEditor<EmmetHparams>;

impl<H: StatsMethod> StatsEditor<H> {
    /// An editor with the statistics of each edited layer.
    pub fn new(hparams: H, cs: Vec<Tensor>) -> Self {
        Self {
            hparams,
            cs,
            templates: None,
            target_cache: None,
        }
    }

    /// Looks target residuals up in `cache` before fitting them, and stores the new ones
    /// (`None`: no cache, the default).
    pub fn with_target_cache(mut self, cache: Option<TargetCache>) -> Self {
        self.target_cache = cache;
        self
    }
}

impl<H: StatsMethod> Editor for StatsEditor<H> {
    fn method(&self) -> Method {
        H::METHOD
    }

    fn joint(&self) -> bool {
        true
    }

    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        progress: &mut ProgressFn<'_>,
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        let mut run = || -> Result<Vec<WeightDelta>> {
            let templates =
                templates_for(&mut self.templates, &*model, tokenizer, self.hparams.z())?;
            let edit = self.hparams.compute(
                model,
                tokenizer,
                requests,
                &self.cs,
                &templates,
                self.target_cache.as_ref(),
                progress,
            )?;
            Ok(edit.deltas)
        };
        run().map_err(|e| boxed(H::METHOD, e))
    }
}

/// AlphaEdit: all requests of one call written jointly over several layers, each layer's
/// change confined to the null space of its key statistics and kept off the keys of the
/// batches written before.
///
/// The editor keeps a [`KeyHistory`] per edited layer. With
/// [`update_history`](Self::update_history) on (the default: sequential editing with the
/// edits kept, as the reference), each [`Editor::compute`] adds its requests' keys,
/// recomputed with its changes applied, to the histories, so later batches leave them be.
/// Callers that undo each batch before the next (independent batches) turn it off. The
/// histories can be saved and loaded ([`save_histories`](Self::save_histories),
/// [`load_histories`](Self::load_histories)) to resume a sequential run.
#[derive(Debug)]
pub struct AlphaEditEditor {
    /// The hyperparameters.
    pub hparams: AlphaEditHparams,
    /// The null-space projector of each of `hparams.layers`, in order.
    pub projectors: Vec<NullSpaceProjector>,
    /// The keys of the batches written so far, per edited layer, in order.
    pub histories: Vec<KeyHistory>,
    /// Whether [`Editor::compute`] adds each batch's keys to
    /// [`histories`](Self::histories).
    pub update_history: bool,
    templates: Option<Vec<String>>,
    target_cache: Option<TargetCache>,
}

impl AlphaEditEditor {
    /// An editor with the projector of each edited layer computed from its key statistics
    /// `cs` (`C = E[k kᵀ]`, `[d_mlp, d_mlp]`, in `hparams.layers` order) at
    /// `hparams.nullspace_threshold`, and empty histories.
    ///
    /// # Errors
    /// A count of statistics other than the layers', or statistics that are no second
    /// moment ([`NullSpaceProjector::from_second_moment`]).
    pub fn new(hparams: AlphaEditHparams, cs: &[Tensor]) -> Result<Self> {
        if cs.len() != hparams.layers.len() {
            return Err(Error::InvalidInput(format!(
                "{} statistics for {} layers",
                cs.len(),
                hparams.layers.len()
            )));
        }
        let projectors = cs
            .iter()
            .map(|c| NullSpaceProjector::from_second_moment(c, hparams.nullspace_threshold))
            .collect::<Result<Vec<_>>>()?;
        Self::from_parts(hparams, projectors)
    }

    /// An editor with these projectors (in `hparams.layers` order) and empty histories.
    ///
    /// # Errors
    /// A count of projectors other than the layers'.
    pub fn from_parts(
        hparams: AlphaEditHparams,
        projectors: Vec<NullSpaceProjector>,
    ) -> Result<Self> {
        if projectors.len() != hparams.layers.len() {
            return Err(Error::InvalidInput(format!(
                "{} projectors for {} layers",
                projectors.len(),
                hparams.layers.len()
            )));
        }
        let histories = projectors
            .iter()
            .map(|p| KeyHistory::new(p.dim()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            hparams,
            projectors,
            histories,
            update_history: true,
            templates: None,
            target_cache: None,
        })
    }

    /// Looks target residuals up in `cache` before fitting them, and stores the new ones
    /// (`None`: no cache, the default).
    pub fn with_target_cache(mut self, cache: Option<TargetCache>) -> Self {
        self.target_cache = cache;
        self
    }

    /// Turns the history updates of [`Editor::compute`] on or off.
    pub fn with_history_updates(mut self, on: bool) -> Self {
        self.update_history = on;
        self
    }

    /// How many directions each layer's projector keeps, in layer order.
    pub fn kept(&self) -> Vec<usize> {
        self.projectors
            .iter()
            .map(NullSpaceProjector::kept)
            .collect()
    }

    /// Where [`save_histories`](Self::save_histories) writes layer `layer`'s history in
    /// `dir`: `key_history_layer{layer}.safetensors`.
    pub fn history_path(dir: &Path, layer: usize) -> PathBuf {
        dir.join(format!("key_history_layer{layer}.safetensors"))
    }

    /// Writes each layer's history to [`history_path`](Self::history_path) in `dir` (which
    /// must exist).
    ///
    /// # Errors
    /// Write failures naming the file.
    pub fn save_histories(&self, dir: &Path) -> Result<()> {
        for (&layer, h) in self.hparams.layers.iter().zip(&self.histories) {
            h.save(&Self::history_path(dir, layer))?;
        }
        Ok(())
    }

    /// Replaces the histories by those [`save_histories`](Self::save_histories) wrote in
    /// `dir`.
    ///
    /// # Errors
    /// A missing or corrupt file, or a history whose dimension is not its projector's.
    pub fn load_histories(&mut self, dir: &Path) -> Result<()> {
        let mut histories = Vec::new();
        for (&layer, p) in self.hparams.layers.iter().zip(&self.projectors) {
            let h = KeyHistory::load(&Self::history_path(dir, layer))?;
            if h.dim() != p.dim() {
                return Err(Error::InvalidInput(format!(
                    "the key history of layer {layer} has dimension {}, its projector {}",
                    h.dim(),
                    p.dim()
                )));
            }
            histories.push(h);
        }
        self.histories = histories;
        Ok(())
    }
}

impl Editor for AlphaEditEditor {
    fn method(&self) -> Method {
        Method::AlphaEdit
    }

    fn joint(&self) -> bool {
        true
    }

    fn compute(
        &mut self,
        model: &mut dyn EditModel,
        tokenizer: &Tokenizer,
        requests: &[RewriteRequest],
        progress: &mut ProgressFn<'_>,
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        let mut run = || -> Result<Vec<WeightDelta>> {
            let templates =
                templates_for(&mut self.templates, &*model, tokenizer, &self.hparams.z)?;
            let edit = compute_alphaedit_cached(
                &mut *model,
                tokenizer,
                requests,
                &self.hparams,
                &self.projectors,
                &self.histories,
                &templates,
                progress,
                self.target_cache.as_ref(),
            )?;
            if self.update_history {
                for (h, k) in self.histories.iter_mut().zip(&edit.keys_after) {
                    h.add(k)?;
                }
            }
            Ok(edit.deltas)
        };
        run().map_err(|e| boxed(Method::AlphaEdit, e))
    }

    fn save_state(&self, dir: &Path) -> gpt_core::Result<()> {
        self.save_histories(dir)
            .map_err(|e| boxed(Method::AlphaEdit, e))
    }

    fn load_state(&mut self, dir: &Path) -> gpt_core::Result<()> {
        self.load_histories(dir)
            .map_err(|e| boxed(Method::AlphaEdit, e))
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
        progress: &mut ProgressFn<'_>,
    ) -> gpt_core::Result<Vec<WeightDelta>> {
        compute_ft(&*model, tokenizer, requests, &self.hparams, progress)
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
