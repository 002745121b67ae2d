// Fuzzes the whole build path on raw ModelProto bytes: import, every compiler pass at the default
// optimisation level (constant folding runs CPU kernels on the model's constants; epilogue and
// elementwise fusion; shape inference), engine serialization; then whatever was built must load,
// and runs once on the CPU with zero-filled inputs of the profile's minimum shape. A model that
// builds at fp32 is built and run again at fp16 (the precision pass, fusion of half values).
// Built by tools/fuzz.sh (CMake option KILN_FUZZ); seeds are the onnx_import seeds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/alloc_limit.h"
#include "kiln/builder.h"
#include "kiln/engine.h"

namespace {

constexpr int64_t kMaxInputElements = 1 << 16;  // keep each run fast
// A cap on each tensor the run allocates on this thread (see engine_file_fuzz.cc). 4 MiB: a mutated
// pool with pads far larger than its input (AveragePool [1, 74, 5, 5] -> [1, 74, 171, 129], 25 taps
// per output) computed 1.6 M outputs per precision, 5 ms in a Release build but 24 s under the
// fuzzer's instrumentation, past libFuzzer's 10 s timeout (session 4 of 2026-11-27).
constexpr size_t kMaxTensorBytes = size_t{4} << 20;

// Builds `bytes` at `precision`; returns whether it built. What was built must load and run.
bool build_and_run(std::string_view bytes, kiln::Precision precision) {
  kiln::BuildOptions options;
  options.name = "fuzz";
  options.precision = precision;
  kiln::Result<std::vector<uint8_t>> engine_bytes = kiln::build_engine_from_bytes(bytes, "", options);
  if (!engine_bytes.ok()) return false;
  auto engine = kiln::Engine::load_from_memory(std::move(engine_bytes).value());
  if (!engine.ok()) std::abort();  // kiln must load every engine it builds
  std::vector<kiln::Tensor> inputs;
  int64_t total = 0;
  for (const kiln::BindingInfo& b : (*engine)->inputs()) {
    if (b.min.size() != b.dims.size() || !b.rank_known) return true;
    int64_t n = 1;
    for (int64_t d : b.min) {
      if (d < 0 || (d > 0 && n > kMaxInputElements / d)) return true;
      n *= d;
    }
    total += n;
    if (total > kMaxInputElements) return true;
    auto t = kiln::Tensor::empty(b.dtype, b.min);
    if (!t.ok()) return true;
    inputs.push_back(std::move(t).value());
  }
  kiln::ScopedAllocationLimit limit(kMaxTensorBytes);
  (void)(*engine)->run(inputs);  // any Status is fine; a crash, leak or hang is not
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (build_and_run(bytes, kiln::Precision::kFp32)) (void)build_and_run(bytes, kiln::Precision::kFp16);
  return 0;
}
