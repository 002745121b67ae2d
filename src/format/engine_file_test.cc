#include "format/engine_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "format/engine_test_util.h"
#include "platform/file.h"

namespace kiln::format {
namespace {

using namespace kiln::format::testing;

// 64-byte aligned copy of `bytes`, owned by the returned shared_ptr.
std::shared_ptr<uint8_t> aligned_copy(const std::vector<uint8_t>& bytes, size_t shift = 0) {
  size_t n = (bytes.size() + shift + 64) / 64 * 64;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, n));
  std::memcpy(p + shift, bytes.data(), bytes.size());
  return std::shared_ptr<uint8_t>(p, [](uint8_t* q) { std::free(q); });
}

TEST(EngineFileTest, RoundTripPreservesEverything) {
  EngineModel m = sample_model();
  auto bytes = engine_serialize(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  auto back = parse(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_models_eq(m, *back);
  // Producers are rebuilt from the nodes.
  EXPECT_EQ(back->graph.values[*back->graph.find_value("y")].producer, 0);
  EXPECT_EQ(back->graph.values[*back->graph.find_value("z")].producer, 1);
}

TEST(EngineFileTest, MinimalModelRoundTrips) {
  EngineModel m;
  int x = m.graph.add_value("x", DType::kI8, ir::Shape::of({}));
  m.graph.inputs = {x};
  m.graph.outputs = {x};
  auto bytes = engine_serialize(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  auto back = parse(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_models_eq(m, *back);
}

TEST(EngineFileTest, SerializationIsByteIdentical) {
  EngineModel m = sample_model();
  auto a = engine_serialize(m);
  auto b = engine_serialize(sample_model());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  // Re-serializing what was read gives the same bytes too.
  auto back = parse(*a);
  ASSERT_TRUE(back.ok());
  auto c = engine_serialize(*back);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*a, *c);
  // Attribute and metadata insertion order does not matter.
  EngineModel m2 = sample_model();
  ir::Attributes reordered;
  const auto& all = m2.graph.nodes[0].attrs.all();
  for (auto it = all.rbegin(); it != all.rend(); ++it) reordered.set(it->first, it->second);
  m2.graph.nodes[0].attrs = reordered;
  auto d = engine_serialize(m2);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*a, *d);
}

TEST(EngineFileTest, PaddingIsZero) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  std::vector<char> covered(bytes->size(), 0);
  std::fill(covered.begin(), covered.begin() + 40 + 32 * 6, 1);
  for (const RawSection& s : split(*bytes))
    std::fill(covered.begin() + s.offset, covered.begin() + s.offset + s.bytes.size(), 1);
  for (size_t i = 0; i < bytes->size(); ++i) {
    if (!covered[i]) {
      EXPECT_EQ((*bytes)[i], 0) << "gap byte at offset " << i;
    }
  }
  // The reserved bytes of the header and of each table entry are zero too.
  for (size_t i = 36; i < 40; ++i) EXPECT_EQ((*bytes)[i], 0);
  for (size_t e = 0; e < 6; ++e)
    for (size_t i = 28; i < 32; ++i) EXPECT_EQ((*bytes)[40 + 32 * e + i], 0);
}

TEST(EngineFileTest, ConstantsAreZeroCopyViewsKeepingOwnerAlive) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  std::shared_ptr<uint8_t> buf = aligned_copy(*bytes);
  std::weak_ptr<uint8_t> weak = buf;
  Result<EngineModel> m = engine_parse({buf.get(), bytes->size()}, buf);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const uint8_t* lo = buf.get();
  const uint8_t* hi = lo + bytes->size();
  buf.reset();
  EXPECT_FALSE(weak.expired());  // the constants hold the buffer
  int views = 0;
  for (const Tensor& t : m->graph.constants) {
    if (!t.defined() || t.nbytes() == 0) continue;
    auto* p = static_cast<const uint8_t*>(t.data());
    EXPECT_TRUE(p >= lo && p + t.nbytes() <= hi);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    ++views;
  }
  EXPECT_EQ(views, 14);
  expect_models_eq(sample_model(), *m);
  *m = EngineModel();
  EXPECT_TRUE(weak.expired());
}

TEST(EngineFileTest, MisalignedBufferGetsAlignedCopies) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  std::shared_ptr<uint8_t> buf = aligned_copy(*bytes, 8);
  Result<EngineModel> m = engine_parse({buf.get() + 8, bytes->size()}, buf);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  for (const Tensor& t : m->graph.constants) {
    if (!t.defined()) continue;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
    auto* p = static_cast<const uint8_t*>(t.data());
    EXPECT_FALSE(p >= buf.get() && p < buf.get() + bytes->size() + 8);
  }
  expect_models_eq(sample_model(), *m);
}

TEST(EngineFileTest, NullOwnerGetsAlignedCopies) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  std::shared_ptr<uint8_t> buf = aligned_copy(*bytes);
  Result<EngineModel> m = engine_parse({buf.get(), bytes->size()}, nullptr);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  std::memset(buf.get(), 0, bytes->size());  // the model must not depend on the buffer
  buf.reset();
  for (const Tensor& t : m->graph.constants) {
    if (t.defined()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
    }
  }
  expect_models_eq(sample_model(), *m);
}

class EngineFileOnDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/kiln_format_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(EngineFileOnDiskTest, LoadFileMapsAlignedWeights) {
  EngineModel m = sample_model();
  auto bytes = engine_serialize(m);
  ASSERT_TRUE(bytes.ok());
  std::string path = dir_ + "/sample.kiln";
  ASSERT_TRUE(platform::write_file_atomic(path, *bytes).ok());
  auto loaded = engine_load_file(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  // The mapping outlives the file's name.
  std::filesystem::remove(path);
  for (const Tensor& t : loaded->graph.constants) {
    if (t.defined()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
    }
  }
  expect_models_eq(m, *loaded);
}

TEST_F(EngineFileOnDiskTest, LoadFileErrorsNameThePath) {
  auto missing = engine_load_file(dir_ + "/missing.kiln");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.kiln"), std::string::npos);

  std::string junk = dir_ + "/junk.kiln";
  ASSERT_TRUE(platform::write_file_atomic(junk, std::vector<uint8_t>(100, 'j')).ok());
  auto bad = engine_load_file(junk);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidData);
  EXPECT_NE(bad.status().message().find("junk.kiln"), std::string::npos);
  EXPECT_NE(bad.status().message().find("not a kiln engine"), std::string::npos);

  std::string empty = dir_ + "/empty.kiln";
  ASSERT_TRUE(platform::write_file_atomic(empty, {}).ok());
  auto e = engine_load_file(empty);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("empty"), std::string::npos);
}

TEST(EngineFileTest, NewerMajorIsRejectedNamingBothVersions) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  std::vector<uint8_t> f = assemble(split(*bytes), 2, 0);
  auto r = parse(f);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidData);
  EXPECT_EQ(r.status().message(),
            "engine format 2.0 is newer than this kiln (reads 1.x); rebuild the engine or "
            "upgrade kiln");
  // Even with a stale checksum the version is what gets reported.
  put_le(&(*bytes)[8], 7, 2);
  r = parse(*bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("7.0 is newer"), std::string::npos) << r.status().message();
}

TEST(EngineFileTest, NewerMinorWithAppendedFieldsLoads) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  auto sections = split(*bytes);
  for (RawSection& s : sections) s.bytes.insert(s.bytes.end(), {0xde, 0xad, 0xbe, 0xef});
  auto r = parse(assemble(sections, 1, 3));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_models_eq(sample_model(), *r);
  // The same bytes in a 1.0 file are corruption.
  auto same = parse(assemble(sections, 1, 0));
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.status().message().find("unexpected bytes"), std::string::npos);
}

TEST(EngineFileTest, UnknownOptionalSectionIsSkipped) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  auto sections = split(*bytes);
  sections.insert(sections.begin() + 2, RawSection{77, 0, {1, 2, 3, 4, 5}});
  sections.push_back(RawSection{1000, 0x6 /* unknown flag bits are ignored */, {}});
  auto r = parse(assemble(sections));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_models_eq(sample_model(), *r);
}

TEST(EngineFileTest, UnknownRequiredSectionIsRefusedNamingItsId) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  auto sections = split(*bytes);
  sections.push_back(RawSection{77, kSectionRequired, {9, 9}});
  auto r = parse(assemble(sections));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("unknown id 77"), std::string::npos) << r.status().message();
}

TEST(EngineFileTest, MissingOrDuplicateSectionsAreRejected) {
  auto bytes = engine_serialize(sample_model());
  ASSERT_TRUE(bytes.ok());
  for (uint32_t id : {kSectionHeader, kSectionBindings, kSectionGraph, kSectionWeights}) {
    auto sections = split(*bytes);
    sections.erase(std::remove_if(sections.begin(), sections.end(),
                                  [&](const RawSection& s) { return s.id == id; }),
                   sections.end());
    auto r = parse(assemble(sections));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("lacks its required " + section_name(id)),
              std::string::npos)
        << r.status().message();
  }
  // Kernels and metadata may be absent: they are then empty.
  auto sections = split(*bytes);
  sections.erase(std::remove_if(sections.begin(), sections.end(),
                                [](const RawSection& s) {
                                  return s.id == kSectionKernels || s.id == kSectionMetadata;
                                }),
                 sections.end());
  auto r = parse(assemble(sections));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->kernels.empty());
  EXPECT_TRUE(r->metadata.empty());

  sections = split(*bytes);
  sections.push_back(*find(sections, kSectionMetadata));
  r = parse(assemble(sections));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("appears twice"), std::string::npos);
}

TEST(EngineFileTest, SerializeRefusesWhatTheReaderWouldRefuse) {
  EngineModel m = sample_model();
  m.graph.nodes[1].inputs.push_back(999);
  auto r = engine_serialize(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);

  m = sample_model();
  m.outputs[0].value = 12345;
  r = engine_serialize(m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("output binding 'z'"), std::string::npos);

  m = sample_model();
  m.inputs[0].min = {100, 3, 1};  // min > opt
  r = engine_serialize(m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dim 0"), std::string::npos) << r.status().message();

  m = sample_model();
  m.graph.constants[0] = Tensor::wrap(DType::kF32, {4}, nullptr);
  r = engine_serialize(m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("constant 0 has no data"), std::string::npos);
}

}  // namespace
}  // namespace kiln::format
