// The fused epilogue of Gemm / MatMul / Conv (kiln_activation, MatMul's bias input) against the
// same computation as separate nodes (Add, Relu, Gelu) on the CPU kernels.
#include <gtest/gtest.h>

#include "backends/cpu/ops/nn_epilogue.h"
#include "backends/cpu/ops/nn_test_util.h"

namespace kiln::cpu::nn_test {
namespace {

ir::Node with_act(ir::Node n, const std::string& act) {
  n.attrs.set_string("kiln_activation", act);
  return n;
}

Tensor unfused_act(const Tensor& y, const std::string& act) {
  if (act.empty()) return y;
  ir::Node n = make_node(act == "Relu" ? "Relu" : "Gelu");
  if (act == "Gelu:tanh") n.attrs.set_string("approximate", "tanh");
  return run_ok(n, {y});
}

void expect_same(const Tensor& got, const Tensor& want, double tol = 1e-5) {
  ASSERT_TRUE(got.defined() && want.defined());
  if (got.dtype() == DType::kF64) {
    expect_close<double>(got, want.dims(), values<double>(want), tol, tol);
  } else {
    expect_close<float>(got, want.dims(), values<float>(want), tol, tol);
  }
}

TEST(NnEpilogueTest, MatMulBiasAndActivationMatchSeparateNodes) {
  // [2, 3, 5] x [5, 7] (B shared: one folded GEMM) and [2, 3, 5] x [2, 5, 7] (batched), N odd.
  for (const Dims& bd : {Dims{5, 7}, Dims{2, 5, 7}, Dims{1, 5, 7}}) {
    for (const std::string act : {"", "Relu", "Gelu:tanh"}) {
      const Tensor a = f32({2, 3, 5}, random_values(30, 1));
      const Tensor b = f32(bd, random_values(dims_numel(bd), 2));
      const Tensor bias = f32({7}, random_values(7, 3));
      const Tensor plain = run_ok(make_node("MatMul"), {a, b});
      const Tensor added = run_ok(make_node("Add"), {plain, bias});
      ir::Node fused = make_node("MatMul");
      if (!act.empty()) fused = with_act(fused, act);
      expect_same(run_ok(fused, {a, b, bias}), unfused_act(added, act));
      expect_same(run_ok(fused, {a, b}), unfused_act(plain, act));
    }
  }
}

TEST(NnEpilogueTest, MatMulBiasInF64AndIntegerRelu) {
  const Tensor a = f64({3, 4}, {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12});
  const Tensor b = f64({4, 1}, {0.5, 0.25, -1, 2});
  const Tensor bias = f64({1}, {-3});
  Tensor y = run_ok(with_act(make_node("MatMul"), "Relu"), {a, b, bias});
  // rows: 0.5-0.5-3-8 = -11 -> 0; 2.5-1.5-7-16 = -22 -> 0; 4.5-2.5-11-24 -> 0
  expect_close<double>(y, {3, 1}, {0, 0, 0});
  y = run_ok(make_node("MatMul"), {a, b, f64({1}, {100})});
  expect_close<double>(y, {3, 1}, {89, 78, 67});
  const Tensor ia = i64({2, 2}, {1, -2, 3, 4}), ib = i64({2, 2}, {1, 0, 0, 1});
  y = run_ok(with_act(make_node("MatMul"), "Relu"), {ia, ib});
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{1, 0, 3, 4}));
  EXPECT_NE(run_fails(with_act(make_node("MatMul"), "Gelu:tanh"), {ia, ib}).find("float"), std::string::npos);
}

