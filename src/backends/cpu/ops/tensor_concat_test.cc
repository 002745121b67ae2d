// Concat and Split.
#include <gtest/gtest.h>

#include "backends/cpu/ops/tensor_test_util.h"

namespace kiln::cpu {
namespace {

using namespace tensor_test;  // NOLINT

TEST(TensorConcatTest, ConcatenatesAlongInnerAxis) {
  Tensor a = iota<int64_t>(DType::kI64, {2, 3});
  Tensor b = i64({2, 2}, {10, 11, 12, 13});
  Tensor y = run1(make_node("Concat", attrs_int("axis", 1)), {a, b});
  EXPECT_EQ(y.dims(), (Dims{2, 5}));
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{0, 1, 2, 10, 11, 3, 4, 5, 12, 13}));
  Tensor n = run1(make_node("Concat", attrs_int("axis", -1)), {a, b});
  EXPECT_EQ(values<int64_t>(n), values<int64_t>(y));
}

TEST(TensorConcatTest, ConcatenatesAlongOuterAxisWithEmptyInputs) {
  Tensor a = Tensor::from_vector(DType::kBF16, {1, 2}, std::vector<uint16_t>{1, 2});
  Tensor e = Tensor::zeros(DType::kBF16, {0, 2});
  Tensor b = Tensor::from_vector(DType::kBF16, {2, 2}, std::vector<uint16_t>{3, 4, 5, 6});
  Tensor y = run1(make_node("Concat", attrs_int("axis", 0)), {a, e, b});
  EXPECT_EQ(y.dims(), (Dims{3, 2}));
  EXPECT_EQ(values<uint16_t>(y), (std::vector<uint16_t>{1, 2, 3, 4, 5, 6}));
}

TEST(TensorConcatTest, EmptyBorrowedInputWithoutData) {
  Tensor a = iota<float>(DType::kF32, {2, 2});
  Tensor none = Tensor::wrap(DType::kF32, {2, 0}, nullptr);
  Tensor y = run1(make_node("Concat", attrs_int("axis", 1)), {none, a, none});
  EXPECT_EQ(values<float>(y), (std::vector<float>{0, 1, 2, 3}));
}

TEST(TensorConcatTest, LargeConcatMatchesRowLayout) {
  // 300 rows of 3 + 5 bools: large enough to run in parallel.
  Tensor a = Tensor::zeros(DType::kBool, {300, 3});
  Tensor b = Tensor::zeros(DType::kBool, {300, 5});
  std::fill_n(b.data_as<uint8_t>(), b.numel(), uint8_t{1});
  Tensor y = run1(make_node("Concat", attrs_int("axis", 1)), {a, b});
  const std::vector<uint8_t> v = values<uint8_t>(y);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], (i % 8) >= 3 ? 1 : 0) << i;
}

TEST(TensorConcatTest, RejectsMismatchedInputs) {
  Tensor a = Tensor::zeros(DType::kF32, {2, 3});
  EXPECT_FALSE(
      run_status(make_node("Concat", attrs_int("axis", 0)), {a, Tensor::zeros(DType::kF32, {2, 4})})
          .ok());
  EXPECT_FALSE(
      run_status(make_node("Concat", attrs_int("axis", 0)), {a, Tensor::zeros(DType::kI32, {2, 3})})
          .ok());
  EXPECT_FALSE(
      run_status(make_node("Concat", attrs_int("axis", 0)), {a, Tensor::zeros(DType::kF32, {6})})
          .ok());
  EXPECT_FALSE(run_status(make_node("Concat", attrs_int("axis", 2)), {a, a}).ok());
  EXPECT_FALSE(run_status(make_node("Concat"), {a, a}).ok());  // axis is required
  EXPECT_FALSE(run_status(make_node("Concat", attrs_int("axis", 0)), {f32({}, {1})}).ok());
}

TEST(TensorSplitTest, SplitsBySizes) {
  Tensor x = iota<int32_t>(DType::kI32, {2, 7});
  std::vector<Tensor> out;
  ASSERT_TRUE(run(make_node("Split", attrs_int("axis", 1), 3), {x, i64({3}, {3, 3, 1})}, out).ok());
  EXPECT_EQ(out[0].dims(), (Dims{2, 3}));
  EXPECT_EQ(values<int32_t>(out[0]), (std::vector<int32_t>{0, 1, 2, 7, 8, 9}));
  EXPECT_EQ(values<int32_t>(out[1]), (std::vector<int32_t>{3, 4, 5, 10, 11, 12}));
  EXPECT_EQ(values<int32_t>(out[2]), (std::vector<int32_t>{6, 13}));
  // Zero-size parts are allowed.
  ASSERT_TRUE(
      run(make_node("Split", attrs_int("axis", -1), 3), {x, i64({3}, {0, 7, 0})}, out).ok());
  EXPECT_EQ(out[0].dims(), (Dims{2, 0}));
  EXPECT_EQ(out[1].dims(), (Dims{2, 7}));
  EXPECT_EQ(out[2].dims(), (Dims{2, 0}));
}

TEST(TensorSplitTest, EqualPartsWithSmallerLastChunk) {
  Tensor x = iota<float>(DType::kF32, {7});
  std::vector<Tensor> out;
  ASSERT_TRUE(run(make_node("Split", attrs_int("num_outputs", 3), 3), {x}, out).ok());
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 1, 2}));
  EXPECT_EQ(values<float>(out[1]), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(values<float>(out[2]), (std::vector<float>{6}));
  // No split input and no num_outputs: one equal part per output.
  ASSERT_TRUE(run(make_node("Split", {}, 2), {iota<float>(DType::kF32, {4, 2})}, out).ok());
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(values<float>(out[1]), (std::vector<float>{4, 5, 6, 7}));
}

TEST(TensorSplitTest, RejectsBadSizes) {
  Tensor x = iota<float>(DType::kF32, {6});
  EXPECT_FALSE(run_status(make_node("Split", {}, 2), {x, i64({2}, {2, 3})}).ok());     // sum 5
  EXPECT_FALSE(run_status(make_node("Split", {}, 2), {x, i64({3}, {2, 2, 2})}).ok());  // 3 != 2
  EXPECT_FALSE(run_status(make_node("Split", {}, 2), {x, i64({2}, {-1, 7})}).ok());
  EXPECT_FALSE(run_status(make_node("Split", attrs_int("num_outputs", 3), 2), {x}).ok());
  EXPECT_FALSE(run_status(make_node("Split", attrs_int("axis", 1), 2), {x}).ok());
  // 5 into 4 chunks of 2 would leave a negative last chunk.
  EXPECT_FALSE(run_status(make_node("Split", {}, 4), {iota<float>(DType::kF32, {5})}).ok());
}

}  // namespace
}  // namespace kiln::cpu
