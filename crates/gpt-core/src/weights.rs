//! Reading checkpoint tensors: safetensors (single or sharded) and GGUF, into libtorch tensors
//! of the compute dtype on the target device.

use std::collections::{HashMap, HashSet};
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
    /// Reads a tensor on the CPU in `kind` where the source can produce it without a full
    /// copy in its stored dtype (GGUF dequantises block by block straight into a tensor of
    /// `kind`), else as [`WeightSource::read`] does; the caller converts what it gets.
    fn read_as(&mut self, name: &str, kind: Kind) -> Result<Tensor> {
        let _ = kind;
        self.read(name)
    }
    /// The names of all tensors in the checkpoint.
    fn names(&self) -> Vec<String>;
    /// The file that holds tensor `name` (a shard of a sharded checkpoint), for messages.
    fn file_of(&self, name: &str) -> &Path;
}

/// Reads tensors from a source, checks their shapes and converts them to the compute dtype
/// and device; remembers which tensors it read, so that [`Loader::check_all_read`] can
/// refuse a checkpoint whose tensors the config does not account for.
pub(crate) struct Loader<'a> {
    source: &'a mut dyn WeightSource,
    device: Device,
    kind: Kind,
    read: HashSet<String>,
}

impl<'a> Loader<'a> {
    /// A loader reading `source` into tensors of `kind` on `device`.
    pub fn new(source: &'a mut dyn WeightSource, device: Device, kind: Kind) -> Self {
        Self {
            source,
            device,
            kind,
            read: HashSet::new(),
        }
    }
    /// The tensor `name`, checked to have `shape`.
    pub fn tensor(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self.fetch(name, self.kind)?;
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
    /// Every tensor a loader uses is read through here, so it counts as used.
    pub fn raw(&mut self, name: &str) -> Result<Tensor> {
        self.fetch(name, Kind::Float)
    }

    /// The tensor `name` in `kind` where the source can read it so cheaply (GGUF, block by
    /// block), else in its stored dtype.
    fn fetch(&mut self, name: &str, kind: Kind) -> Result<Tensor> {
        if !self.source.contains(name) {
            return Err(Error::MissingTensor {
                name: name.to_string(),
                path: self.source.path().to_path_buf(),
            });
        }
        let t = self.source.read_as(name, kind)?;
        self.read.insert(name.to_string());
        Ok(t)
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

    /// The file holding tensor `name`, for messages.
    pub fn file_of(&self, name: &str) -> PathBuf {
        self.source.file_of(name).to_path_buf()
    }

    /// Refuses a checkpoint with tensors the load did not read, other than the per-layer
    /// `buffers` (block-relative names such as `attn.masked_bias`: constants some writers
    /// save with the weights, which carry nothing the model needs). A config that says
    /// fewer layers than the checkpoint has, or leaves out a bias the checkpoint has, would
    /// otherwise load and answer with part of the model silently dropped.
    ///
    /// `n_layers` and `config` (what the config is called: `config.json`, the GGUF metadata)
    /// word the hint when the unused tensors belong to layers past the config's count.
    ///
    /// # Errors
    /// [`Error::UnusedTensors`] naming the file, the first few unused names and a hint.
    pub fn check_all_read(&self, buffers: &[&str], n_layers: usize, config: &str) -> Result<()> {
        let mut unused: Vec<String> = self
            .source
            .names()
            .into_iter()
            .filter(|n| !self.read.contains(n))
            .filter(|n| !layer_of(n).is_some_and(|(_, rest)| buffers.contains(&rest)))
            .collect();
        unused.sort();
        let Some(first) = unused.first() else {
            return Ok(());
        };
        let extra_layer = unused
            .iter()
            .filter_map(|n| layer_of(n).map(|(layer, _)| (layer, n)))
            .filter(|&(layer, _)| layer >= n_layers)
            .min();
        let hint = match extra_layer {
            Some((layer, name)) => format!(
                "; {config} says {n_layers} layer(s) but the checkpoint has tensors for layer {layer} (e.g. `{name}`)"
            ),
            None => format!(
                "; {config} does not match the checkpoint (a bias, norm or head it leaves out?)"
            ),
        };
        const SHOWN: usize = 5;
        Err(Error::UnusedTensors {
            path: self.file_of(first),
            count: unused.len(),
            names: unused.into_iter().take(SHOWN).collect(),
            hint,
        })
    }
}

/// The layer index of a per-layer tensor name and the name's rest after it:
/// `model.layers.3.mlp.up_proj.weight` → `(3, "mlp.up_proj.weight")`; also `h.3.…`,
/// `transformer.h.3.…`, `gpt_neox.layers.3.…`, `blk.3.…` (the first all-digit part).
fn layer_of(name: &str) -> Option<(usize, &str)> {
    let mut start = 0;
    for part in name.split('.') {
        let end = start + part.len();
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            let layer = part.parse().ok()?;
            return Some((layer, name.get(end + 1..).unwrap_or("")));
        }
        start = end + 1;
    }
    None
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
    /// `model.safetensors`, or the index of the shards.
    path: PathBuf,
    files: Vec<SafetensorsFile>,
    index: HashMap<String, usize>,
}

impl SafetensorsSource {
    /// Opens every file of `checkpoint` (memory-mapped; tensors are copied out one at a
    /// time).
    ///
    /// # Errors
    /// Besides unreadable or corrupt files, a tensor stored in two shards (which copy
    /// would count is anyone's guess).
    pub fn open(checkpoint: &Checkpoint) -> Result<Self> {
        let (path, files) = (&checkpoint.path, &checkpoint.files);
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
                if let Some(other) = index.insert(name.clone(), i) {
                    let other = files.get(other).unwrap_or(file_path);
                    return Err(Error::Checkpoint {
                        path: file_path.clone(),
                        reason: format!("tensor `{name}` is also stored in {}", other.display()),
                    });
                }
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
            path: path.clone(),
            files: opened,
            index,
        })
    }
}

