#!/usr/bin/env bash
# Builds kiln's libFuzzer targets with clang (build-fuzz/) and runs each for SECONDS (default 60)
# over a seed corpus made from the test data. Fails on any crash, leak, timeout or sanitizer report.
#   tools/fuzz.sh [SECONDS] [TARGET...]     targets: engine_file onnx_import onnx_build mode_names
#                                           cache_file
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; shift || true
targets=("$@"); ((${#targets[@]})) || targets=(engine_file onnx_import onnx_build mode_names cache_file)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_FUZZ=ON \
  -DKILN_BUILD_TESTS=OFF -DKILN_WITH_CUDA=OFF -DKILN_BUILD_PYTHON=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target $(printf '%s_fuzz ' "${targets[@]}")

td=${KILN_TESTDATA:-../shared/testdata}
kiln_cli=${KILN_CLI:-build/bin/kiln}  # makes the engine seeds (tools/test.sh's plain step built it)
seeds=build-fuzz/seeds
max_len=1048576
engine_seed_max=262144  # larger engines make every execution slow: they run once instead
if [[ ! -d $seeds ]]; then
  mkdir -p "$seeds"/{engine_file,onnx_import,mode_names} build-fuzz/td
  for a in models onnx-conformance; do
    [[ -f $td/$a.tar.gz ]] && tar xzf "$td/$a.tar.gz" -C build-fuzz/td
  done
  # ONNX seeds: small conformance models; engine seeds: engines built from them.
  i=0
  for m in $(find build-fuzz/td/onnx-conformance -name model.onnx -size -8k | sort | head -200); do
    cp "$m" "$seeds/onnx_import/$i.onnx"
    [[ -x $kiln_cli ]] && "$kiln_cli" build "$m" -o "$seeds/engine_file/$i.kiln" >/dev/null 2>&1 || true
    i=$((i + 1))
  done
  for w in disabled whole_graph_capture lazy eager none true false 1 0 f32 fp16 bf16 /tmp/x.kcache; do
    printf '%s' "$w" >"$seeds/mode_names/$w"
  done 2>/dev/null || true
fi
if [[ ! -d $seeds/onnx_build ]]; then  # the whole build path starts from the same models
  mkdir -p "$seeds/onnx_build"
  cp "$seeds"/onnx_import/* "$seeds/onnx_build/" 2>/dev/null || true
fi
if [[ ! -d $seeds/cache_file ]]; then
  # Runtime cache seeds (layout: docs/runtime_modes.md, "Runtime cache"): empty, one record,
  # cubin + tuning records, and one cut short.
  mkdir -p "$seeds/cache_file"
  python3 - "$seeds/cache_file" <<'PY'
import os, struct, sys, zlib
def record(key, kind, name, arch, blob):
    body = key + bytes([kind, 0, 0, 0]) + struct.pack('<QQ', 1700000000000000, 3)
    body += struct.pack('<I', len(name)) + name + struct.pack('<I', len(arch)) + arch + blob
    head = struct.pack('<III', 0x4345524B, len(body), zlib.crc32(body))
    return head + struct.pack('<I', zlib.crc32(head)) + body
header = b'KILNKCH\0' + struct.pack('<II', 1, 0)
one = record(bytes(range(32)), 1, b'k_add', b'sm_90', bytes(range(200)))
two = record(bytes(32), 2, b'gemm 64x64x64', b'sm_100', b'algo=7 tile=128x64')
for name, data in [('empty', header), ('one', header + one), ('two', header + one + two),
                   ('cut', (header + one + two)[:-20])]:
    open(os.path.join(sys.argv[1], name), 'wb').write(data)
PY
fi

if [[ ! -d $seeds/fusion ]]; then
  # Fusion seeds: small models with the patterns the fusion passes rewrite (elementwise chains,
  # MatMul+Add, Gemm/MatMul/Conv+Relu, Conv+BatchNormalization+Relu), and engines built from them
  # and from the shared models at fp32 and fp16, which hold kiln.FusedElementwise nodes, MatMul
  # bias inputs and kiln_activation attributes. Engines over 256 KiB (mlp, mobilenet, encoder) go to
  # engine_large/: each runs once through the target (below) instead of being mutated.
  mkdir -p "$seeds"/{fusion,engine_large}
  python3 tests/fuzz/make_fusion_seeds.py "$seeds/fusion" || echo "warning: no fusion seeds" >&2
  for m in "$seeds"/fusion/*.onnx build-fuzz/td/models/*/model.onnx; do
    [[ -f $m ]] || continue
    case $m in
      */fusion/*) n=fusion_$(basename "$m" .onnx)
                  cp "$m" "$seeds/onnx_import/$n.onnx"; cp "$m" "$seeds/onnx_build/$n.onnx" ;;
      *) n=model_$(basename "$(dirname "$m")") ;;
    esac
    for p in fp32 fp16; do
      e=$seeds/engine_file/$n.$p.kiln
      [[ -x $kiln_cli ]] && "$kiln_cli" build "$m" -o "$e" --precision $p >/dev/null 2>&1 || continue
      (($(stat -c %s "$e") <= engine_seed_max)) || mv "$e" "$seeds/engine_large/"
    done
  done
fi

mkdir -p build-fuzz/corpus build-fuzz/artifacts
# UBSan checks in the fuzz build are recoverable (CMakeLists.txt): make the first report fatal so
# libFuzzer records it as a crash with its input. Leaks fail the run too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  echo "== fuzz $t for ${secs}s"
  if [[ $t == engine_file ]]; then
    # The big shared-model engines: loaded, prepared and (small inputs) run once each.
    large=("$seeds"/engine_large/*.kiln)
    if [[ -f ${large[0]} ]] && ! build-fuzz/bin/engine_file_fuzz "${large[@]}" \
        -rss_limit_mb=4096 2>"build-fuzz/$t.large.log"; then
      echo "FAIL: $t on $seeds/engine_large (see build-fuzz/$t.large.log)"
      tail -40 "build-fuzz/$t.large.log"
      status=1
    fi
  fi
  start=$SECONDS
  if ! build-fuzz/bin/${t}_fuzz "build-fuzz/corpus/$t" "$seeds/$t" \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len="$max_len" \
      -artifact_prefix="build-fuzz/artifacts/${t}-" -print_final_stats=1 2>"build-fuzz/$t.log"; then
    echo "FAIL: $t (see build-fuzz/$t.log and build-fuzz/artifacts/)"
    tail -40 "build-fuzz/$t.log"
    status=1
  fi
  # One line per target: executions, edge coverage and features at the end, corpus size.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/$t.log" | tail -1)
  last=$(grep -E '^#[0-9]+[[:space:]]' "build-fuzz/$t.log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[^ ]*\).*/\1/p' <<<"$last")
  echo "fuzz $t: ${execs:-?} executions in $((SECONDS - start))s, cov ${cov:-?}, ft ${ft:-?}," \
       "corpus ${corp:-?}"
done
exit $status
