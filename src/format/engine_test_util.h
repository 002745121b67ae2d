// Test helpers for the engine format tests: a model exercising every attribute kind and dtype,
// deep model comparison, and an independent splitter/assembler of the container layout (so tests
// can forge files: add, drop or edit sections, change versions, and keep checksums valid).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "format/byte_io.h"
#include "format/engine_file.h"
#include "format/engine_layout.h"

namespace kiln::format::testing {

inline uint64_t get_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
inline void put_le(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// A tensor of `dtype` and `dims` filled with a byte pattern derived from `seed`.
inline Tensor patterned(DType dtype, Dims dims, int seed) {
  Tensor t = Tensor::zeros(dtype, std::move(dims));
  auto* p = static_cast<uint8_t*>(t.data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 31 + seed * 7 + 1);
  if (dtype == DType::kBool)
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  return t;
}

inline const std::vector<DType>& all_dtypes() {
  static const std::vector<DType> kAll = {
      DType::kF32,  DType::kU8,  DType::kI8,  DType::kU16, DType::kI16, DType::kI32, DType::kI64,
      DType::kBool, DType::kF16, DType::kF64, DType::kU32, DType::kU64, DType::kBF16};
  return kAll;
}

// A small but complete model: symbolic input dims, one constant of every dtype (plus a scalar,
// an empty and a pruned one), nodes carrying every attribute kind, an omitted optional input,
// kernels and metadata.
inline EngineModel sample_model() {
  EngineModel m;
  m.header.name = "sample";
  m.header.kiln_version = "0.1.0";
  m.header.target_platform = "linux-x86_64";
  m.header.min_compute_capability = 86;
  m.header.hardware_compatibility = HardwareCompatibility::kArchSpecific;
  m.header.precision = Precision::kBf16;
  m.header.allow_tf32 = true;
  m.header.optimization_level = 2;

  ir::Graph& g = m.graph;
  ir::Shape xs;
  xs.rank_known = true;
  xs.dims = {ir::Dim::named("batch"), ir::Dim::known(3), ir::Dim{}};
  int x = g.add_value("x", DType::kF32, xs);
  g.inputs.push_back(x);
  std::vector<int> consts;
  int seed = 0;
  for (DType d : all_dtypes())
    consts.push_back(g.add_constant("c_" + std::string(dtype_name(d)),
                                    patterned(d, {2, 3, seed % 3 + 1}, seed++)));
  consts.push_back(g.add_constant("scalar", patterned(DType::kF32, {}, 99)));
  consts.push_back(g.add_constant("empty", Tensor::zeros(DType::kI64, {0, 5})));
  consts.push_back(g.add_constant("pruned", Tensor()));
  int y = g.add_value("y", DType::kF32, ir::Shape::unknown());
  int z = g.add_value("z", DType::kUndefined, xs);

  ir::Node a;
  a.name = "node_a";
  a.op = "Add";
  a.inputs = {x, consts[0]};
  a.outputs = {y};
  a.attrs.set_int("i", -1234567890123);
  a.attrs.set_float("f", -0.0);
  a.attrs.set_float("nan", std::numeric_limits<double>::quiet_NaN());
  a.attrs.set_string("s", std::string("bytes\0with nul", 14));
  a.attrs.set_ints("ints", {1, -2, std::numeric_limits<int64_t>::max()});
  a.attrs.set_floats("floats", {1.5, -2.25, 1e300});
  a.attrs.set_ints("no_ints", {});
  ir::Attribute strs;
  strs.kind = ir::Attribute::Kind::kStrings;
  strs.strings = {"alpha", "", "gamma"};
  a.attrs.set("strings", strs);
  ir::Attribute ten;
  ten.kind = ir::Attribute::Kind::kTensor;
  ten.t = patterned(DType::kF16, {4}, 5);
  a.attrs.set("value", ten);
  ir::Attribute undef_t;
  undef_t.kind = ir::Attribute::Kind::kTensor;
  a.attrs.set("undefined_tensor", undef_t);
  g.add_node(std::move(a));

  ir::Node b;
  b.name = "node_b";
  b.op = "Custom";
  b.inputs = {y, ir::kNoValue, consts[6]};
  b.outputs = {z};
  g.add_node(std::move(b));
  g.outputs.push_back(z);

  Binding in;
  in.name = "x";
  in.value = x;
  in.dtype = DType::kF32;
  in.shape = xs;
  in.min = {1, 3, 1};
  in.opt = {8, 3, 16};
  in.max = {64, 3, 512};
  m.inputs.push_back(in);
  Binding out;
  out.name = "z";
  out.value = z;
  out.dtype = DType::kF32;
  out.shape = xs;
  m.outputs.push_back(out);

  m.kernels.push_back({"fused_add", "extern \"C\" __global__ void fused_add() {}", ""});
  m.kernels.push_back({"gemm_epilogue", "// source", ".version 8.0\n.target sm_86\n"});
  m.metadata = {{"author", "kiln tests"}, {"b", ""}, {"z\xff", "high byte key"}};
  return m;
}

inline bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.dtype() != b.dtype() || a.dims() != b.dims()) return false;
  return a.nbytes() == 0 || std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

inline void expect_attr_eq(const ir::Attribute& a, const ir::Attribute& b, const std::string& n) {
  SCOPED_TRACE("attribute " + n);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.i, b.i);
  // Bitwise: NaN and -0.0 must survive.
  EXPECT_EQ(std::memcmp(&a.f, &b.f, sizeof(double)), 0);
  EXPECT_EQ(a.s, b.s);
  EXPECT_EQ(a.ints, b.ints);
  ASSERT_EQ(a.floats.size(), b.floats.size());
  for (size_t i = 0; i < a.floats.size(); ++i)
    EXPECT_EQ(std::memcmp(&a.floats[i], &b.floats[i], sizeof(double)), 0);
  EXPECT_EQ(a.strings, b.strings);
  EXPECT_TRUE(same_bytes(a.t, b.t));
}

