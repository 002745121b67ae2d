#!/usr/bin/env bash
# Packs the gpu test binaries, the kiln CLI and kiln_host_bench (when built) of a build folder, and the non-system shared libraries they need
# that a GPU machine may lack, into BUNDLE.tar.xz for tools/gpu/run_gpu_tests.sh --prebuilt.
#   tools/gpu/make_bundle.sh BUILD_DIR BUNDLE.tar.xz
set -euo pipefail
BUILD=$1
DEST=$(realpath -m "$2")
WORK=$(mktemp -d)
mkdir -p "$WORK/bundle/bin" "$WORK/bundle/lib"
for t in cuda_gpu_test cuda_backend_test kiln kiln_host_bench; do
  [ -x "$BUILD/bin/$t" ] || { [ "$t" = kiln_host_bench ] && continue; echo "missing $BUILD/bin/$t" >&2; exit 1; }
  cp "$BUILD/bin/$t" "$WORK/bundle/bin/" && strip "$WORK/bundle/bin/$t"
done
# Everything outside libc and the CUDA toolkit (which the GPU machine provides).
ldd "$WORK"/bundle/bin/* | awk '/=>/ {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libstdc++.so*|libz.so*) ;;
    libcudart*|libnvrtc*|libcublas*) ;;
    *) cp -L "$lib" "$WORK/bundle/lib/" ;;
  esac
done
tar cJf "$DEST" -C "$WORK" bundle
rm -rf "$WORK"
ls -la "$DEST"
