//! ggml tensor element types.

use std::fmt;

use crate::error::{Error, Result};

/// Elements per super-block of the k-quant types.
pub const QK_K: u64 = 256;

macro_rules! ggml_types {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $block:expr, $size:expr; )*) => {
        /// A ggml tensor element type, as stored in a GGUF tensor description.
        ///
        /// Covers every type id that ggml / gguf-py currently define; ids that
        /// ggml has retired (4, 5, 31–33, 36–38) are rejected by [`GgmlType::from_id`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        #[non_exhaustive]
        pub enum GgmlType {
            $( $(#[$doc])* $variant, )*
        }

        impl GgmlType {
            /// Every defined type, in id order.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$variant,)*];

            /// The type with ggml id `id`, or [`Error::UnknownType`].
            pub fn from_id(id: u32) -> Result<GgmlType> {
                match id {
                    $( $id => Ok(GgmlType::$variant), )*
                    _ => Err(Error::UnknownType { id }),
                }
            }

            /// The numeric ggml id of this type.
            pub fn id(self) -> u32 {
                match self { $( GgmlType::$variant => $id, )* }
            }

            /// ggml's name for this type, e.g. `"Q4_K"`.
            pub fn name(self) -> &'static str {
                match self { $( GgmlType::$variant => $name, )* }
            }

            /// Number of elements in one block of this type.
            pub fn block_size(self) -> u64 {
                match self { $( GgmlType::$variant => $block, )* }
            }

            /// Number of bytes in one block of this type.
            pub fn type_size(self) -> u64 {
                match self { $( GgmlType::$variant => $size, )* }
            }
        }
    };
}

ggml_types! {
    /// 32-bit IEEE float.
    F32 = 0, "F32", 1, 4;
    /// 16-bit IEEE half float.
    F16 = 1, "F16", 1, 2;
    /// 4-bit, 32-element blocks with an f16 scale.
    Q4_0 = 2, "Q4_0", 32, 2 + 16;
    /// 4-bit, 32-element blocks with f16 scale and minimum.
    Q4_1 = 3, "Q4_1", 32, 2 + 2 + 16;
    /// 5-bit, 32-element blocks with an f16 scale.
    Q5_0 = 6, "Q5_0", 32, 2 + 4 + 16;
    /// 5-bit, 32-element blocks with f16 scale and minimum.
    Q5_1 = 7, "Q5_1", 32, 2 + 2 + 4 + 16;
    /// 8-bit, 32-element blocks with an f16 scale.
    Q8_0 = 8, "Q8_0", 32, 2 + 32;
    /// 8-bit, 32-element blocks with f32 scale and sum (intermediate type).
    Q8_1 = 9, "Q8_1", 32, 4 + 4 + 32;
    /// 2-bit k-quant.
    Q2K = 10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4;
    /// 3-bit k-quant.
    Q3K = 11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12;
    /// 4-bit k-quant.
    Q4K = 12, "Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12;
    /// 5-bit k-quant.
    Q5K = 13, "Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12;
    /// 6-bit k-quant.
    Q6K = 14, "Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16;
    /// 8-bit k-quant (intermediate type).
    Q8K = 15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8;
    /// i-quant, 2.06 bits per weight.
    IQ2_XXS = 16, "IQ2_XXS", QK_K, 2 + QK_K / 4;
    /// i-quant, 2.31 bits per weight.
    IQ2_XS = 17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32;
    /// i-quant, 3.06 bits per weight.
    IQ3_XXS = 18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8;
    /// i-quant, 1.56 bits per weight.
    IQ1_S = 19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16;
    /// Non-linear 4-bit, 32-element blocks.
    IQ4_NL = 20, "IQ4_NL", 32, 2 + 16;
    /// i-quant, 3.44 bits per weight.
    IQ3_S = 21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4;
    /// i-quant, 2.5 bits per weight.
    IQ2_S = 22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16;
    /// Non-linear 4-bit k-quant.
    IQ4_XS = 23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64;
    /// 8-bit signed integer.
    I8 = 24, "I8", 1, 1;
    /// 16-bit signed integer.
    I16 = 25, "I16", 1, 2;
    /// 32-bit signed integer.
    I32 = 26, "I32", 1, 4;
    /// 64-bit signed integer.
    I64 = 27, "I64", 1, 8;
    /// 64-bit IEEE float.
    F64 = 28, "F64", 1, 8;
    /// i-quant, 1.75 bits per weight.
    IQ1_M = 29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32;
    /// bfloat16.
    BF16 = 30, "BF16", 1, 2;
    /// Ternary, 1.69 bits per weight.
    TQ1_0 = 34, "TQ1_0", QK_K, 2 + 4 * 13;
    /// Ternary, 2.06 bits per weight.
    TQ2_0 = 35, "TQ2_0", QK_K, 2 + 64;
    /// Microscaling FP4.
    MXFP4 = 39, "MXFP4", 32, 1 + 16;
    /// NVIDIA FP4.
    NVFP4 = 40, "NVFP4", 64, 4 + 32;
    /// 1-bit, 128-element blocks.
    Q1_0 = 41, "Q1_0", 128, 2 + 16;
}

impl GgmlType {
    /// Whether [`crate::dequantize`] can decode this type.
    pub fn can_dequantize(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q8_0
                | GgmlType::Q2K
                | GgmlType::Q3K
                | GgmlType::Q4K
                | GgmlType::Q5K
                | GgmlType::Q6K
        )
    }

    /// Bytes needed for `n_elements` elements of this type, or `None` when
    /// `n_elements` is not a whole number of blocks or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let block = self.block_size();
        if n_elements % block != 0 {
            return None;
        }
        (n_elements / block).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_retired_ids_fail() {
        for &t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()).ok(), Some(t));
            assert!(t.block_size() > 0 && t.type_size() > 0);
        }
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 42, 1000, u32::MAX] {
            assert!(GgmlType::from_id(id).is_err(), "id {id}");
        }
        assert_eq!(GgmlType::Q4K.to_string(), "Q4_K");
        assert_eq!(GgmlType::Q6K.type_size(), 210);
        assert_eq!(GgmlType::Q4K.type_size(), 144);
    }
}