inline void expect_binding_eq(const Binding& a, const Binding& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.value, b.value);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.min, b.min);
  EXPECT_EQ(a.opt, b.opt);
  EXPECT_EQ(a.max, b.max);
}

inline void expect_models_eq(const EngineModel& a, const EngineModel& b) {
  EXPECT_EQ(a.header.name, b.header.name);
  EXPECT_EQ(a.header.kiln_version, b.header.kiln_version);
  EXPECT_EQ(a.header.target_platform, b.header.target_platform);
  EXPECT_EQ(a.header.min_compute_capability, b.header.min_compute_capability);
  EXPECT_EQ(a.header.hardware_compatibility, b.header.hardware_compatibility);
  EXPECT_EQ(a.header.precision, b.header.precision);
  EXPECT_EQ(a.header.allow_tf32, b.header.allow_tf32);
  EXPECT_EQ(a.header.optimization_level, b.header.optimization_level);
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) expect_binding_eq(a.inputs[i], b.inputs[i]);
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) expect_binding_eq(a.outputs[i], b.outputs[i]);
  const ir::Graph& ga = a.graph;
  const ir::Graph& gb = b.graph;
  ASSERT_EQ(ga.values.size(), gb.values.size());
  for (size_t i = 0; i < ga.values.size(); ++i) {
    SCOPED_TRACE("value " + ga.values[i].name);
    EXPECT_EQ(ga.values[i].name, gb.values[i].name);
    EXPECT_EQ(ga.values[i].dtype, gb.values[i].dtype);
    EXPECT_EQ(ga.values[i].shape, gb.values[i].shape);
    EXPECT_EQ(ga.values[i].producer, gb.values[i].producer);
    EXPECT_EQ(ga.values[i].constant, gb.values[i].constant);
  }
  ASSERT_EQ(ga.constants.size(), gb.constants.size());
  for (size_t i = 0; i < ga.constants.size(); ++i)
    EXPECT_TRUE(same_bytes(ga.constants[i], gb.constants[i])) << "constant " << i;
  ASSERT_EQ(ga.nodes.size(), gb.nodes.size());
  for (size_t n = 0; n < ga.nodes.size(); ++n) {
    const ir::Node& na = ga.nodes[n];
    const ir::Node& nb = gb.nodes[n];
    EXPECT_EQ(na.name, nb.name);
    EXPECT_EQ(na.op, nb.op);
    EXPECT_EQ(na.inputs, nb.inputs);
    EXPECT_EQ(na.outputs, nb.outputs);
    ASSERT_EQ(na.attrs.all().size(), nb.attrs.all().size());
    for (const auto& [name, attr] : na.attrs.all()) {
      const ir::Attribute* other = nb.attrs.find(name);
      ASSERT_NE(other, nullptr) << name;
      expect_attr_eq(attr, *other, name);
    }
  }
  EXPECT_EQ(ga.inputs, gb.inputs);
  EXPECT_EQ(ga.outputs, gb.outputs);
  ASSERT_EQ(a.kernels.size(), b.kernels.size());
  for (size_t i = 0; i < a.kernels.size(); ++i) {
    EXPECT_EQ(a.kernels[i].name, b.kernels[i].name);
    EXPECT_EQ(a.kernels[i].source, b.kernels[i].source);
    EXPECT_EQ(a.kernels[i].ptx, b.kernels[i].ptx);
  }
  EXPECT_EQ(a.metadata, b.metadata);
}

