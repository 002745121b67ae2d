#include <cmath>
#include <limits>

#include "backends/cpu/ops/elementwise_test_util.h"

namespace kiln::cpu {
namespace {

using namespace ew_test;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

const std::vector<float> kX = {-3.0f, -0.5f, 0.0f, 0.7f, 2.5f};

TEST(ElementwiseUnaryTest, MathOpsMatchLibm) {
  Tensor x = f32({5}, kX);
  expect_near_all<float>(run1(make_node("Abs"), {x}), {3, 0.5f, 0, 0.7f, 2.5f});
  expect_near_all<float>(run1(make_node("Neg"), {x}), {3, 0.5f, 0, -0.7f, -2.5f});
  expect_near_all<float>(run1(make_node("Erf"), {x}),
                         {-0.99997791f, -0.52049988f, 0.0f, 0.67780119f, 0.99959305f});
  expect_near_all<float>(run1(make_node("Exp"), {x}),
                         {std::exp(-3.0f), std::exp(-0.5f), 1.0f, std::exp(0.7f), std::exp(2.5f)});
  expect_near_all<float>(run1(make_node("Reciprocal"), {f32({2}, {4, -0.5f})}), {0.25f, -2});
  expect_near_all<float>(run1(make_node("Sqrt"), {f32({2}, {9, -1})}), {3, kNaN});
  expect_near_all<float>(run1(make_node("Log"), {f32({2}, {1, 0})}), {0, -kInf});
  expect_near_all<float>(run1(make_node("Ceil"), {x}), {-3, -0.0f, 0, 1, 3});
  expect_near_all<float>(run1(make_node("Floor"), {x}), {-3, -1, 0, 0, 2});
  expect_near_all<double>(run1(make_node("Tanh"), {f64({2}, {0.5, -20})}), {std::tanh(0.5), -1.0},
                          1e-12);
}

TEST(ElementwiseUnaryTest, RoundIsHalfToEven) {
  Tensor x = f32({8}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, -2.6f});
  expect_near_all<float>(run1(make_node("Round"), {x}), {0, 2, 2, -0.0f, -2, -2, 2, -3});
}

TEST(ElementwiseUnaryTest, IntegerAbsNegSignWrapLikeNumpy) {
  Tensor x = i8({4}, {-128, -5, 0, 7});
  EXPECT_EQ(values<int8_t>(run1(make_node("Abs"), {x})), (std::vector<int8_t>{-128, 5, 0, 7}));
  EXPECT_EQ(values<int8_t>(run1(make_node("Neg"), {x})), (std::vector<int8_t>{-128, 5, 0, -7}));
  EXPECT_EQ(values<int8_t>(run1(make_node("Sign"), {x})), (std::vector<int8_t>{-1, -1, 0, 1}));
  Tensor big = i64({1}, {std::numeric_limits<int64_t>::min()});
  EXPECT_EQ(values<int64_t>(run1(make_node("Neg"), {big}))[0], std::numeric_limits<int64_t>::min());
  EXPECT_EQ(values<uint8_t>(run1(make_node("Abs"), {u8({2}, {0, 200})})),
            (std::vector<uint8_t>{0, 200}));
}

TEST(ElementwiseUnaryTest, SignKeepsNaN) {
  expect_near_all<float>(run1(make_node("Sign"), {f32({4}, {-2, 0, 3, kNaN})}), {-1, 0, 1, kNaN});
}

TEST(ElementwiseUnaryTest, IsNaNAndIsInfAttributes) {
  Tensor x = f32({4}, {kNaN, kInf, -kInf, 1});
  EXPECT_EQ(values<uint8_t>(run1(make_node("IsNaN"), {x})), (std::vector<uint8_t>{1, 0, 0, 0}));
  Tensor all = run1(make_node("IsInf"), {x});
  EXPECT_EQ(all.dtype(), DType::kBool);
  EXPECT_EQ(values<uint8_t>(all), (std::vector<uint8_t>{0, 1, 1, 0}));
  EXPECT_EQ(values<uint8_t>(run1(make_node("IsInf", attrs_int({{"detect_negative", 0}})), {x})),
            (std::vector<uint8_t>{0, 1, 0, 0}));
  EXPECT_EQ(values<uint8_t>(run1(make_node("IsInf", attrs_int({{"detect_positive", 0}})), {x})),
            (std::vector<uint8_t>{0, 0, 1, 0}));
}

TEST(ElementwiseUnaryTest, NotTreatsAnyNonzeroByteAsTrue) {
  EXPECT_EQ(values<uint8_t>(run1(make_node("Not"), {boolean({3}, {0, 1, 7})})),
            (std::vector<uint8_t>{1, 0, 0}));
}

TEST(ElementwiseUnaryTest, ActivationsWithDefaults) {
  Tensor x = f32({5}, kX);
  expect_near_all<float>(run1(make_node("Relu"), {x}), {0, 0, 0, 0.7f, 2.5f});
  expect_near_all<float>(run1(make_node("Sigmoid"), {x}),
                         {0.04742587f, 0.37754068f, 0.5f, 0.66818780f, 0.92414182f});
  expect_near_all<float>(run1(make_node("Softplus"), {x}),
                         {0.04858735f, 0.47407699f, 0.69314718f, 1.10318613f, 2.57888961f});
  expect_near_all<float>(run1(make_node("Mish"), {x}),
                         {-0.14564745f, -0.22074378f, 0.0f, 0.56114840f, 2.47139239f});
  expect_near_all<float>(run1(make_node("Silu"), {x}),
                         {-0.14227763f, -0.18877034f, 0.0f, 0.46773145f, 2.31035447f});
  expect_near_all<float>(run1(make_node("Selu"), {x}),
                         {-1.67056873f, -0.69175819f, 0.0f, 0.73549070f, 2.62675255f});
  expect_near_all<float>(run1(make_node("HardSwish"), {x}),
                         {0.0f, -0.20833333f, 0.0f, 0.43166666f, 2.29166667f});
  expect_near_all<float>(run1(make_node("Softsign"), {x}),
                         {-0.75f, -1 / 3.0f, 0, 0.7f / 1.7f, 2.5f / 3.5f});
  expect_near_all<float>(run1(make_node("LeakyRelu"), {x}), {-0.03f, -0.005f, 0, 0.7f, 2.5f});
  expect_near_all<float>(run1(make_node("HardSigmoid"), {x}), {0, 0.4f, 0.5f, 0.64f, 1});
  expect_near_all<float>(run1(make_node("Gelu"), {x}),
                         {-0.00404969f, -0.15426877f, 0.0f, 0.53062543f, 2.48447584f});
}

TEST(ElementwiseUnaryTest, ActivationAttributes) {
  Tensor x = f32({5}, kX);
  ir::Attributes a;
  a.set_float("alpha", 2.0);
  expect_near_all<float>(run1(make_node("Elu", a), {x}),
                         {-1.90042586f, -0.78693868f, 0.0f, 0.7f, 2.5f});
  expect_near_all<float>(run1(make_node("LeakyRelu", a), {x}), {-6, -1, 0, 0.7f, 2.5f});
  ir::Attributes hs;
  hs.set_float("alpha", 0.5);
  hs.set_float("beta", 0.25);
  expect_near_all<float>(run1(make_node("HardSigmoid", hs), {x}), {0, 0, 0.25f, 0.6f, 1});
  ir::Attributes g;
  g.set_string("approximate", "tanh");
  expect_near_all<float>(run1(make_node("Gelu", g), {x}),
                         {-0.00363739f, -0.15428599f, 0.0f, 0.53057012f, 2.48491573f});
}

TEST(ElementwiseUnaryTest, SigmoidAndSoftplusStayFiniteForLargeInputs) {
  Tensor x = f32({2}, {-200, 200});
  expect_near_all<float>(run1(make_node("Sigmoid"), {x}), {0, 1});
  expect_near_all<float>(run1(make_node("Softplus"), {x}), {0, 200});
}

TEST(ElementwiseUnaryTest, ReluAcceptsSignedIntegers) {
  EXPECT_EQ(values<int32_t>(run1(make_node("Relu"), {i32({3}, {-4, 0, 9})})),
            (std::vector<int32_t>{0, 0, 9}));
}

TEST(ElementwiseUnaryTest, LargeInputRunsInParallelChunks) {
  std::vector<float> v(200001);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 1000) - 500.0f;
  std::vector<float> got = values<float>(run1(make_node("Abs"), {f32({200001}, v)}));
  ASSERT_EQ(got.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(got[i], std::fabs(v[i])) << i;
}

TEST(ElementwiseUnaryTest, EmptyAndScalarTensors) {
  Tensor e = run1(make_node("Exp"), {f32({0, 3}, {})});
  EXPECT_EQ(e.dims(), (Dims{0, 3}));
  Tensor s = run1(make_node("Neg"), {f32({}, {2})});
  EXPECT_EQ(s.dims(), Dims{});
  EXPECT_EQ(values<float>(s), std::vector<float>{-2});
}

TEST(ElementwiseUnaryTest, ErrorsAreStatuses) {
  EXPECT_EQ(run_status(make_node("Exp"), {i32({1}, {1})}).code(), StatusCode::kUnsupported);
  EXPECT_EQ(run_status(make_node("Not"), {f32({1}, {1})}).code(), StatusCode::kUnsupported);
  EXPECT_EQ(run_status(make_node("Neg"), {u8({1}, {1})}).code(), StatusCode::kUnsupported);
  EXPECT_EQ(run_status(make_node("Exp"), {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("Exp"), {Tensor()}).code(), StatusCode::kInvalidArgument);
  ir::Attributes g;
  g.set_string("approximate", "fast");
  Status s = run_status(make_node("Gelu", g), {f32({1}, {1})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("none|tanh"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("t_Gelu"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln::cpu
