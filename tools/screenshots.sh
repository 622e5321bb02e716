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
shoot gallery-ranked gui --folder assets/demo --query "animals in a field"
shoot inspector-camera gui --folder assets/demo --query "a man with a camera on a tripod" --select 1
shoot compare-networks gui --folder assets/demo --query "a tabby cat looking at the camera" --select 1
shoot gallery-demo-forced-wgpu --backend wgpu gui --folder assets/demo
# The explanation PNG of the command line (no window needed).
"$bin" --backend flex explain assets/demo/astronaut.jpg "a woman in a white suit smiling in front of a flag" --out screenshots/explain-astronaut.png
# The dataset browser on a Flickr8k-shaped folder of the demo photos (freely licensed, unlike
# Flickr8k's own photos).
mini="$(mktemp -d)/flickr8k-mini"
mkdir -p "$mini/images"
while IFS='|' read -r name c0 c1 c2 c3 c4; do
  cp "assets/demo/$name" "$mini/images/"
  echo "$name" >> "$mini/Flickr_8k.testImages.txt"
  k=0; for c in "$c0" "$c1" "$c2" "$c3" "$c4"; do printf '%s#%d\t%s\n' "$name" $k "$c" >> "$mini/Flickr8k.token.txt"; k=$((k+1)); done
done <<'CAPTIONS'
chelsea.jpg|a cat looking at the camera|a tabby cat with green eyes|close up of the face of a cat|an orange and grey cat|a cat
coffee.jpg|a cup of coffee on a wooden table|an espresso in a red cup|a coffee cup on a saucer|a cup of coffee with a spoon|coffee
astronaut.jpg|a woman in an orange space suit|an astronaut smiling in front of a flag|a female astronaut|a woman astronaut with a helmet|an astronaut
camera.jpg|a man with a camera on a tripod|a photographer in a field|a man looking through a camera|a black and white photo of a man with a camera|a cameraman
rocket.jpg|a rocket on a launch pad|a space shuttle ready for launch at night|a rocket standing between towers|a launch tower with a rocket|a rocket
coins.jpg|old coins on a black background|rows of silver coins|a collection of ancient coins|many round coins|coins
CAPTIONS
shoot dataset-browser gui --dataset "$mini" --query "a tabby cat with green eyes" --select 1
