// Expand, Tile, Trilu, Range and ConstantOfShape; expected values from numpy.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "backends/cpu/ops/tensor_test_util.h"

namespace kiln::cpu {
namespace {

using namespace tensor_test;  // NOLINT

TEST(TensorExpandTest, BroadcastsBothWays) {
  Tensor x = f32({3, 1}, {1, 2, 3});
  Tensor y = run1(make_node("Expand"), {x, i64({3}, {2, 1, 3})});
  EXPECT_EQ(y.dims(), (Dims{2, 3, 3}));
  EXPECT_EQ(values<float>(y),
            (std::vector<float>{1, 1, 1, 2, 2, 2, 3, 3, 3, 1, 1, 1, 2, 2, 2, 3, 3, 3}));
  // The shape may be smaller than the input: the output keeps the input's dims.
  EXPECT_EQ(run1(make_node("Expand"), {x, i64({1}, {1})}).dims(), (Dims{3, 1}));
  EXPECT_EQ(run1(make_node("Expand"), {x, i64({2}, {1, 0})}).dims(), (Dims{3, 0}));
  EXPECT_FALSE(run_status(make_node("Expand"), {x, i64({2}, {2, 4})}).ok());
  EXPECT_FALSE(run_status(make_node("Expand"), {x, i64({2}, {-1, 4})}).ok());
}

TEST(TensorTileTest, RepeatsEachAxis) {
  Tensor x = i64({2, 2}, {1, 2, 3, 4});
  Tensor y = run1(make_node("Tile"), {x, i64({2}, {2, 3})});
  EXPECT_EQ(y.dims(), (Dims{4, 6}));
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4,
                                                      1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4}));
  EXPECT_EQ(run1(make_node("Tile"), {x, i64({2}, {0, 3})}).dims(), (Dims{0, 6}));
  EXPECT_FALSE(run_status(make_node("Tile"), {x, i64({1}, {2})}).ok());
  EXPECT_FALSE(run_status(make_node("Tile"), {x, i64({2}, {-1, 2})}).ok());
}

TEST(TensorTriluTest, UpperAndLowerWithK) {
  Tensor x = iota<int32_t>(DType::kI32, {3, 4});
  EXPECT_EQ(values<int32_t>(run1(make_node("Trilu"), {x, i64({}, {1})})),
            (std::vector<int32_t>{0, 1, 2, 3, 0, 0, 6, 7, 0, 0, 0, 11}));
  EXPECT_EQ(values<int32_t>(run1(make_node("Trilu", attrs_int("upper", 0)), {x, i64({}, {-1})})),
            (std::vector<int32_t>{0, 0, 0, 0, 4, 0, 0, 0, 8, 9, 0, 0}));
  // Default k = 0, batched, far-out k keeps everything or nothing.
  Tensor b = iota<float>(DType::kF32, {2, 2, 2});
  EXPECT_EQ(values<float>(run1(make_node("Trilu"), {b})),
            (std::vector<float>{0, 1, 0, 3, 4, 5, 0, 7}));
  EXPECT_EQ(values<float>(run1(make_node("Trilu"), {b, i64({}, {-100})})), values<float>(b));
  EXPECT_EQ(values<float>(run1(make_node("Trilu"), {b, i64({}, {100})})),
            std::vector<float>(8, 0.f));
  EXPECT_FALSE(run_status(make_node("Trilu"), {f32({3}, {1, 2, 3})}).ok());
}

TEST(TensorRangeTest, IntegerAndFloatRanges) {
  Tensor a = run1(make_node("Range"), {i32({}, {10}), i32({}, {4}), i32({}, {-3})});
  EXPECT_EQ(a.dtype(), DType::kI32);
  EXPECT_EQ(values<int32_t>(a), (std::vector<int32_t>{10, 7}));
  Tensor f = run1(make_node("Range"), {f32({}, {1.f}), f32({}, {2.f}), f32({}, {0.3f})});
  ASSERT_EQ(f.dims(), (Dims{4}));
  const std::vector<float> fv = values<float>(f);
  const float expected[] = {1.0f, 1.3f, 1.6f, 1.9f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(fv[static_cast<size_t>(i)], expected[i], 1e-6f);
  // Wrong direction: empty.
  EXPECT_EQ(run1(make_node("Range"), {i64({}, {0}), i64({}, {5}), i64({}, {-1})}).dims(),
            (Dims{0}));
  EXPECT_EQ(values<int64_t>(run1(make_node("Range"), {i64({}, {-5}), i64({}, {5}), i64({}, {4})})),
            (std::vector<int64_t>{-5, -1, 3}));
}

TEST(TensorRangeTest, ExtremeInt64BoundsDoNotOverflow) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Tensor y = run1(make_node("Range"), {i64({}, {kMin}), i64({}, {kMax}), i64({}, {kMax})});
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{kMin, -1, kMax - 1}));
  Status s = run_status(make_node("Range"), {i64({}, {kMin}), i64({}, {kMax}), i64({}, {1})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(TensorRangeTest, RejectsZeroDeltaAndMixedTypes) {
  EXPECT_FALSE(run_status(make_node("Range"), {i64({}, {0}), i64({}, {5}), i64({}, {0})}).ok());
  EXPECT_FALSE(run_status(make_node("Range"), {i64({}, {0}), i32({}, {5}), i64({}, {1})}).ok());
  EXPECT_FALSE(
      run_status(make_node("Range"), {f32({}, {0}), f32({}, {1e30f}), f32({}, {1e-30f})}).ok());
  EXPECT_FALSE(run_status(make_node("Range"), {i64({}, {0}), i64({}, {5})}).ok());
}

TEST(TensorConstantOfShapeTest, DefaultsToFloatZero) {
  Tensor y = run1(make_node("ConstantOfShape"), {i64({2}, {2, 3})});
  EXPECT_EQ(y.dtype(), DType::kF32);
  EXPECT_EQ(values<float>(y), std::vector<float>(6, 0.f));
  Tensor s = run1(make_node("ConstantOfShape"), {i64({0}, {})});
  EXPECT_EQ(s.dims(), Dims{});
}

TEST(TensorConstantOfShapeTest, FillsWithTheValueAttribute) {
  ir::Attributes a;
  ir::Attribute v;
  v.kind = ir::Attribute::Kind::kTensor;
  v.t = Tensor::from_vector(DType::kF16, {1}, std::vector<uint16_t>{0x3c00});
  a.set("value", v);
  Tensor y = run1(make_node("ConstantOfShape", a), {i64({3}, {2, 1, 2})});
  EXPECT_EQ(y.dtype(), DType::kF16);
  EXPECT_EQ(y.dims(), (Dims{2, 1, 2}));
  EXPECT_EQ(values<uint16_t>(y), std::vector<uint16_t>(4, 0x3c00));
  v.t = i32({1}, {7});
  a.set("value", v);
  EXPECT_EQ(values<int32_t>(run1(make_node("ConstantOfShape", a), {i64({1}, {3})})),
            (std::vector<int32_t>{7, 7, 7}));
  EXPECT_EQ(run1(make_node("ConstantOfShape", a), {i64({2}, {4, 0})}).dims(), (Dims{4, 0}));
  EXPECT_FALSE(run_status(make_node("ConstantOfShape", a), {i64({1}, {-1})}).ok());
  v.t = i32({2}, {7, 8});
  a.set("value", v);
  EXPECT_FALSE(run_status(make_node("ConstantOfShape", a), {i64({1}, {3})}).ok());
}

}  // namespace
}  // namespace kiln::cpu
