#!/usr/bin/env bash
# Provides libtorch 2.11.0 (the version tch 0.24 expects) in ./libtorch, idempotently.
#
# - If `python3` has PyTorch 2.11 with CUDA (the GPU machines), ./libtorch is made of symlinks
#   to that installation's include/ and lib/ folders.
# - Otherwise a CPU-only libtorch folder is assembled from PyPI wheels: the torch wheel's
#   include/ and lib/, plus libcudart/libcupti (which libtorch_cpu.so links even on CPU), with
#   libtorch_cuda*.so removed and libtorch.so replaced by an empty stub (the real one links
#   libtorch_cuda.so). Wheels are cached in ./.cache/wheels.
# A finished folder carries ./libtorch/.factscope-ready; a second run returns at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/libtorch"
marker="$dest/.factscope-ready"
version="2.11.0"
if [[ -f "$marker" ]]; then
  exit 0
fi
rm -rf "$dest"

torch_root=""
if command -v python3 >/dev/null 2>&1; then
  torch_root="$(python3 - <<'PY' 2>/dev/null || true
import os
try:
    import torch
    if torch.__version__.split('+')[0] == "2.11.0" and torch.cuda.is_available():
        print(os.path.dirname(torch.__file__))
except Exception:
    pass
PY
)"
fi

if [[ -n "$torch_root" ]]; then
  echo "setup-libtorch: using the CUDA PyTorch at $torch_root" >&2
  mkdir -p "$dest"
  ln -s "$torch_root/include" "$dest/include"
  ln -s "$torch_root/lib" "$dest/lib"
  echo "$version" > "$dest/build-version"
  echo cuda > "$marker"
  exit 0
fi

echo "setup-libtorch: assembling a CPU libtorch $version from PyPI wheels (one-time, ~550 MB download)" >&2
wheels="$root/.cache/wheels"
mkdir -p "$wheels"
need() { ls "$wheels"/$1 >/dev/null 2>&1; }
if ! need "torch-$version-*.whl" || ! need "nvidia_cuda_runtime-13.0.96-*.whl" || ! need "nvidia_cuda_cupti-13.0.85-*.whl"; then
  # Fixed interpreter and platform tags, so the same (cp311, manylinux) wheels come down
  # whatever the local Python is; only the files inside them are used.
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$wheels" "torch==$version" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
fi
tmp="$(mktemp -d "$root/.cache/libtorch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
python3 - "$wheels" "$tmp" "$version" <<'PY'
import glob, os, sys, zipfile
wheels, out, version = sys.argv[1:4]
skip = ("libtorch_cuda", "libtorch_python", "libtorch_nvshmem", "libc10_cuda", "libcaffe2_nvrtc")
with zipfile.ZipFile(glob.glob(os.path.join(wheels, f"torch-{version}-*.whl"))[0]) as z:
    for name in z.namelist():
        for prefix, sub in (("torch/include/", "include"), ("torch/lib/", "lib"), ("torch/share/", "share")):
            if name.startswith(prefix) and not name.endswith("/"):
                rel = name[len(prefix):]
                if sub == "lib" and os.path.basename(rel).startswith(skip):
                    continue
                target = os.path.join(out, sub, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with z.open(name) as src, open(target, "wb") as dst:
                    dst.write(src.read())
for pattern, lib in (("nvidia_cuda_runtime-*.whl", "libcudart.so.13"), ("nvidia_cuda_cupti-*.whl", "libcupti.so.13")):
    with zipfile.ZipFile(glob.glob(os.path.join(wheels, pattern))[0]) as z:
        member = next(n for n in z.namelist() if n.endswith("/" + lib))
        with z.open(member) as src, open(os.path.join(out, "lib", lib), "wb") as dst:
            dst.write(src.read())
PY
# libtorch.so of the wheel only forwards to libtorch_cpu.so and libtorch_cuda.so; a stub that
# links libtorch_cpu.so keeps `-ltorch` working without CUDA.
echo "" > "$tmp/stub.c"
cc -shared -fPIC -o "$tmp/lib/libtorch.so" "$tmp/stub.c" -L"$tmp/lib" -Wl,--no-as-needed -ltorch_cpu -lc10
rm -f "$tmp/stub.c"
echo "$version" > "$tmp/build-version"
echo cpu > "$tmp/.factscope-ready"
mv "$tmp" "$dest"
trap - EXIT
echo "setup-libtorch: ready in $dest" >&2
