#!/usr/bin/env bash
# Installs the Debian packages emotune builds against (and python3 with venv: the layering
# check in make test, and the Python oracles' virtual environments). Idempotent: installs only
# what is missing, and runs apt-get update only when something is. Uses sudo when not root.
# The CUDA toolkit (nvcc, cuBLAS, cuDNN) is not a Debian package here: it comes with the machine
# image; without it the build simply has no CUDA backend.
set -euo pipefail
packages=(cmake g++ make pkg-config doctest-dev libstb-dev libbenchmark-dev libopenblas-dev
          libcli11-dev nlohmann-json3-dev libopencv-dev opencv-data liblzma-dev zlib1g-dev
          libjpeg-dev libpng-dev python3 python3-venv libdlib-dev libdlib-data libcpp-httplib-dev)
# `install-deps.sh --fuzz`: also clang with libFuzzer and clang's OpenMP runtime (make fuzz).
if [ "${1:-}" = "--fuzz" ]; then packages+=(clang libomp-dev); fi
# `install-deps.sh --onnx`: a Python that can make the venv of tests/onnx/run.sh (make onnx-check).
if [ "${1:-}" = "--onnx" ]; then packages+=(python3 python3-venv); fi
# `install-deps.sh --browser`: headless Chromium and its WebDriver for tests/browser (make browser-check).
if [ "${1:-}" = "--browser" ]; then packages+=(chromium chromium-driver python3 python3-venv); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
