// Slice and Pad; expected values from numpy (x[a:b:c], np.pad).
#include <gtest/gtest.h>

#include <limits>

#include "backends/cpu/ops/tensor_test_util.h"

namespace kiln::cpu {
namespace {

using namespace tensor_test;  // NOLINT

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(TensorSliceTest, NegativeStepsAndDefaultAxes) {
  Tensor x = iota<int64_t>(DType::kI64, {4, 5});
  // x[::-1, 3:0:-2]
  Tensor y = run1(make_node("Slice"),
                  {x, i64({2}, {-1, 3}), i64({2}, {kMin, 0}), Tensor(), i64({2}, {-1, -2})});
  EXPECT_EQ(y.dims(), (Dims{4, 2}));
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{18, 16, 13, 11, 8, 6, 3, 1}));
}

TEST(TensorSliceTest, SentinelsAndOutOfBoundsClamp) {
  Tensor x = iota<int32_t>(DType::kI32, {4, 5});
  // x[1:, -2:] with INT64_MAX ends, axes given in reverse order.
  Tensor y =
      run1(make_node("Slice"), {x, i64({2}, {-2, 1}), i64({2}, {kMax, kMax}), i64({2}, {1, 0})});
  EXPECT_EQ(y.dims(), (Dims{3, 2}));
  EXPECT_EQ(values<int32_t>(y), (std::vector<int32_t>{8, 9, 13, 14, 18, 19}));
  // Start past the end: empty.
  Tensor e = run1(make_node("Slice"), {x, i64({1}, {1000}), i64({1}, {1001}), i64({1}, {1})});
  EXPECT_EQ(e.dims(), (Dims{4, 0}));
  // Ends past the end are clamped; i32 index inputs work too.
  Tensor c = run1(make_node("Slice"), {x, i32({1}, {3}), i32({1}, {100}), i32({1}, {-2})});
  EXPECT_EQ(c.dims(), (Dims{1, 5}));
  EXPECT_EQ(values<int32_t>(c), (std::vector<int32_t>{15, 16, 17, 18, 19}));
}

TEST(TensorSliceTest, ThreeDimsMixedSteps) {
  Tensor x = iota<uint16_t>(DType::kF16, {2, 3, 4});
  // y[:, -1:-4:-2, 1:100:2]
  Tensor y = run1(make_node("Slice"), {x, i64({2}, {-1, 1}), i64({2}, {-4, 100}), i64({2}, {1, -1}),
                                       i64({2}, {-2, 2})});
  EXPECT_EQ(y.dims(), (Dims{2, 2, 2}));
  EXPECT_EQ(values<uint16_t>(y), (std::vector<uint16_t>{9, 11, 1, 3, 21, 23, 13, 15}));
}

TEST(TensorSliceTest, HugeStepsTakeOneElement) {
  Tensor x = iota<float>(DType::kF32, {6});
  EXPECT_EQ(values<float>(run1(make_node("Slice"), {x, i64({1}, {1}), i64({1}, {kMax}),
                                                    i64({1}, {0}), i64({1}, {kMax})})),
            std::vector<float>{1});
  EXPECT_EQ(values<float>(run1(make_node("Slice"), {x, i64({1}, {kMax}), i64({1}, {kMin}),
                                                    i64({1}, {0}), i64({1}, {kMin})})),
            std::vector<float>{5});
}

TEST(TensorSliceTest, RejectsBadArguments) {
  Tensor x = iota<float>(DType::kF32, {4, 5});
  EXPECT_FALSE(run_status(make_node("Slice"),
                          {x, i64({1}, {0}), i64({1}, {2}), i64({1}, {0}), i64({1}, {0})})
                   .ok());  // step 0
  EXPECT_FALSE(run_status(make_node("Slice"), {x, i64({1}, {0}), i64({2}, {2, 2})}).ok());
  EXPECT_FALSE(
      run_status(make_node("Slice"), {x, i64({1}, {0}), i64({1}, {2}), i64({1}, {2})}).ok());
  EXPECT_FALSE(
      run_status(make_node("Slice"), {x, i64({2}, {0, 0}), i64({2}, {2, 2}), i64({2}, {1, -1})})
          .ok());
  EXPECT_FALSE(run_status(make_node("Slice"), {x, i64({1}, {0})}).ok());
}

ir::Attributes mode(const std::string& m) {
  ir::Attributes a;
  a.set_string("mode", m);
  return a;
}

