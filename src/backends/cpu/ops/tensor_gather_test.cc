// Gather, GatherElements and GatherND; expected values from numpy (take, take_along_axis,
// advanced indexing).
#include <gtest/gtest.h>

#include "backends/cpu/ops/tensor_test_util.h"

namespace kiln::cpu {
namespace {

using namespace tensor_test;  // NOLINT

TEST(TensorGatherTest, GathersAlongAxisWithNegativeIndices) {
  Tensor d = iota<int64_t>(DType::kI64, {3, 4});
  Tensor y = run1(make_node("Gather", attrs_int("axis", 1)), {d, i64({2, 2}, {0, -1, 1, 0})});
  EXPECT_EQ(y.dims(), (Dims{3, 2, 2}));
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{0, 3, 1, 0, 4, 7, 5, 4, 8, 11, 9, 8}));
  Tensor z = run1(make_node("Gather"), {d, i32({2}, {2, -3})});
  EXPECT_EQ(z.dims(), (Dims{2, 4}));
  EXPECT_EQ(values<int64_t>(z), (std::vector<int64_t>{8, 9, 10, 11, 0, 1, 2, 3}));
  // A scalar index drops the axis.
  Tensor s = run1(make_node("Gather", attrs_int("axis", -1)), {d, i64({}, {1})});
  EXPECT_EQ(s.dims(), (Dims{3}));
  EXPECT_EQ(values<int64_t>(s), (std::vector<int64_t>{1, 5, 9}));
}

TEST(TensorGatherTest, EmbeddingLookupOfHalfRows) {
  // [vocab 50, hidden 64] f16 table, 300 token ids: the transformer embedding pattern.
  Tensor table = iota<uint16_t>(DType::kF16, {50, 64});
  std::vector<int64_t> ids(300);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7) % 50);
  Tensor y = run1(make_node("Gather"), {table, i64({3, 100}, ids)});
  ASSERT_EQ(y.dims(), (Dims{3, 100, 64}));
  const std::vector<uint16_t> v = values<uint16_t>(y);
  for (size_t i = 0; i < ids.size(); ++i)
    for (size_t h = 0; h < 64; ++h) ASSERT_EQ(v[i * 64 + h], ids[i] * 64 + h);
}

TEST(TensorGatherTest, OutOfRangeIndexIsAnError) {
  Tensor d = iota<float>(DType::kF32, {3, 4});
  for (int64_t bad : {3, -4, 1000}) {
    Status s = run_status(make_node("Gather"), {d, i64({2}, {0, bad})});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("t_Gather"), std::string::npos) << s.message();
  }
  EXPECT_FALSE(run_status(make_node("Gather", attrs_int("axis", 2)), {d, i64({1}, {0})}).ok());
  EXPECT_FALSE(run_status(make_node("Gather"), {d, f32({1}, {0})}).ok());
  EXPECT_FALSE(
      run_status(make_node("Gather"), {Tensor::zeros(DType::kF32, {0, 2}), i64({1}, {0})}).ok());
  // Empty indices on an empty axis are fine.
  EXPECT_EQ(run1(make_node("Gather"), {Tensor::zeros(DType::kF32, {0, 2}), i64({0}, {})}).dims(),
            (Dims{0, 2}));
}

TEST(TensorGatherElementsTest, PicksAlongAxis) {
  Tensor e = i32({2, 2}, {1, 2, 3, 4});
  Tensor y =
      run1(make_node("GatherElements", attrs_int("axis", 1)), {e, i64({2, 2}, {0, 0, 1, 0})});
  EXPECT_EQ(values<int32_t>(y), (std::vector<int32_t>{1, 1, 4, 3}));
  // Axis 0 with fewer index rows than data rows, and a negative index.
  Tensor d = iota<float>(DType::kF32, {3, 3});
  Tensor z = run1(make_node("GatherElements"), {d, i64({2, 3}, {1, 2, 0, -1, 0, 0})});
  EXPECT_EQ(z.dims(), (Dims{2, 3}));
  EXPECT_EQ(values<float>(z), (std::vector<float>{3, 7, 2, 6, 1, 2}));
}

TEST(TensorGatherElementsTest, RejectsBadIndices) {
  Tensor d = iota<float>(DType::kF32, {3, 3});
  EXPECT_FALSE(run_status(make_node("GatherElements"), {d, i64({1, 1}, {3})}).ok());
  EXPECT_FALSE(run_status(make_node("GatherElements"), {d, i64({3}, {0, 0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("GatherElements"), {d, i64({1, 4}, {0, 0, 0, 0})}).ok());
}

TEST(TensorGatherNDTest, GathersSlicesAndElements) {
  Tensor x = iota<int64_t>(DType::kI64, {2, 2, 2});
  // k = 2: slices of the last axis.
  Tensor y = run1(make_node("GatherND"), {x, i64({2, 2}, {0, 1, 1, 0})});
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{2, 3, 4, 5}));
  // k = 3: single elements, negative indices count from the end.
  Tensor z = run1(make_node("GatherND"), {x, i64({2, 3}, {0, 1, 1, -1, 0, 1})});
  EXPECT_EQ(z.dims(), (Dims{2}));
  EXPECT_EQ(values<int64_t>(z), (std::vector<int64_t>{3, 5}));
}

TEST(TensorGatherNDTest, BatchDims) {
  Tensor x = iota<float>(DType::kF32, {2, 2, 2});
  Tensor y = run1(make_node("GatherND", attrs_int("batch_dims", 1)), {x, i64({2, 1}, {0, 1})});
  EXPECT_EQ(y.dims(), (Dims{2, 2}));
  EXPECT_EQ(values<float>(y), (std::vector<float>{0, 1, 6, 7}));
}

TEST(TensorGatherNDTest, RejectsBadIndices) {
  Tensor x = iota<float>(DType::kF32, {2, 2, 2});
  EXPECT_FALSE(run_status(make_node("GatherND"), {x, i64({1, 2}, {0, 2})}).ok());
  EXPECT_FALSE(run_status(make_node("GatherND"), {x, i64({1, 4}, {0, 0, 0, 0})}).ok());
  EXPECT_FALSE(
      run_status(make_node("GatherND", attrs_int("batch_dims", 2)), {x, i64({2}, {0, 0})}).ok());
  EXPECT_FALSE(
      run_status(make_node("GatherND", attrs_int("batch_dims", 1)), {x, i64({3, 1}, {0, 0, 0})})
          .ok());  // batch dims differ
}

}  // namespace
}  // namespace kiln::cpu
