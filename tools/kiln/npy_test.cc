#include "npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace kiln::cli {
namespace {

std::vector<uint8_t> make_npy(const std::string& dict, const std::vector<uint8_t>& data,
                              int major = 1) {
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  uint32_t len = static_cast<uint32_t>(dict.size());
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i)
    out.push_back(static_cast<uint8_t>(len >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> floats(std::initializer_list<float> v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), std::data(v), out.size());
  return out;
}

TEST(NpyTest, RoundTripsEverySupportedDtype) {
  for (DType dt : {DType::kF16, DType::kF32, DType::kF64, DType::kI8, DType::kI16, DType::kI32,
                   DType::kI64, DType::kU8, DType::kU16, DType::kU32, DType::kU64, DType::kBool}) {
    Tensor t = Tensor::zeros(dt, {2, 3});
    uint8_t* p = t.data_as<uint8_t>();
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] = dt == DType::kBool ? i % 2 : uint8_t(i * 7 + 1);
    auto bytes = npy_serialize(t);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    EXPECT_EQ((bytes->size() - t.nbytes()) % 64, 0u) << "data must start 64-byte aligned";
    auto back = npy_parse(*bytes, "t.npy");
    ASSERT_TRUE(back.ok()) << dtype_name(dt) << ": " << back.status().to_string();
    EXPECT_EQ(back->dtype(), dt);
    EXPECT_EQ(back->dims(), t.dims());
    EXPECT_EQ(std::memcmp(back->data(), t.data(), t.nbytes()), 0) << dtype_name(dt);
  }
}

TEST(NpyTest, ScalarAndOneDimAndEmptyShapes) {
  for (Dims dims : {Dims{}, Dims{5}, Dims{0, 3}}) {
    Tensor t = Tensor::zeros(DType::kF32, dims);
    auto bytes = npy_serialize(t);
    ASSERT_TRUE(bytes.ok());
    std::string header(bytes->begin() + 10, bytes->begin() + 64);
    if (dims.size() == 1) {
      EXPECT_NE(header.find("(5,)"), std::string::npos) << header;
    }
    auto back = npy_parse(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->dims(), dims);
  }
}

TEST(NpyTest, ReadsVersion2And3HeadersAndPython2Ints) {
  for (int major : {2, 3}) {
    auto bytes = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }\n",
                          floats({1.5f, -2}), major);
    auto t = npy_parse(bytes);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    EXPECT_EQ(t->dims(), (Dims{2}));
    EXPECT_EQ(t->data_as<float>()[1], -2.f);
  }
}

TEST(NpyTest, AcceptsKeysInAnyOrderAndDoubleQuotes) {
  auto bytes =
      make_npy("{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"<f4\"}", floats({1, 2}));
  auto t = npy_parse(bytes);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->dims(), (Dims{1, 2}));
}

TEST(NpyTest, FortranOrderIsAClearError) {
  auto bytes = make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", floats({1, 2}));
  auto t = npy_parse(bytes, "x.npy");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(t.status().message().find("Fortran"), std::string::npos);
  EXPECT_NE(t.status().message().find("x.npy"), std::string::npos);
}

TEST(NpyTest, BigEndianAndUnknownDtypesAreRejected) {
  for (const char* descr : {">f4", "<c8", "|O", "<U3", "<f3", "<m8"}) {
    auto bytes =
        make_npy(std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (1,), }",
                 floats({1, 2}));
    auto t = npy_parse(bytes);
    ASSERT_FALSE(t.ok()) << descr;
    EXPECT_EQ(t.status().code(), StatusCode::kUnsupported) << descr << t.status().to_string();
  }
  auto structured =
      make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", floats({1}));
  EXPECT_EQ(npy_parse(structured).status().code(), StatusCode::kUnsupported);
}

TEST(NpyTest, TruncatedOrOversizedDataIsInvalid) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  auto short_data = make_npy(dict, floats({1, 2}));
  auto t = npy_parse(short_data);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidData);
  auto long_data = make_npy(dict, floats({1, 2, 3, 4}));
  EXPECT_EQ(npy_parse(long_data).status().code(), StatusCode::kInvalidData);
  // A shape whose byte size overflows 64 bits must not allocate or wrap around.
  auto huge = make_npy(
      "{'descr': '<f8', 'fortran_order': False, 'shape': "
      "(4611686018427387903, 4611686018427387903, 16), }",
      floats({1, 2}));
  EXPECT_EQ(npy_parse(huge).status().code(), StatusCode::kInvalidData);
}

TEST(NpyTest, EveryTruncationOfAValidFileFailsCleanly) {
  Tensor t = Tensor::from_vector<float>(DType::kF32, {2, 2}, {1, 2, 3, 4});
  auto bytes = npy_serialize(t);
  ASSERT_TRUE(bytes.ok());
  for (size_t n = 0; n < bytes->size(); ++n) {
    std::span<const uint8_t> cut(bytes->data(), n);
    EXPECT_FALSE(npy_parse(cut).ok()) << "prefix of " << n << " bytes was accepted";
  }
}

TEST(NpyTest, MalformedHeadersAreInvalidData) {
  for (const char* dict : {"", "{", "{'descr': '<f4'", "{'descr': '<f4', 'shape': (1,)}",
                           "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk"}) {
    auto t = npy_parse(make_npy(dict, floats({1})));
    ASSERT_FALSE(t.ok()) << dict;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidData)
        << dict << ": " << t.status().to_string();
  }
  std::vector<uint8_t> not_npy = {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(npy_parse(not_npy).status().code(), StatusCode::kInvalidData);
}

TEST(NpyTest, HeaderLengthPastTheEndIsInvalid) {
  std::vector<uint8_t> bytes = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0xff, '{', '}'};
  EXPECT_EQ(npy_parse(bytes).status().code(), StatusCode::kInvalidData);
}

TEST(NpyTest, BoolBytesAreNormalised) {
  auto bytes = make_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", {0, 2, 255});
  auto t = npy_parse(bytes);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->data_as<uint8_t>()[0], 0);
  EXPECT_EQ(t->data_as<uint8_t>()[1], 1);
  EXPECT_EQ(t->data_as<uint8_t>()[2], 1);
}

TEST(NpyTest, Bf16CannotBeWritten) {
  Tensor t = Tensor::zeros(DType::kBF16, {2});
  EXPECT_EQ(npy_serialize(t).status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::cli
