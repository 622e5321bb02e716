#!/usr/bin/env bash
# The GPU path measured unattended: on a machine with a real GPU (Vulkan, Metal or DX12 driver),
# run the benchmarks and one evaluation on wgpu and keep every output in one folder. A few
# minutes on a GPU; `--smoke` runs tiny sizes to check the script itself (e.g. on lavapipe).
#
#   tools/gpu_bench.sh [--smoke] [--flickr8k DIR] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0; flickr8k=../shared/data/flickr8k; out=target/gpu-bench
while (($#)); do
  case "$1" in
    --smoke) smoke=1 ;;
    --flickr8k) flickr8k=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
cargo build --release --locked
bin=target/release/alignscope
if ((smoke)); then images=4; captions=16; sizes=1000; queries=2; eval_images=20
else images=256; captions=1024; sizes=1000,10000,100000; queries=10; eval_images=1000; fi
run() { # NAME ARGS...: the command's stdout in OUT/NAME.txt, stderr in OUT/NAME.log, timed
  local name=$1; shift
  echo "== $name: alignscope $*"
  local start=$SECONDS
  if "$bin" "$@" > "$out/$name.txt" 2> "$out/$name.log"; then
    echo "   ok in $((SECONDS - start)) s"; cat "$out/$name.txt"
  else
    echo "   FAILED after $((SECONDS - start)) s (see $out/$name.log)"; tail -5 "$out/$name.log"
  fi
}
run doctor --backend wgpu doctor
run encoders bench encoders --backend wgpu --flickr8k "$flickr8k" --images $images --captions $captions
run scale --backend wgpu bench scale --sizes $sizes --queries $queries
run eval-shan --backend wgpu eval --model shan --split test --json --images $eval_images --flickr8k "$flickr8k"
# The default ranker is evaluated on the whole 1K test only (it has no smaller form).
((smoke)) || run eval-default --backend wgpu eval --model default --split test --json --flickr8k "$flickr8k"
echo "outputs in $out/"
