//! The thread that owns the model. libtorch tensors are not `Sync` and a trace or an edit
//! keeps both cores busy, so every request that touches the model is a [`Job`] run here, one
//! at a time, in arrival order; its answers go back over the job's own channel.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use std::path::Path;

use causal_trace::{GridSpec, SubjectPrompt, TraceKind, TraceSetup, Tracer};
use gpt_core::{EditUndo, EditableModel, HookableModel, LoadedModel, WeightDelta, WeightId};
use rome::RewriteRequest;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::cli::common::folder_gguf_export;

/// What a job sends back: progress and partial results while it runs, then one result or
/// one error.
#[derive(Debug)]
pub enum Reply {
    /// A progress event (`stage`, `done`, `total`, `unit`).
    Progress(Value),
    /// One finished causal-trace grid (a trace sends one per kind).
    Grid(Value),
    /// The job's result.
    Result(Value),
    /// A file to download, with the name to offer it under.
    File {
        /// The file name (no path).
        name: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The job failed: an HTTP status and what went wrong.
    Error {
        /// 404 (no such edit), 422 (the model cannot do what was asked), 500.
        status: u16,
        /// The message.
        message: String,
    },
}

/// Where a job's replies go. Dropped by the server when the client goes away, which
/// cancels a trace or an edit at its next progress event.
pub type Replies = UnboundedSender<Reply>;

/// The progress callback of a job: each event goes to the client as a `progress` reply
/// (`stage`, `done`, `total`, `unit`, and `text`, the event as one line with its counts);
/// once the client is gone the operation is stopped at its next event.
fn forward_progress(
    replies: &Replies,
) -> impl FnMut(&gpt_core::progress::Progress) -> ControlFlow<()> + '_ {
    move |p| {
        let _gone = replies.send(Reply::Progress(json!({
            "stage": p.stage, "done": p.done, "total": p.total, "unit": p.unit,
            "text": p.to_string(),
        })));
        if replies.is_closed() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// A causal trace to run.
#[derive(Debug)]
pub struct TraceTask {
    /// The prompt.
    pub prompt: String,
    /// The subject, found in the prompt.
    pub subject: String,
    /// Which occurrence of the subject (0-based).
    pub occurrence: usize,
    /// The kinds to trace, in order.
    pub kinds: Vec<TraceKind>,
    /// Noise samples.
    pub samples: usize,
    /// Noise seed.
    pub seed: u64,
}

/// An edit to make.
#[derive(Debug)]
pub struct EditTask {
    /// The prompt, holding the subject.
    pub prompt: String,
    /// The subject.
    pub subject: String,
    /// Which occurrence of the subject is the one edited (0-based).
    pub occurrence: usize,
    /// The new target.
    pub target: String,
    /// The editing method.
    pub method: crate::cli::evaluate::EvalMethod,
    /// Further prompts to show before and after (paraphrases, neighbours).
    pub checks: Vec<String>,
}

/// What the worker is asked to do.
#[derive(Debug)]
pub enum Task {
    /// The model's description.
    Model,
    /// The top-k next tokens.
    Predict {
        /// The prompt.
        prompt: String,
        /// How many tokens.
        k: usize,
    },
    /// The prompt's tokens and where the subject is.
    Tokens {
        /// The prompt.
        prompt: String,
        /// The subject.
        subject: String,
        /// Which occurrence.
        occurrence: usize,
    },
    /// A causal trace.
    Trace(TraceTask),
    /// The top-k next tokens of one restored cell of a trace.
    Cell {
        /// The trace the cell belongs to (its `kinds` holds the cell's kind).
        trace: TraceTask,
        /// The prompt position restored.
        token: usize,
        /// The layer (for MLP and attention: the window's centre).
        layer: usize,
        /// How many tokens.
        k: usize,
    },
    /// An edit.
    Edit(EditTask),
    /// Undo edit `id` (later edits stay).
    Undo {
        /// The edit.
        id: u64,
    },
    /// The edits in the model.
    Edits,
    /// Edit `id`'s weight change as safetensors.
    Delta {
        /// The edit.
        id: u64,
    },
    /// The model with its edits as a GGUF file (for a model loaded from one).
    Gguf,
}

/// A task with the channel for its replies.
#[derive(Debug)]
pub struct Job {
    /// What to do.
    pub task: Task,
    /// Where the answers go.
    pub replies: Replies,
}

/// An edit in the model.
struct Applied {
    id: u64,
    request: RewriteRequest,
    method: &'static str,
    /// The method's hyperparameters.
    hparams: Value,
    /// The weight changes, in the order applied (MEMIT: one per layer).
    deltas: Vec<WeightDelta>,
    /// Their undo records, in the same order.
    undos: Vec<EditUndo>,
    /// `‖ΔW‖_F` of all its changes together (`√Σ‖ΔW_l‖²`).
    norm: f64,
    seconds: f64,
}

/// Owns the model and the edits in it.
pub struct Worker {
    loaded: LoadedModel,
    edits: Vec<Applied>,
    next_id: u64,
    /// One editor per method, built on first use (with its key statistics, from the
    /// per-user cache or computed then).
    editors: HashMap<&'static str, (Box<dyn gpt_core::Editor>, Value)>,
}

/// An error that names a status: 422 unless said otherwise.
struct Failure {
    status: u16,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            status: 422,
            error: e.into(),
        }
    }
}

