// libFuzzer target for the engine reader; built by tools/fuzz.sh (CMake option KILN_FUZZ).
//
// Each input is parsed as is, then again with every checksum recomputed, so that mutations get
// past the crc checks and reach the section decoders. Whatever parses must re-serialize, and
// parse back to the same bytes. An engine that parses is then loaded as `kiln run` loads it,
// prepared on the CPU backend and, when its inputs are small, run once on zero-filled inputs of
// their minimum shape: node attributes only the kernels read (kiln.FusedElementwise programs,
// kiln_activation, MatMul's bias input) are decoded and must be rejected with a Status.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/alloc_limit.h"
#include "format/byte_io.h"
#include "format/engine_file.h"
#include "format/engine_layout.h"
#include "kiln/engine.h"

namespace {

constexpr int64_t kMaxInputElements = 100000;  // all inputs together; keeps each run fast
// A cap on each tensor the run allocates on this thread. Small inputs do not make a small run: an
// engine may legitimately ask for gigabytes (a huge Expand) or for billions of multiply-adds (a
// Conv padded by 16,385 on a 32x32 image, found as a 10 s timeout). Capping every tensor at 16 MiB
// turns both into kResourceExhausted, so that each input stays fast; kiln itself has no such cap.
constexpr size_t kMaxTensorBytes = size_t{16} << 20;

uint64_t get_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
void put_le(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Makes file_size and every checksum consistent with the bytes, where the table fits.
void repair(std::vector<uint8_t>& f) {
  using namespace kiln::format;
  if (f.size() < kFixedHeaderSize) return;
  put_le(&f[24], f.size(), 8);
  uint64_t count = get_le(&f[12], 4), table = get_le(&f[16], 8);
  if (table < kFixedHeaderSize || table > f.size() || count * kSectionEntrySize > f.size() - table)
    return;
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t* e = &f[table + i * kSectionEntrySize];
    uint64_t off = get_le(e + 8, 8), size = get_le(e + 16, 8);
    if (off <= f.size() && size <= f.size() - off)
      put_le(e + 24, crc32_of(std::span<const uint8_t>(f).subspan(off, size)), 4);
  }
  put_le(&f[kHeaderCrcOffset], header_crc(f, table, table + count * kSectionEntrySize), 4);
}

void check(std::span<const uint8_t> bytes) {
  auto m = kiln::format::engine_parse(bytes, nullptr);
  if (!m.ok()) return;
  auto again = kiln::format::engine_serialize(*m);
  if (!again.ok()) std::abort();  // the writer must accept whatever the reader accepted
  auto back = kiln::format::engine_parse(*again, nullptr);
  if (!back.ok()) std::abort();
  auto third = kiln::format::engine_serialize(*back);
  if (!third.ok() || *third != *again) std::abort();  // determinism
}

// Loads, prepares on the CPU and (small inputs only) runs the engine in `bytes`.
void load_and_run(std::vector<uint8_t> bytes) {
  auto engine = kiln::Engine::load_from_memory(std::move(bytes));
  if (!engine.ok()) return;
  const std::vector<kiln::BindingInfo>& bindings = (*engine)->inputs();
  std::vector<kiln::Dims> shapes;
  bool small = true;
  int64_t total = 0;
  for (const kiln::BindingInfo& b : bindings) {
    shapes.push_back(b.min);
    if (!b.rank_known || b.min.size() != b.dims.size()) small = false;
    int64_t n = 1;
    for (int64_t d : b.min) {
      if (d < 0 || (d > 0 && n > kMaxInputElements / d)) small = false;
      if (small) n *= d;
    }
    total += small ? n : 0;
    if (total > kMaxInputElements) small = false;
  }
  kiln::ScopedAllocationLimit limit(kMaxTensorBytes);
  if (!small) {
    // Prepares the CPU program (the CPU backend says no without running anything).
    (void)(*engine)->is_stream_capturable({}, shapes);
    return;
  }
  std::vector<kiln::Tensor> inputs;
  for (const kiln::BindingInfo& b : bindings) {
    auto t = kiln::Tensor::empty(b.dtype, b.min);  // zero-filled
    if (!t.ok()) return;
    inputs.push_back(std::move(t).value());
  }
  (void)(*engine)->run(inputs);  // any Status is fine; a crash, leak or hang is not
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check({data, size});
  std::vector<uint8_t> fixed(data, data + size);
  repair(fixed);
  check(fixed);
  // The repaired bytes equal the input whenever the input itself parses, so this covers both.
  load_and_run(std::move(fixed));
  return 0;
}