impl WeightSource for SafetensorsSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn names(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }

    fn file_of(&self, name: &str) -> &Path {
        match self.index.get(name).and_then(|&i| self.files.get(i)) {
            Some(file) => &file.path,
            None => &self.path,
        }
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

    /// Tensor `name`'s entry in the file.
    fn info(&self, name: &str) -> Result<gguf::TensorInfo> {
        self.reader
            .file
            .tensor(name)
            .cloned()
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
                path: self.reader.path().to_path_buf(),
            })
    }
}

/// A GGUF tensor's shape, outermost dimension first, as libtorch takes it.
fn shape_of(info: &gguf::TensorInfo) -> Vec<i64> {
    info.shape_outer_first().iter().map(|&d| d as i64).collect()
}

impl WeightSource for GgufSource {
    fn path(&self) -> &Path {
        self.reader.path()
    }

    fn contains(&self, name: &str) -> bool {
        self.reader.file.tensor(name).is_some()
    }

    fn names(&self) -> Vec<String> {
        self.reader
            .file
            .tensors
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    fn file_of(&self, _name: &str) -> &Path {
        self.reader.path()
    }

    fn read(&mut self, name: &str) -> Result<Tensor> {
        let shape = shape_of(&self.info(name)?);
        let values = self.reader.read_f32(name)?;
        Ok(Tensor::f_from_slice(&values)?.f_reshape(&shape)?)
    }

    /// Dequantises `DEQUANT_CHUNK` elements at a time into a tensor of `kind`, so loading
    /// into bf16 never holds the tensor in f32 (the token embedding of a small model is
    /// ~110 MB in f32, and the f32 copy was most of a bf16 load's extra peak).
    fn read_as(&mut self, name: &str, kind: Kind) -> Result<Tensor> {
        let info = self.info(name)?;
        let ty = info.ggml_type;
        if !ty.can_dequantize() {
            // The reader's own error names the type, tensor and file.
            return self.read(name);
        }
        let shape = shape_of(&info);
        let path = self.reader.path().to_path_buf();
        let in_tensor = |e: gguf::Error| Error::from(e.in_tensor(name).with_path(&path));
        let raw = self.reader.read_raw(&info)?;
        let block = ty.block_size();
        let blocks_per_chunk = (DEQUANT_CHUNK / block).max(1);
        let chunk_bytes = ty.bytes_for(blocks_per_chunk * block).unwrap_or(u64::MAX);
        let chunk_bytes = usize::try_from(chunk_bytes).unwrap_or(usize::MAX);
        let numel: i64 = shape.iter().product();
        let out = Tensor::f_empty([numel], (kind, Device::Cpu))?;
        let mut start = 0i64;
        for bytes in raw.chunks(chunk_bytes) {
            let count = bytes.len() as u64 / ty.type_size().max(1) * block;
            let values = gguf::dequantize(ty, bytes, count as usize).map_err(&in_tensor)?;
            out.f_narrow(0, start, count as i64)?
                .f_copy_(&Tensor::f_from_slice(&values)?)?;
            start += count as i64;
        }
        if start != numel {
            return Err(in_tensor(gguf::Error::BadQuantInput {
                ty,
                msg: format!("decoded {start} elements, the shape {shape:?} needs {numel}"),
            }));
        }
        Ok(out.f_reshape(&shape)?)
    }
}

/// Elements dequantised at a time by [`GgufSource::read_as`] (1 MiB of f32).
const DEQUANT_CHUNK: u64 = 1 << 18;

/// The safetensors checkpoint of a Hugging Face model folder.
pub(crate) struct Checkpoint {
    /// `model.safetensors`, or `model.safetensors.index.json` for a sharded one (named in
    /// messages about the checkpoint as a whole, such as a missing tensor).
    pub path: PathBuf,
    /// The files holding the tensors: `path` itself, or the shards the index lists.
    pub files: Vec<PathBuf>,
}

/// The safetensors checkpoint of a Hugging Face model folder (single file or sharded index).
pub(crate) fn safetensors_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(Checkpoint {
            files: vec![single.clone()],
            path: single,
        });
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
        return Ok(Checkpoint {
            files: files.into_iter().map(|f| dir.join(f)).collect(),
            path: index_path,
        });
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

#[cfg(test)]
mod tests {
    use super::layer_of;

    #[test]
    fn layer_of_each_family_s_names() {
        assert_eq!(
            layer_of("model.layers.12.mlp.up_proj.weight"),
            Some((12, "mlp.up_proj.weight"))
        );
        assert_eq!(layer_of("h.3.attn.bias"), Some((3, "attn.bias")));
        assert_eq!(
            layer_of("transformer.h.0.attn.masked_bias"),
            Some((0, "attn.masked_bias"))
        );
        assert_eq!(
            layer_of("blk.29.ffn_up.weight"),
            Some((29, "ffn_up.weight"))
        );
        assert_eq!(layer_of("blk.7"), Some((7, "")));
        assert_eq!(layer_of("model.norm.weight"), None);
        assert_eq!(layer_of("rope_freqs.weight"), None);
        assert_eq!(layer_of("model.layers.x1.weight"), None);
    }
}
