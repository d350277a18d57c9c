//! Writing GGUF files (version 3): metadata and tensors, in memory. Used to build small test
//! models and to write llama.cpp control vectors (`gpt_core::steering`); the reader never
//! depends on it.

use crate::{GgmlType, MetadataValue};

/// A tensor to write: name, GGUF dims (innermost first), type, raw bytes.
#[derive(Clone, Debug)]
pub struct WriterTensor {
    /// The tensor's name.
    pub name: String,
    /// Dimensions, innermost (fastest-varying) first, as GGUF stores them.
    pub dims: Vec<u64>,
    /// The element type.
    pub ty: GgmlType,
    /// The encoded data (e.g. little-endian f32).
    pub data: Vec<u8>,
}

/// Builds GGUF files in memory (for tests and fixtures: small models written from
/// known weights). No check is made that the data match the declared types and dims: a
/// writer that can produce bad files is what tests of the reader need.
#[derive(Clone, Debug)]
pub struct Writer {
    /// The format version written (3; 2 is also read).
    pub version: u32,
    /// Alignment of the data section and of each tensor (`general.alignment`, default 32).
    pub alignment: u64,
    /// Metadata, in order.
    pub kvs: Vec<(String, MetadataValue)>,
    /// Tensors, in order.
    pub tensors: Vec<WriterTensor>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            version: 3,
            alignment: 32,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

/// The GGUF type id of a value.
pub fn value_type_id(v: &MetadataValue) -> u32 {
    v.value_type().id()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes a value without its type id (empty arrays are written as arrays of u8).
pub fn put_value(out: &mut Vec<u8>, v: &MetadataValue) {
    match v {
        MetadataValue::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::Bool(x) => out.push(u8::from(*x)),
        MetadataValue::String(s) => put_str(out, s),
        MetadataValue::Array(items) => {
            let elem = items.first().map_or(0, value_type_id);
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                put_value(out, it);
            }
        }
        MetadataValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetadataValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn pad_to(out: &mut Vec<u8>, align: u64) {
    while out.len() as u64 % align != 0 {
        out.push(0);
    }
}

impl Writer {
    /// An empty version-3 file with alignment 32.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata entry (`general.alignment` as a power-of-two u32 also sets the
    /// alignment).
    pub fn kv(mut self, key: &str, v: MetadataValue) -> Self {
        if key == "general.alignment" {
            if let MetadataValue::U32(a) = v {
                if a.is_power_of_two() {
                    self.alignment = u64::from(a);
                }
            }
        }
        self.kvs.push((key.to_string(), v));
        self
    }

    /// Adds a tensor with dims innermost first and encoded data.
    pub fn tensor(mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> Self {
        self.tensors.push(WriterTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            data,
        });
        self
    }

    /// Offsets each tensor will get (relative to the data section).
    pub fn offsets(&self) -> Vec<u64> {
        let mut off = 0u64;
        self.tensors
            .iter()
            .map(|t| {
                let o = off;
                off += (t.data.len() as u64).next_multiple_of(self.alignment);
                o
            })
            .collect()
    }

    /// An f32 tensor of `shape` given outermost first (as PyTorch writes shapes).
    pub fn tensor_f32(self, name: &str, shape_outer_first: &[u64], values: &[f32]) -> Self {
        let dims: Vec<u64> = shape_outer_first.iter().rev().copied().collect();
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, &dims, GgmlType::F32, data)
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut out, k);
            out.extend_from_slice(&value_type_id(v).to_le_bytes());
            put_value(&mut out, v);
        }
        for (t, off) in self.tensors.iter().zip(self.offsets()) {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        pad_to(&mut out, self.alignment);
        for (i, t) in self.tensors.iter().enumerate() {
            out.extend_from_slice(&t.data);
            if i + 1 < self.tensors.len() {
                pad_to(&mut out, self.alignment);
            }
        }
        out
    }
}
