//! The GGUF header, metadata and tensor directory.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::dequant::dequantize;
use crate::error::{Error, Result};
use crate::metadata::{read_value, read_value_type, MetadataValue};
use crate::reader::GgufReader;
use crate::source::Source;
use crate::types::GgmlType;

/// The four magic bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Data alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that overrides the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// Smallest possible encoded key/value pair: empty key, type id, 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest possible encoded tensor info: empty name, `n_dims` = 0, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Description of one tensor in a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions as stored in GGUF: innermost (fastest-varying) first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the tensor data, relative to [`GgufFile::data_offset`].
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (the product of `dims`; 1 for a 0-dim tensor).
    /// Saturates at `u64::MAX` for descriptions that were not validated.
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Size of the tensor data in bytes.
    pub fn n_bytes(&self) -> Result<u64> {
        let n = self
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let n = n.ok_or_else(|| {
            Error::invalid(format!("element count of dims {:?} overflows", self.dims))
                .in_tensor(&self.name)
        })?;
        self.ggml_type.bytes_for(n).ok_or_else(|| {
            Error::invalid(format!(
                "{n} elements of type {} is not a whole number of {}-element blocks",
                self.ggml_type,
                self.ggml_type.block_size()
            ))
            .in_tensor(&self.name)
        })
    }

    /// The shape outermost first (dims reversed): the row-major shape a
    /// PyTorch/NumPy user expects for the dequantised data.
    pub fn shape_outer_first(&self) -> Vec<usize> {
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }
}

/// A parsed GGUF file: header, metadata and tensor directory (no tensor data).
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// All metadata key/value pairs.
    pub metadata: BTreeMap<String, MetadataValue>,
    /// Tensor descriptions, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Byte offset of the tensor data section from the start of the file.
    pub data_offset: u64,
    /// Alignment of the data section and of every tensor offset.
    pub alignment: u64,
}

impl GgufFile {
    /// Parses the header, metadata and tensor directory from `reader`,
    /// starting at its current position, and validates them against the
    /// stream's length.
    ///
    /// The reader's position afterwards is unspecified. Offsets in errors and
    /// in the result count from the starting position.
    pub fn read<R: Read + Seek>(reader: &mut R) -> Result<Self> {
        let start = reader
            .stream_position()
            .map_err(|e| Error::io("querying the stream position", e))?;
        let end = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("seeking to the end of the stream", e))?;
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("seeking to the start of the GGUF data", e))?;
        let len = end.saturating_sub(start);
        let mut src = Source::new(BufReader::new(reader), len);
        parse(&mut src)
    }

    /// Parses a complete GGUF file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut src = Source::new(bytes, bytes.len() as u64);
        parse(&mut src)
    }

    /// Opens a file on disk, parses its header and keeps it open for reading
    /// tensor data. Errors name the path.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufReader> {
        GgufReader::open(path)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    /// `general.architecture`, e.g. `"llama"`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture")
            .and_then(MetadataValue::as_str)
    }

    fn require(&self, key: &str) -> Result<&MetadataValue> {
        self.get(key).ok_or_else(|| Error::MissingKey {
            key: key.to_string(),
        })
    }

    fn type_error(key: &str, expected: &'static str, found: &MetadataValue) -> Error {
        Error::MetadataType {
            key: key.to_string(),
            expected,
            found: found.type_name(),
        }
    }

    /// The string under `key`, or an error naming the key.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| Self::type_error(key, "string", v))
    }

    /// The non-negative integer under `key`, or an error naming the key.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| Self::type_error(key, "non-negative integer", v))
    }

    /// The number under `key`, or an error naming the key.
    pub fn require_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| Self::type_error(key, "number", v))
    }

    /// The bool under `key`, or an error naming the key.
    pub fn require_bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| Self::type_error(key, "bool", v))
    }

    /// The array under `key`, or an error naming the key.
    pub fn require_array(&self, key: &str) -> Result<&[MetadataValue]> {
        let v = self.require(key)?;
        v.as_array()
            .ok_or_else(|| Self::type_error(key, "array", v))
    }

    /// Absolute byte range `[start, end)` of a tensor's data, checked for
    /// overflow (not against any file length).
    pub fn data_range(&self, info: &TensorInfo) -> Result<(u64, u64)> {
        let n = info.n_bytes()?;
        let start = self.data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(n));
        match (start, end) {
            (Some(s), Some(e)) => Ok((s, e)),
            _ => Err(Error::malformed(
                self.data_offset,
                format!("data range (offset {}, {n} bytes) overflows", info.offset),
            )
            .in_tensor(&info.name)),
        }
    }

    /// The raw bytes of tensor `info` inside `file_bytes`, the whole file
    /// this header was parsed from.
    pub fn tensor_data<'a>(&self, file_bytes: &'a [u8], info: &TensorInfo) -> Result<&'a [u8]> {
        let (start, end) = self.data_range(info)?;
        let out_of_range = || {
            Error::malformed(
                start,
                format!(
                    "data [{start}, {end}) lies outside the input ({} bytes)",
                    file_bytes.len()
                ),
            )
            .in_tensor(&info.name)
        };
        let s = usize::try_from(start).map_err(|_| out_of_range())?;
        let e = usize::try_from(end).map_err(|_| out_of_range())?;
        file_bytes.get(s..e).ok_or_else(out_of_range)
    }

    /// Tensor `name` from `file_bytes` (the whole file), dequantised to f32
    /// in row-major order.
    pub fn tensor_f32(&self, file_bytes: &[u8], name: &str) -> Result<Vec<f32>> {
        let info = self.tensor(name).ok_or_else(|| Error::TensorNotFound {
            name: name.to_string(),
        })?;
        let raw = self.tensor_data(file_bytes, info)?;
        let n = usize::try_from(info.n_elements())
            .map_err(|_| Error::invalid("element count does not fit in memory").in_tensor(name))?;
        dequantize(info.ggml_type, raw, n).map_err(|e| e.in_tensor(name))
    }
}

