#!/usr/bin/env bash
# Peak memory of `alignscope index` on large photos and decompression bombs (the README's
# Robustness figures). Needs /usr/bin/time (Debian: `time`) and Pillow (`pip install pillow`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
bin=$PWD/target/release/alignscope
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/big" "$work/bombs"
python3 - "$work" <<'PY'
import shutil, sys
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
work = sys.argv[1]
# 12,000² RGB decodes to 412 MiB (under the 512 MiB limit); 18,000² to 927 MiB (over it).
Image.new("RGB", (12000, 12000), (120, 80, 40)).save(f"{work}/big/big.png", compress_level=1)
Image.new("RGB", (18000, 18000)).save(f"{work}/bombs/bomb.png", compress_level=9)
for folder, name in (("big", "big"), ("bombs", "bomb")):
    for i in range(1, 17):
        shutil.copy(f"{work}/{folder}/{name}.png", f"{work}/{folder}/{name}{i:02}.png")
    shutil.os.remove(f"{work}/{folder}/{name}.png")
PY
cp assets/demo/*.jpg "$work/bombs/"
for folder in big bombs; do
  echo "== $folder: $(ls "$work/$folder" | wc -l) files"
  /usr/bin/time -v "$bin" --backend flex index "$work/$folder" 2>&1 \
    | grep -E "photos indexed|could not be indexed|Maximum resident" || true
done
