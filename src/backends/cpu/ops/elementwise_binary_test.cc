#include <cmath>
#include <limits>
#include <random>

#include "backends/cpu/ops/elementwise_test_util.h"

namespace kiln::cpu {
namespace {

using namespace ew_test;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Element of `t` (dims d) read at the broadcast position of flat output index `i` of `out`.
int64_t naive_index(const Dims& d, const Dims& out, int64_t i) {
  int64_t idx = 0, mul = 1;
  for (size_t k = out.size(); k-- > 0;) {
    int64_t coord = i % out[k];
    i /= out[k];
    size_t off = out.size() - k;
    if (off > d.size()) continue;
    size_t dk = d.size() - off;
    if (d[dk] != 1) idx += coord * mul;
    mul *= d[dk];
  }
  return idx;
}

Tensor random_f32(Dims d, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-4, 4);
  std::vector<float> v(static_cast<size_t>(dims_numel(d)));
  for (float& x : v) x = u(gen);
  return f32(d, v);
}

struct BroadcastCase {
  Dims a, b, out;
};

TEST(ElementwiseBinaryTest, BroadcastingMatchesNaiveIndexing) {
  const BroadcastCase cases[] = {
      {{2, 3}, {2, 3}, {2, 3}},                    // same shape
      {{2, 3}, {}, {2, 3}},                        // scalar
      {{}, {4}, {4}},                              // scalar on the left
      {{4, 5}, {5}, {4, 5}},                       // trailing vector
      {{2, 3, 4}, {3, 1}, {2, 3, 4}},              // per-channel
      {{3, 1}, {1, 4}, {3, 4}},                    // outer product
      {{2, 1, 3, 1}, {1, 4, 1, 5}, {2, 4, 3, 5}},  // alternating
      {{1, 1}, {1}, {1, 1}},                       // all ones
      {{0, 3}, {3}, {0, 3}},                       // empty
      {{64, 1024}, {1024}, {64, 1024}},            // parallel over rows
      {{3, 70001}, {3, 1}, {3, 70001}},            // long rows split into chunks
      {{2, 1, 40000}, {1, 3, 1}, {2, 3, 40000}},   // chunks with a broadcast inner operand
  };
  uint32_t seed = 1;
  for (const auto& c : cases) {
    Tensor a = random_f32(c.a, seed++), b = random_f32(c.b, seed++);
    Tensor y = run1(make_node("Sub"), {a, b});
    ASSERT_EQ(y.dims(), c.out) << dims_to_string(c.a) << " - " << dims_to_string(c.b);
    const float* pa = a.data_as<const float>();
    const float* pb = b.data_as<const float>();
    const float* py = y.data_as<const float>();
    for (int64_t i = 0; i < y.numel(); ++i) {
      float want = pa[naive_index(c.a, c.out, i)] - pb[naive_index(c.b, c.out, i)];
      ASSERT_EQ(py[i], want) << dims_to_string(c.a) << " - " << dims_to_string(c.b) << " at " << i;
    }
  }
}

TEST(ElementwiseBinaryTest, ArithmeticOnSmallIntegersWraps) {
  Tensor a = i8({3}, {100, -100, 7}), b = i8({3}, {100, 100, 3});
  EXPECT_EQ(values<int8_t>(run1(make_node("Add"), {a, b})), (std::vector<int8_t>{-56, 0, 10}));
  EXPECT_EQ(values<int8_t>(run1(make_node("Mul"), {a, b})), (std::vector<int8_t>{16, -16, 21}));
  Tensor big = i64({1}, {std::numeric_limits<int64_t>::max()});
  EXPECT_EQ(values<int64_t>(run1(make_node("Add"), {big, i64({1}, {1})}))[0],
            std::numeric_limits<int64_t>::min());
  Tensor u = u8({2}, {3, 250}), v = u8({2}, {5, 10});
  EXPECT_EQ(values<uint8_t>(run1(make_node("Sub"), {u, v})), (std::vector<uint8_t>{254, 240}));
}

TEST(ElementwiseBinaryTest, IntegerDivTruncatesAndNeverTraps) {
  Tensor a = i32({6}, {-3, 3, -3, 3, 7, std::numeric_limits<int32_t>::min()});
  Tensor b = i32({6}, {2, 2, -2, -2, 0, -1});
  EXPECT_EQ(values<int32_t>(run1(make_node("Div"), {a, b})),
            (std::vector<int32_t>{-1, 1, 1, -1, 0, std::numeric_limits<int32_t>::min()}));
  expect_near_all<float>(run1(make_node("Div"), {f32({2}, {1, -1}), f32({2}, {0, 4})}),
                         {kInf, -0.25f});
}

TEST(ElementwiseBinaryTest, ModFollowsPythonOrC) {
  Tensor a = i32({5}, {-4, 7, 5, -4, 9}), b = i32({5}, {3, -3, 0, -1, 4});
  EXPECT_EQ(values<int32_t>(run1(make_node("Mod"), {a, b})),
            (std::vector<int32_t>{2, -2, 0, 0, 1}));
  ir::Attributes c = attrs_int({{"fmod", 1}});
  EXPECT_EQ(values<int32_t>(run1(make_node("Mod", c), {a, b})),
            (std::vector<int32_t>{-1, 1, 0, 0, 1}));
  Tensor fa = f32({6}, {-4.5f, 4.5f, 0.0f, -3.0f, 1.0f, kInf});
  Tensor fb = f32({6}, {2.0f, -2.0f, -2.0f, kInf, 0.0f, 2.0f});
  Tensor py = run1(make_node("Mod"), {fa, fb});
  expect_near_all<float>(py, {1.5f, -1.5f, -0.0f, kInf, kNaN, kNaN});
  EXPECT_TRUE(std::signbit(values<float>(py)[2]));  // takes the divisor's sign
  expect_near_all<float>(run1(make_node("Mod", c), {fa, fb}),
                         {-0.5f, 0.5f, 0.0f, -3.0f, kNaN, kNaN});
  EXPECT_EQ(run_status(make_node("Mod", attrs_int({{"fmod", 2}})), {a, b}).code(),
            StatusCode::kInvalidArgument);
}

TEST(ElementwiseBinaryTest, PowSupportsMixedDtypes) {
  // Output dtype is the base's.
  Tensor r = run1(make_node("Pow"), {i32({3}, {1, 2, 3}), f32({3}, {4, 5, 6})});
  EXPECT_EQ(r.dtype(), DType::kI32);
  EXPECT_EQ(values<int32_t>(r), (std::vector<int32_t>{1, 32, 729}));
  Tensor f = run1(make_node("Pow"), {f32({3}, {1, 2, 3}), i64({3}, {4, 5, -1})});
  EXPECT_EQ(f.dtype(), DType::kF32);
  expect_near_all<float>(f, {1, 32, 1 / 3.0f});
  EXPECT_EQ(
      values<int64_t>(run1(make_node("Pow"), {i64({4}, {3, 2, -1, 2}), i64({4}, {39, 0, -3, -1})})),
      (std::vector<int64_t>{4052555153018976267, 1, -1, 0}));
  EXPECT_EQ(values<int32_t>(run1(make_node("Pow"), {i32({1}, {4}), f32({1}, {0.5f})})),
            std::vector<int32_t>{2});
  expect_near_all<float>(run1(make_node("Pow"), {f32({3}, {-3, 4, 2}), f32({}, {2})}), {9, 16, 4});
  expect_near_all<float>(run1(make_node("Pow"), {f32({2}, {4, -1}), f32({}, {0.5f})}), {2, kNaN});
  expect_near_all<float>(run1(make_node("Pow"), {f32({2, 2}, {1, 2, 3, 4}), f32({2}, {2, 3})}),
                         {1, 8, 9, 64});
}

TEST(ElementwiseBinaryTest, PReluBroadcastsSlopeToX) {
  Tensor x = f32({2, 3}, {-1, 2, -3, 4, -5, 6});
  expect_near_all<float>(run1(make_node("PRelu"), {x, f32({3}, {0.5f, 1, 2})}),
                         {-0.5f, 2, -6, 4, -5, 6});
  // A legacy per-channel slope [C] for X [N, C, L] is laid along axis 1.
  Tensor x3 = f32({1, 2, 3}, {-1, -1, -1, -1, 2, -1});
  expect_near_all<float>(run1(make_node("PRelu"), {x3, f32({2}, {0.1f, 0.2f})}),
                         {-0.1f, -0.1f, -0.1f, -0.2f, 2, -0.2f});
  // Where numpy broadcasting works it wins: [2] runs along the last axis of [1, 2, 2].
  Tensor x4 = f32({1, 2, 2}, {-1, -1, -1, 2});
  expect_near_all<float>(run1(make_node("PRelu"), {x4, f32({2}, {0.1f, 0.2f})}),
                         {-0.1f, -0.2f, -0.1f, 2});
  // The slope may not grow X.
  EXPECT_EQ(
      run_status(make_node("PRelu"), {f32({3}, {1, 2, 3}), f32({2, 3}, {1, 2, 3, 4, 5, 6})}).code(),
      StatusCode::kInvalidArgument);
}

TEST(ElementwiseBinaryTest, ComparisonsGiveBool) {
  Tensor a = f32({4}, {1, 2, kNaN, 4}), b = f32({}, {2});
  auto check = [&](const char* op, std::vector<uint8_t> want) {
    Tensor y = run1(make_node(op), {a, b});
    EXPECT_EQ(y.dtype(), DType::kBool) << op;
    EXPECT_EQ(values<uint8_t>(y), want) << op;
  };
  check("Equal", {0, 1, 0, 0});
  check("Greater", {0, 0, 0, 1});
  check("GreaterOrEqual", {0, 1, 0, 1});
  check("Less", {1, 0, 0, 0});
  check("LessOrEqual", {1, 1, 0, 0});
  EXPECT_EQ(values<uint8_t>(run1(make_node("Equal"), {i64({2}, {5, 6}), i64({2, 1}, {5, 6})})),
            (std::vector<uint8_t>{1, 0, 0, 1}));
  EXPECT_EQ(values<uint8_t>(run1(make_node("Equal"), {boolean({2}, {1, 0}), boolean({2}, {9, 0})})),
            (std::vector<uint8_t>{1, 1}));
}

TEST(ElementwiseBinaryTest, LogicOpsBroadcastBools) {
  Tensor a = boolean({2, 2}, {0, 0, 1, 1}), b = boolean({2}, {0, 1});
  EXPECT_EQ(values<uint8_t>(run1(make_node("And"), {a, b})), (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(values<uint8_t>(run1(make_node("Or"), {a, b})), (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(values<uint8_t>(run1(make_node("Xor"), {a, b})), (std::vector<uint8_t>{0, 1, 1, 0}));
  EXPECT_EQ(run_status(make_node("And"), {f32({1}, {1}), f32({1}, {1})}).code(),
            StatusCode::kUnsupported);
}

TEST(ElementwiseBinaryTest, ShapeAndDtypeErrorsNameTheNode) {
  Status s = run_status(make_node("Add"), {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({2}, {1, 2})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("t_Add"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[2, 3]"), std::string::npos) << s.message();
  s = run_status(make_node("Mul"), {f32({1}, {1}), i32({1}, {1})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("same dtype"), std::string::npos) << s.message();
  EXPECT_EQ(run_status(make_node("Add"), {f32({1}, {1})}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("Add"), {boolean({1}, {1}), boolean({1}, {1})}).code(),
            StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::cpu
