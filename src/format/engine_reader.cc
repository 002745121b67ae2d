// engine_parse: checks the fixed header, the section table and every checksum, then decodes the
// sections and cross-checks them. Nothing is dereferenced before it is bounds-checked.
#include <algorithm>
#include <cstring>

#include "format/engine_file.h"
#include "format/engine_layout.h"
#include "format/section_codec.h"
#include "platform/file.h"

namespace kiln::format {
namespace {

uint64_t get_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

struct Container {
  uint16_t minor = 0;
  std::vector<SectionEntry> sections;  // known ids only, checksums verified
};

Status parse_container(std::span<const uint8_t> b, Container* c) {
  const uint64_t size = b.size();
  const size_t magic_len = std::min<size_t>(size, sizeof(kEngineMagic));
  if (size == 0) return invalid_data("engine file is empty");
  if (std::memcmp(b.data(), kEngineMagic, magic_len) != 0)
    return invalid_data(
        "not a kiln engine file: it does not start with the magic bytes "
        "\"KILNENG\\0\" (" +
        std::to_string(size) + " bytes)");
  if (size < kFixedHeaderSize)
    return invalid_data("engine file is truncated: " + std::to_string(size) +
                        " bytes, shorter than the " + std::to_string(kFixedHeaderSize) +
                        "-byte fixed header");
  const uint16_t major = static_cast<uint16_t>(get_le(&b[8], 2));
  const uint16_t minor = static_cast<uint16_t>(get_le(&b[10], 2));
  const std::string version = std::to_string(major) + "." + std::to_string(minor);
  if (major > kFormatMajor)
    return invalid_data("engine format " + version + " is newer than this kiln (reads " +
                        std::to_string(kFormatMajor) + ".x); rebuild the engine or upgrade kiln");
  if (major < kFormatMajor)
    return invalid_data("engine format " + version +
                        " is not a format any kiln wrote (this kiln "
                        "reads " +
                        std::to_string(kFormatMajor) + ".x); rebuild the engine");
  c->minor = minor;
  const uint64_t count = get_le(&b[12], 4);
  const uint64_t table_offset = get_le(&b[16], 8);
  const uint64_t declared_size = get_le(&b[24], 8);
  if (declared_size > size)
    return invalid_data("engine file is truncated: the header declares " +
                        std::to_string(declared_size) + " bytes but only " + std::to_string(size) +
                        " are present (incomplete copy or download?)");
  if (declared_size < size)
    return invalid_data("engine file has " + std::to_string(size - declared_size) +
                        " unexpected bytes after its declared end at file offset " +
                        std::to_string(declared_size));
  // count < 2^32, so count * entry size cannot overflow.
  if (table_offset < kFixedHeaderSize || table_offset > size ||
      count * kSectionEntrySize > size - table_offset)
    return invalid_data("engine section table (" + std::to_string(count) +
                        " entries at file offset " + std::to_string(table_offset) +
                        ") does not fit in the " + std::to_string(size) + "-byte file");
  const uint64_t table_end = table_offset + count * kSectionEntrySize;
  if (header_crc(b, table_offset, table_end) != get_le(&b[kHeaderCrcOffset], 4))
    return invalid_data(
        "checksum mismatch in the engine header or section table (file offsets "
        "0-" +
        std::to_string(kFixedHeaderSize) + " and " + std::to_string(table_offset) + "-" +
        std::to_string(table_end) + "): the file is corrupt; rebuild or re-copy it");

  std::vector<SectionEntry> all;
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = &b[table_offset + i * kSectionEntrySize];
    SectionEntry s{static_cast<uint32_t>(get_le(e, 4)), static_cast<uint32_t>(get_le(e + 4, 4)),
                   get_le(e + 8, 8), get_le(e + 16, 8), static_cast<uint32_t>(get_le(e + 24, 4))};
    const std::string where = "engine " + section_name(s.id) + " (table entry " +
                              std::to_string(i) + ", file offset " + std::to_string(s.offset) +
                              ", " + std::to_string(s.size) + " bytes)";
    if (s.offset < table_end || s.offset > size || s.size > size - s.offset)
      return invalid_data(where + " lies outside the file's section area [" +
                          std::to_string(table_end) + ", " + std::to_string(size) + ")");
    for (const SectionEntry& o : all)
      if (o.id == s.id) return invalid_data(where + " appears twice in the section table");
    all.push_back(s);
    if (!section_known(s.id)) {
      if (s.flags & kSectionRequired)
        return unsupported(where + " has unknown id " + std::to_string(s.id) +
                           " and is marked required: it needs a newer kiln (this one reads "
                           "format " +
                           std::to_string(kFormatMajor) + "." + std::to_string(kFormatMinor) +
                           "); upgrade kiln");
      continue;  // optional: skipped unread
    }
    if (crc32_of(b.subspan(s.offset, s.size)) != s.crc)
      return invalid_data("checksum mismatch in " + where +
                          ": the file is corrupt; rebuild or "
                          "re-copy it");
    c->sections.push_back(s);
  }
  // Sections must not overlap (a writer never does that; overlap means a forged table).
  std::sort(all.begin(), all.end(),
            [](const SectionEntry& x, const SectionEntry& y) { return x.offset < y.offset; });
  for (size_t i = 1; i < all.size(); ++i)
    if (all[i - 1].offset + all[i - 1].size > all[i].offset)
      return invalid_data("engine " + section_name(all[i - 1].id) + " and " +
                          section_name(all[i].id) + " overlap at file offset " +
                          std::to_string(all[i].offset));
  for (uint32_t id : {kSectionHeader, kSectionBindings, kSectionGraph, kSectionWeights}) {
    bool found = std::any_of(c->sections.begin(), c->sections.end(),
                             [&](const SectionEntry& s) { return s.id == id; });
    if (!found)
      return invalid_data("engine file lacks its required " + section_name(id) + " section (id " +
                          std::to_string(id) + ")");
  }
  return Status();
}

const SectionEntry* find_section(const Container& c, uint32_t id) {
  for (const SectionEntry& s : c.sections)
    if (s.id == id) return &s;
  return nullptr;
}

// Decodes one section with `fn`; bytes after the last known field are allowed only in files of
// a newer minor version (fields appended since).
template <typename Fn>
Status decode_section(std::span<const uint8_t> b, const Container& c, uint32_t id, Fn&& fn) {
  const SectionEntry* s = find_section(c, id);
  if (!s) return Status();  // optional and absent
  ByteReader r(b.subspan(s->offset, s->size), section_name(id) + " section", s->offset);
  KILN_RETURN_IF_ERROR(fn(r));
  if (!r.at_end() && c.minor <= kFormatMinor)
    return r.error(std::to_string(r.remaining()) + " unexpected bytes after the last field");
  return Status();
}

}  // namespace

