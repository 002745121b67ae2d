// fold_reshape_targets: run-time Reshape targets (Shape -> Gather -> Unsqueeze -> Concat) become
// constants with -1 where shape inference knows every output dim but one.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"
#include "ir/graph.h"

namespace kiln::compiler {
namespace {

Tensor ints(std::vector<int64_t> v) {
  const auto n = static_cast<int64_t>(v.size());
  return Tensor::from_vector(DType::kI64, {n}, v);
}

int add(ir::Graph& g, const char* op, std::vector<int> in, const char* out) {
  int o = g.add_value(out);
  ir::Node n;
  n.name = out;
  n.op = op;
  n.inputs = std::move(in);
  n.outputs = {o};
  g.add_node(std::move(n));
  return o;
}

// x [b, s, 8] -> Reshape(x, Concat(b, s, tail)) with b and s read from x at run time; tail is
// `tail` (two dims whose product is 8, or something else to test refusals).
ir::Graph reshape_graph(std::vector<int64_t> tail, ir::Dim b = ir::Dim{-1, "b"}) {
  ir::Graph g;
  ir::Shape xs;
  xs.rank_known = true;
  xs.dims = {b, ir::Dim{-1, "s"}, ir::Dim{8, ""}};
  int x = g.add_value("x", DType::kF32, xs);
  g.inputs.push_back(x);
  int shape = add(g, "Shape", {x}, "shape");
  int axes = g.add_constant("axes", ints({0}));
  std::vector<int> parts;
  for (int64_t i : {0, 1}) {
    int idx = g.add_constant("i" + std::to_string(i), Tensor::from_vector(DType::kI64, {}, std::vector<int64_t>{i}));
    int gathered = add(g, "Gather", {shape, idx}, i == 0 ? "g0" : "g1");
    g.nodes.back().attrs.set_int("axis", 0);
    parts.push_back(add(g, "Unsqueeze", {gathered, axes}, i == 0 ? "u0" : "u1"));
  }
  parts.push_back(g.add_constant("tail", ints(tail)));
  int target = add(g, "Concat", parts, "target");
  g.nodes.back().attrs.set_int("axis", 0);
  int r = add(g, "Reshape", {x, target}, "r");
  int y = add(g, "Relu", {r}, "y");
  g.outputs.push_back(y);
  return g;
}

Result<Tensor> run(const ir::Graph& g, const Tensor& x) {
  std::vector<Tensor> vals(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i)
    if (g.values[i].constant >= 0) vals[i] = g.constants[static_cast<size_t>(g.values[i].constant)];
  vals[static_cast<size_t>(g.inputs[0])] = x;
  for (const ir::Node& n : g.nodes) {
    std::vector<Tensor> in, out(n.outputs.size());
    for (int id : n.inputs) in.push_back(id >= 0 ? vals[static_cast<size_t>(id)] : Tensor());
    KILN_RETURN_IF_ERROR(cpu::run_node(n, in, out));
    for (size_t k = 0; k < n.outputs.size(); ++k) vals[static_cast<size_t>(n.outputs[k])] = out[k];
  }
  return vals[static_cast<size_t>(g.outputs[0])];
}

std::vector<std::string> ops(const ir::Graph& g) {
  std::vector<std::string> v;
  for (const ir::Node& n : g.nodes) v.push_back(n.op);
  return v;
}

TEST(FoldReshapeTargetsTest, OneSymbolicDimBecomesMinusOneAndTheArithmeticGoes) {
  // Target [b, s, 2, 4] with b pinned to 1: one open dim (s).
  ir::Graph g = reshape_graph({2, 4}, ir::Dim{1, ""});
  const ir::Graph before = g;
  size_t replaced = 0;
  ASSERT_TRUE(fold_reshape_targets(g, &replaced).ok());
  EXPECT_EQ(replaced, 1u);
  EXPECT_EQ(ops(g), (std::vector<std::string>{"Reshape", "Relu"}));
  const ir::Value& target = g.values[static_cast<size_t>(g.nodes[0].inputs[1])];
  ASSERT_GE(target.constant, 0);
  const Tensor& t = g.constants[static_cast<size_t>(target.constant)];
  EXPECT_EQ(std::vector<int64_t>(t.data_as<const int64_t>(), t.data_as<const int64_t>() + t.numel()),
            (std::vector<int64_t>{1, -1, 2, 4}));
  // Same results as the run-time target at every sequence length.
  for (int64_t s : {1, 3, 17}) {
    std::vector<float> v(static_cast<size_t>(s) * 8);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7) - 3.0f;
    Tensor x = Tensor::from_vector<float>(DType::kF32, {1, s, 8}, v);
    Result<Tensor> a = run(before, x), b = run(g, x);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string() << b.status().to_string();
    ASSERT_EQ(a->dims(), (Dims{1, s, 2, 4}));
    ASSERT_EQ(b->dims(), a->dims());
    for (int64_t i = 0; i < a->numel(); ++i) EXPECT_EQ(a->data_as<const float>()[i], b->data_as<const float>()[i]);
  }
}

TEST(FoldReshapeTargetsTest, TwoOpenDimsAreLeftAsTheyAre) {
  ir::Graph g = reshape_graph({2, 4});  // b and s both symbolic
  size_t replaced = 0;
  ASSERT_TRUE(fold_reshape_targets(g, &replaced).ok());
  EXPECT_EQ(replaced, 0u);
  EXPECT_EQ(ops(g).front(), "Shape");
}

TEST(FoldReshapeTargetsTest, ATargetWhoseElementCountDoesNotAddUpIsLeftAsItIs) {
  // [1, s, 8] to [1, s, 8, 4]: the run-time target fails; a -1 would quietly take s / 4 rows.
  ir::Graph g = reshape_graph({8, 4}, ir::Dim{1, ""});
  size_t replaced = 0;
  ASSERT_TRUE(fold_reshape_targets(g, &replaced).ok());
  EXPECT_EQ(replaced, 0u);
  EXPECT_EQ(ops(g).front(), "Shape");
}

TEST(FoldReshapeTargetsTest, AnUnknownInputDimIsLeftAsItIs) {
  ir::Graph g = reshape_graph({2, 4}, ir::Dim{});  // b unknown, not even a symbol
  size_t replaced = 0;
  ASSERT_TRUE(fold_reshape_targets(g, &replaced).ok());
  EXPECT_EQ(replaced, 0u);
}

TEST(FoldReshapeTargetsTest, ConstantTargetsAndOtherOpsAreUntouched) {
  ir::Graph g;
  ir::Shape xs;
  xs.rank_known = true;
  xs.dims = {ir::Dim{-1, "s"}, ir::Dim{8, ""}};
  int x = g.add_value("x", DType::kF32, xs);
  g.inputs.push_back(x);
  int target = g.add_constant("target", ints({-1, 2, 4}));
  int r = add(g, "Reshape", {x, target}, "r");
  g.outputs.push_back(r);
  size_t replaced = 0;
  ASSERT_TRUE(fold_reshape_targets(g, &replaced).ok());
  EXPECT_EQ(replaced, 0u);
  EXPECT_EQ(g.nodes[0].inputs[1], target);
}

}  // namespace
}  // namespace kiln::compiler
