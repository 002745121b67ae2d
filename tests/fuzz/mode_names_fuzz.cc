// Fuzzes the parsers of runtime-mode names and dtype/precision names.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/builder.h"
#include "kiln/runtime.h"
#include "kiln/tensor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  (void)kiln::parse_cuda_graph_strategy(s);
  (void)kiln::parse_kernel_specialization_strategy(s);
  (void)kiln::parse_multi_device_safe_mode(s);
  (void)kiln::parse_runtime_cache(s);
  (void)kiln::dtype_parse(s);
  (void)kiln::precision_parse(s);
  return 0;
}
