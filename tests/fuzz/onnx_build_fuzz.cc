// Fuzzes the whole build path on raw ModelProto bytes: import, compiler passes (constant folding
// runs CPU kernels on the model's constants), engine serialization; then whatever was built must
// load, and runs once on the CPU with zero-filled inputs of the profile's minimum shape.
// Built by tools/fuzz.sh (CMake option KILN_FUZZ); seeds are the onnx_import seeds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"

namespace {

constexpr int64_t kMaxInputElements = 1 << 16;  // keep each run fast

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  kiln::BuildOptions options;
  options.name = "fuzz";
  kiln::Result<std::vector<uint8_t>> engine_bytes = kiln::build_engine_from_bytes(bytes, "", options);
  if (!engine_bytes.ok()) return 0;
  auto engine = kiln::Engine::load_from_memory(std::move(engine_bytes).value());
  if (!engine.ok()) std::abort();  // kiln must load every engine it builds
  std::vector<kiln::Tensor> inputs;
  int64_t total = 0;
  for (const kiln::BindingInfo& b : (*engine)->inputs()) {
    if (b.min.size() != b.dims.size() || !b.rank_known) return 0;
    int64_t n = 1;
    for (int64_t d : b.min) {
      if (d < 0 || (d > 0 && n > kMaxInputElements / d)) return 0;
      n *= d;
    }
    total += n;
    if (total > kMaxInputElements) return 0;
    auto t = kiln::Tensor::empty(b.dtype, b.min);
    if (!t.ok()) return 0;
    inputs.push_back(std::move(t).value());
  }
  (void)(*engine)->run(inputs);  // any Status is fine; a crash, leak or hang is not
  return 0;
}
