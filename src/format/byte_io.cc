#include "format/byte_io.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "platform/thread_pool.h"

namespace kiln::format {

static_assert(std::endian::native == std::endian::little,
              "the engine format stores raw little-endian tensors; big-endian hosts need swapping");

void ByteWriter::f64(double v) { u64(std::bit_cast<uint64_t>(v)); }

void ByteWriter::bytes(const void* data, size_t n) {
  if (n == 0) return;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  out_.insert(out_.end(), p, p + n);
}

void ByteWriter::count(size_t n) {
  if (!fits_u32(n)) overflowed_ = true;
  u32(static_cast<uint32_t>(n));
}

void ByteWriter::str(std::string_view s) {
  count(s.size());
  bytes(s.data(), s.size());
}

void ByteWriter::pad_to(size_t alignment) {
  while (out_.size() % alignment != 0) out_.push_back(0);
}

Status ByteReader::error_at(uint64_t file_offset, const std::string& message) const {
  return invalid_data("engine " + section_ + " at file offset " + std::to_string(file_offset) +
                      ": " + message);
}

Status ByteReader::error(const std::string& message) const { return error_at(offset(), message); }

Status ByteReader::need(size_t n, const char* what) const {
  if (n <= remaining()) return Status();
  return error("truncated: " + std::string(what) + " needs " + std::to_string(n) +
               " bytes but only " + std::to_string(remaining()) + " are left");
}

Status ByteReader::fixed(void* out, size_t n, const char* what) {
  KILN_RETURN_IF_ERROR(need(n, what));
  std::memcpy(out, bytes_.data() + pos_, n);
  pos_ += n;
  return Status();
}

// Host is little-endian (static_assert above), so a memcpy is the decode.
Status ByteReader::u8(uint8_t* v, const char* what) { return fixed(v, 1, what); }
Status ByteReader::u16(uint16_t* v, const char* what) { return fixed(v, 2, what); }
Status ByteReader::u32(uint32_t* v, const char* what) { return fixed(v, 4, what); }
Status ByteReader::u64(uint64_t* v, const char* what) { return fixed(v, 8, what); }
Status ByteReader::i32(int32_t* v, const char* what) { return fixed(v, 4, what); }
Status ByteReader::i64(int64_t* v, const char* what) { return fixed(v, 8, what); }
Status ByteReader::f64(double* v, const char* what) { return fixed(v, 8, what); }

Status ByteReader::str(std::string* v, const char* what) {
  uint32_t n = 0;
  KILN_RETURN_IF_ERROR(u32(&n, what));
  KILN_RETURN_IF_ERROR(need(n, what));
  v->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
  pos_ += n;
  return Status();
}

Status ByteReader::view(size_t n, std::span<const uint8_t>* out, const char* what) {
  KILN_RETURN_IF_ERROR(need(n, what));
  *out = bytes_.subspan(pos_, n);
  pos_ += n;
  return Status();
}

Status ByteReader::count(uint32_t* n, size_t min_item_bytes, const char* what) {
  uint64_t at = offset();
  KILN_RETURN_IF_ERROR(u32(n, what));
  if (min_item_bytes == 0) min_item_bytes = 1;
  if (*n > remaining() / min_item_bytes)
    return error_at(at, "count of " + std::string(what) + " is " + std::to_string(*n) +
                            ", more than the " + std::to_string(remaining()) +
                            " bytes left can hold");
  return Status();
}

Status ByteReader::boolean(bool* v, const char* what) {
  uint64_t at = offset();
  uint8_t b = 0;
  KILN_RETURN_IF_ERROR(u8(&b, what));
  if (b > 1) return error_at(at, std::string(what) + " must be 0 or 1, is " + std::to_string(b));
  *v = b == 1;
  return Status();
}

namespace {

uint32_t crc32_serial(std::span<const uint8_t> bytes, uint32_t crc) {
  uLong c = crc;
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    c = ::crc32(c, p, chunk);
    p += chunk;
    left -= chunk;
  }
  return static_cast<uint32_t>(c);
}

}  // namespace

uint32_t crc32_of(std::span<const uint8_t> bytes, uint32_t crc) {
  // Large spans (an engine's weights) in pieces on kiln's thread pool, joined with crc32_combine:
  // 13.8 MB take 2 ms on one core, and an engine load is on a start-up's critical path.
  constexpr size_t kPiece = size_t{2} << 20;
  if (bytes.size() < 2 * kPiece) return crc32_serial(bytes, crc);
  const size_t pieces = std::min<size_t>(bytes.size() / kPiece, static_cast<size_t>(std::max(1, parallel_threads())));
  if (pieces < 2) return crc32_serial(bytes, crc);
  const size_t per = bytes.size() / pieces;
  auto piece = [&](size_t i) { return bytes.subspan(i * per, i + 1 == pieces ? bytes.size() - i * per : per); };
  std::vector<uint32_t> part(pieces);
  parallel_for(static_cast<int64_t>(pieces), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) part[static_cast<size_t>(i)] = crc32_serial(piece(static_cast<size_t>(i)), i == 0 ? crc : 0);
  });
  uLong c = part[0];
  for (size_t i = 1; i < pieces; ++i) c = ::crc32_combine(c, part[i], static_cast<z_off_t>(piece(i).size()));
  return static_cast<uint32_t>(c);
}

uint32_t header_crc(std::span<const uint8_t> file, uint64_t table_offset, uint64_t table_end) {
  uint32_t crc = crc32_of(file.subspan(0, 32));
  crc = crc32_of(file.subspan(36, 4), crc);
  return crc32_of(file.subspan(table_offset, table_end - table_offset), crc);
}

}  // namespace kiln::format
