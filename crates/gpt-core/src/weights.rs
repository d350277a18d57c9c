//! Reading checkpoint tensors: safetensors (single or sharded) and GGUF, into libtorch tensors
//! of the compute dtype on the target device.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// A source of named tensors (one checkpoint).
pub(crate) trait WeightSource {
    /// The checkpoint path, for error messages.
    fn path(&self) -> &Path;
    /// Whether the checkpoint has a tensor of this name.
    fn contains(&self, name: &str) -> bool;
    /// Reads a tensor on the CPU, in its stored float dtype (GGUF: dequantised to f32).
    fn read(&mut self, name: &str) -> Result<Tensor>;
}

/// Reads tensors from a source, checks their shapes and converts them to the compute dtype
/// and device.
pub(crate) struct Loader<'a> {
    pub source: &'a mut dyn WeightSource,
    pub device: Device,
    pub kind: Kind,
}

impl Loader<'_> {
    /// The tensor `name`, checked to have `shape`.
    pub fn tensor(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self.raw(name)?;
        if t.size() != shape {
            return Err(Error::ShapeMismatch {
                name: format!("{name} in {}", self.source.path().display()),
                expected: shape.to_vec(),
                got: t.size(),
            });
        }
        self.convert(t)
    }

    /// The tensor `name` if the checkpoint has it.
    pub fn optional(&mut self, name: &str, shape: &[i64]) -> Result<Option<Tensor>> {
        if self.source.contains(name) {
            self.tensor(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The tensor `name` in its stored shape, unconverted (for loaders that reshape first).
    pub fn raw(&mut self, name: &str) -> Result<Tensor> {
        if !self.source.contains(name) {
            return Err(Error::MissingTensor {
                name: name.to_string(),
                path: self.source.path().to_path_buf(),
            });
        }
        self.source.read(name)
    }

    /// Converts a CPU tensor to the compute dtype and device.
    pub fn convert(&self, t: Tensor) -> Result<Tensor> {
        Ok(t.f_to_kind(self.kind)?
            .f_to_device(self.device)?
            .f_contiguous()?)
    }

    /// Whether the checkpoint has a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(name)
    }
}

struct SafetensorsFile {
    path: PathBuf,
    /// Read with positioned reads straight into each tensor's memory, so a load holds the
    /// weights once (the map is only used for the header: touching mapped pages would count
    /// the file a second time in the resident set).
    file: File,
    mmap: Mmap,
    header_len: usize,
    tensors: HashMap<String, TensorInfo>,
}

/// One `model.safetensors` or the shards listed in `model.safetensors.index.json`.
pub(crate) struct SafetensorsSource {
    path: PathBuf,
    files: Vec<SafetensorsFile>,
    index: HashMap<String, usize>,
}

impl SafetensorsSource {
    /// Opens every file (memory-mapped; tensors are copied out one at a time).
    pub fn open(path: &Path, files: &[PathBuf]) -> Result<Self> {
        let mut opened = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (i, file_path) in files.iter().enumerate() {
            let file = File::open(file_path).map_err(|e| Error::io(file_path, e))?;
            // SAFETY: the file is opened read-only and only read while mapped; a concurrent
            // writer could change the bytes but cannot make the reads unsound beyond that.
            #[allow(unsafe_code)]
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(file_path, e))?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&mmap).map_err(|e| Error::Checkpoint {
                    path: file_path.clone(),
                    reason: match inconsistent_tensor(&mmap) {
                        Some(which) => format!("{e}: {which}"),
                        None => e.to_string(),
                    },
                })?;
            let tensors: HashMap<String, TensorInfo> = metadata
                .tensors()
                .into_iter()
                .map(|(name, info)| (name, info.clone()))
                .collect();
            for name in tensors.keys() {
                index.insert(name.clone(), i);
            }
            opened.push(SafetensorsFile {
                path: file_path.clone(),
                file,
                mmap,
                header_len,
                tensors,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            files: opened,
            index,
        })
    }
}

