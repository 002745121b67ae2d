// Engine file read/write. The byte layout is documented in docs/engine_format.md.
//
// An engine file holds what is needed to reconstruct the program (EngineModel) and nothing about
// how it runs. Serialization is deterministic: equal models give byte-identical files.
// The reader treats its input as untrusted: every offset, size and count is checked against the
// bytes present before use, every section's crc32 is verified, and the graph must pass
// ir::Graph::validate(). Bad input yields a Status, never a crash or an unbounded allocation.
// All functions are thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/engine_model.h"
#include "kiln/status.h"

namespace kiln::format {

// Format version written by this kiln. A reader accepts any 1.x file (fields a newer minor
// appended are skipped) and refuses 2.0 and later.
inline constexpr uint16_t kFormatMajor = 1, kFormatMinor = 0;

// Encodes `model`. Fails with kInvalidArgument when the model cannot be written faithfully:
// graph.validate() fails, a constant is not a host tensor or its byte size does not match its
// dims, a binding refers to a missing value, or a count or string exceeds the format's limits.
Result<std::vector<uint8_t>> engine_serialize(const EngineModel& model);

// Decodes and validates an engine file held in `bytes`. Constants (the weights) become zero-copy
// read-only views into `bytes`; each such Tensor shares ownership of `owner`, which must keep
// `bytes` alive and unchanged. Do not write through a constant's data(). Constants are copied
// instead (into 64-byte aligned storage) when `owner` is null or bytes.data() is not 64-byte
// aligned, so every constant's data() is 64-byte aligned and never dangles. Tensor attributes
// are always copied. Nothing else refers to `bytes` after the call.
// Errors: kInvalidData for a malformed, truncated, corrupt (checksum) or newer-major file, naming
// the section and file offset; kUnsupported for an unknown section marked required.
Result<EngineModel> engine_parse(std::span<const uint8_t> bytes, std::shared_ptr<const void> owner);

// Memory-maps the file at `path` and parses it; the constants stay in the mapping, which lives as
// long as any of them. Errors as engine_parse() and platform::MappedFile::open(), prefixed with
// the path.
Result<EngineModel> engine_load_file(const std::string& path);

}  // namespace kiln::format