fn parse<R: Read>(src: &mut Source<R>) -> Result<GgufFile> {
    let magic: [u8; 4] = src.array("magic")?;
    if magic != GGUF_MAGIC {
        return Err(Error::BadMagic { found: magic });
    }
    let version = src.u32("version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Error::UnsupportedVersion {
                version,
                hint: " (GGUFv1 is no longer supported; re-convert the model)".into(),
            })
        }
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err(Error::UnsupportedVersion {
                version,
                hint: " (this looks like a big-endian GGUF file, which is not supported)".into(),
            })
        }
        _ => {
            return Err(Error::UnsupportedVersion {
                version,
                hint: String::new(),
            })
        }
    }
    let n_tensors_offset = src.pos();
    let n_tensors = src.u64("tensor count")?;
    let n_kv_offset = src.pos();
    let n_kv = src.u64("metadata key/value count")?;

    let kv_min = n_kv.checked_mul(MIN_KV_BYTES);
    if kv_min.filter(|&m| m <= src.remaining()).is_none() {
        return Err(Error::malformed(
            n_kv_offset,
            format!(
                "{n_kv} metadata entries cannot fit in the {} bytes left in the input",
                src.remaining()
            ),
        ));
    }
    let ti_min = n_tensors.checked_mul(MIN_TENSOR_INFO_BYTES);
    if ti_min.filter(|&m| m <= src.remaining()).is_none() {
        return Err(Error::malformed(
            n_tensors_offset,
            format!(
                "{n_tensors} tensor descriptions cannot fit in the {} bytes left in the input",
                src.remaining()
            ),
        ));
    }

    let metadata = read_metadata(src, n_kv)?;
    let alignment = alignment_of(&metadata)?;
    let tensors = read_tensor_infos(src, n_tensors, alignment)?;

    let end_of_infos = src.pos();
    let data_offset = end_of_infos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| Error::malformed(end_of_infos, "data offset overflows"))?;

    let file = GgufFile {
        version,
        metadata,
        tensors,
        data_offset,
        alignment,
    };
    check_data_ranges(&file, src.len())?;
    Ok(file)
}

fn read_metadata<R: Read>(
    src: &mut Source<R>,
    n_kv: u64,
) -> Result<BTreeMap<String, MetadataValue>> {
    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key_offset = src.pos();
        let key = src
            .string("metadata key")
            .map_err(|e| e.in_metadata(format!("#{i}")))?;
        let ty = read_value_type(src, "metadata value type").map_err(|e| e.in_metadata(&key))?;
        let value = read_value(src, ty, 0).map_err(|e| e.in_metadata(&key))?;
        if metadata.contains_key(&key) {
            return Err(Error::DuplicateKey {
                key,
                offset: key_offset,
            });
        }
        metadata.insert(key, value);
    }
    Ok(metadata)
}