impl WeightSource for SafetensorsSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn read(&mut self, name: &str) -> Result<Tensor> {
        let file = self
            .index
            .get(name)
            .and_then(|&i| self.files.get(i))
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                path: self.path.clone(),
            })?;
        let info = file.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            path: file.path.clone(),
        })?;
        let corrupt = |reason: String| Error::Checkpoint {
            path: file.path.clone(),
            reason: format!("tensor `{name}`: {reason}"),
        };
        let kind = match info.dtype {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F64 => Kind::Double,
            other => return Err(corrupt(format!("unsupported dtype {other:?}"))),
        };
        // read_metadata validated that offsets lie inside the data section; re-check anyway
        // so a logic error can never read past the file.
        let (start, end) = info.data_offsets;
        let (from, to) = file
            .header_len
            .checked_add(8)
            .and_then(|base| Some((base.checked_add(start)?, base.checked_add(end)?)))
            .filter(|&(from, to)| from <= to && to <= file.mmap.len())
            .ok_or_else(|| corrupt("data offsets outside the file".into()))?;
        let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::f_empty(shape.as_slice(), (kind, Device::Cpu))?;
        let nbytes = t.numel() * kind.elt_size_in_bytes();
        if nbytes != to - from {
            return Err(corrupt(format!(
                "shape {shape:?} of {kind:?} needs {nbytes} bytes, the file holds {}",
                to - from
            )));
        }
        if nbytes > 0 {
            // SAFETY: `t` is a fresh, contiguous CPU tensor of exactly `nbytes` bytes that
            // nothing else references until it is returned; the slice ends before `t` does.
            #[allow(unsafe_code)]
            let buf = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<u8>(), nbytes) };
            use std::os::unix::fs::FileExt;
            file.file
                .read_exact_at(buf, from as u64)
                .map_err(|e| Error::io(&file.path, e))?;
        }
        Ok(t)
    }
}

/// The first tensor of a safetensors header whose shape and dtype disagree with its byte
/// range, described (the `safetensors` crate reports such a file without naming the tensor).
fn inconsistent_tensor(bytes: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(len)?)?).ok()?;
    for (name, info) in header.iter().filter(|(n, _)| n.as_str() != "__metadata__") {
        let dtype = info.get("dtype")?.as_str()?;
        let shape: Vec<u64> = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64())
            .collect::<Option<_>>()?;
        let offsets: Vec<u64> = info
            .get("data_offsets")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64())
            .collect::<Option<_>>()?;
        let bytes_per = match dtype {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            _ => 1,
        };
        let want = shape
            .iter()
            .try_fold(bytes_per, |acc: u64, &d| acc.checked_mul(d));
        if let ([start, end], Some(want)) = (offsets.as_slice(), want) {
            if end.checked_sub(*start) != Some(want) {
                return Some(format!(
                    "tensor `{name}` has shape {shape:?} ({dtype}, {want} bytes) but data offsets {start}..{end}"
                ));
            }
        }
    }
    None
}

/// Tensors of a GGUF file, dequantised to f32 on read.
pub(crate) struct GgufSource {
    reader: gguf::GgufReader,
}

impl GgufSource {
    pub fn new(reader: gguf::GgufReader) -> Self {
        Self { reader }
    }
}

impl WeightSource for GgufSource {
    fn path(&self) -> &Path {
        self.reader.path()
    }

    fn contains(&self, name: &str) -> bool {
        self.reader.file.tensor(name).is_some()
    }

    fn read(&mut self, name: &str) -> Result<Tensor> {
        let info = self
            .reader
            .file
            .tensor(name)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                path: self.reader.path().to_path_buf(),
            })?;
        let shape: Vec<i64> = info.shape_outer_first().iter().map(|&d| d as i64).collect();
        let values = self.reader.read_f32(name)?;
        Ok(Tensor::f_from_slice(&values)?.f_reshape(&shape)?)
    }
}

/// The safetensors files of a Hugging Face model folder (single file or sharded index).
pub(crate) fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
        let bad = |reason: String| Error::Checkpoint {
            path: index_path.clone(),
            reason,
        };
        let index: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map = index
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let mut files: Vec<String> = Vec::new();
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| {
                bad(format!(
                    "weight_map entry for `{tensor}` is not a file name"
                ))
            })?;
            if file.contains('/') || file.contains("..") {
                return Err(bad(format!(
                    "shard name `{file}` must be a plain file name"
                )));
            }
            if !files.iter().any(|f| f == file) {
                files.push(file.to_string());
            }
        }
        files.sort();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    // PyTorch pickles (`pytorch_model.bin`, sharded or not) can run code when read: they are
    // never opened; the message says how to convert them.
    let pickles = ["pytorch_model.bin", "pytorch_model.bin.index.json"]
        .iter()
        .any(|f| dir.join(f).is_file());
    if pickles {
        return Err(Error::NotAModel {
            path: dir.to_path_buf(),
            reason: "it holds PyTorch pickle weights (pytorch_model.bin), which factscope does not read because unpickling can execute code; convert them once to safetensors, e.g. `python -c \"import sys, transformers; m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1]); m.save_pretrained(sys.argv[2], safe_serialization=True)\" IN OUT` (then copy the tokenizer files to OUT)".into(),
        });
    }
    Err(Error::NotAModel {
        path: dir.to_path_buf(),
        reason: "no model.safetensors or model.safetensors.index.json".into(),
    })
}
