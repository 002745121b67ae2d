#include <cmath>
#include <limits>

#include "backends/cpu/ops/elementwise_test_util.h"

namespace kiln::cpu {
namespace {

using namespace ew_test;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(SoftmaxTest, LastAndLeadingAxis) {
  Tensor s = f32({2, 3}, {1, 2, 3, 1, 5, 0});
  expect_near_all<float>(run1(make_node("Softmax"), {s}), {0.09003057f, 0.24472846f, 0.66524094f,
                                                           0.01786798f, 0.97555870f, 0.00657326f});
  expect_near_all<float>(run1(make_node("Softmax", attrs_int({{"axis", 0}})), {s}),
                         {0.5f, 0.04742587f, 0.95257413f, 0.5f, 0.95257413f, 0.04742587f});
  expect_near_all<float>(
      run1(make_node("LogSoftmax", attrs_int({{"axis", -1}})), {s}),
      {-2.40760589f, -1.40760601f, -0.40760598f, -4.02474499f, -0.02474495f, -5.02474499f});
}

TEST(SoftmaxTest, MiddleAxisAndCoerce2d) {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = static_cast<float>(i) / 4;
  Tensor x = f32({2, 3, 4}, v);
  Tensor mid = run1(make_node("Softmax", attrs_int({{"axis", 1}})), {x});
  std::vector<float> got = values<float>(mid);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(got[i], 0.09003057f, 1e-6);
    EXPECT_NEAR(got[4 + i], 0.24472846f, 1e-6);
  }
  // coerce_2d: axis 1 of [2, 3, 4] normalises over the 12 trailing values together.
  Tensor c = run1(make_node("Softmax", attrs_int({{"axis", 1}, {"coerce_2d", 1}})), {x});
  got = values<float>(c);
  EXPECT_NEAR(got[0], 0.01488171f, 1e-6);
  EXPECT_NEAR(got[3], 0.03150458f, 1e-6);
  float row = 0;
  for (int i = 0; i < 12; ++i) row += got[i];
  EXPECT_NEAR(row, 1.0f, 1e-5);
}

TEST(SoftmaxTest, LargeValuesDoNotOverflow) {
  expect_near_all<float>(run1(make_node("Softmax"), {f32({2}, {1000, 1000})}), {0.5f, 0.5f});
  expect_near_all<double>(run1(make_node("LogSoftmax"), {f64({2}, {-1e300, 0})}), {-1e300, 0});
  expect_near_all<float>(run1(make_node("Softmax"), {f32({2}, {kNaN, 1})}), {kNaN, kNaN});
  EXPECT_EQ(run1(make_node("Softmax", attrs_int({{"axis", 1}})), {f32({2, 0, 3}, {})}).dims(),
            (Dims{2, 0, 3}));
}

TEST(SoftmaxTest, Errors) {
  EXPECT_EQ(run_status(make_node("Softmax", attrs_int({{"axis", 2}})), {f32({2, 2}, {1, 2, 3, 4})})
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("Softmax"), {i32({1}, {1})}).code(), StatusCode::kUnsupported);
}

Tensor cumsum(const Tensor& x, int64_t axis, int64_t exclusive = 0, int64_t reverse = 0) {
  return run1(make_node("CumSum", attrs_int({{"exclusive", exclusive}, {"reverse", reverse}})),
              {x, i64({}, {axis})});
}

TEST(CumSumTest, ExclusiveAndReverse) {
  Tensor x = f32({4}, {1, 2, 3, 4});
  expect_near_all<float>(cumsum(x, 0), {1, 3, 6, 10});
  expect_near_all<float>(cumsum(x, 0, 1), {0, 1, 3, 6});
  expect_near_all<float>(cumsum(x, 0, 0, 1), {10, 9, 7, 4});
  expect_near_all<float>(cumsum(x, 0, 1, 1), {9, 7, 4, 0});
}

TEST(CumSumTest, AxesOf2dAndIntegers) {
  Tensor x = i32({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(values<int32_t>(cumsum(x, 0)), (std::vector<int32_t>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(values<int32_t>(cumsum(x, -1)), (std::vector<int32_t>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(values<int32_t>(cumsum(x, 1, 1, 1)), (std::vector<int32_t>{5, 3, 0, 11, 6, 0}));
  Tensor axis32 = i32({1}, {0});
  EXPECT_EQ(values<int32_t>(run1(make_node("CumSum"), {x, axis32})),
            (std::vector<int32_t>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(values<int8_t>(cumsum(i8({2}, {100, 100}), 0)), (std::vector<int8_t>{100, -56}));
}

TEST(CumSumTest, Errors) {
  Tensor x = f32({2}, {1, 2});
  EXPECT_EQ(run_status(make_node("CumSum"), {x, i64({}, {1})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("CumSum"), {x, i64({2}, {0, 0})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("CumSum"), {x}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("CumSum"), {x, f32({}, {0})}).code(),
            StatusCode::kInvalidArgument);
}

std::vector<Tensor> topk(const Tensor& x, int64_t k, ir::Attributes a = {}) {
  std::vector<Tensor> out;
  Status s = run(make_node("TopK", std::move(a), 2), {x, i64({1}, {k})}, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

TEST(TopKTest, LargestAndSmallestWithStableTies) {
  Tensor x = f32({2, 4}, {3, 1, 3, 2, 0, 5, 5, -1});
  auto r = topk(x, 2);
  EXPECT_EQ(r[0].dims(), (Dims{2, 2}));
  expect_near_all<float>(r[0], {3, 3, 5, 5});
  EXPECT_EQ(values<int64_t>(r[1]), (std::vector<int64_t>{0, 2, 1, 2}));
  auto s = topk(x, 3, attrs_int({{"largest", 0}}));
  expect_near_all<float>(s[0], {1, 2, 3, -1, 0, 5});
  EXPECT_EQ(values<int64_t>(s[1]), (std::vector<int64_t>{1, 3, 0, 3, 0, 1}));
}

TEST(TopKTest, AlongLeadingAxisAndNaN) {
  Tensor x = f32({3, 2}, {1, kNaN, 4, 2, 4, 7});
  auto r = topk(x, 2, attrs_int({{"axis", 0}}));
  EXPECT_EQ(r[0].dims(), (Dims{2, 2}));
  expect_near_all<float>(r[0], {4, kNaN, 4, 7});
  EXPECT_EQ(values<int64_t>(r[1]), (std::vector<int64_t>{1, 0, 2, 2}));
  auto s = topk(x, 1, attrs_int({{"axis", 0}, {"largest", 0}}));
  expect_near_all<float>(s[0], {1, 2});
  auto z = topk(x, 0);
  EXPECT_EQ(z[0].dims(), (Dims{3, 0}));
  EXPECT_EQ(z[1].dtype(), DType::kI64);
}

TEST(TopKTest, Errors) {
  Tensor x = f32({3}, {1, 2, 3});
  EXPECT_EQ(run_status(make_node("TopK", {}, 2), {x, i64({1}, {4})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("TopK", {}, 2), {x, i64({1}, {-1})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("TopK", {}, 2), {x, i64({2}, {1, 1})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("TopK", attrs_int({{"axis", 1}}), 2), {x, i64({1}, {1})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("TopK", {}, 2), {x}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::cpu