Result<EngineModel> engine_parse(std::span<const uint8_t> bytes,
                                 std::shared_ptr<const void> owner) {
  Container c;
  KILN_RETURN_IF_ERROR(parse_container(bytes, &c));
  EngineModel m;
  KILN_RETURN_IF_ERROR(decode_section(bytes, c, kSectionHeader,
                                      [&](ByteReader& r) { return decode_header(r, &m.header); }));
  KILN_RETURN_IF_ERROR(decode_section(bytes, c, kSectionBindings,
                                      [&](ByteReader& r) { return decode_bindings(r, &m); }));
  const SectionEntry* ws = find_section(c, kSectionWeights);
  WeightsView weights{
      bytes.subspan(ws->offset, ws->size), ws->offset,
      owner == nullptr || reinterpret_cast<uintptr_t>(bytes.data()) % kWeightAlignment != 0,
      std::move(owner)};
  KILN_RETURN_IF_ERROR(decode_section(
      bytes, c, kSectionGraph, [&](ByteReader& r) { return decode_graph(r, weights, &m.graph); }));
  KILN_RETURN_IF_ERROR(decode_section(
      bytes, c, kSectionKernels, [&](ByteReader& r) { return decode_kernels(r, &m.kernels); }));
  KILN_RETURN_IF_ERROR(decode_section(
      bytes, c, kSectionMetadata, [&](ByteReader& r) { return decode_metadata(r, &m.metadata); }));

  if (Status s = m.graph.validate(); !s.ok()) return s.with_context("engine graph is invalid");
  if (Status s = validate_bindings(m); !s.ok()) return s;
  // Producers are derived data: rebuilt here rather than trusted from the file.
  for (size_t n = 0; n < m.graph.nodes.size(); ++n)
    for (int o : m.graph.nodes[n].outputs)
      if (o >= 0) m.graph.values[o].producer = static_cast<int>(n);
  return m;
}

Result<EngineModel> engine_load_file(const std::string& path) {
  auto mapped = platform::MappedFile::open(path);
  if (!mapped.ok()) return mapped.status();
  std::shared_ptr<platform::MappedFile> file = std::move(mapped).value();
  std::span<const uint8_t> bytes = file->bytes();
  Result<EngineModel> r = engine_parse(bytes, std::shared_ptr<const void>(std::move(file)));
  if (!r.ok()) return r.status().with_context("engine file '" + path + "'");
  return r;
}

}  // namespace kiln::format
