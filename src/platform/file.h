// Whole-file reads, crash-safe whole-file writes, and read-only memory maps.
//
// Every error is a Status naming the path and the OS reason (strerror text):
// kNotFound when the file (or its folder) does not exist, kIoError for anything else the OS
// refuses, including a full disk. All functions are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln::platform {

// Reads the whole file at `path`.
Result<std::vector<uint8_t>> read_file(const std::string& path);

// Replaces the file at `path` with `bytes` so that readers and crashes only ever see the old
// content or the new content, never a mix: writes a temp file in the same folder, fsyncs it,
// renames it over `path`, then fsyncs the folder. On any failure the old file (if any) is left
// untouched and the temp file is removed. The new file gets mode 0666 minus the umask.
// A symlink at `path` is replaced by the file, not followed.
Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

// A read-only, private memory map of a whole file. Move-only; unmaps on destruction.
// The bytes are immutable for the map's lifetime as far as kiln is concerned; another process
// truncating the file while it is mapped makes access fault (SIGBUS), as with any mmap, so only
// map files that are replaced atomically (write_file_atomic) rather than rewritten in place.
class MappedFile {
 public:
  // Maps `path`. An empty file gives size() == 0 and data() == nullptr.
  // Errors: kNotFound, kIoError (not a regular file, mmap refused).
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  void reset();

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// `bytes` of zeroed, writable memory whose pages the OS provides on first touch (an anonymous
// private mapping): memory that may never be read costs no page faults and no clearing. Freed
// (unmapped) with the last copy of the pointer. Null when the mapping fails.
std::shared_ptr<void> lazily_zeroed(size_t bytes);

// The OS text for an errno value (strerror), as used in the messages above.
std::string errno_text(int err);

}  // namespace kiln::platform
