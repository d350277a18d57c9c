#!/usr/bin/env python3
"""Writes quant_blocks.gguf: the bit-exactness fixture for factscope-gguf.

For each tensor type the Rust crate dequantises, the file holds
  <type>.raw       random raw block bytes stored as that type, shape (2, n/2)
  <type>.expected  F32 values from gguf-py's gguf.quants.dequantize(raw)
Half-precision scale fields inside the blocks (and F16/BF16 elements) are
forced to finite values so that NaN payload handling does not matter.

Usage (needs `pip install gguf numpy`):
    python3 make_quant_fixture.py [out.gguf]
Deterministic for a given numpy/gguf version (fixed seed).
"""
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

SEED = 0x5EED_6609
# Byte offsets of the f16 fields (d, dmin/m) inside one block of each type.
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
N_BLOCKS = {32: 8, 256: 4}  # blocks per tensor, by block size


def finite_f16_bits(rng, n):
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    inf_nan = (bits & 0x7C00) == 0x7C00
    bits[inf_nan] &= np.uint16(~0x4000 & 0xFFFF)  # clear an exponent bit
    return bits


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("quant_blocks.gguf")
    rng = np.random.default_rng(SEED)
    w = gguf.GGUFWriter(str(out), "fixture")
    w.add_string("fixture.generator", "make_quant_fixture.py")
    w.add_string("fixture.gguf_py_version", getattr(gguf, "__version__", "unknown"))

    cases = []
    # F16 and BF16: 256 elements each.
    f16 = finite_f16_bits(rng, 256).view(np.float16).reshape(2, 128)
    cases.append(("f16", T.F16, f16, f16))
    bf = rng.integers(0, 1 << 16, size=256, dtype=np.uint16)
    bf[(bf & 0x7F80) == 0x7F80] &= np.uint16(~0x0080 & 0xFFFF)  # no inf/NaN
    bf_bytes = bf.view(np.uint8).reshape(2, 256)
    cases.append(("bf16", T.BF16, bf_bytes, bf_bytes))

    for qtype, offsets in F16_FIELDS.items():
        block, size = GGML_QUANT_SIZES[qtype]
        n_blocks = N_BLOCKS[block]
        raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
        for off in offsets:
            raw[:, off:off + 2] = finite_f16_bits(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
        raw = raw.reshape(2, n_blocks * size // 2)
        cases.append((qtype.name.lower(), qtype, raw, raw))

    for name, qtype, stored, raw in cases:
        expected = gguf.quants.dequantize(raw, qtype).astype(np.float32)
        assert np.all(np.isfinite(expected)), name
        if qtype in (T.F16,):
            w.add_tensor(f"{name}.raw", stored)
        else:
            w.add_tensor(f"{name}.raw", stored, raw_dtype=qtype)
        w.add_tensor(f"{name}.expected", np.ascontiguousarray(expected))
        print(f"{name:5s} {qtype.name:5s} elements={expected.size} shape={expected.shape}")

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Read back with gguf-py and re-check.
    r = gguf.GGUFReader(str(out))
    tensors = {t.name: t for t in r.tensors}
    for name, qtype, _, raw in cases:
        t = tensors[f"{name}.raw"]
        e = tensors[f"{name}.expected"]
        got = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        assert np.array_equal(got.view(np.uint32).ravel(), np.asarray(e.data).view(np.uint32).ravel()), name
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
