// fuse_elementwise: grouping rules, boundaries, determinism, and that fused graphs compute what
// the unfused graphs compute (bit for bit on the CPU, whose fused kernel runs the op kernels).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/ops/fused_elementwise_program.h"
#include "compiler/passes.h"
#include "compiler/run_cpu_test_util.h"
#include "core/half.h"

namespace kiln::compiler {
namespace {

constexpr const char* kFused = "kiln.FusedElementwise";

int count(const ir::Graph& g, const std::string& op) {
  int n = 0;
  for (const ir::Node& node : g.nodes) n += node.op == op;
  return n;
}

int add(ir::Graph& g, const std::string& op, std::vector<int> in, DType dt, const std::string& name) {
  int out = g.add_value(name, dt);
  g.add_node(ir::Node{name, op, {}, std::move(in), {out}});
  return out;
}

int scalar(ir::Graph& g, const std::string& name, float v, Dims dims = {}) {
  return g.add_constant(name, Tensor::from_vector<float>(DType::kF32, dims, {v}));
}

// The exported exact GELU: y = x * 0.5 * (1 + erf(x / sqrt(2))).
ir::Graph gelu_graph() {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({2, 3}));
  g.inputs = {x};
  int d = add(g, "Div", {x, scalar(g, "sqrt2", 1.41421354f)}, DType::kF32, "div");
  int e = add(g, "Erf", {d}, DType::kF32, "erf");
  int a = add(g, "Add", {e, scalar(g, "one", 1.0f)}, DType::kF32, "add");
  int m = add(g, "Mul", {x, a}, DType::kF32, "mul");
  g.outputs = {add(g, "Mul", {m, scalar(g, "half", 0.5f)}, DType::kF32, "y")};
  return g;
}

Tensor random_f32(Dims dims, uint32_t seed) {
  Tensor t = Tensor::zeros(DType::kF32, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-3, 3);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = u(rng);
  return t;
}

void expect_same_bits(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.dims(), b.dims());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0);
}

TEST(FuseElementwiseTest, GeluChainBecomesOneNodeWithLiterals) {
  ir::Graph g = gelu_graph();
  const ir::Graph before = g;
  FuseStats stats;
  ASSERT_TRUE(fuse_elementwise(g, &stats).ok());
  g.prune();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op, kFused);
  EXPECT_EQ(g.nodes[0].name, "y");
  EXPECT_EQ(g.nodes[0].inputs, std::vector<int>{g.inputs[0]});  // constants became literals
  EXPECT_EQ(g.nodes[0].outputs, before.outputs);
  EXPECT_EQ(stats.groups, 1u);
  EXPECT_EQ(stats.nodes_fused, 5u);
  EXPECT_TRUE(g.constants.empty());
  auto p = cpu::fused_program_decode(g.nodes[0]);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(cpu::fused_program_text(*p),
            "in(f32);t0=Literal[1.4142135381698608,0]():f32;t1=Div(x0,t0):f32;t2=Erf(t1):f32;"
            "t3=Literal[1,0]():f32;t4=Add(t2,t3):f32;t5=Mul(x0,t4):f32;t6=Literal[0.5,0]():f32;"
            "t7=Mul(t5,t6):f32");
  Tensor x = random_f32({2, 3}, 7);
  expect_same_bits(run_cpu(g, {x})[0], run_cpu(before, {x})[0]);
}

TEST(FuseElementwiseTest, IntermediateWithOutsideConsumerEndsTheGroup) {
  // t = Exp(x) is read by the chain and by a Softmax: it must stay a value of its own.
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({4}));
  g.inputs = {x};
  int t = add(g, "Exp", {x}, DType::kF32, "exp");
  int u = add(g, "Neg", {t}, DType::kF32, "neg");
  int v = add(g, "Sigmoid", {u}, DType::kF32, "sig");
  int s = add(g, "Softmax", {t}, DType::kF32, "softmax");
  g.outputs = {v, s};
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  EXPECT_EQ(count(g, kFused), 1);
  EXPECT_EQ(count(g, "Exp"), 1);
  EXPECT_EQ(count(g, "Softmax"), 1);
  for (const ir::Node& n : g.nodes)
    if (n.op == kFused) {
      EXPECT_EQ(n.inputs, std::vector<int>{t});
    }
  ASSERT_TRUE(g.validate().ok());
}

TEST(FuseElementwiseTest, GraphOutputsAreNotSwallowed) {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({4}));
  g.inputs = {x};
  int a = add(g, "Relu", {x}, DType::kF32, "relu");
  int b = add(g, "Exp", {a}, DType::kF32, "exp");
  int c = add(g, "Log", {b}, DType::kF32, "log");
  g.outputs = {c, a};  // `a` is an output: Relu stays, Exp and Log fuse
  const ir::Graph before = g;
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].op, "Relu");
  EXPECT_EQ(g.nodes[1].op, kFused);
  EXPECT_EQ(g.nodes[1].inputs, std::vector<int>{a});
  Tensor in = random_f32({4}, 3);
  auto want = run_cpu(before, {in}), got = run_cpu(g, {in});
  ASSERT_EQ(got.size(), 2u);
  expect_same_bits(got[0], want[0]);
  expect_same_bits(got[1], want[1]);
}

