// Fuzzes the engine-file reader: any bytes must parse or give a Status, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "format/engine_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto result = kiln::format::engine_parse(std::span<const uint8_t>(data, size), nullptr);
  if (result.ok()) {
    // A file that parses must also serialise again.
    auto bytes = kiln::format::engine_serialize(*result);
    (void)bytes;
  }
  return 0;
}
