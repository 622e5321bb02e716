#!/usr/bin/env bash
# Run the real app under Xvfb and write the PNGs in screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
bin=target/release/alignscope
shoot() { # NAME ARGS...
  local name=$1; shift
  HOME="$(mktemp -d)" xvfb-run -a -s "-screen 0 1280x800x24" "$bin" "$@" --screenshot "screenshots/$name.png"
}
shoot gallery-demo gui --folder assets/demo
shoot gallery-ranked gui --folder assets/demo --query "a cup of coffee on a wooden table"
shoot inspector-camera gui --folder assets/demo --query "a man with a camera on a tripod" --select 1
shoot gallery-demo-forced-wgpu --backend wgpu gui --folder assets/demo
# The explanation PNG of the command line (no window needed).
"$bin" --backend flex explain assets/demo/astronaut.jpg "a woman in a white suit smiling in front of a flag" --out screenshots/explain-astronaut.png