TEST(FuseElementwiseTest, DiamondFusesWhenAllConsumersAreInside) {
  // y = Exp(x) * Tanh(Exp(x)): Exp's output has two consumers, both in the group.
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({3}));
  g.inputs = {x};
  int e = add(g, "Exp", {x}, DType::kF32, "exp");
  int t = add(g, "Tanh", {e}, DType::kF32, "tanh");
  g.outputs = {add(g, "Mul", {e, t}, DType::kF32, "y")};
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op, kFused);
}

TEST(FuseElementwiseTest, SingleNodesAndNonElementwiseOpsStay) {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({2, 2}));
  g.inputs = {x};
  int a = add(g, "Relu", {x}, DType::kF32, "relu");
  int m = add(g, "MatMul", {a, a}, DType::kF32, "mm");
  g.outputs = {add(g, "Sigmoid", {m}, DType::kF32, "sig")};
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  EXPECT_EQ(count(g, kFused), 0);
  EXPECT_EQ(g.nodes.size(), 3u);
}

TEST(FuseElementwiseTest, BroadcastInputsAndLiteralRankKeepTheShape) {
  // x [3, 1] + b [4] then * c where c is a [1, 1, 1] scalar: the output is [1, 3, 4].
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({3, 1}));
  int b = g.add_value("b", DType::kF32, ir::Shape::of({4}));
  g.inputs = {x, b};
  int s = add(g, "Add", {x, b}, DType::kF32, "add");
  int y = add(g, "Mul", {s, scalar(g, "c", 2.5f, {1, 1, 1})}, DType::kF32, "mul");
  g.outputs = {add(g, "Tanh", {y}, DType::kF32, "y")};
  const ir::Graph before = g;
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  ASSERT_EQ(g.nodes.size(), 1u);
  Tensor tx = random_f32({3, 1}, 1), tb = random_f32({4}, 2);
  auto got = run_cpu(g, {tx, tb});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].dims(), (Dims{1, 3, 4}));
  expect_same_bits(got[0], run_cpu(before, {tx, tb})[0]);
}

TEST(FuseElementwiseTest, IntegerAndBoolChainsFuseExactly) {
  // Where(Less(i, 3), i * 7 % 5, -i) on i64, then Cast to f32.
  ir::Graph g;
  int i = g.add_value("i", DType::kI64, ir::Shape::of({6}));
  g.inputs = {i};
  auto c64 = [&](const std::string& n, int64_t v) {
    return g.add_constant(n, Tensor::from_vector<int64_t>(DType::kI64, {}, {v}));
  };
  int lt = add(g, "Less", {i, c64("three", 3)}, DType::kBool, "lt");
  int m = add(g, "Mul", {i, c64("seven", 7)}, DType::kI64, "mul");
  int md = add(g, "Mod", {m, c64("five", 5)}, DType::kI64, "mod");
  int ng = add(g, "Neg", {i}, DType::kI64, "neg");
  int w = add(g, "Where", {lt, md, ng}, DType::kI64, "where");
  int y = g.add_value("y", DType::kF32);
  ir::Node cast{"cast", "Cast", {}, {w}, {y}};
  cast.attrs.set_int("to", static_cast<int64_t>(DType::kF32));
  g.add_node(std::move(cast));
  g.outputs = {y};
  const ir::Graph before = g;
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  g.prune();
  ASSERT_EQ(g.nodes.size(), 1u);
  Tensor in = Tensor::from_vector<int64_t>(DType::kI64, {6}, {-9, -1, 0, 2, 3, 11});
  auto got = run_cpu(g, {in});
  ASSERT_EQ(got.size(), 1u);
  expect_same_bits(got[0], run_cpu(before, {in})[0]);
  const float want[] = {-63 % 5 + 5.0f, 3, 0, 4, -3, -11};
  for (int k = 0; k < 6; ++k) EXPECT_EQ(got[0].data_as<float>()[k], want[k]) << k;
}

TEST(FuseElementwiseTest, GroupsKeepAtMostSixExternalInputs) {
  // y = x0 + x1 + ... + x7 as a chain of Adds: 8 inputs do not fit one kernel.
  ir::Graph g;
  std::vector<int> xs;
  for (int k = 0; k < 8; ++k) {
    std::string name = "x";
    name += std::to_string(k);  // not "x" + to_string(k): GCC 12 warns (-Wrestrict) on that here
    xs.push_back(g.add_value(name, DType::kF32, ir::Shape::of({5})));
  }
  g.inputs = xs;
  int acc = xs[0];
  for (int k = 1; k < 8; ++k) acc = add(g, "Add", {acc, xs[k]}, DType::kF32, "add" + std::to_string(k));
  g.outputs = {acc};
  const ir::Graph before = g;
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  for (const ir::Node& n : g.nodes) {
    EXPECT_LE(n.inputs.size(), 6u);
    if (n.op == kFused) {
      EXPECT_TRUE(cpu::fused_program_decode(n).ok());
    }
  }
  EXPECT_LT(g.nodes.size(), before.nodes.size());
  std::vector<Tensor> in;
  for (int k = 0; k < 8; ++k) in.push_back(random_f32({5}, k));
  expect_same_bits(run_cpu(g, in)[0], run_cpu(before, in)[0]);
}