TEST(NnEpilogueTest, MatMulBiasOfWrongShapeIsRejected) {
  const Tensor a = f32({2, 3}, iota(6)), b = f32({3, 4}, iota(12));
  EXPECT_NE(run_fails(make_node("MatMul"), {a, b, f32({3}, iota(3))}).find("N = 4"), std::string::npos);
  run_fails(make_node("MatMul"), {a, b, f32({1, 4}, iota(4))});
  run_fails(make_node("MatMul"), {a, b, f64({4}, {1, 2, 3, 4})});
  run_fails(make_node("MatMul"), {a, f32({3}, iota(3)), f32({1}, {1})});  // 1-D B: no N dim
}

TEST(NnEpilogueTest, GemmActivationAfterAlphaBetaAndC) {
  for (const std::string act : {"Relu", "Gelu:tanh"}) {
    ir::Node g = make_node("Gemm");
    g.attrs.set_int("transB", 1);
    g.attrs.set_float("alpha", 0.5);
    g.attrs.set_float("beta", 2.0);
    const Tensor a = f32({3, 6}, random_values(18, 4)), b = f32({5, 6}, random_values(30, 5));
    const Tensor c = f32({3, 1}, random_values(3, 6));
    const Tensor plain = run_ok(g, {a, b, c});
    expect_same(run_ok(with_act(g, act), {a, b, c}), unfused_act(plain, act));
  }
}

TEST(NnEpilogueTest, ConvReluOnGemmAndDirectPaths) {
  // group 1 (im2col + GEMM), depthwise (direct loop), 1x1 (no im2col); with and without bias.
  struct Case { Dims x, w; int64_t group; };
  for (const Case& k : {Case{{2, 3, 7, 5}, {5, 3, 3, 3}, 1}, Case{{1, 4, 6, 6}, {4, 1, 3, 3}, 4},
                        Case{{2, 6, 4, 3}, {3, 6, 1, 1}, 1}, Case{{1, 4, 9}, {6, 2, 2}, 2}}) {
    for (bool with_bias : {false, true}) {
      ir::Node conv = make_node("Conv");
      conv.attrs.set_int("group", k.group);
      if (k.x.size() == 4 && k.w[2] == 3) conv.attrs.set_ints("pads", {1, 0, 1, 2});
      std::vector<Tensor> in = {f32(k.x, random_values(dims_numel(k.x), 7)),
                                f32(k.w, random_values(dims_numel(k.w), 8))};
      if (with_bias) in.push_back(f32({k.w[0]}, random_values(k.w[0], 9)));
      const Tensor plain = run_ok(conv, in);
      const Tensor fused = run_ok(with_act(conv, "Relu"), in);
      expect_same(fused, unfused_act(plain, "Relu"));
      bool any_zeroed = false;
      for (float v : values<float>(plain)) any_zeroed = any_zeroed || v < 0;
      EXPECT_TRUE(any_zeroed);  // the case exercises the activation
    }
  }
}

TEST(NnEpilogueTest, UnknownOrMisplacedActivationIsInvalidArgument) {
  const Tensor a = f32({2, 2}, iota(4));
  std::string msg = run_fails(with_act(make_node("MatMul"), "Swish"), {a, a});
  EXPECT_NE(msg.find("Swish"), std::string::npos) << msg;
  EXPECT_NE(msg.find("node 'n' (MatMul)"), std::string::npos) << msg;
  msg = run_fails(with_act(make_node("Gemm"), "gelu"), {a, a});
  EXPECT_NE(msg.find("'gelu'"), std::string::npos) << msg;
  ir::Node conv = with_act(make_node("Conv"), "Gelu:tanh");
  msg = run_fails(conv, {f32({1, 1, 3, 3}, iota(9)), f32({1, 1, 1, 1}, {1})});
  EXPECT_NE(msg.find("Gelu:tanh"), std::string::npos) << msg;
  ir::Node wrong_kind = make_node("MatMul");
  wrong_kind.attrs.set_int("kiln_activation", 1);
  msg = run_fails(wrong_kind, {a, a});
  EXPECT_NE(msg.find("string"), std::string::npos) << msg;
}

}  // namespace
}  // namespace kiln::cpu::nn_test
