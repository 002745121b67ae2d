// Constants of the engine file layout shared by the writer, the reader and the tests.
// docs/engine_format.md is the normative description; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::format {

inline constexpr char kEngineMagic[8] = {'K', 'I', 'L', 'N', 'E', 'N', 'G', '\0'};
inline constexpr size_t kFixedHeaderSize = 40;
// The header crc covers the fixed header with its own 4 bytes left out ([0, 32) then [36, 40)),
// followed by the whole section table.
inline constexpr size_t kHeaderCrcOffset = 32;
inline constexpr size_t kSectionEntrySize = 32;
inline constexpr size_t kSectionAlignment = 8;
inline constexpr size_t kWeightAlignment = 64;    // relative to the start of the file
inline constexpr uint32_t kSectionRequired = 1u;  // flags bit 0

enum SectionId : uint32_t {
  kSectionHeader = 1,
  kSectionBindings = 2,
  kSectionGraph = 3,
  kSectionWeights = 4,
  kSectionKernels = 5,
  kSectionMetadata = 6,
};

inline bool section_known(uint32_t id) { return id >= kSectionHeader && id <= kSectionMetadata; }

// "header", "bindings", ... or "section <id>" for ids this kiln does not know.
std::string section_name(uint32_t id);

// One entry of the section table, decoded.
struct SectionEntry {
  uint32_t id = 0;
  uint32_t flags = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t crc = 0;
};

}  // namespace kiln::format
