//! The run folder: `run.json` (the settings every shard shares) and one JSONL file of case
//! records per shard, each line appended and synced as its case finishes, so a killed run
//! resumes without redoing or losing a case and shards never write the same file.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use gpt_core::RewriteRequest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::CaseMetrics;

/// What a run is: two runs with different settings never share a folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `none`, `rome`, `r-rome`, `memit`, `ft`.
    pub method: String,
    /// The model (path as given).
    pub model: String,
    /// A fingerprint of the model's weights and shape.
    pub model_fingerprint: String,
    /// The cases file (path as given).
    pub cases: String,
    /// A fingerprint of the cases file's bytes (FNV-1a 64, 16 hex digits), so that resuming
    /// after the file changed is refused instead of mixing two sets of cases. Empty in runs
    /// written before it was recorded.
    #[serde(default)]
    pub cases_fingerprint: String,
    /// Cases used (after `--limit`), before sharding.
    pub limit: Option<usize>,
    /// Cases edited together before scoring (1: one at a time).
    pub batch: usize,
    /// Whether fluency was measured.
    pub generation: bool,
    /// Seed of the generation sampling.
    pub seed: u64,
    /// The method's hyperparameters.
    pub hparams: serde_json::Value,
    /// Sequential runs (edits kept from batch to batch): how; `None` for independent
    /// batches, each restored before the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialSettings>,
}

/// The settings of a sequential run that decide its results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequentialSettings {
    /// Score everything edited so far every this many edits.
    pub checkpoint_every: Option<usize>,
    /// What retention is measured on (the text and known facts, with fingerprints), if
    /// anything.
    pub retention: Option<String>,
}

/// One case's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// The case's id.
    pub case_id: u64,
    /// The relation, when known.
    pub relation_id: Option<String>,
    /// The rewrite.
    pub request: RewriteRequest,
    /// The true object.
    pub target_true: String,
    /// Metrics of the unedited model.
    pub pre: CaseMetrics,
    /// Metrics after the edit (`None` for method `none`).
    pub post: Option<CaseMetrics>,
    /// Seconds the edit took (its share of a batch's), `None` for method `none`.
    pub edit_seconds: Option<f64>,
    /// Seconds the whole case took (scoring and generation included).
    pub case_seconds: f64,
    /// The generated texts (after the edit, or unedited for `none`) and their seed.
    pub generation: Option<Generation>,
    /// The unedited model's texts from the same prompts and seeds, when the run generated
    /// them before editing ([`RunOptions::pre_generation`](crate::runner::RunOptions)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_generation: Option<Generation>,
}

/// Texts generated for the fluency test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The seed of the first prompt (prompt `i` used `seed + i`).
    pub seed: u64,
    /// The texts, prompts included.
    pub texts: Vec<String>,
}

/// An open run folder.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    records: PathBuf,
}

/// The file of a run folder that holds its [`RunSettings`].
pub const SETTINGS: &str = "run.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

impl RunDir {
    /// Opens (or creates) `dir` for a run with `settings`, writing shard `k` of `n`. A folder
    /// that already holds a run is continued only with `resume` and equal settings.
    /// Returns the folder and the ids of the cases this shard already finished.
    ///
    /// # Errors
    /// [`Error::Run`] for another run's folder, or `resume` missing; unreadable records.
    pub fn open(
        dir: &Path,
        settings: &RunSettings,
        shard: (usize, usize),
        resume: bool,
    ) -> Result<(Self, BTreeSet<u64>)> {
        factscope_common::fsio::ensure_writable_dir(dir)?;
        let settings_path = dir.join(SETTINGS);
        if settings_path.exists() {
            let text = std::fs::read_to_string(&settings_path).map_err(io(&settings_path))?;
            let theirs: RunSettings = serde_json::from_str(&text).map_err(|e| Error::Run {
                path: settings_path.clone(),
                reason: format!("not a run's settings: {e}"),
            })?;
            if &theirs != settings {
                return Err(Error::Run {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "it holds another run ({}), which continues only in its own folder",
                        differences(&theirs, settings)
                    ),
                });
            }
        } else {
            factscope_common::write_json_atomic(&settings_path, settings)?;
        }
        // Other shards' records are theirs; this shard's own file is continued only on
        // request.
        let records = dir.join(format!("records-{}-of-{}.jsonl", shard.0, shard.1));
        let started = std::fs::metadata(&records).is_ok_and(|m| m.len() > 0);
        if started && !resume {
            return Err(Error::Run {
                path: dir.to_path_buf(),
                reason: format!(
                    "it already holds this run's records ({}), continued only when resuming",
                    records.display()
                ),
            });
        }
        let done = if records.exists() {
            repair_tail(&records)?;
            read_records(&records)?
                .into_iter()
                .map(|r| r.case_id)
                .collect()
        } else {
            BTreeSet::new()
        };
        Ok((
            Self {
                dir: dir.to_path_buf(),
                records,
            },
            done,
        ))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends one record and syncs it to disk.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn append(&self, record: &CaseRecord) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|e| Error::Run {
            path: self.records.clone(),
            reason: format!("cannot serialise case {}: {e}", record.case_id),
        })?;
        line.push('\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.records)
            .map_err(io(&self.records))?;
        file.write_all(line.as_bytes()).map_err(io(&self.records))?;
        file.sync_data().map_err(io(&self.records))
    }

    /// The record files of every shard in `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable folder.
    pub fn record_files(dir: &Path) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("records-") && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

/// Reads a run's settings and every finished record of every shard (a case recorded twice
/// is counted once).
///
/// # Errors
/// [`Error::Run`] for a folder without a run or corrupt records.
pub fn read_run(dir: &Path) -> Result<(RunSettings, Vec<CaseRecord>)> {
    let settings = read_settings(dir)?;
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    for file in RunDir::record_files(dir)? {
        for r in read_records(&file)? {
            if seen.insert(r.case_id) {
                records.push(r);
            }
        }
    }
    records.sort_by_key(|r| r.case_id);
    Ok((settings, records))
}

/// A run's settings (`run.json`), without its records.
///
/// # Errors
/// [`Error::Run`] for a folder without a run or an unreadable `run.json`.
pub fn read_settings(dir: &Path) -> Result<RunSettings> {
    let settings_path = dir.join(SETTINGS);
    let text = std::fs::read_to_string(&settings_path).map_err(|e| Error::Run {
        path: dir.to_path_buf(),
        reason: format!("no run here ({SETTINGS}: {e})"),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Run {
        path: settings_path,
        reason: format!("not a run's settings: {e}"),
    })
}

/// The complete records of one file; a last line cut short by a kill is ignored.
fn read_records(path: &Path) -> Result<Vec<CaseRecord>> {
    let file = File::open(path).map_err(io(path))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(io(path))?;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<CaseRecord>(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => {
                return Err(Error::Run {
                    path: path.to_path_buf(),
                    reason: format!("line {} is not a case record: {e}", i + 1),
                })
            }
        }
    }
    Ok(out)
}

/// Cuts a last line without its newline (a write interrupted by a kill), so appending
/// starts on a fresh line.
fn repair_tail(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    file.set_len(keep as u64).map_err(io(path))?;
    file.sync_data().map_err(io(path))
}

fn differences(a: &RunSettings, b: &RunSettings) -> String {
    let (a, b) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            let (va, vb) = (a.get(k), b.get(k));
            if va != vb {
                out.push(format!(
                    "{k}: {} there, {} now",
                    va.cloned().unwrap_or_default(),
                    vb.cloned().unwrap_or_default()
                ));
            }
        }
    }
    out.join("; ")
}
