#include "format/byte_io.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <vector>

namespace kiln::format {
namespace {

// crc32_of splits large spans over threads and joins the pieces: the result must be zlib's
// one-pass CRC, for every split and a caller's running CRC too.
TEST(ByteIoTest, Crc32OfLargeSpansMatchesOnePassZlib) {
  std::vector<uint8_t> data((size_t{17} << 20) + 3);
  uint32_t x = 12345;
  for (uint8_t& b : data) b = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
  const size_t sizes[] = {0, 1, (size_t{4} << 20) - 1, size_t{4} << 20, (size_t{4} << 20) + 1, 13803488, data.size()};
  for (size_t n : sizes) {
    for (uint32_t seed : {0u, 0x12345678u}) {
      const uLong want = ::crc32(seed, data.data(), static_cast<uInt>(n));
      EXPECT_EQ(crc32_of(std::span<const uint8_t>(data.data(), n), seed), static_cast<uint32_t>(want))
          << n << " bytes, seed " << seed;
    }
  }
}

}  // namespace
}  // namespace kiln::format