// --- container surgery -------------------------------------------------------------------------

struct RawSection {
  uint32_t id = 0;
  uint32_t flags = 0;
  std::vector<uint8_t> bytes;
  uint64_t offset = 0;  // as found in the file (split() only)
};

// Splits a well-formed file into its sections, in table order.
inline std::vector<RawSection> split(const std::vector<uint8_t>& f) {
  std::vector<RawSection> out;
  uint64_t count = get_le(&f[12], 4), table = get_le(&f[16], 8);
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = &f[table + i * kSectionEntrySize];
    RawSection s;
    s.id = static_cast<uint32_t>(get_le(e, 4));
    s.flags = static_cast<uint32_t>(get_le(e + 4, 4));
    s.offset = get_le(e + 8, 8);
    uint64_t size = get_le(e + 16, 8);
    s.bytes.assign(f.begin() + s.offset, f.begin() + s.offset + size);
    out.push_back(std::move(s));
  }
  return out;
}

// Lays sections out as documented in docs/engine_format.md (written independently of the
// writer): 40-byte header, table, sections in the given order, weights 64-aligned, others
// 8-aligned, valid checksums.
inline std::vector<uint8_t> assemble(const std::vector<RawSection>& sections,
                                     uint16_t major = kFormatMajor, uint16_t minor = kFormatMinor) {
  uint64_t table_end = 40 + 32 * sections.size();
  std::vector<uint64_t> offsets;
  uint64_t pos = table_end;
  for (const RawSection& s : sections) {
    uint64_t a = s.id == kSectionWeights ? 64 : 8;
    pos = (pos + a - 1) / a * a;
    offsets.push_back(pos);
    pos += s.bytes.size();
  }
  std::vector<uint8_t> f(pos, 0);
  std::memcpy(f.data(), "KILNENG", 8);
  put_le(&f[8], major, 2);
  put_le(&f[10], minor, 2);
  put_le(&f[12], sections.size(), 4);
  put_le(&f[16], 40, 8);
  put_le(&f[24], pos, 8);
  for (size_t i = 0; i < sections.size(); ++i) {
    const RawSection& s = sections[i];
    if (!s.bytes.empty()) std::memcpy(&f[offsets[i]], s.bytes.data(), s.bytes.size());
    uint8_t* e = &f[40 + 32 * i];
    put_le(e, s.id, 4);
    put_le(e + 4, s.flags, 4);
    put_le(e + 8, offsets[i], 8);
    put_le(e + 16, s.bytes.size(), 8);
    put_le(e + 24, crc32_of(s.bytes), 4);
  }
  put_le(&f[32], header_crc(f, 40, table_end), 4);
  return f;
}

// Recomputes every checksum in place (after a test edited bytes on purpose). Entries whose
// range lies outside the file are left alone, as is everything when the table does not fit.
inline void fix_checksums(std::vector<uint8_t>& f) {
  uint64_t count = get_le(&f[12], 4), table = get_le(&f[16], 8);
  if (table < 40 || table > f.size() || count * kSectionEntrySize > f.size() - table) return;
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t* e = &f[table + i * kSectionEntrySize];
    uint64_t off = get_le(e + 8, 8), size = get_le(e + 16, 8);
    if (off <= f.size() && size <= f.size() - off)
      put_le(e + 24, crc32_of(std::span<const uint8_t>(f).subspan(off, size)), 4);
  }
  put_le(&f[32], header_crc(f, table, table + count * kSectionEntrySize), 4);
}

inline RawSection* find(std::vector<RawSection>& s, uint32_t id) {
  for (RawSection& r : s)
    if (r.id == id) return &r;
  return nullptr;
}

// Parses a private, owned copy (zero-copy when the copy happens to be 64-byte aligned).
inline Result<EngineModel> parse(const std::vector<uint8_t>& bytes) {
  auto owned = std::make_shared<const std::vector<uint8_t>>(bytes);
  return engine_parse(*owned, owned);
}

}  // namespace kiln::format::testing
