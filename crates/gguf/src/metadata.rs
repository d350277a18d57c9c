//! GGUF metadata values and their parsing.

use std::io::Read;

use crate::error::{Error, Result};
use crate::source::Source;

/// How deeply arrays may nest inside arrays before the file is rejected.
pub const MAX_ARRAY_DEPTH: u32 = 8;

/// A GGUF metadata value type id, as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueType {
    /// `uint8` (id 0).
    U8,
    /// `int8` (id 1).
    I8,
    /// `uint16` (id 2).
    U16,
    /// `int16` (id 3).
    I16,
    /// `uint32` (id 4).
    U32,
    /// `int32` (id 5).
    I32,
    /// `float32` (id 6).
    F32,
    /// `bool` (id 7), one byte.
    Bool,
    /// `string` (id 8): `u64` length + UTF-8 bytes.
    String,
    /// `array` (id 9): element type, `u64` count, elements.
    Array,
    /// `uint64` (id 10).
    U64,
    /// `int64` (id 11).
    I64,
    /// `float64` (id 12).
    F64,
}

impl ValueType {
    /// The value type with GGUF id `id`, if defined.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The GGUF id of this value type.
    pub fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// A short lower-case name, e.g. `"u32"` or `"string"`.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type occupies in a file.
    pub fn min_encoded_size(self) -> u64 {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 4 + 8,
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string`.
    String(String),
    /// `array` (elements all of one type in a well-formed file).
    Array(Vec<MetadataValue>),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl MetadataValue {
    /// The GGUF type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetadataValue::U8(_) => ValueType::U8,
            MetadataValue::I8(_) => ValueType::I8,
            MetadataValue::U16(_) => ValueType::U16,
            MetadataValue::I16(_) => ValueType::I16,
            MetadataValue::U32(_) => ValueType::U32,
            MetadataValue::I32(_) => ValueType::I32,
            MetadataValue::F32(_) => ValueType::F32,
            MetadataValue::Bool(_) => ValueType::Bool,
            MetadataValue::String(_) => ValueType::String,
            MetadataValue::Array(_) => ValueType::Array,
            MetadataValue::U64(_) => ValueType::U64,
            MetadataValue::I64(_) => ValueType::I64,
            MetadataValue::F64(_) => ValueType::F64,
        }
    }

    /// The type's short name, e.g. `"u32"`.
    pub fn type_name(&self) -> &'static str {
        self.value_type().name()
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value of any integer type, if it is non-negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(u64::from(v)),
            MetadataValue::U16(v) => Some(u64::from(v)),
            MetadataValue::U32(v) => Some(u64::from(v)),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value of any integer type, if it fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetadataValue::I8(v) => Some(i64::from(v)),
            MetadataValue::I16(v) => Some(i64::from(v)),
            MetadataValue::I32(v) => Some(i64::from(v)),
            MetadataValue::I64(v) => Some(v),
            MetadataValue::U8(v) => Some(i64::from(v)),
            MetadataValue::U16(v) => Some(i64::from(v)),
            MetadataValue::U32(v) => Some(i64::from(v)),
            MetadataValue::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any numeric value (integer or float) as an `f64`; 64-bit integers
    /// beyond 2^53 are rounded.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(f64::from(v)),
            MetadataValue::F64(v) => Some(v),
            MetadataValue::U8(v) => Some(f64::from(v)),
            MetadataValue::I8(v) => Some(f64::from(v)),
            MetadataValue::U16(v) => Some(f64::from(v)),
            MetadataValue::I16(v) => Some(f64::from(v)),
            MetadataValue::U32(v) => Some(f64::from(v)),
            MetadataValue::I32(v) => Some(f64::from(v)),
            MetadataValue::U64(v) => Some(v as f64),
            MetadataValue::I64(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Reads a value type id.
pub(crate) fn read_value_type<R: Read>(src: &mut Source<R>, what: &str) -> Result<ValueType> {
    let offset = src.pos();
    let id = src.u32(what)?;
    ValueType::from_id(id)
        .ok_or_else(|| Error::malformed(offset, format!("unknown metadata value type id {id}")))
}

/// Reads one value of type `ty`. `depth` counts enclosing arrays.
pub(crate) fn read_value<R: Read>(
    src: &mut Source<R>,
    ty: ValueType,
    depth: u32,
) -> Result<MetadataValue> {
    Ok(match ty {
        ValueType::U8 => MetadataValue::U8(src.u8("u8 value")?),
        ValueType::I8 => MetadataValue::I8(src.i8("i8 value")?),
        ValueType::U16 => MetadataValue::U16(src.u16("u16 value")?),
        ValueType::I16 => MetadataValue::I16(src.i16("i16 value")?),
        ValueType::U32 => MetadataValue::U32(src.u32("u32 value")?),
        ValueType::I32 => MetadataValue::I32(src.i32("i32 value")?),
        ValueType::F32 => MetadataValue::F32(src.f32("f32 value")?),
        ValueType::Bool => MetadataValue::Bool(src.u8("bool value")? != 0),
        ValueType::String => MetadataValue::String(src.string("string value")?),
        ValueType::U64 => MetadataValue::U64(src.u64("u64 value")?),
        ValueType::I64 => MetadataValue::I64(src.i64("i64 value")?),
        ValueType::F64 => MetadataValue::F64(src.f64("f64 value")?),
        ValueType::Array => {
            let offset = src.pos();
            if depth >= MAX_ARRAY_DEPTH {
                return Err(Error::malformed(
                    offset,
                    format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"),
                ));
            }
            let elem = read_value_type(src, "array element type")?;
            let count_offset = src.pos();
            let count = src.u64("array length")?;
            let min = count.checked_mul(elem.min_encoded_size());
            if min.filter(|&m| m <= src.remaining()).is_none() {
                return Err(Error::malformed(
                    count_offset,
                    format!(
                        "array of {count} {} elements cannot fit in the {} bytes left in the input",
                        elem.name(),
                        src.remaining()
                    ),
                ));
            }
            // `count` is now bounded by the remaining input length.
            let cap = usize::try_from(count).map_err(|_| {
                Error::malformed(count_offset, format!("array length {count} too large"))
            })?;
            let mut items = Vec::with_capacity(cap);
            for _ in 0..count {
                items.push(read_value(src, elem, depth + 1)?);
            }
            MetadataValue::Array(items)
        }
    })
}
