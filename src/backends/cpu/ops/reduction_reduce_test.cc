#include <cmath>
#include <limits>
#include <random>

#include "backends/cpu/ops/elementwise_test_util.h"

namespace kiln::cpu {
namespace {

using namespace ew_test;
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// [2, 3, 4] holding -7, -6, ..., 16.
Tensor x234() {
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = static_cast<float>(i - 7);
  return f32({2, 3, 4}, v);
}

Tensor reduce(const char* op, const Tensor& x, std::vector<int64_t> axes, int64_t keepdims = 1,
              int64_t noop = 0) {
  std::vector<Tensor> in = {x};
  if (!axes.empty() || noop) in.push_back(i64({static_cast<int64_t>(axes.size())}, axes));
  return run1(make_node(op, attrs_int({{"keepdims", keepdims}, {"noop_with_empty_axes", noop}})),
              in);
}

TEST(ReduceTest, SumOverAxisPatterns) {
  Tensor x = x234();
  Tensor inner = reduce("ReduceSum", x, {1, 2}, 0);  // one trailing run
  EXPECT_EQ(inner.dims(), Dims{2});
  expect_near_all<float>(inner, {-18, 126});
  Tensor split = reduce("ReduceSum", x, {0, -1});  // two runs: permuted first
  EXPECT_EQ(split.dims(), (Dims{1, 3, 1}));
  expect_near_all<float>(split, {4, 36, 68});
  Tensor all = reduce("ReduceSum", x, {}, 0);  // no axes: everything
  EXPECT_EQ(all.dims(), Dims{});
  expect_near_all<float>(all, {108});
}

TEST(ReduceTest, OtherReducers) {
  Tensor x = x234();
  expect_near_all<float>(reduce("ReduceMean", x, {1}, 0), {-3, -2, -1, 0, 9, 10, 11, 12});
  expect_near_all<float>(reduce("ReduceMax", x, {0}, 0),
                         {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  expect_near_all<float>(reduce("ReduceMin", x, {-1}, 0), {-7, -3, 1, 5, 9, 13});
  expect_near_all<float>(reduce("ReduceL2", x, {1}, 0),
                         {7.68114567f, 6.63324976f, 5.91608000f, 5.65685415f, 16.58312416f,
                          18.22086716f, 19.87460709f, 21.54065895f});
  expect_near_all<float>(reduce("ReduceSumSquare", x, {}, 0), {1636});
  Tensor p = f32({2, 3, 2}, {-7, -6, -3, -2, 1, 2, 5, 6, 9, 10, 13, 14});
  expect_near_all<float>(reduce("ReduceProd", p, {0, 2}, 0), {1260, 540, 364});
}

TEST(ReduceTest, NoopWithEmptyAxesMapsEachElement) {
  Tensor x = f32({2, 2}, {-3, 1, 2, -4});
  Tensor s = reduce("ReduceSum", x, {}, 1, 1);
  EXPECT_EQ(s.dims(), (Dims{2, 2}));
  expect_near_all<float>(s, {-3, 1, 2, -4});
  expect_near_all<float>(reduce("ReduceSumSquare", x, {}, 1, 1), {9, 1, 4, 16});
  expect_near_all<float>(reduce("ReduceL2", x, {}, 1, 1), {3, 1, 2, 4});
}

TEST(ReduceTest, EmptySetGivesIdentity) {
  Tensor e = f32({2, 0, 4}, {});
  auto check = [&](const char* op, float want) {
    Tensor r = reduce(op, e, {1});
    EXPECT_EQ(r.dims(), (Dims{2, 1, 4})) << op;
    expect_near_all<float>(r, std::vector<float>(8, want));
  };
  check("ReduceSum", 0);
  check("ReduceProd", 1);
  check("ReduceMax", -kInf);
  check("ReduceMin", kInf);
  check("ReduceL2", 0);
  check("ReduceSumSquare", 0);
  check("ReduceMean", kNaN);
  // Empty axes across two runs (the permuting path) too.
  expect_near_all<float>(reduce("ReduceSum", f32({0, 3, 2}, {}), {0, 2}, 0), {0, 0, 0});
  // A kept axis of length 0 gives an empty output.
  EXPECT_EQ(reduce("ReduceSum", e, {2}).dims(), (Dims{2, 0, 1}));
  EXPECT_EQ(
      values<int32_t>(reduce("ReduceMax", make(DType::kI32, {0}, std::vector<int32_t>{}), {0}, 0)),
      std::vector<int32_t>{std::numeric_limits<int32_t>::min()});
}

TEST(ReduceTest, BoolMaxIsAnyMinIsAll) {
  Tensor b = boolean({2, 3}, {0, 1, 0, 1, 1, 9});
  EXPECT_EQ(values<uint8_t>(reduce("ReduceMax", b, {1}, 0)), (std::vector<uint8_t>{1, 1}));
  EXPECT_EQ(values<uint8_t>(reduce("ReduceMin", b, {1}, 0)), (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(values<uint8_t>(reduce("ReduceMax", boolean({1, 0}, {}), {1}, 0)),
            std::vector<uint8_t>{0});
  EXPECT_EQ(run_status(make_node("ReduceSum"), {b}).code(), StatusCode::kUnsupported);
}

TEST(ReduceTest, IntegerSumsWrapAndMeanTruncates) {
  Tensor x = i8({3}, {100, 100, 100});
  EXPECT_EQ(values<int8_t>(reduce("ReduceSum", x, {0}, 0)), std::vector<int8_t>{44});
  EXPECT_EQ(values<int32_t>(reduce("ReduceMean", i32({3}, {-1, -2, -4}), {0}, 0)),
            std::vector<int32_t>{-2});
  EXPECT_EQ(values<int64_t>(reduce("ReduceProd", i64({3}, {-2, 3, 4}), {0}, 0)),
            std::vector<int64_t>{-24});
}

TEST(ReduceTest, MaxPropagatesNaN) {
  expect_near_all<float>(reduce("ReduceMax", f32({2, 2}, {1, kNaN, kNaN, 2}), {1}, 0),
                         {kNaN, kNaN});
}

TEST(ReduceTest, LargeReductionsMatchNaiveSums) {
  // Exercises the parallel [outer, red, inner] paths with inner > one accumulator chunk.
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> u(-3, 3);
  const Dims dims = {5, 300, 1500};
  std::vector<float> v(static_cast<size_t>(dims_numel(dims)));
  for (float& f : v) f = static_cast<float>(u(gen));
  Tensor x = f32(dims, v);
  for (int64_t axis = 0; axis < 3; ++axis) {
    Tensor r = reduce("ReduceSum", x, {axis}, 0);
    const int64_t n0 = dims[0], n1 = dims[1], n2 = dims[2];
    std::vector<float> want(static_cast<size_t>(r.numel()), 0.0f);
    for (int64_t a = 0; a < n0; ++a)
      for (int64_t b = 0; b < n1; ++b)
        for (int64_t c = 0; c < n2; ++c) {
          int64_t o = axis == 0 ? b * n2 + c : axis == 1 ? a * n2 + c : a * n1 + b;
          want[static_cast<size_t>(o)] += v[static_cast<size_t>((a * n1 + b) * n2 + c)];
        }
    EXPECT_EQ(values<float>(r), want) << "axis " << axis;  // small integers: exact
  }
}

TEST(ReduceTest, MultiAxisReductionsMatchNaiveSums) {
  // Covers the in-place run path (innermost axis reduced) and the permuting path.
  const Dims dims = {4, 6, 5, 40};
  std::vector<float> v(static_cast<size_t>(dims_numel(dims)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 7919) % 13) - 6.0f;
  Tensor x = f32(dims, v);
  const std::vector<std::vector<int64_t>> axes_sets = {{0, 2, 3}, {1, 3}, {0, 2}, {0, 3}, {-3, -1}};
  for (const auto& axes : axes_sets) {
    bool red[4] = {false, false, false, false};
    for (int64_t a : axes) red[a < 0 ? a + 4 : a] = true;
    Tensor r = reduce("ReduceSum", x, axes, 0);
    Tensor mx = reduce("ReduceMax", x, axes, 0);
    std::vector<float> want(static_cast<size_t>(r.numel()), 0.0f);
    std::vector<float> want_max(want.size(), -kInf);
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t rem = i, o = 0, mul = 1;
      for (int d = 3; d >= 0; --d) {
        int64_t c = rem % dims[d];
        rem /= dims[d];
        if (!red[d]) o += c * mul, mul *= dims[d];
      }
      want[static_cast<size_t>(o)] += v[static_cast<size_t>(i)];
      want_max[static_cast<size_t>(o)] =
          std::max(want_max[static_cast<size_t>(o)], v[static_cast<size_t>(i)]);
    }
    EXPECT_EQ(values<float>(r), want) << "axes " << dims_to_string(axes);
    EXPECT_EQ(values<float>(mx), want_max) << "axes " << dims_to_string(axes);
  }
}

TEST(ReduceTest, BadAxesAreErrors) {
  Tensor x = x234();
  Status s = run_status(make_node("ReduceSum"), {x, i64({1}, {3})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("axis 3"), std::string::npos) << s.message();
  EXPECT_EQ(run_status(make_node("ReduceMean"), {x, f32({1}, {0})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("ReduceMean"), {x, i64({1, 1}, {0})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("ReduceMean"), {}).code(), StatusCode::kInvalidArgument);
}

TEST(ArgMaxTest, AxisKeepdimsAndTies) {
  Tensor x = f32({2, 3}, {1, 3, 3, 5, 2, 5});
  Tensor r = run1(make_node("ArgMax", attrs_int({{"axis", 1}})), {x});
  EXPECT_EQ(r.dtype(), DType::kI64);
  EXPECT_EQ(r.dims(), (Dims{2, 1}));
  EXPECT_EQ(values<int64_t>(r), (std::vector<int64_t>{1, 0}));
  Tensor last = run1(
      make_node("ArgMax", attrs_int({{"axis", -1}, {"keepdims", 0}, {"select_last_index", 1}})),
      {x});
  EXPECT_EQ(last.dims(), Dims{2});
  EXPECT_EQ(values<int64_t>(last), (std::vector<int64_t>{2, 2}));
  Tensor a0 = run1(make_node("ArgMax", attrs_int({{"keepdims", 0}})), {x});
  EXPECT_EQ(values<int64_t>(a0), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(values<int64_t>(run1(make_node("ArgMin", attrs_int({{"axis", 1}})), {x})),
            (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(values<int64_t>(run1(make_node("ArgMax"), {f32({3}, {1, kNaN, 7})})),
            std::vector<int64_t>{1});
  EXPECT_EQ(values<int64_t>(run1(make_node("ArgMax"), {i32({3}, {-5, -2, -9})})),
            std::vector<int64_t>{1});
}

TEST(ArgMaxTest, Errors) {
  EXPECT_EQ(
      run_status(make_node("ArgMax", attrs_int({{"axis", 2}})), {f32({2, 2}, {1, 2, 3, 4})}).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("ArgMax"), {f32({0, 2}, {})}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run_status(make_node("ArgMax"), {boolean({1}, {1})}).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::cpu
