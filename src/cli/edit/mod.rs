//! `factscope edit`: write facts into the weights (ROME, r-ROME, MEMIT, AlphaEdit, EMMET,
//! FT-L) and show the model before and after.
//!
//! [`run`] goes step by step: `output.rs` checks where results go (before the model loads)
//! and later writes them, `methods.rs` edits with the chosen method (its hyperparameters and
//! key statistics from `setup.rs`, the edit between two looks at the model from
//! `compare.rs`), and `print.rs` shows the outcome. `setup.rs`, `compare.rs` and `print.rs`
//! also serve `demo`, `evaluate` and the explorer.

mod compare;
mod methods;
mod output;
mod print;
mod setup;

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use rome::RewriteRequest;

use super::common::ModelArgs;

pub use compare::edit_and_compare;
pub use print::{print_comparison, print_continuations};
pub use setup::{
    alphaedit_setup, emmet_setup, ft_hparams, key_stats_for, memit_setup, rome_hparams,
};

/// `--method`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Method {
    /// ROME (original implementation of the update).
    Rome,
    /// r-ROME (k* everywhere).
    RRome,
    /// MEMIT: all requests at once over several layers.
    Memit,
    /// FT-L: fine-tuning one MLP matrix under an L∞ constraint (the paper's baseline).
    Ft,
    /// AlphaEdit: MEMIT with each layer's change in the null space of its key statistics.
    #[value(name = "alphaedit")]
    AlphaEdit,
    /// EMMET: all requests at once with equality constraints (batched ROME).
    Emmet,
}

/// Arguments of `factscope edit`.
#[derive(Args, Debug)]
pub struct EditArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt, with `{}` where the subject goes (e.g. "{} is located in the city of").
    #[arg(long, required_unless_present = "requests")]
    prompt: Option<String>,
    /// The subject.
    #[arg(long, required_unless_present = "requests")]
    subject: Option<String>,
    /// The new target (e.g. "Rome").
    #[arg(long, required_unless_present = "requests")]
    target: Option<String>,
    /// The editing method.
    #[arg(long, value_enum, default_value_t = Method::Rome)]
    method: Method,
    /// The edited layer [default: the preset's; SmolLM2: 4].
    #[arg(long, allow_negative_numbers = true)]
    layer: Option<usize>,
    /// Key statistics of the layer (from `factscope stats`) [default: the cache, computed
    /// from the model-sampled corpus when missing].
    #[arg(long)]
    stats: Option<PathBuf>,
    /// A JSON list of {prompt, subject, target} requests, edited one after another (ROME,
    /// r-ROME) or jointly (MEMIT, AlphaEdit, EMMET, FT-L); not together with --prompt,
    /// --subject or --target.
    #[arg(long, conflicts_with_all = ["prompt", "subject", "target"])]
    requests: Option<PathBuf>,
    /// Other prompts to show before and after (e.g. paraphrases, neighbours).
    #[arg(long = "check")]
    check: Vec<String>,
    /// Hyperparameter preset: gpt2-xl, gpt2-medium, gpt2-large, gpt-j, neox-20b, llama-7b,
    /// smollm2, or `auto`: the one made for this model (by family, depth and width); for a
    /// model no preset was made for, `auto` needs --layer and uses the paper's GPT-2 XL values.
    #[arg(long, default_value = "auto")]
    preset: String,
    /// Save the weight changes (safetensors, with the requests and hyperparameters).
    #[arg(long)]
    save_delta: Option<PathBuf>,
    /// Write the edited model to a new Hugging Face folder (config.json, model.safetensors in
    /// f32, tokenizer.json); never over an existing folder.
    #[arg(long)]
    save_model: Option<PathBuf>,
    /// AlphaEdit: the key history `K_pK_pᵀ` of the edits written before (read from this
    /// folder when it exists) — which this edit leaves alone — and where it is written back
    /// with this edit's keys added. For sequential edits across runs, each on the model the
    /// previous one saved (--save-model / --save-gguf).
    #[arg(long, value_name = "DIR")]
    key_history: Option<PathBuf>,
    /// Write the edited model as a new GGUF file; the file is then loaded back and its
    /// predictions shown. From a .gguf model: the input's metadata, tokenizer and untouched
    /// tensors copied byte for byte, each edited matrix stored as --gguf-edited-type. From a
    /// Hugging Face folder: every matrix stored as --gguf-type, with llama.cpp's metadata
    /// and the folder's tokenizer (and chat template).
    #[arg(long, value_name = "OUT.gguf")]
    save_gguf: Option<PathBuf>,
    /// How --save-gguf stores edited matrices of a .gguf model: `same` (re-quantised to
    /// their type in the input), `f16` or `f32` (the edit without rounding).
    #[arg(long, value_enum, default_value_t = GgufEditedType::Same, requires = "save_gguf")]
    gguf_edited_type: GgufEditedType,
    /// The type of every matrix when --save-gguf writes a Hugging Face folder's model
    /// (default f16; vectors stay f32; a matrix whose rows are not whole blocks of the type
    /// is stored as f16).
    #[arg(long, value_enum, requires = "save_gguf")]
    gguf_type: Option<GgufType>,
    /// llama.cpp's name of the tokenizer's pre-tokenizer, for --save-gguf from a Hugging
    /// Face folder whose pre-tokenizer is not one factscope knows (GPT-2's = `gpt-2`,
    /// digits then GPT-2's = `smollm`, Llama 3's = `llama-bpe`, Qwen2's = `qwen2`). A wrong
    /// name makes llama.cpp split text differently
    /// without any error: take it from llama.cpp's convert_hf_to_gguf.py for your model.
    #[arg(long, value_name = "NAME", requires = "save_gguf")]
    gguf_pre: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `--gguf-edited-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GgufEditedType {
    /// The matrix's type in the input file.
    Same,
    /// F16.
    F16,
    /// F32.
    F32,
}

/// `--gguf-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GgufType {
    /// F32: the weights exactly.
    F32,
    /// F16 (the default).
    F16,
    /// BF16.
    Bf16,
    /// Q8_0: 8.5 bits per weight.
    #[value(name = "q8_0")]
    Q8_0,
    /// Q6_K: 6.56 bits per weight.
    #[value(name = "q6_k")]
    Q6K,
    /// Q5_K: 5.5 bits per weight.
    #[value(name = "q5_k")]
    Q5K,
    /// Q5_1: 6 bits per weight.
    #[value(name = "q5_1")]
    Q5_1,
    /// Q5_0: 5.5 bits per weight.
    #[value(name = "q5_0")]
    Q5_0,
    /// Q4_K: 4.5 bits per weight.
    #[value(name = "q4_k")]
    Q4K,
    /// Q4_1: 5 bits per weight.
    #[value(name = "q4_1")]
    Q4_1,
    /// Q4_0: 4.5 bits per weight.
    #[value(name = "q4_0")]
    Q4_0,
}

