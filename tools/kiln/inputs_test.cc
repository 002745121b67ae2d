#include "inputs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "npy.h"
#include "onnx/importer.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

class InputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_inputs_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }
  void write_pb(const std::string& file, float value, const std::string& name) {
    Tensor t = Tensor::from_vector<float>(DType::kF32, {1}, {value});
    ASSERT_TRUE(onnx::write_tensor_file(path(file), t, name).ok());
  }
  static float value_of(const Tensor& t) { return t.data_as<float>()[0]; }

  static std::vector<BindingInfo> two_bindings() {
    BindingInfo a{"a", DType::kF32, {"1"}, true, {1}, {1}, {1}};
    BindingInfo b{"b", DType::kF32, {"1"}, true, {1}, {1}, {1}};
    return {a, b};
  }

  fs::path dir_;
};

TEST_F(InputsTest, FolderFilesGoToTheBindingTheirProtoNames) {
  write_pb("input_0.pb", 10, "b");
  write_pb("input_1.pb", 20, "a");
  auto g = gather_inputs(two_bindings(), dir_.string(), {});
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(value_of(g->tensors[0]), 20);
  EXPECT_EQ(value_of(g->tensors[1]), 10);
  EXPECT_EQ(g->sources[1], path("input_0.pb"));
}

TEST_F(InputsTest, UnnamedFolderFilesGoByIndex) {
  write_pb("input_0.pb", 1, "");
  write_pb("input_1.pb", 2, "other_name");
  auto g = gather_inputs(two_bindings(), dir_.string(), {});
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(value_of(g->tensors[0]), 1);
  EXPECT_EQ(value_of(g->tensors[1]), 2);
}

TEST_F(InputsTest, TwoFilesForOneBindingAreRejected) {
  write_pb("input_0.pb", 1, "b");
  write_pb("input_1.pb", 2, "");
  auto g = gather_inputs(two_bindings(), dir_.string(), {});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("'b'"), std::string::npos) << g.status().message();
}

TEST_F(InputsTest, InputArgumentWinsOverTheFolder) {
  write_pb("input_0.pb", 1, "a");
  write_pb("input_1.pb", 2, "b");
  Tensor t = Tensor::from_vector<float>(DType::kF32, {1}, {7});
  ASSERT_TRUE(npy_write(path("b.npy"), t).ok());
  auto g = gather_inputs(two_bindings(), dir_.string(), {"b=" + path("b.npy")});
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(value_of(g->tensors[0]), 1);
  EXPECT_EQ(value_of(g->tensors[1]), 7);
}

TEST_F(InputsTest, UnknownAndMissingInputsAreNamed) {
  Tensor t = Tensor::from_vector<float>(DType::kF32, {1}, {7});
  ASSERT_TRUE(npy_write(path("x.npy"), t).ok());
  auto unknown = gather_inputs(two_bindings(), "", {"c=" + path("x.npy")});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("'c'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("'a' (f32), 'b' (f32)"), std::string::npos)
      << unknown.status().message();
  auto missing = gather_inputs(two_bindings(), "", {"a=" + path("x.npy")});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("no data for input 'b'"), std::string::npos)
      << missing.status().message();
  auto twice = gather_inputs(two_bindings(), "", {"a=" + path("x.npy"), "a=" + path("x.npy")});
  EXPECT_FALSE(twice.ok());
}

TEST_F(InputsTest, NumberingGapsAndMissingFoldersAreErrors) {
  write_pb("input_1.pb", 1, "");
  auto gap = list_indexed_files(dir_.string(), "input_");
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.status().message().find("no input_0.pb"), std::string::npos);
  EXPECT_EQ(list_indexed_files(path("nope"), "input_").status().code(), StatusCode::kNotFound);
}

TEST_F(InputsTest, FilesAreOrderedNumericallyNotByName) {
  for (int i = 0; i < 12; ++i) write_pb("output_" + std::to_string(i) + ".pb", float(i), "");
  write_pb("output_x.pb", 99, "");  // not an indexed file: ignored
  std::vector<std::string> files;
  auto outs = read_expected_outputs(dir_.string(), &files);
  ASSERT_TRUE(outs.ok()) << outs.status().to_string();
  ASSERT_EQ(outs->size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(value_of((*outs)[i]), float(i));
  EXPECT_EQ(files[10], path("output_10.pb"));
}

TEST_F(InputsTest, UnknownFileExtensionIsRejected) {
  auto r = read_tensor_any(path("x.bin"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(".npy"), std::string::npos);
}

}  // namespace
}  // namespace kiln::cli
