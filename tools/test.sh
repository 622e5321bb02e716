#!/usr/bin/env bash
# Install what the tests need (Debian 12/13, as root or with sudo) and run the whole suite.
# Mesa lavapipe + the Vulkan loader give wgpu an adapter; Xvfb gives the real window a display.
set -euo pipefail
cd "$(dirname "$0")/.."

# The X client libraries winit loads at run time (a desktop has them; a fresh server does not).
packages=(mesa-vulkan-drivers libvulkan1 xvfb xauth libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2 libx11-xcb1)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Exactly one wgpu in the tree: eframe's renderer and burn's runtime share its device.
if cargo tree -d -e normal --locked | grep -E '^(wgpu|naga|wgpu-hal) '; then
  echo "error: more than one version of wgpu/naga/wgpu-hal in the dependency tree" >&2
  exit 1
fi

# Formatted, and no clippy warnings (clippy and rustfmt ship with the rustup toolchain).
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
cargo fmt --check
# --release: shares build scripts and proc-macros with the test build below.
cargo clippy --release --locked --all-targets -- -D warnings

# With everything installed nothing may be skipped.
export ALIGNSCOPE_REQUIRE_ALL=1
cargo test --release --locked "$@"
