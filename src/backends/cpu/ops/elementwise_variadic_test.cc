#include <cmath>
#include <limits>

#include "backends/cpu/ops/elementwise_test_util.h"
#include "core/half.h"

namespace kiln::cpu {
namespace {

using namespace ew_test;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(ElementwiseVariadicTest, MaxMinSumMeanBroadcastAllInputs) {
  Tensor a = f32({3}, {1, 5, kNaN}), b = f32({2, 1}, {2, 4}), c = f32({}, {3});
  Tensor mx = run1(make_node("Max"), {a, b, c});
  EXPECT_EQ(mx.dims(), (Dims{2, 3}));
  expect_near_all<float>(mx, {3, 5, kNaN, 4, 5, kNaN});
  expect_near_all<float>(run1(make_node("Min"), {a, b, c}), {1, 2, kNaN, 1, 3, kNaN});
  expect_near_all<float>(run1(make_node("Sum"), {a, b, c}), {6, 10, kNaN, 8, 12, kNaN});
  expect_near_all<float>(run1(make_node("Mean"), {a, b, c}),
                         {2, 10 / 3.0f, kNaN, 8 / 3.0f, 4, kNaN});
  // One input is a copy.
  expect_near_all<float>(run1(make_node("Sum"), {b}), {2, 4});
  EXPECT_EQ(values<int32_t>(run1(make_node("Max"), {i32({2}, {-7, 8}), i32({2}, {3, -9})})),
            (std::vector<int32_t>{3, 8}));
}

TEST(ElementwiseVariadicTest, VariadicErrors) {
  EXPECT_EQ(run_status(make_node("Max"), {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("Sum"), {f32({1}, {1}), i32({1}, {1})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("Mean"), {i32({1}, {1}), i32({1}, {1})}).code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(run_status(make_node("Min"), {f32({2}, {1, 2}), f32({3}, {1, 2, 3})}).code(),
            StatusCode::kInvalidArgument);
}

TEST(ElementwiseVariadicTest, ClipWithOptionalBounds) {
  Tensor x = f32({5}, {-3, -1, 0, 2, kNaN});
  expect_near_all<float>(run1(make_node("Clip"), {x, f32({}, {-1}), f32({}, {1})}),
                         {-1, -1, 0, 1, kNaN});
  expect_near_all<float>(run1(make_node("Clip"), {x, Tensor(), f32({1}, {0})}),
                         {-3, -1, 0, 0, kNaN});
  expect_near_all<float>(run1(make_node("Clip"), {x, f32({}, {0})}), {0, 0, 0, 2, kNaN});
  expect_near_all<float>(run1(make_node("Clip"), {x}), {-3, -1, 0, 2, kNaN});
  // min > max: everything becomes max.
  expect_near_all<float>(run1(make_node("Clip"), {x, f32({}, {2}), f32({}, {1})}),
                         {1, 1, 1, 1, kNaN});
  EXPECT_EQ(
      values<int8_t>(run1(make_node("Clip"), {i8({3}, {-128, 5, 127}), Tensor(), i8({}, {6})})),
      (std::vector<int8_t>{-128, 5, 6}));
  EXPECT_EQ(run_status(make_node("Clip"), {x, f32({2}, {0, 1})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("Clip"), {x, i32({}, {0})}).code(), StatusCode::kInvalidArgument);
}

TEST(ElementwiseVariadicTest, WhereBroadcastsThreeWays) {
  Tensor c = boolean({2, 1}, {1, 0});
  Tensor x = f32({3}, {1, 2, 3});
  Tensor y = f32({}, {-1});
  Tensor r = run1(make_node("Where"), {c, x, y});
  EXPECT_EQ(r.dims(), (Dims{2, 3}));
  expect_near_all<float>(r, {1, 2, 3, -1, -1, -1});
  Tensor ri =
      run1(make_node("Where"), {boolean({3}, {1, 0, 1}), i64({3}, {1, 2, 3}), i64({3}, {4, 5, 6})});
  EXPECT_EQ(values<int64_t>(ri), (std::vector<int64_t>{1, 5, 3}));
  EXPECT_EQ(run_status(make_node("Where"), {f32({1}, {1}), x, y}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("Where"), {c, x, i32({}, {1})}).code(),
            StatusCode::kInvalidArgument);
}

TEST(ElementwiseVariadicTest, WhereMovesHalfBitsNatively) {
  EXPECT_TRUE(kernel_registry().find("Where")->native_half);
  std::vector<uint16_t> a = {f32_to_f16(1.5f), f32_to_f16(-2.0f)};
  std::vector<uint16_t> b = {f32_to_f16(7.0f), f32_to_f16(8.0f)};
  Tensor r = run1(make_node("Where"),
                  {boolean({2}, {0, 1}), make(DType::kF16, {2}, a), make(DType::kF16, {2}, b)});
  EXPECT_EQ(r.dtype(), DType::kF16);
  EXPECT_EQ(values<uint16_t>(r), (std::vector<uint16_t>{b[0], a[1]}));
}

Tensor cast(const Tensor& x, DType to) {
  return run1(make_node("Cast", attrs_int({{"to", static_cast<int64_t>(to)}})), {x});
}

TEST(ElementwiseCastTest, FloatToIntTruncatesAndWrapsLikeNumpy) {
  Tensor x = f64({7}, {300.0, -1.0, 2.9, -2.9, 1e20, -kInf, kNaN});
  Tensor r = cast(x, DType::kI8);
  EXPECT_EQ(r.dtype(), DType::kI8);
  EXPECT_EQ(values<int8_t>(r), (std::vector<int8_t>{44, -1, 2, -2, 127, -128, 0}));
  EXPECT_EQ(values<uint8_t>(cast(f32({2}, {-1.0f, 255.9f}), DType::kU8)),
            (std::vector<uint8_t>{255, 255}));
  EXPECT_EQ(values<int64_t>(cast(f32({2}, {-7.5f, 3e9f}), DType::kI64)),
            (std::vector<int64_t>{-7, 3000000000}));
  EXPECT_EQ(values<uint64_t>(cast(f64({1}, {1.8446744073709550e19}), DType::kU64)),
            std::vector<uint64_t>{18446744073709549568ull});
}

TEST(ElementwiseCastTest, IntAndBoolConversions) {
  EXPECT_EQ(values<uint8_t>(cast(i32({4}, {0, -3, 256, 1}), DType::kBool)),
            (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(values<uint8_t>(cast(f32({3}, {0, kNaN, -0.0f}), DType::kBool)),
            (std::vector<uint8_t>{0, 1, 0}));
  EXPECT_EQ(values<int8_t>(cast(i32({3}, {255, 128, -129}), DType::kI8)),
            (std::vector<int8_t>{-1, -128, 127}));
  EXPECT_EQ(values<uint64_t>(cast(i8({1}, {-1}), DType::kU64)),
            std::vector<uint64_t>{~uint64_t{0}});
  expect_near_all<float>(cast(boolean({3}, {0, 1, 5}), DType::kF32), {0, 1, 1});
  expect_near_all<double>(cast(i64({2}, {-5, 1ll << 40}), DType::kF64), {-5.0, 1099511627776.0});
  EXPECT_EQ(values<int32_t>(cast(i32({2}, {1, 2}), DType::kI32)), (std::vector<int32_t>{1, 2}));
}

TEST(ElementwiseCastTest, HalfTypesRoundToNearestEven) {
  EXPECT_TRUE(kernel_registry().find("Cast")->native_half);
  Tensor h = cast(f32({3}, {1 / 3.0f, 131008.0f, 1e-8f}), DType::kF16);
  EXPECT_EQ(h.dtype(), DType::kF16);
  EXPECT_EQ(values<uint16_t>(h), (std::vector<uint16_t>{13653, 31744, 0}));
  Tensor b = cast(f32({3}, {1 / 3.0f, 1.00390625f, -2.5f}), DType::kBF16);
  EXPECT_EQ(values<uint16_t>(b), (std::vector<uint16_t>{16043, 16256, 49184}));
  // f16 -> bf16 and -> i32 go through f32.
  expect_near_all<float>(cast(cast(h, DType::kBF16), DType::kF32), {0.333984375f, kInf, 0}, 1e-6);
  EXPECT_EQ(values<int32_t>(cast(cast(f32({2}, {-2.75f, 7.5f}), DType::kF16), DType::kI32)),
            (std::vector<int32_t>{-2, 7}));
}

TEST(ElementwiseCastTest, BadTargetIsUnsupported) {
  Tensor x = f32({1}, {1});
  EXPECT_EQ(run_status(make_node("Cast", attrs_int({{"to", 8}})), {x}).code(),
            StatusCode::kUnsupported);  // string
  EXPECT_EQ(run_status(make_node("Cast", attrs_int({{"to", 1000}})), {x}).code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(run_status(make_node("Cast"), {x}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::cpu