TEST(TensorPadTest, ReflectEdgeWrapMatchNumpy) {
  Tensor x = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor pads = i64({4}, {2, 1, 1, 3});
  Tensor r = run1(make_node("Pad", mode("reflect")), {x, pads});
  EXPECT_EQ(r.dims(), (Dims{6, 6}));
  EXPECT_EQ(values<float>(r),
            (std::vector<float>{6, 5, 6, 5, 6, 5, 4, 3, 4, 3, 4, 3, 2, 1, 2, 1, 2, 1,
                                4, 3, 4, 3, 4, 3, 6, 5, 6, 5, 6, 5, 4, 3, 4, 3, 4, 3}));
  Tensor e = run1(make_node("Pad", mode("edge")), {x, pads});
  EXPECT_EQ(values<float>(e),
            (std::vector<float>{1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 2, 2,
                                3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 6, 6, 5, 5, 6, 6, 6, 6}));
  Tensor w = run1(make_node("Pad", mode("wrap")), {x, pads});
  EXPECT_EQ(values<float>(w),
            (std::vector<float>{4, 3, 4, 3, 4, 3, 6, 5, 6, 5, 6, 5, 2, 1, 2, 1, 2, 1,
                                4, 3, 4, 3, 4, 3, 6, 5, 6, 5, 6, 5, 2, 1, 2, 1, 2, 1}));
}

TEST(TensorPadTest, PadsWiderThanTheAxisRepeat) {
  Tensor x = i64({3}, {1, 2, 3});
  EXPECT_EQ(values<int64_t>(run1(make_node("Pad", mode("wrap")), {x, i64({2}, {4, 5})})),
            (std::vector<int64_t>{3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2}));
  EXPECT_EQ(values<int64_t>(run1(make_node("Pad", mode("reflect")), {x, i64({2}, {5, 6})})),
            (std::vector<int64_t>{2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1}));
}

TEST(TensorPadTest, ConstantValueAndAxes) {
  Tensor x = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  // Default mode is constant; pad axis 0 end by 1 and axis 1 start by 2 with 9.
  Tensor y = run1(make_node("Pad"), {x, i64({4}, {2, 0, 0, 1}), f32({}, {9}), i64({2}, {-1, 0})});
  EXPECT_EQ(y.dims(), (Dims{4, 4}));
  EXPECT_EQ(values<float>(y), (std::vector<float>{9, 9, 1, 2, 9, 9, 3, 4, 9, 9, 5, 6, 9, 9, 9, 9}));
  // No constant_value: zero.
  Tensor z =
      run1(make_node("Pad"),
           {Tensor::from_vector(DType::kU8, {2}, std::vector<uint8_t>{7, 8}), i64({2}, {1, 1})});
  EXPECT_EQ(values<uint8_t>(z), (std::vector<uint8_t>{0, 7, 8, 0}));
}

TEST(TensorPadTest, NegativePadsCropBeforePadding) {
  Tensor x = iota<int32_t>(DType::kI32, {5});
  // Crop one from the front: [1, 2, 3, 4], then edge-pad two at the end.
  EXPECT_EQ(values<int32_t>(run1(make_node("Pad", mode("edge")), {x, i64({2}, {-1, 2})})),
            (std::vector<int32_t>{1, 2, 3, 4, 4, 4}));
  EXPECT_EQ(values<int32_t>(run1(make_node("Pad"), {x, i64({2}, {-2, -1})})),
            (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(run1(make_node("Pad"), {x, i64({2}, {-3, -2})}).dims(), (Dims{0}));
  // Pad 2 in front, then crop 6 from the end: only padding is left.
  EXPECT_EQ(values<int32_t>(run1(make_node("Pad"), {x, i64({2}, {2, -6}), i32({}, {9})})),
            (std::vector<int32_t>{9}));
}

TEST(TensorPadTest, RejectsBadArguments) {
  Tensor x = iota<float>(DType::kF32, {2, 2});
  EXPECT_FALSE(run_status(make_node("Pad"), {x, i64({2}, {1, 1})}).ok());  // 2 pads for rank 2
  EXPECT_FALSE(run_status(make_node("Pad"), {x, i64({4}, {-3, 0, 0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad", mode("mirror")), {x, i64({4}, {1, 1, 1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad"), {x, i64({4}, {1, 1, 1, 1}), i64({}, {1})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad"), {x, i64({2}, {1, 1}), Tensor(), i64({1}, {2})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad"), {x, i64({4}, {kMax, 0, 0, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("Pad", mode("reflect")),
                          {Tensor::zeros(DType::kF32, {0}), i64({2}, {1, 1})})
                   .ok());
}

}  // namespace
}  // namespace kiln::cpu
