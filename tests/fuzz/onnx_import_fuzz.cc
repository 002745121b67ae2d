// Fuzzes the ONNX importer on raw ModelProto bytes (external data refused: no base dir).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "onnx/importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto graph = kiln::onnx::import_bytes(bytes, "");
  if (graph.ok()) (void)graph->validate();
  auto tensor = kiln::onnx::parse_tensor(bytes);
  (void)tensor;
  return 0;
}
