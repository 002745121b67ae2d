// Little-endian byte encoding for the engine file: an appending ByteWriter and a bounded
// ByteReader over untrusted bytes.
//
// ByteReader never reads past its span: every read checks the bytes left first and returns a
// Status (kInvalidData) naming the section, the field and the absolute file offset instead.
// Counts are checked against the bytes left (count * minimum encoded item size) before any
// container is sized, so a corrupt count cannot make the reader allocate more memory than a
// small multiple of the input size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"

namespace kiln::format {

class ByteWriter {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { le(v, 2); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void i32(int32_t v) { le(static_cast<uint32_t>(v), 4); }
  void i64(int64_t v) { le(static_cast<uint64_t>(v), 8); }
  void f64(double v);
  void bytes(const void* data, size_t n);
  // u32 length + bytes.
  void str(std::string_view s);
  // A u32 count. Lengths and counts above UINT32_MAX are written truncated and mark the writer
  // overflowed(); the caller must check overflowed() before using the bytes.
  void count(size_t n);
  bool overflowed() const { return overflowed_; }
  // Appends zero bytes until size() is a multiple of `alignment`.
  void pad_to(size_t alignment);

  size_t size() const { return out_.size(); }
  std::vector<uint8_t>& buffer() { return out_; }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
  bool overflowed_ = false;
};

inline bool fits_u32(size_t n) { return n <= UINT32_MAX; }

class ByteReader {
 public:
  // `section` names the bytes in messages; `file_offset` is the absolute offset of bytes[0].
  ByteReader(std::span<const uint8_t> bytes, std::string section, uint64_t file_offset)
      : bytes_(bytes), section_(std::move(section)), base_(file_offset) {}

  Status u8(uint8_t* v, const char* what);
  Status u16(uint16_t* v, const char* what);
  Status u32(uint32_t* v, const char* what);
  Status u64(uint64_t* v, const char* what);
  Status i32(int32_t* v, const char* what);
  Status i64(int64_t* v, const char* what);
  Status f64(double* v, const char* what);
  Status str(std::string* v, const char* what);
  // A view of the next n bytes (no copy).
  Status view(size_t n, std::span<const uint8_t>* out, const char* what);
  // Reads a u32 count of items each taking at least `min_item_bytes` (>= 1) encoded bytes, and
  // fails unless that many bytes are left.
  Status count(uint32_t* n, size_t min_item_bytes, const char* what);
  // A bool byte: 0 or 1, anything else is an error.
  Status boolean(bool* v, const char* what);

  size_t remaining() const { return bytes_.size() - pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }
  // Absolute file offset of the next byte.
  uint64_t offset() const { return base_ + pos_; }
  const std::string& section() const { return section_; }
  // kInvalidData "<section> at file offset <offset>: <message>".
  Status error(const std::string& message) const;
  Status error_at(uint64_t file_offset, const std::string& message) const;

 private:
  Status need(size_t n, const char* what) const;
  Status fixed(void* out, size_t n, const char* what);

  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  std::string section_;
  uint64_t base_;
};

// zlib crc32 over any number of bytes.
uint32_t crc32_of(std::span<const uint8_t> bytes, uint32_t crc = 0);

// The engine file's header checksum over `file`: its fixed header minus the crc field itself
// (bytes [0, 32) and [36, 40)), then the section table [table_offset, table_end).
// The caller checked that all of these lie within `file`.
uint32_t header_crc(std::span<const uint8_t> file, uint64_t table_offset, uint64_t table_end);

}  // namespace kiln::format
