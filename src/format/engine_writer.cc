// engine_serialize: encodes each section, lays them out after the fixed header and the section
// table (small sections first, weights last and 64-byte aligned), then fills in the checksums.
#include <algorithm>
#include <cstring>

#include "format/engine_file.h"
#include "format/engine_layout.h"
#include "format/section_codec.h"

namespace kiln::format {
namespace {

struct Section {
  uint32_t id;
  bool required;
  std::vector<uint8_t> bytes;
  uint64_t offset = 0;
};

void put_le(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

Result<std::vector<uint8_t>> engine_serialize(const EngineModel& model) {
  // Refuse to write what engine_parse would refuse to read.
  if (Status s = model.graph.validate(); !s.ok())
    return invalid_argument("cannot serialize engine: " + s.message());
  if (Status s = validate_bindings(model); !s.ok())
    return invalid_argument("cannot serialize engine: " + s.message());

  ByteWriter header, bindings, graph, weights, kernels, metadata;
  encode_header(model.header, header);
  KILN_RETURN_IF_ERROR(encode_bindings(model, bindings));
  KILN_RETURN_IF_ERROR(encode_graph(model.graph, graph, weights));
  KILN_RETURN_IF_ERROR(encode_kernels(model.kernels, kernels));
  KILN_RETURN_IF_ERROR(encode_metadata(model.metadata, metadata));
  for (const ByteWriter* w : {&header, &bindings, &graph, &weights, &kernels, &metadata})
    if (w->overflowed())
      return invalid_argument(
          "cannot serialize engine: a string or list has more than 2^32 - 1 "
          "elements");

  // File order; the table lists them by id. Metadata is never needed to run, so it is optional.
  std::vector<Section> sections;
  sections.push_back({kSectionHeader, true, header.take()});
  sections.push_back({kSectionBindings, true, bindings.take()});
  sections.push_back({kSectionGraph, true, graph.take()});
  sections.push_back({kSectionKernels, true, kernels.take()});
  sections.push_back({kSectionMetadata, false, metadata.take()});
  sections.push_back({kSectionWeights, true, weights.take()});

  const uint64_t table_offset = kFixedHeaderSize;
  uint64_t pos = table_offset + sections.size() * kSectionEntrySize;
  for (Section& s : sections) {
    pos = align_up(pos, s.id == kSectionWeights ? kWeightAlignment : kSectionAlignment);
    s.offset = pos;
    pos += s.bytes.size();
  }
  const uint64_t file_size = pos;
  if (file_size > SIZE_MAX) return resource_exhausted("engine too large for this address space");

  std::vector<uint8_t> out(static_cast<size_t>(file_size), 0);  // gaps stay zero
  std::memcpy(out.data(), kEngineMagic, sizeof(kEngineMagic));
  put_le(&out[8], kFormatMajor, 2);
  put_le(&out[10], kFormatMinor, 2);
  put_le(&out[12], sections.size(), 4);
  put_le(&out[16], table_offset, 8);
  put_le(&out[24], file_size, 8);
  // [32, 36) header crc, filled below; [36, 40) reserved, zero.

  std::vector<const Section*> by_id;
  for (const Section& s : sections) by_id.push_back(&s);
  std::sort(by_id.begin(), by_id.end(),
            [](const Section* a, const Section* b) { return a->id < b->id; });
  for (size_t i = 0; i < by_id.size(); ++i) {
    const Section& s = *by_id[i];
    if (!s.bytes.empty()) std::memcpy(&out[s.offset], s.bytes.data(), s.bytes.size());
    uint8_t* e = &out[table_offset + i * kSectionEntrySize];
    put_le(e + 0, s.id, 4);
    put_le(e + 4, s.required ? kSectionRequired : 0, 4);
    put_le(e + 8, s.offset, 8);
    put_le(e + 16, s.bytes.size(), 8);
    put_le(e + 24, crc32_of(s.bytes), 4);
    // e + 28: reserved, zero.
  }
  const size_t table_end = table_offset + sections.size() * kSectionEntrySize;
  put_le(&out[kHeaderCrcOffset], header_crc(out, table_offset, table_end), 4);
  return out;
}

}  // namespace kiln::format