fn alignment_of(metadata: &BTreeMap<String, MetadataValue>) -> Result<u64> {
    let Some(v) = metadata.get(ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let MetadataValue::U32(a) = *v else {
        return Err(Error::MetadataType {
            key: ALIGNMENT_KEY.into(),
            expected: "u32",
            found: v.type_name(),
        });
    };
    if a == 0 || !a.is_power_of_two() {
        return Err(
            Error::invalid(format!("alignment {a} is not a nonzero power of two"))
                .in_metadata(ALIGNMENT_KEY),
        );
    }
    Ok(u64::from(a))
}

fn read_tensor_infos<R: Read>(
    src: &mut Source<R>,
    n_tensors: u64,
    alignment: u64,
) -> Result<Vec<TensorInfo>> {
    // Bounded: n_tensors * MIN_TENSOR_INFO_BYTES was checked against the input length.
    let cap = usize::try_from(n_tensors).unwrap_or(0);
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(cap);
    let mut seen: HashSet<String> = HashSet::with_capacity(cap);
    for i in 0..n_tensors {
        let name_offset = src.pos();
        let name = src
            .string("tensor name")
            .map_err(|e| e.in_tensor(format!("#{i}")))?;
        if seen.contains(&name) {
            return Err(Error::DuplicateTensor {
                name,
                offset: name_offset,
            });
        }
        let info =
            read_tensor_info(src, name.clone(), alignment).map_err(|e| e.in_tensor(&name))?;
        seen.insert(name);
        tensors.push(info);
    }
    Ok(tensors)
}

fn read_tensor_info<R: Read>(
    src: &mut Source<R>,
    name: String,
    alignment: u64,
) -> Result<TensorInfo> {
    let n_dims_offset = src.pos();
    let n_dims = src.u32("dimension count")?;
    if n_dims > MAX_DIMS {
        return Err(Error::malformed(
            n_dims_offset,
            format!("{n_dims} dimensions (at most {MAX_DIMS} allowed)"),
        ));
    }
    let mut dims = Vec::with_capacity(MAX_DIMS as usize);
    let mut n_elements: u64 = 1;
    for j in 0..n_dims {
        let dim_offset = src.pos();
        let d = src.u64("dimension")?;
        if d == 0 || d > i64::MAX as u64 {
            return Err(Error::malformed(
                dim_offset,
                format!("dimension {j} has invalid size {d}"),
            ));
        }
        n_elements = n_elements
            .checked_mul(d)
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| Error::malformed(dim_offset, "element count overflows"))?;
        dims.push(d);
    }
    let type_offset = src.pos();
    let type_id = src.u32("tensor type")?;
    let ggml_type =
        GgmlType::from_id(type_id).map_err(|e| Error::malformed(type_offset, e.to_string()))?;
    let inner = dims.first().copied().unwrap_or(1);
    if inner % ggml_type.block_size() != 0 {
        return Err(Error::malformed(
            type_offset,
            format!(
                "innermost dimension {inner} is not a multiple of the {ggml_type} block size {}",
                ggml_type.block_size()
            ),
        ));
    }
    if ggml_type.bytes_for(n_elements).is_none() {
        return Err(Error::malformed(
            type_offset,
            format!("byte size of {n_elements} {ggml_type} elements overflows"),
        ));
    }
    let offset_offset = src.pos();
    let offset = src.u64("tensor data offset")?;
    if offset % alignment != 0 {
        return Err(Error::malformed(
            offset_offset,
            format!("data offset {offset} is not a multiple of the alignment {alignment}"),
        ));
    }
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
    })
}

/// Checks that every tensor's data lies inside the input and that no two
/// tensors overlap.
fn check_data_ranges(file: &GgufFile, len: u64) -> Result<()> {
    let mut ranges = Vec::with_capacity(file.tensors.len());
    for (i, t) in file.tensors.iter().enumerate() {
        let (start, end) = file.data_range(t)?;
        if end > len {
            return Err(Error::malformed(
                start,
                format!("data [{start}, {end}) extends past the end of the input ({len} bytes)"),
            )
            .in_tensor(&t.name));
        }
        ranges.push((start, end, i));
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if let [(_, end_a, a), (start_b, _, b)] = *pair {
            if start_b < end_a {
                let name_a = file.tensors.get(a).map_or("", |t| t.name.as_str());
                let name_b = file.tensors.get(b).map_or("", |t| t.name.as_str());
                return Err(Error::malformed(
                    start_b,
                    format!("data overlaps that of tensor `{name_a}`"),
                )
                .in_tensor(name_b));
            }
        }
    }
    Ok(())
}
