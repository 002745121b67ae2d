#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds kiln, and runs the shipped example end to end.
#   tools/setup.sh            install packages (if missing), build into build/, run the example
#   tools/setup.sh --no-example   skip the example run
set -euo pipefail
cd "$(dirname "$0")/.."
run_example=1
[[ "${1:-}" == "--no-example" ]] && run_example=0

apt_pkgs=(cmake ninja-build g++ libprotobuf-dev protobuf-compiler libopenblas-dev libcli11-dev
          nlohmann-json3-dev zlib1g-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
          python3-pip pybind11-dev libdlpack-dev
          # tools/fuzz.sh: clang, its libFuzzer/sanitizer runtimes (only recommended by clang-14,
          # so named here) and llvm-symbolizer for readable crash stacks.
          clang libclang-rt-14-dev llvm)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "== installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c "import onnx, numpy, pytest, onnxruntime" 2>/dev/null; then
  echo "== installing Python packages: onnx numpy pytest onnxruntime"
  python3 -m pip install -q onnx numpy pytest onnxruntime 2>/dev/null ||
    python3 -m pip install -q --break-system-packages onnx numpy pytest onnxruntime
fi

echo "== configuring and building (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

if ((run_example)); then
  echo "== example: examples/tiny_classifier"
  ex=examples/tiny_classifier
  build/bin/kiln build "$ex/model.onnx" -o build/tiny_classifier.kiln --shape x:1x16:4x16:64x16
  build/bin/kiln run build/tiny_classifier.kiln --data "$ex/test_data_set_0"
fi