impl GgufType {
    /// The ggml type.
    pub fn ggml(self) -> gguf::GgmlType {
        use gguf::GgmlType as G;
        match self {
            GgufType::F32 => G::F32,
            GgufType::F16 => G::F16,
            GgufType::Bf16 => G::BF16,
            GgufType::Q8_0 => G::Q8_0,
            GgufType::Q6K => G::Q6K,
            GgufType::Q5K => G::Q5K,
            GgufType::Q5_1 => G::Q5_1,
            GgufType::Q5_0 => G::Q5_0,
            GgufType::Q4K => G::Q4K,
            GgufType::Q4_1 => G::Q4_1,
            GgufType::Q4_0 => G::Q4_0,
        }
    }
}

/// What the steps after the checks share: the arguments and the requests.
struct Context<'a> {
    args: &'a EditArgs,
    requests: &'a [RewriteRequest],
}

/// The requests to edit: `--requests` (each checked), or the one of `--prompt`, `--subject`
/// and `--target`.
fn requests(args: &EditArgs) -> anyhow::Result<Vec<RewriteRequest>> {
    if let Some(path) = &args.requests {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --requests {}", path.display()))?;
        let list: Vec<RewriteRequest> = serde_json::from_str(&text).with_context(|| {
            format!(
                "--requests {}: expected a JSON list of {{prompt, subject, target}}",
                path.display()
            )
        })?;
        if list.is_empty() {
            bail!("--requests {}: the list is empty", path.display());
        }
        for (i, r) in list.iter().enumerate() {
            r.validate()
                .with_context(|| format!("--requests {}: request {i}", path.display()))?;
        }
        return Ok(list);
    }
    match (&args.prompt, &args.subject, &args.target) {
        (Some(p), Some(s), Some(t)) => Ok(vec![RewriteRequest::new(p, s, t)?]),
        _ => bail!("give --prompt, --subject and --target, or --requests"),
    }
}

/// Runs `factscope edit`.
pub fn run(args: EditArgs) -> anyhow::Result<()> {
    output::check_outputs(&args)?;
    let requests = requests(&args)?;
    let cx = Context {
        args: &args,
        requests: &requests,
    };
    let mut loaded = args.model.load()?;
    output::check_gguf_export(&cx, &loaded)?;
    let edited = methods::edit(&cx, &mut loaded)?;
    let (mut report, changes) = output::report(&cx, edited);
    // The GGUF is written and read back before anything is printed, so its predictions are
    // part of the report.
    if let Some(out) = &args.save_gguf {
        report.gguf = Some(output::save_gguf(
            &cx,
            &loaded,
            out,
            &changes.deltas,
            &report.after,
        )?);
    }
    // The comparison is printed before anything is saved, so a failed save (a full disk)
    // never loses what the edit did.
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return output::save(&cx, &loaded, &changes);
    }
    print::print_edit(&cx, &loaded, &report)?;
    output::save(&cx, &loaded, &changes)?;
    print::print_saved(&cx, &report);
    Ok(())
}
