//! Options shared by the subcommands: which model, which device and dtype.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use gpt_core::tch::{Device, Kind};
use gpt_core::{load_model, LoadOptions, LoadedModel};

/// How a Hugging Face folder's model is written as GGUF by default (`edit --save-gguf` and
/// the explorer's download): F16 matrices, the folder's name as `general.name`, and the
/// chat template of its `tokenizer_config.json` when it has one (for llama.cpp's chat mode;
/// a folder without one is fine).
pub fn folder_gguf_export(folder: &Path) -> gpt_core::GgufExport {
    let chat_template = std::fs::read_to_string(folder.join("tokenizer_config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|config| config["chat_template"].as_str().map(str::to_string));
    gpt_core::GgufExport {
        name: folder.file_name().map(|n| n.to_string_lossy().into_owned()),
        chat_template,
        ..gpt_core::GgufExport::default()
    }
}

/// The bundled model, relative to the repository root (see `scripts/fetch-model.sh`).
pub const BUNDLED_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Compute dtype choices.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

/// `--model`, `--device`, `--dtype`.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// A Hugging Face model folder or a .gguf file [default: the bundled SmolLM2 model]
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N` [default: cuda when available, else cpu]
    #[arg(long)]
    pub device: Option<String>,
    /// Compute dtype.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
}

impl ModelArgs {
    /// Resolves the model path (the bundled model when `--model` is absent).
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.model {
            return Ok(p.clone());
        }
        let candidates = [
            PathBuf::from(BUNDLED_MODEL),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(BUNDLED_MODEL),
        ];
        match candidates.iter().find(|p| p.is_file()) {
            Some(p) => Ok(p.clone()),
            None => bail!(
                "no --model given and the bundled model {BUNDLED_MODEL} is absent (run scripts/fetch-model.sh)"
            ),
        }
    }

    /// The device to use.
    pub fn device(&self) -> anyhow::Result<Device> {
        Ok(match self.device.as_deref() {
            None => Device::cuda_if_available(),
            Some("cpu") => Device::Cpu,
            Some("cuda") => Device::Cuda(0),
            Some(other) => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Device::Cuda(n),
                None => bail!("unknown device `{other}` (expected cpu, cuda or cuda:N)"),
            },
        })
    }

    /// Loads the model and tokenizer.
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        let path = self.path()?;
        let kind = match self.dtype {
            Dtype::F32 => Kind::Float,
            Dtype::Bf16 => Kind::BFloat16,
            Dtype::F16 => Kind::Half,
        };
        let device = self.device()?;
        if kind == Kind::Half && device == Device::Cpu {
            eprintln!(
                "warning: --dtype f16 on the CPU: libtorch has no fast f16 matrix kernels there, so this runs many times slower than f32; use --dtype bf16 or f32 on a CPU"
            );
        }
        if let Device::Cuda(_) = device {
            if !gpt_core::tch::Cuda::is_available() {
                bail!(
                    "--device {} asked for, but CUDA is not available",
                    self.device.as_deref().unwrap_or("cuda")
                );
            }
        }
        load_model(&path, LoadOptions { device, kind })
            .with_context(|| format!("loading {}", path.display()))
    }
}

/// Checks before any work that `dir` can take output files (creating it if needed), so an
/// unusable location (a file, no permission) fails at once. The error names `what` (the
/// option, e.g. `--out`), the path and why; the OS error is in the message once, not
/// repeated as a cause.
pub fn check_out_dir(what: &str, dir: &Path) -> anyhow::Result<()> {
    factscope_common::fsio::ensure_writable_dir(dir).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// The one output-folder rule ([`factscope_common::OutputDir`]) for `--out`: the folder is
/// new, empty or holds only factscope's outputs (others are accepted with `--force`, kept,
/// and never replaced), and each of `names` is claimed before any work starts.
pub fn claim_outputs(dir: &Path, force: bool, names: &[String]) -> anyhow::Result<()> {
    let mut out = factscope_common::OutputDir::open(dir, force).map_err(|e| {
        let hint = if e.to_string().contains("did not write") {
            " (--force writes beside them)"
        } else {
            ""
        };
        anyhow::anyhow!("--out: {e}{hint}")
    })?;
    for name in names {
        out.path(name).map_err(|e| anyhow::anyhow!("--out: {e}"))?;
    }
    Ok(())
}

/// [`check_out_dir`] for a file written later: its folder must take it, and an existing
/// file is only accepted when `overwrite`.
pub fn check_out_file(what: &str, path: &Path, overwrite: bool) -> anyhow::Result<()> {
    factscope_common::fsio::ensure_writable_file(path, overwrite)
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// The tokens that end a text or a turn ([`LoadedModel::end_ids`]).
pub fn eos_ids(loaded: &LoadedModel) -> Vec<i64> {
    loaded.end_ids()
}

/// Cuts generated tokens at the first end-of-sequence token (which is dropped): it ends the
/// text and is not part of it, so its text (`<|im_end|>`, `<|endoftext|>`) is never printed.
pub fn strip_eos(mut tokens: Vec<i64>, eos: &[i64]) -> Vec<i64> {
    if let Some(end) = tokens.iter().position(|t| eos.contains(t)) {
        tokens.truncate(end);
    }
    tokens
}

/// Decodes generated tokens without the end-of-sequence token and anything after it.
pub fn decode_continuation(loaded: &LoadedModel, tokens: Vec<i64>) -> anyhow::Result<String> {
    let tokens = strip_eos(tokens, &eos_ids(loaded));
    Ok(loaded.tokenizer.decode_text(&tokens)?)
}

/// The rows of a report's "How this run was made" that only the command line knows: when
/// (UTC), the command as typed, and the factscope version.
pub fn invocation_details() -> Vec<(String, String)> {
    let command: Vec<String> = std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect();
    vec![
        ("date".into(), utc_now()),
        ("command".into(), command.join(" ")),
        (
            "version".into(),
            format!("factscope {}", env!("CARGO_PKG_VERSION")),
        ),
    ]
}

/// The current time as `YYYY-MM-DD HH:MM UTC` (civil date from days since 1970, Howard
/// Hinnant's algorithm; no time-zone data needed for UTC).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60
    )
}