TEST(FuseElementwiseTest, ClipWithConstantBoundsFusesAndRuntimeBoundsDoNot) {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({8}));
  int hi = g.add_value("hi", DType::kF32, ir::Shape::of({}));
  g.inputs = {x, hi};
  int a = add(g, "Mul", {x, scalar(g, "k", 3.0f)}, DType::kF32, "mul");
  int c = add(g, "Clip", {a, scalar(g, "lo", -1.0f), ir::kNoValue}, DType::kF32, "clip");
  int e = add(g, "Exp", {c}, DType::kF32, "exp");
  g.outputs = {add(g, "Clip", {e, ir::kNoValue, hi}, DType::kF32, "clip2")};
  const ir::Graph before = g;
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  EXPECT_EQ(count(g, kFused), 1);
  EXPECT_EQ(count(g, "Clip"), 1);  // the one whose bound is a runtime input
  Tensor tx = random_f32({8}, 5), th = Tensor::from_vector<float>(DType::kF32, {}, {4.0f});
  expect_same_bits(run_cpu(g, {tx, th})[0], run_cpu(before, {tx, th})[0]);
}

TEST(FuseElementwiseTest, HalfIntermediatesRoundLikeTheUnfusedGraph) {
  // f16 chain: each op's result is rounded to f16 before the next, fused or not.
  ir::Graph g;
  int x = g.add_value("x", DType::kF16, ir::Shape::of({64}));
  g.inputs = {x};
  int e = add(g, "Exp", {x}, DType::kF16, "exp");
  int s = add(g, "Sqrt", {e}, DType::kF16, "sqrt");
  int t = add(g, "Mul", {s, x}, DType::kF16, "mul");
  int y = g.add_value("y", DType::kF32);
  ir::Node cast{"cast", "Cast", {}, {t}, {y}};
  cast.attrs.set_int("to", static_cast<int64_t>(DType::kF32));
  g.add_node(std::move(cast));
  g.outputs = {y};
  const ir::Graph before = g;
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  ASSERT_EQ(g.nodes.size(), 1u);
  Tensor in = Tensor::zeros(DType::kF16, {64});
  for (int k = 0; k < 64; ++k) in.data_as<uint16_t>()[k] = f32_to_f16(-2.0f + 0.0625f * k);
  expect_same_bits(run_cpu(g, {in})[0], run_cpu(before, {in})[0]);
}

TEST(FuseElementwiseTest, SameGraphGivesSameResult) {
  ir::Graph a = gelu_graph(), b = gelu_graph();
  ASSERT_TRUE(fuse_elementwise(a, nullptr).ok());
  ASSERT_TRUE(fuse_elementwise(b, nullptr).ok());
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t n = 0; n < a.nodes.size(); ++n) {
    EXPECT_EQ(a.nodes[n].op, b.nodes[n].op);
    EXPECT_EQ(a.nodes[n].inputs, b.nodes[n].inputs);
    if (a.nodes[n].op == kFused) {
      EXPECT_EQ(cpu::fused_program_text(*cpu::fused_program_decode(a.nodes[n])),
                cpu::fused_program_text(*cpu::fused_program_decode(b.nodes[n])));
    }
  }
}

TEST(FuseElementwiseTest, UnsupportedDtypesAndAttributesAreLeftAlone) {
  // Relu(i32) -> Sqrt(i32) -> Neg: Sqrt takes no integers, so no two neighbours fuse.
  ir::Graph g;
  int x = g.add_value("x", DType::kI32, ir::Shape::of({4}));
  g.inputs = {x};
  int r = add(g, "Relu", {x}, DType::kI32, "relu");
  int s = add(g, "Sqrt", {r}, DType::kI32, "sqrt");
  g.outputs = {add(g, "Neg", {s}, DType::kI32, "neg")};
  ASSERT_TRUE(fuse_elementwise(g, nullptr).ok());
  EXPECT_EQ(count(g, kFused), 0);
  // Gelu with an approximate mode it does not know stays a node of its own.
  ir::Graph h;
  int y = h.add_value("y", DType::kF32, ir::Shape::of({4}));
  h.inputs = {y};
  int e = add(h, "Exp", {y}, DType::kF32, "exp");
  int out = h.add_value("out", DType::kF32);
  ir::Node gelu{"gelu", "Gelu", {}, {e}, {out}};
  gelu.attrs.set_string("approximate", "bogus");
  h.add_node(std::move(gelu));
  h.outputs = {out};
  Status st = fuse_elementwise(h, nullptr);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(count(h, kFused), 0);
}

}  // namespace
}  // namespace kiln::compiler
