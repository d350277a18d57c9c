//! A minimal GGUF writer for tests.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code, missing_docs)]

use gguf::{GgmlType, MetadataValue};

/// A tensor to write: name, GGUF dims (innermost first), type, raw bytes.
pub struct TestTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub data: Vec<u8>,
}

/// Builds GGUF files in memory.
pub struct Writer {
    pub version: u32,
    pub alignment: u64,
    pub kvs: Vec<(String, MetadataValue)>,
    pub tensors: Vec<TestTensor>,
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

pub fn value_type_id(v: &MetadataValue) -> u32 {
    v.value_type().id()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes a value without its type id. Empty arrays are written as arrays of u8.
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
    pub fn new() -> Self {
        Self::default()
    }

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

    pub fn tensor(mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> Self {
        self.tensors.push(TestTensor {
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

/// A small valid file with metadata of every kind and a few tensors.
pub fn sample_writer() -> Writer {
    use MetadataValue as V;
    let f32_data: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.5 - 1.0).to_le_bytes())
        .collect();
    let f16_data: Vec<u8> = (0..8)
        .flat_map(|i| half::f16::from_f32(i as f32 - 3.0).to_le_bytes())
        .collect();
    // One Q8_0 block: d = 0.5, qs = -16..16
    let mut q8 = half::f16::from_f32(0.5).to_le_bytes().to_vec();
    q8.extend((-16i8..16).map(|q| q as u8));
    Writer::new()
        .kv("general.architecture", V::String("llama".into()))
        .kv("t.u8", V::U8(200))
        .kv("t.i8", V::I8(-100))
        .kv("t.u16", V::U16(60000))
        .kv("t.i16", V::I16(-30000))
        .kv("t.u32", V::U32(4_000_000_000))
        .kv("t.i32", V::I32(-2_000_000_000))
        .kv("t.f32", V::F32(1.5))
        .kv("t.bool", V::Bool(true))
        .kv("t.string", V::String("héllo wörld".into()))
        .kv("t.u64", V::U64(u64::MAX))
        .kv("t.i64", V::I64(i64::MIN))
        .kv("t.f64", V::F64(-2.25e300))
        .kv(
            "t.array.str",
            V::Array(vec![
                V::String("a".into()),
                V::String("".into()),
                V::String("ccc".into()),
            ]),
        )
        .kv(
            "t.array.i32",
            V::Array(vec![V::I32(1), V::I32(-2), V::I32(3)]),
        )
        .kv(
            "t.array.nested",
            V::Array(vec![
                V::Array(vec![V::U8(1), V::U8(2)]),
                V::Array(vec![V::U8(3)]),
            ]),
        )
        .kv("t.array.empty", V::Array(vec![]))
        .tensor("a.f32", &[4, 3], GgmlType::F32, f32_data)
        .tensor("b.f16", &[8], GgmlType::F16, f16_data)
        .tensor("c.q8_0", &[32, 1], GgmlType::Q8_0, q8)
}
