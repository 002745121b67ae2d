// The shared test helpers themselves: closeness decides pass and fail as the model tests need,
// and the data-set readers and shape profiles read the shared models' layout.
#include "tests/util/testdata.h"

#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <filesystem>

namespace kiln::test {
namespace {

namespace fs = std::filesystem;

Tensor f32(Dims dims, std::vector<float> v) {
  return Tensor::from_vector(DType::kF32, std::move(dims), v);
}
Tensor i64(Dims dims, std::vector<int64_t> v) {
  return Tensor::from_vector(DType::kI64, std::move(dims), v);
}

TEST(ClosenessTest, WithinAndOutOfTolerance) {
  const Tensor want = f32({3}, {1.0f, -2.0f, 100.0f});
  EXPECT_LE(closeness(want, want, 1e-3, 1e-4).violation, 0);
  // 100 + 0.1: within atol 1e-4 + rtol 1e-3 * 100 = 0.1001.
  Closeness c = closeness(f32({3}, {1.0f, -2.0f, 100.1f}), want, 1e-3, 1e-4);
  EXPECT_LE(c.violation, 0);
  EXPECT_NEAR(c.max_abs, 0.1, 1e-5);
  c = closeness(f32({3}, {1.0f, -2.01f, 100.0f}), want, 1e-3, 1e-4);
  EXPECT_GT(c.violation, 0);
  EXPECT_NEAR(c.max_abs, 0.01, 1e-5);
}

TEST(ClosenessTest, NanMatchesOnlyNan) {
  const Tensor want = f32({2}, {NAN, 1.0f});
  EXPECT_LE(closeness(f32({2}, {NAN, 1.0f}), want, 0, 0).violation, 0);
  EXPECT_GT(closeness(f32({2}, {NAN, NAN}), want, 1, 1).violation, 0) << "NaN against a number";
  EXPECT_GT(closeness(f32({2}, {0.0f, 1.0f}), want, 1, 1).violation, 0) << "a number against NaN";
  EXPECT_LE(closeness(f32({1}, {INFINITY}), f32({1}, {INFINITY}), 0, 0).violation, 0);
  EXPECT_GT(closeness(f32({1}, {INFINITY}), f32({1}, {1.0f}), 1, 1).violation, 0);
}

TEST(ClosenessTest, IntegersAndMismatchedTensors) {
  const Tensor want = i64({2}, {3, 4});
  EXPECT_LE(closeness(want, want, 0, 0).violation, 0);
  EXPECT_GT(closeness(i64({2}, {3, 5}), want, 0, 0).violation, 0);
  EXPECT_TRUE(std::isinf(closeness(f32({2}, {3, 4}), want, 1, 1).violation)) << "dtype mismatch";
  EXPECT_TRUE(std::isinf(closeness(f32({1, 2}, {3, 4}), f32({2}, {3, 4}), 1, 1).violation))
      << "dims mismatch";
}

TEST(TestDataTest, ReadsTheSharedModelsDataSets) {
  const fs::path dir = model_dir("tiny_cnn");
  ASSERT_TRUE(fs::exists(dir / "model.onnx"))
      << "test data not unpacked at " << dir << " (set KILN_TESTDATA)";
  const std::vector<std::string> names = shared_model_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "tiny_cnn"), names.end());
  const std::vector<DataSet> sets = read_data_sets(dir);
  ASSERT_GE(sets.size(), 2u);
  for (const DataSet& s : sets) {
    EXPECT_FALSE(s.inputs.empty());
    EXPECT_FALSE(s.outputs.empty());
  }
  EXPECT_TRUE(read_tensors(dir / "no_such_set", "input").empty());

  Result<BuildOptions> options = shape_profiles(dir, sets);
  ASSERT_TRUE(options.ok()) << options.status().to_string();
  ASSERT_EQ(options->shapes.size(), sets[0].inputs.size());
  const ShapeProfile& p = options->shapes[0];
  EXPECT_EQ(p.opt, sets[0].inputs[0].dims());
  for (const DataSet& s : sets) {
    for (size_t d = 0; d < p.min.size(); ++d) {
      EXPECT_LE(p.min[d], s.inputs[0].dims()[d]);
      EXPECT_GE(p.max[d], s.inputs[0].dims()[d]);
    }
  }
  EXPECT_FALSE(shape_profiles(dir, {}).ok());
  Result<std::vector<uint8_t>> bytes = build_static_engine(dir, sets[0].inputs);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
}

}  // namespace
}  // namespace kiln::test
