#include "onnx/tensor_proto.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/half.h"
#include "onnx/importer.h"
#include "onnx/test_util.h"

namespace kiln::onnx {
namespace {

namespace fs = std::filesystem;
using ::onnx::TensorProto;
using detail::decode_tensor;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kiln_onnx_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void write(const std::string& rel, const std::string& bytes) const {
    fs::create_directories((path_ / rel).parent_path());
    std::ofstream(path_ / rel, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

 private:
  fs::path path_;
};

TensorProto tensor(int type, std::vector<int64_t> dims) {
  TensorProto t;
  t.set_name("t");
  t.set_data_type(type);
  for (int64_t d : dims) t.add_dims(d);
  return t;
}

TEST(TensorProtoTest, TypedFieldsDecodeForEveryDType) {
  TensorProto f = tensor(TensorProto::FLOAT, {2});
  f.add_float_data(1.5f);
  f.add_float_data(-2.f);
  Result<Tensor> t = decode_tensor(f, "", "x");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->dtype(), DType::kF32);
  EXPECT_EQ(t->data_as<float>()[1], -2.f);

  TensorProto d = tensor(TensorProto::DOUBLE, {1});
  d.add_double_data(0.25);
  EXPECT_EQ(decode_tensor(d, "", "x")->data_as<double>()[0], 0.25);

  TensorProto i64 = tensor(TensorProto::INT64, {});
  i64.add_int64_data(-7);
  EXPECT_EQ(decode_tensor(i64, "", "x")->data_as<int64_t>()[0], -7);

  TensorProto u64 = tensor(TensorProto::UINT64, {1});
  u64.add_uint64_data(~uint64_t{0});
  EXPECT_EQ(decode_tensor(u64, "", "x")->data_as<uint64_t>()[0], ~uint64_t{0});
  TensorProto u32 = tensor(TensorProto::UINT32, {1});
  u32.add_uint64_data(4000000000u);
  EXPECT_EQ(decode_tensor(u32, "", "x")->data_as<uint32_t>()[0], 4000000000u);

  struct Case { int type; int32_t in; int64_t want; };
  for (Case c : {Case{TensorProto::INT32, -5, -5}, Case{TensorProto::INT16, -300, -300},
                 Case{TensorProto::INT8, -100, -100}, Case{TensorProto::UINT16, 60000, 60000},
                 Case{TensorProto::UINT8, 200, 200}, Case{TensorProto::BOOL, 7, 1}}) {
    TensorProto p = tensor(c.type, {1});
    p.add_int32_data(c.in);
    Result<Tensor> r = decode_tensor(p, "", "x");
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    int64_t got = 0;
    switch (r->dtype()) {
      case DType::kI32: got = r->data_as<int32_t>()[0]; break;
      case DType::kI16: got = r->data_as<int16_t>()[0]; break;
      case DType::kI8: got = r->data_as<int8_t>()[0]; break;
      case DType::kU16: got = r->data_as<uint16_t>()[0]; break;
      case DType::kU8: case DType::kBool: got = r->data_as<uint8_t>()[0]; break;
      default: FAIL() << "unexpected dtype";
    }
    EXPECT_EQ(got, c.want) << c.type;
  }
  // f16 and bf16 travel as bit patterns in int32_data.
  TensorProto h = tensor(TensorProto::FLOAT16, {1});
  h.add_int32_data(f32_to_f16(1.5f));
  EXPECT_EQ(f16_to_f32(decode_tensor(h, "", "x")->data_as<uint16_t>()[0]), 1.5f);
  TensorProto b = tensor(TensorProto::BFLOAT16, {1});
  b.add_int32_data(f32_to_bf16(-3.f));
  EXPECT_EQ(bf16_to_f32(decode_tensor(b, "", "x")->data_as<uint16_t>()[0]), -3.f);
}

TEST(TensorProtoTest, RawDataIsLittleEndian) {
  TensorProto p = tensor(TensorProto::INT32, {2});
  const unsigned char raw[] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  p.set_raw_data(std::string(reinterpret_cast<const char*>(raw), sizeof(raw)));
  Result<Tensor> t = decode_tensor(p, "", "x");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->data_as<int32_t>()[0], 1);
  EXPECT_EQ(t->data_as<int32_t>()[1], -1);
}

TEST(TensorProtoTest, SizeMismatchesAreInvalidData) {
  TensorProto raw = tensor(TensorProto::FLOAT, {3});
  raw.set_raw_data(std::string(8, '\0'));
  EXPECT_EQ(decode_tensor(raw, "", "x").status().code(), StatusCode::kInvalidData);
  TensorProto typed = tensor(TensorProto::INT64, {2});
  typed.add_int64_data(1);
  EXPECT_EQ(decode_tensor(typed, "", "x").status().code(), StatusCode::kInvalidData);
  TensorProto missing = tensor(TensorProto::FLOAT, {4});
  EXPECT_EQ(decode_tensor(missing, "", "x").status().code(), StatusCode::kInvalidData);
  TensorProto undefined = tensor(TensorProto::UNDEFINED, {1});
  EXPECT_EQ(decode_tensor(undefined, "", "x").status().code(), StatusCode::kInvalidData);
  TensorProto bogus = tensor(1000, {1});
  EXPECT_EQ(decode_tensor(bogus, "", "x").status().code(), StatusCode::kInvalidData);
}

TEST(TensorProtoTest, HugeOrNegativeDimsAreRejectedWithoutAllocating) {
  TensorProto neg = tensor(TensorProto::FLOAT, {2, -1});
  EXPECT_EQ(decode_tensor(neg, "", "x").status().code(), StatusCode::kInvalidData);
  TensorProto overflow = tensor(TensorProto::FLOAT, {int64_t{1} << 40, int64_t{1} << 40});
  EXPECT_EQ(decode_tensor(overflow, "", "x").status().code(), StatusCode::kInvalidData);
  // 2^40 floats claimed with 4 bytes present: refused before any allocation.
  TensorProto big = tensor(TensorProto::FLOAT, {int64_t{1} << 40});
  big.set_raw_data(std::string(4, '\0'));
  EXPECT_EQ(decode_tensor(big, "", "x").status().code(), StatusCode::kInvalidData);
  TensorProto zero = tensor(TensorProto::FLOAT, {0, int64_t{1} << 62});
  Result<Tensor> z = decode_tensor(zero, "", "x");
  ASSERT_TRUE(z.ok()) << z.status().to_string();
  EXPECT_EQ(z->numel(), 0);
}

TEST(TensorProtoTest, StringsComplexAndFloat8AreUnsupportedByName) {
  for (int type : {TensorProto::STRING, TensorProto::COMPLEX64, TensorProto::FLOAT8E4M3FN}) {
    TensorProto p = tensor(type, {1});
    p.set_name("weird");
    Status s = decode_tensor(p, "", "initializer 'weird'").status();
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_NE(s.message().find("weird"), std::string::npos) << s.message();
  }
}

TensorProto external(const std::string& location, int64_t n, const std::string& offset = "",
                     const std::string& length = "") {
  TensorProto p = tensor(TensorProto::FLOAT, {n});
  p.set_data_location(TensorProto::EXTERNAL);
  auto add = [&](const char* k, const std::string& v) {
    auto* e = p.add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", location);
  if (!offset.empty()) add("offset", offset);
  if (!length.empty()) add("length", length);
  return p;
}

TEST(TensorProtoTest, ExternalDataReadsTheRightRange) {
  TempDir dir;
  std::string bytes(64, '\0');
  float v[2] = {3.f, 4.f};
  std::memcpy(bytes.data() + 16, v, 8);
  dir.write("w/weights.bin", bytes);
  Result<Tensor> t = decode_tensor(external("w/weights.bin", 2, "16", "8"), dir.path().string(), "x");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->data_as<float>()[0], 3.f);
  EXPECT_EQ(t->data_as<float>()[1], 4.f);
  // Without length: the rest of the file, which must then match exactly.
  EXPECT_TRUE(decode_tensor(external("w/weights.bin", 16), dir.path().string(), "x").ok());
  EXPECT_EQ(decode_tensor(external("w/weights.bin", 15), dir.path().string(), "x").status().code(),
            StatusCode::kInvalidData);
}

TEST(TensorProtoTest, ExternalDataOutsideTheModelFolderIsRejected) {
  TempDir dir;
  dir.write("model/inside.bin", std::string(8, '\0'));
  dir.write("outside.bin", std::string(8, '\0'));
  const std::string base = (dir.path() / "model").string();
  for (const std::string& loc : {std::string("../outside.bin"), std::string("a/../../outside.bin"),
                                 (dir.path() / "outside.bin").string(), std::string("")}) {
    Status s = decode_tensor(external(loc, 2), base, "x").status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidData) << loc << ": " << s.to_string();
  }
  // A symlink inside the folder that points outside it is caught too.
  fs::create_symlink(dir.path() / "outside.bin", dir.path() / "model" / "link.bin");
  EXPECT_EQ(decode_tensor(external("link.bin", 2), base, "x").status().code(), StatusCode::kInvalidData);
  EXPECT_TRUE(decode_tensor(external("inside.bin", 2), base, "x").ok());
  // No base folder: external data is refused.
  EXPECT_EQ(decode_tensor(external("inside.bin", 2), "", "x").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(TensorProtoTest, ExternalDataRangesAreChecked) {
  TempDir dir;
  dir.write("w.bin", std::string(16, '\0'));
  const std::string base = dir.path().string();
  auto code = [&](TensorProto p) { return decode_tensor(p, base, "x").status().code(); };
  EXPECT_EQ(code(external("w.bin", 2, "12", "8")), StatusCode::kInvalidData);   // past the end
  EXPECT_EQ(code(external("w.bin", 2, "32")), StatusCode::kInvalidData);        // offset past end
  EXPECT_EQ(code(external("w.bin", 2, "0", "4")), StatusCode::kInvalidData);    // length != size
  EXPECT_EQ(code(external("w.bin", 2, "-1", "8")), StatusCode::kInvalidData);   // not a number
  EXPECT_EQ(code(external("w.bin", 2, "0", "8x")), StatusCode::kInvalidData);
  EXPECT_EQ(code(external("w.bin", 2, "18446744073709551615", "8")), StatusCode::kInvalidData);
  EXPECT_EQ(code(external("nope.bin", 2)), StatusCode::kNotFound);
  EXPECT_EQ(code(external("w.bin", int64_t{1} << 40)), StatusCode::kInvalidData);
}

TEST(TensorProtoTest, WriteThenReadRoundTrips) {
  TempDir dir;
  Tensor t = Tensor::from_vector(DType::kI16, {2, 2}, std::vector<int16_t>{1, -2, 3, -4});
  const std::string path = (dir.path() / "t.pb").string();
  ASSERT_TRUE(write_tensor_file(path, t, "my_tensor").ok());
  std::string name;
  Result<Tensor> back = read_tensor_file(path, &name);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(name, "my_tensor");
  EXPECT_EQ(back->dtype(), DType::kI16);
  EXPECT_EQ(back->dims(), (Dims{2, 2}));
  EXPECT_EQ(back->data_as<int16_t>()[3], -4);
  EXPECT_EQ(read_tensor_file((dir.path() / "missing.pb").string()).status().code(), StatusCode::kNotFound);
}

TEST(TensorProtoTest, TruncatedOrGarbageBytesAreInvalidData) {
  TensorProto p = tensor(TensorProto::FLOAT, {4});
  p.clear_name();  // float_data is then the last field: every cut loses data
  for (int i = 0; i < 4; ++i) p.add_float_data(static_cast<float>(i));
  std::string bytes;
  p.SerializeToString(&bytes);
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    Result<Tensor> t = parse_tensor(std::string_view(bytes).substr(0, cut));
    EXPECT_FALSE(t.ok()) << "cut at " << cut;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), StatusCode::kInvalidData);
    }
  }
  EXPECT_EQ(parse_tensor("\xff\xff\xff\xff garbage").status().code(), StatusCode::kInvalidData);
}

}  // namespace
}  // namespace kiln::onnx