impl Worker {
    /// A worker for `loaded`.
    pub fn new(loaded: LoadedModel) -> Self {
        Self {
            loaded,
            edits: Vec::new(),
            next_id: 1,
            editors: HashMap::new(),
        }
    }

    /// Runs jobs until the server stops (the sending side closes).
    pub fn run(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            if job.replies.is_closed() {
                continue; // the client left while the job waited
            }
            if let Err(f) = self.handle(job.task, &job.replies) {
                // A cancelled job's client is gone: the send then fails, which is fine.
                let _gone = job.replies.send(Reply::Error {
                    status: f.status,
                    message: crate::describe(&f.error),
                });
            }
        }
    }

    fn handle(&mut self, task: Task, replies: &Replies) -> Result<(), Failure> {
        let reply = |r: Reply| {
            let _gone = replies.send(r);
        };
        match task {
            Task::Model => reply(Reply::Result(self.describe_model())),
            Task::Predict { prompt, k } => {
                let p = crate::cli::predict::predict(&self.loaded, &prompt, k)?;
                reply(Reply::Result(serde_json::to_value(p)?));
            }
            Task::Tokens {
                prompt,
                subject,
                occurrence,
            } => {
                let p = SubjectPrompt::with_occurrence(
                    &self.loaded.tokenizer,
                    &prompt,
                    &subject,
                    occurrence,
                )?;
                reply(Reply::Result(json!({
                    "tokens": p.tokens,
                    "subject_range": [p.subject_range.start, p.subject_range.end],
                    "occurrences": prompt.matches(subject.as_str()).count(),
                })));
            }
            Task::Trace(t) => self.trace(t, replies)?,
            Task::Cell {
                trace,
                token,
                layer,
                k,
            } => {
                let kind = trace.kinds.first().copied().unwrap_or(TraceKind::Hidden);
                let tracer = self.tracer(&trace)?;
                let top = tracer.restored_top_k(&GridSpec::new(kind), token, layer, k)?;
                let tok = &self.loaded.tokenizer;
                let top = top
                    .into_iter()
                    .map(|(id, p)| {
                        Ok(json!({ "id": id, "text": tok.token_text(id)?, "probability": p }))
                    })
                    .collect::<anyhow::Result<Vec<Value>>>()?;
                reply(Reply::Result(json!({
                    "kind": kind.name(), "token": token, "layer": layer, "top": top,
                })));
            }
            Task::Edit(e) => {
                let result = self.edit(e, replies)?;
                reply(Reply::Result(result));
            }
            Task::Undo { id } => {
                self.undo(id)?;
                reply(Reply::Result(json!({ "undone": id, "edits": self.list() })));
            }
            Task::Edits => reply(Reply::Result(json!({ "edits": self.list() }))),
            Task::Delta { id } => reply(Reply::File {
                name: format!("edit-{id}.safetensors"),
                bytes: self.delta_bytes(id)?,
            }),
            Task::Gguf => reply(Reply::File {
                name: "edited.gguf".into(),
                bytes: self.gguf_bytes()?,
            }),
        }
        Ok(())
    }

    fn describe_model(&self) -> Value {
        let config = self.loaded.model.config();
        let model = &self.loaded.model;
        let mut params: i64 = 0;
        let mut ids = vec![WeightId::Embed];
        if !config.tied_embeddings {
            ids.push(WeightId::Unembed);
        }
        for l in 0..config.n_layers {
            ids.extend(WeightId::of_layer(gpt_core::Layer(l)));
        }
        for id in ids {
            if let Ok(w) = model.weight(id) {
                params += w.numel() as i64;
            }
        }
        let name = self
            .loaded
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        json!({
            "name": name,
            "family": config.model_type,
            "layers": config.n_layers,
            "d_model": config.d_model,
            "heads": config.n_heads,
            "vocab": config.vocab_size,
            "parameters": params,
            "dtype": match model.kind() {
                gpt_core::tch::Kind::BFloat16 => "bf16",
                gpt_core::tch::Kind::Half => "f16",
                _ => "f32",
            },
            "device": match model.device() {
                gpt_core::tch::Device::Cuda(i) => format!("cuda:{i}"),
                _ => "cpu".to_string(),
            },
            "quantisation": counterfact::report::quantisation_note(&name),
        })
    }

    /// The tracer of `t`: the same noise (σ of the subject's embeddings, seed) as every
    /// other request with the same inputs, so a cell asked for later matches its grid.
    fn tracer(&self, t: &TraceTask) -> anyhow::Result<Tracer<'_>> {
        let loaded = &self.loaded;
        let prompt =
            SubjectPrompt::with_occurrence(&loaded.tokenizer, &t.prompt, &t.subject, t.occurrence)?;
        let (corruption, sigma) =
            crate::cli::trace::corruption(loaded, None, None, std::slice::from_ref(&t.subject))?;
        let setup = TraceSetup {
            samples: t.samples,
            corruption,
            sigma,
            seed: t.seed,
        };
        Ok(Tracer::new(
            &loaded.model,
            &loaded.tokenizer,
            prompt,
            setup,
            None,
        )?)
    }

    fn trace(&mut self, t: TraceTask, replies: &Replies) -> Result<(), Failure> {
        let tracer = self.tracer(&t)?;
        for kind in t.kinds {
            let mut progress = forward_progress(replies);
            let grid = tracer.grid_with_progress(&GridSpec::new(kind), &mut progress)?;
            let _gone = replies.send(Reply::Grid(serde_json::to_value(&grid)?));
        }
        let _gone = replies.send(Reply::Result(json!({ "done": true })));
        Ok(())
    }

    fn edit(&mut self, e: EditTask, replies: &Replies) -> Result<Value, Failure> {
        let stage = |name: &str| {
            let _gone = replies.send(Reply::Progress(json!({ "stage": name })));
        };
        let request = request_of(&e)?;
        let method = e.method.name();
        if !self.editors.contains_key(method) {
            stage(&format!(
                "preparing {method} (key statistics: from the per-user cache, or computed once)"
            ));
            let settings = crate::cli::evaluate::EditorSettings {
                preset: "auto",
                layer: None,
                stats: None,
                target_cache: None,
                // Edits here can be undone one by one: AlphaEdit protects C's keys only, not
                // those of earlier edits that may be gone.
                history_updates: false,
            };
            let (editor, hparams) =
                crate::cli::evaluate::build_editor(e.method, &settings, &self.loaded)?;
            let editor = editor.ok_or_else(|| anyhow::anyhow!("method `none` edits nothing"))?;
            self.editors.insert(method, (editor, hparams));
        }
        let shown: Vec<String> = std::iter::once(request.filled())
            .chain(e.checks.iter().cloned())
            .collect();
        let before = self.predict_all(&shown)?;
        let continuation_before = self.continuation(&shown[0])?;
        stage("computing the edit");
        let started = Instant::now();
        let Some((editor, hparams)) = self.editors.get_mut(method) else {
            return Err(anyhow::anyhow!("no editor for {method}").into());
        };
        let hparams = hparams.clone();
        // `compute` leaves the model as it found it, on success and on error: the weights
        // change only below, and a failed apply undoes what it applied.
        // Its progress (the optimisation's steps) goes to the client; a client gone stops it.
        let deltas = editor.compute(
            &mut self.loaded.model,
            &self.loaded.tokenizer,
            std::slice::from_ref(&request),
            &mut forward_progress(replies),
        )?;
        let norm = self.norm(&deltas)?;
        let undos = self.apply_all(&deltas)?;
        let seconds = started.elapsed().as_secs_f64();
        let id = self.next_id;
        self.next_id += 1;
        self.edits.push(Applied {
            id,
            request,
            method,
            hparams,
            deltas,
            undos,
            norm,
            seconds,
        });
        stage("comparing");
        let after = self.predict_all(&shown)?;
        let continuation_after = self.continuation(&shown[0])?;
        let prompts: Vec<Value> = shown
            .iter()
            .zip(before.into_iter().zip(after))
            .map(|(p, (b, a))| json!({ "prompt": p, "before": b, "after": a }))
            .collect();
        Ok(json!({
            "id": id,
            "method": method,
            "seconds": seconds,
            "norm": norm,
            "prompts": prompts,
            "continuation": { "before": continuation_before, "after": continuation_after },
            "edits": self.list(),
        }))
    }

    /// `‖ΔW‖_F` of `deltas` together: `√Σ‖ΔW_l‖²`.
    fn norm(&self, deltas: &[WeightDelta]) -> anyhow::Result<f64> {
        let mut sum = 0.0;
        for d in deltas {
            let shape = self.loaded.model.weight(d.target())?.size();
            sum += d.to_dense(&shape)?.f_norm()?.f_double_value(&[])?.powi(2);
        }
        Ok(sum.sqrt())
    }

    /// Applies `deltas` in order, their undo records; on a failure the ones applied are
    /// undone (the weights are as they were).
    fn apply_all(&mut self, deltas: &[WeightDelta]) -> anyhow::Result<Vec<EditUndo>> {
        let mut undos = Vec::with_capacity(deltas.len());
        for d in deltas {
            match self.loaded.model.apply(d) {
                Ok(undo) => undos.push(undo),
                Err(e) => {
                    gpt_core::undo_all(&mut self.loaded.model, &undos)?;
                    return Err(e.into());
                }
            }
        }
        Ok(undos)
    }

    fn predict_all(&self, prompts: &[String]) -> anyhow::Result<Vec<gpt_core::Prediction>> {
        prompts
            .iter()
            .map(|p| crate::cli::predict::predict(&self.loaded, p, 5))
            .collect()
    }

    /// The greedy continuation of `prompt` (24 new tokens at most, to the end of the turn).
    fn continuation(&self, prompt: &str) -> anyhow::Result<String> {
        let texts = counterfact::fluency::greedy_continuations(
            &self.loaded.model,
            &self.loaded.tokenizer,
            &[prompt.to_string()],
            24,
            1,
        )?;
        Ok(texts.into_iter().next().unwrap_or_default())
    }

    /// The position of edit `id` in the list, or a 404 naming it.
    fn position(&self, id: u64) -> Result<usize, Failure> {
        self.edits
            .iter()
            .position(|a| a.id == id)
            .ok_or_else(|| Failure {
                status: 404,
                error: anyhow::anyhow!("no edit {id} in the model (see /api/edits)"),
            })
    }

    /// Undoes edit `id` exactly: the edits after it are undone too (newest first, each
    /// restoring the weights it saved), then applied again in order.
    fn undo(&mut self, id: u64) -> Result<(), Failure> {
        let at = self.position(id)?;
        let mut later = self.edits.split_off(at);
        for a in later.iter().rev() {
            gpt_core::undo_all(&mut self.loaded.model, &a.undos)?;
        }
        later.remove(0);
        for mut a in later {
            a.undos = self.apply_all(&a.deltas)?;
            self.edits.push(a);
        }
        Ok(())
    }

    fn list(&self) -> Vec<Value> {
        self.edits
            .iter()
            .map(|a| {
                let layers: Vec<usize> = a
                    .deltas
                    .iter()
                    .filter_map(|d| d.target().layer().map(|l| l.0))
                    .collect();
                json!({
                    "id": a.id,
                    "method": a.method,
                    "layers": layers,
                    "prompt": a.request.filled(),
                    "subject": a.request.subject,
                    "target": a.request.target,
                    "norm": a.norm,
                    "seconds": a.seconds,
                })
            })
            .collect()
    }

    fn delta_bytes(&self, id: u64) -> Result<Vec<u8>, Failure> {
        let a = &self.edits[self.position(id)?];
        let deltas: Vec<&WeightDelta> = a.deltas.iter().collect();
        Ok(scratch_file("edit.safetensors", |path| {
            Ok(rome::save_deltas(
                path,
                &deltas,
                std::slice::from_ref(&a.request),
                &a.hparams,
            )?)
        })?)
    }

    /// The model with its edits as GGUF: from a GGUF, the loaded file with every edited
    /// matrix re-quantised to its own type and everything else copied byte for byte
    /// ([`gpt_core::save_gguf`]); from a Hugging Face folder, the whole model written with
    /// F16 matrices, the folder's name and chat template, as `edit --save-gguf` writes it by
    /// default ([`gpt_core::Transformer::export_gguf`]).
    fn gguf_bytes(&self) -> Result<Vec<u8>, Failure> {
        if self.edits.is_empty() {
            return Err(Failure {
                status: 409,
                error: anyhow::anyhow!(
                    "no edits in the model: the GGUF would be the model it was loaded from"
                ),
            });
        }
        let source = &self.loaded.path;
        if !gpt_core::is_gguf_path(source) {
            return Ok(scratch_file("edited.gguf", |out| {
                self.loaded.model.export_gguf(
                    out,
                    &self.loaded.tokenizer,
                    &folder_gguf_export(source),
                )?;
                Ok(())
            })?);
        }
        let mut edited: Vec<WeightId> = self
            .edits
            .iter()
            .flat_map(|a| a.deltas.iter().map(WeightDelta::target))
            .collect();
        edited.sort();
        edited.dedup();
        Ok(scratch_file("edited.gguf", |out| {
            gpt_core::save_gguf(
                &self.loaded.model,
                source,
                out,
                &edited,
                gpt_core::EditedTensorType::Same,
            )?;
            Ok(())
        })?)
    }
}

/// The bytes of a file that `write` makes at the path it is given: a fresh name in this
/// server's own temporary folder (requests never name paths), removed again after reading.
fn scratch_file(
    name: &str,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("factscope-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    // A file left by an earlier, failed request: the writers refuse to replace files.
    let _ignored = std::fs::remove_file(&path);
    let written = write(&path).and_then(|()| Ok(std::fs::read(&path)?));
    let _ignored = std::fs::remove_file(&path);
    written
}

/// The rewrite request of an edit: the prompt with the chosen occurrence of the subject
/// replaced by `{}`.
fn request_of(e: &EditTask) -> anyhow::Result<RewriteRequest> {
    let found: Vec<(usize, &str)> = e.prompt.match_indices(e.subject.as_str()).collect();
    let Some(&(at, _)) = found.get(e.occurrence) else {
        anyhow::bail!(
            "subject {:?} occurs {} time(s) in the prompt; occurrence {} (0-based) does not exist",
            e.subject,
            found.len(),
            e.occurrence
        );
    };
    let template = format!(
        "{}{{}}{}",
        &e.prompt[..at],
        &e.prompt[at + e.subject.len()..]
    );
    Ok(RewriteRequest::new(&template, &e.subject, &e.target)?)
}
