//! Property tests: arbitrary, truncated or corrupted input never panics.

#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use gguf::{dequantize, GgmlType, GgufFile};
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    common::sample_writer().to_bytes()
}

/// Exercises the accessors of whatever parsed, to make sure they cannot panic either.
fn poke(bytes: &[u8]) {
    if let Ok(f) = GgufFile::from_bytes(bytes) {
        for t in &f.tensors {
            let _ = t.n_bytes();
            let _ = t.shape_outer_first();
            let _ = f.tensor_data(bytes, t);
            let _ = f.tensor_f32(bytes, &t.name);
        }
        for v in f.metadata.values() {
            let _ = (
                v.as_u64(),
                v.as_f64(),
                v.as_str(),
                v.as_bool(),
                v.as_array(),
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        poke(&bytes);
    }

    #[test]
    fn random_bytes_after_valid_header_never_panic(
        version in prop_oneof![Just(2u32), Just(3u32)],
        n_tensors in prop_oneof![0u64..4, any::<u64>()],
        n_kv in prop_oneof![0u64..4, any::<u64>()],
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&n_tensors.to_le_bytes());
        bytes.extend_from_slice(&n_kv.to_le_bytes());
        bytes.extend_from_slice(&rest);
        poke(&bytes);
    }

    #[test]
    fn truncated_valid_files_are_errors(cut in 0usize..10_000) {
        let bytes = sample();
        let n = cut % bytes.len();
        prop_assert!(GgufFile::from_bytes(&bytes[..n]).is_err());
    }

    #[test]
    fn byte_flips_never_panic(
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = sample();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        poke(&bytes);
        let mut cur = std::io::Cursor::new(&bytes);
        let _ = GgufFile::read(&mut cur);
    }

    #[test]
    fn overwritten_u64_fields_never_panic(
        at in any::<proptest::sample::Index>(),
        value in prop_oneof![any::<u64>(), Just(u64::MAX), Just(1u64 << 63), 0u64..64],
    ) {
        let mut bytes = sample();
        let i = at.index(bytes.len().saturating_sub(8));
        bytes[i..i + 8].copy_from_slice(&value.to_le_bytes());
        poke(&bytes);
    }

    #[test]
    fn dequantize_random_input_never_panics(
        id in 0u32..48,
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        n in prop_oneof![0usize..2048, any::<usize>()],
    ) {
        if let Ok(ty) = GgmlType::from_id(id) {
            let _ = dequantize(ty, &bytes, n);
        }
    }

    #[test]
    fn dequantize_whole_blocks(
        idx in any::<proptest::sample::Index>(),
        blocks in 0usize..6,
        seed in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let supported: Vec<GgmlType> =
            GgmlType::ALL.iter().copied().filter(|t| t.can_dequantize()).collect();
        let ty = supported[idx.index(supported.len())];
        let len = blocks * ty.type_size() as usize;
        let bytes: Vec<u8> = seed.iter().copied().cycle().take(len).collect();
        let n = blocks * ty.block_size() as usize;
        let out = dequantize(ty, &bytes, n).unwrap();
        prop_assert_eq!(out.len(), n);
    }
}
