// fuse_epilogues: each pattern, the non-patterns it must leave alone, and results equal to the
// unfused graph (evaluated node by node on the CPU kernels).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"

namespace kiln::compiler {
namespace {

std::vector<float> random_floats(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

Tensor rand_f32(const Dims& d, unsigned seed) {
  return Tensor::from_vector<float>(DType::kF32, d, random_floats(dims_numel(d), seed));
}

Tensor rand_f64(const Dims& d, unsigned seed) {
  std::vector<float> f = random_floats(dims_numel(d), seed);
  return Tensor::from_vector<double>(DType::kF64, d, std::vector<double>(f.begin(), f.end()));
}

// Runs `g` node by node on the CPU kernels.
std::vector<Tensor> evaluate(const ir::Graph& g, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> vals(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i)
    if (g.values[i].constant >= 0) vals[i] = g.constants[g.values[i].constant];
  for (size_t i = 0; i < g.inputs.size(); ++i) vals[g.inputs[i]] = inputs[i];
  for (const ir::Node& n : g.nodes) {
    std::vector<Tensor> in, out(n.outputs.size());
    for (int id : n.inputs) in.push_back(id >= 0 ? vals[id] : Tensor());
    Status s = cpu::run_node(n, in, out);
    EXPECT_TRUE(s.ok()) << s.to_string();
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (n.outputs[k] >= 0) vals[n.outputs[k]] = out[k];
  }
  std::vector<Tensor> res;
  for (int o : g.outputs) res.push_back(vals[o]);
  return res;
}

void expect_close(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_TRUE(got.defined() && want.defined());
  ASSERT_EQ(got.dims(), want.dims());
  ASSERT_EQ(got.dtype(), want.dtype());
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double a = got.dtype() == DType::kF64 ? got.data_as<const double>()[i] : got.data_as<const float>()[i];
    const double b = want.dtype() == DType::kF64 ? want.data_as<const double>()[i] : want.data_as<const float>()[i];
    ASSERT_NEAR(a, b, tol * (1 + std::abs(b))) << "at " << i;
  }
}

// Fuses a copy of `g` and checks the outputs on `inputs` stay the same. Returns the fused graph.
ir::Graph fuse_and_compare(const ir::Graph& g, const std::vector<Tensor>& inputs, EpilogueStats* stats,
                           double tol = 1e-5) {
  ir::Graph fused = g;
  Status s = fuse_epilogues(fused, stats);
  EXPECT_TRUE(s.ok()) << s.to_string();
  EXPECT_TRUE(fused.validate().ok());
  const std::vector<Tensor> want = evaluate(g, inputs), got = evaluate(fused, inputs);
  EXPECT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) expect_close(got[i], want[i], tol);
  return fused;
}

int count_op(const ir::Graph& g, const std::string& op) {
  int n = 0;
  for (const ir::Node& node : g.nodes) n += node.op == op;
  return n;
}

const ir::Node* first_op(const ir::Graph& g, const std::string& op) {
  for (const ir::Node& node : g.nodes)
    if (node.op == op) return &node;
  return nullptr;
}

// x [2, 3, 5] -> MatMul(W [5, N]) -> mm -> Add(bias) -> y (-> act -> z when act is given).
struct Linear {
  ir::Graph g;
  int x, mm, y;
};

Linear linear(const Tensor& bias, bool bias_first = false, const std::string& act = "", int64_t n = 7) {
  Linear l;
  ir::Graph& g = l.g;
  l.x = g.add_value("x", DType::kF32, ir::Shape::of({2, 3, 5}));
  const int w = g.add_constant("W", rand_f32({5, n}, 11));
  const int b = g.add_constant("b", bias);
  l.mm = g.add_value("mm", DType::kF32);
  l.y = g.add_value("y", DType::kF32);
  g.inputs = {l.x};
  g.add_node(ir::Node{"matmul", "MatMul", {}, {l.x, w}, {l.mm}});
  g.add_node(ir::Node{"add", "Add", {}, bias_first ? std::vector<int>{b, l.mm} : std::vector<int>{l.mm, b}, {l.y}});
  g.outputs = {l.y};
  if (!act.empty()) {
    const int z = g.add_value("z", DType::kF32);
    ir::Node a{"act", act == "Relu" ? "Relu" : "Gelu", {}, {l.y}, {z}};
    if (act == "Gelu:tanh") a.attrs.set_string("approximate", "tanh");
    if (act == "Gelu:none") a.attrs.set_string("approximate", "none");
    g.add_node(std::move(a));
    g.outputs = {z};
  }
  return l;
}

TEST(FuseEpilogueTest, MatMulAddBecomesMatMulWithBias) {
  for (bool bias_first : {false, true}) {
    for (const Dims& bd : {Dims{7}, Dims{1, 7}, Dims{1, 1, 7}, Dims{1}}) {
      Linear l = linear(rand_f32(bd, 12), bias_first);
      EpilogueStats st;
      ir::Graph f = fuse_and_compare(l.g, {rand_f32({2, 3, 5}, 13)}, &st);
      EXPECT_EQ(st.matmul_bias, 1u);
      EXPECT_EQ(st.nodes_removed, 1u);
      ASSERT_EQ(f.nodes.size(), 1u);
      const ir::Node& mm = f.nodes[0];
      ASSERT_EQ(mm.inputs.size(), 3u);
      EXPECT_EQ(f.constants[f.values[mm.inputs[2]].constant].dims(), (Dims{7}));
      EXPECT_EQ(mm.outputs[0], l.y);  // the Add's output keeps its name and id
    }
  }
}

TEST(FuseEpilogueTest, ChainsBiasAndActivation) {
  for (const std::string act : {"Relu", "Gelu:tanh"}) {
    Linear l = linear(rand_f32({7}, 14), false, act);
    EpilogueStats st;
    ir::Graph f = fuse_and_compare(l.g, {rand_f32({2, 3, 5}, 15)}, &st);
    ASSERT_EQ(f.nodes.size(), 1u) << act;
    EXPECT_EQ(f.nodes[0].inputs.size(), 3u);
    EXPECT_EQ(f.nodes[0].attrs.get_string("kiln_activation", ""), act);
    EXPECT_EQ(st.matmul_bias, 1u);
    EXPECT_EQ(st.activations, 1u);
    EXPECT_EQ(st.nodes_removed, 2u);
  }
}

// Attention scores: q [2, 4, 6, 8] @ Transpose(k [2, 4, 6, 8], perm) * scale, then @ v, then a
// Linear with bias whose result is added to a residual [2, 4, 6, 5]: each pattern in one graph.
struct Attention {
  ir::Graph g;
};

Attention attention(std::vector<int64_t> perm, bool scale_first = false, float scale = 0.35f) {
  Attention a;
  ir::Graph& g = a.g;
  const int q = g.add_value("q", DType::kF32, ir::Shape::of({2, 4, 6, 8}));
  const int k = g.add_value("k", DType::kF32, ir::Shape::of({2, 4, 6, 8}));
  const int v = g.add_value("v", DType::kF32, ir::Shape::of({2, 4, 6, 8}));
  const int r = g.add_value("r", DType::kF32, ir::Shape::of({2, 4, 6, 5}));
  g.inputs = {q, k, v, r};
  const int s = g.add_constant("scale", Tensor::from_vector<float>(DType::kF32, {}, {scale}));
  const int w = g.add_constant("W", rand_f32({8, 5}, 21));
  const int b = g.add_constant("b", rand_f32({5}, 22));
  const int kt = g.add_value("kt", DType::kF32), sc = g.add_value("sc", DType::kF32);
  const int scaled = g.add_value("scaled", DType::kF32), ctx = g.add_value("ctx", DType::kF32);
  const int proj = g.add_value("proj", DType::kF32), biased = g.add_value("biased", DType::kF32);
  const int y = g.add_value("y", DType::kF32);
  ir::Node tr{"tr", "Transpose", {}, {k}, {kt}};
  if (!perm.empty()) tr.attrs.set_ints("perm", perm);
  g.add_node(std::move(tr));
  g.add_node(ir::Node{"scores", "MatMul", {}, {q, kt}, {sc}});
  g.add_node(ir::Node{"scale", "Mul", {}, scale_first ? std::vector<int>{s, sc} : std::vector<int>{sc, s}, {scaled}});
  g.add_node(ir::Node{"ctx", "MatMul", {}, {scaled, v}, {ctx}});
  g.add_node(ir::Node{"proj", "MatMul", {}, {ctx, w}, {proj}});
  g.add_node(ir::Node{"bias", "Add", {}, {proj, b}, {biased}});
  g.add_node(ir::Node{"residual", "Add", {}, {r, biased}, {y}});
  g.outputs = {y};
  return a;
}

std::vector<Tensor> attention_inputs() {
  return {rand_f32({2, 4, 6, 8}, 23), rand_f32({2, 4, 6, 8}, 24), rand_f32({2, 4, 6, 8}, 25),
          rand_f32({2, 4, 6, 5}, 26)};
}

TEST(FuseEpilogueTest, TransposeScaleAndResidualFoldIntoMatMuls) {
  for (bool scale_first : {false, true}) {
    Attention a = attention({0, 1, 3, 2}, scale_first);
    EpilogueStats st;
    ir::Graph f = fuse_and_compare(a.g, attention_inputs(), &st);
    EXPECT_EQ(st.transposes_folded, 1u);
    EXPECT_EQ(st.matmul_scale, 1u);
    EXPECT_EQ(st.matmul_bias, 1u);
    EXPECT_EQ(st.matmul_residual, 1u);
    EXPECT_EQ(st.nodes_removed, 4u);
    ASSERT_EQ(f.nodes.size(), 3u);
    EXPECT_EQ(count_op(f, "MatMul"), 3);
    const ir::Node& scores = f.nodes[0];
    EXPECT_EQ(scores.attrs.get_int("kiln_trans_b", 0), 1);
    EXPECT_EQ(scores.attrs.get_int("kiln_trans_a", 0), 0);
    EXPECT_FLOAT_EQ(static_cast<float>(scores.attrs.get_float("kiln_alpha", 1.0)), 0.35f);
    EXPECT_EQ(scores.inputs[1], f.inputs[1]);  // reads k itself
    const ir::Node& proj = f.nodes[2];
    ASSERT_EQ(proj.inputs.size(), 4u);
    EXPECT_EQ(proj.inputs[3], f.inputs[3]);
    EXPECT_EQ(proj.outputs[0], f.outputs[0]);
  }
}

TEST(FuseEpilogueTest, TransposeOfTheFirstOperandAndRankTwoDefaultPerm) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({5, 3}));
  g.inputs = {x};
  const int w = g.add_constant("W", rand_f32({5, 4}, 31));
  const int xt = g.add_value("xt", DType::kF32), y = g.add_value("y", DType::kF32);
  g.add_node(ir::Node{"tr", "Transpose", {}, {x}, {xt}});  // no perm: reversed axes
  g.add_node(ir::Node{"mm", "MatMul", {}, {xt, w}, {y}});
  g.outputs = {y};
  EpilogueStats st;
  ir::Graph f = fuse_and_compare(g, {rand_f32({5, 3}, 32)}, &st);
  ASSERT_EQ(f.nodes.size(), 1u);
  EXPECT_EQ(f.nodes[0].attrs.get_int("kiln_trans_a", 0), 1);
  EXPECT_EQ(st.transposes_folded, 1u);
}

TEST(FuseEpilogueTest, TransposeScaleAndResidualNonPatternsStay) {
  // A permutation that moves more than the last two axes stays a Transpose.
  {
    ir::Graph g;
    const int x = g.add_value("x", DType::kF32, ir::Shape::of({5, 4, 3}));
    g.inputs = {x};
    const int xt = g.add_value("xt", DType::kF32), y = g.add_value("y", DType::kF32);
    ir::Node tr{"tr", "Transpose", {}, {x}, {xt}};
    tr.attrs.set_ints("perm", {2, 1, 0});
    g.add_node(std::move(tr));
    g.add_node(ir::Node{"mm", "MatMul", {}, {xt, g.add_constant("W", rand_f32({5, 2}, 33))}, {y}});
    g.outputs = {y};
    EpilogueStats st;
    ir::Graph f = fuse_and_compare(g, {rand_f32({5, 4, 3}, 34)}, &st);
    EXPECT_EQ(st.transposes_folded, 0u);
    EXPECT_EQ(count_op(f, "Transpose"), 1);
  }
  EpilogueStats st;
  // The transposed value read twice keeps its Transpose.
  {
    Attention b = attention({0, 1, 3, 2});
    const int kt = b.g.nodes[0].outputs[0];
    const int extra = b.g.add_value("extra", DType::kF32);
    b.g.add_node(ir::Node{"relu", "Relu", {}, {kt}, {extra}});
    b.g.outputs.push_back(extra);
    ir::Graph fb = fuse_and_compare(b.g, attention_inputs(), &st);
    EXPECT_EQ(count_op(fb, "Transpose"), 1);
  }
  // A scale that is not a single value, and a residual of other dims (broadcast), stay.
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({3, 4}));
  const int r = g.add_value("r", DType::kF32, ir::Shape::of({1, 6}));
  g.inputs = {x, r};
  const int w = g.add_constant("W", rand_f32({4, 6}, 41));
  const int s = g.add_constant("s", rand_f32({6}, 42));
  const int p = g.add_value("p", DType::kF32), q = g.add_value("q", DType::kF32), y = g.add_value("y", DType::kF32);
  g.add_node(ir::Node{"mm", "MatMul", {}, {x, w}, {p}});
  g.add_node(ir::Node{"mul", "Mul", {}, {p, s}, {q}});
  g.add_node(ir::Node{"mm2", "MatMul", {}, {q, g.add_constant("W2", rand_f32({6, 6}, 43))}, {g.add_value("p2", DType::kF32)}});
  g.add_node(ir::Node{"add", "Add", {}, {g.nodes.back().outputs[0], r}, {y}});
  g.outputs = {y};
  EpilogueStats st2;
  ir::Graph f2 = fuse_and_compare(g, {rand_f32({3, 4}, 44), rand_f32({1, 6}, 45)}, &st2);
  EXPECT_EQ(st2.matmul_scale, 0u);
  EXPECT_EQ(st2.matmul_residual, 0u);
  EXPECT_EQ(f2.nodes.size(), 4u);
}

TEST(FuseEpilogueTest, ExactGeluIsNotMapped) {
  Linear l = linear(rand_f32({7}, 16), false, "Gelu:none");
  ir::Graph f = fuse_and_compare(l.g, {rand_f32({2, 3, 5}, 17)}, nullptr);
  EXPECT_EQ(count_op(f, "Gelu"), 1);
  EXPECT_FALSE(first_op(f, "MatMul")->attrs.has("kiln_activation"));
  EXPECT_EQ(first_op(f, "MatMul")->inputs.size(), 3u);  // the bias still fuses
}

TEST(FuseEpilogueTest, BiasOnTheWrongAxisOrRaisingRankIsLeftAlone) {
  // [5, 1] broadcasts over rows: not a per-column bias; [3] does not match N = 7;
  // [1, 1, 1, 7] would raise the rank of the [2, 3, 7] result.
  for (const Dims& bd : {Dims{7, 1}, Dims{3, 7}, Dims{1, 1, 1, 7}}) {
    Linear l = linear(rand_f32(bd, 18));
    ir::Graph f = l.g;
    EpilogueStats st;
    ASSERT_TRUE(fuse_epilogues(f, &st).ok());
    EXPECT_EQ(st.matmul_bias, 0u) << dims_to_string(bd);
    EXPECT_EQ(count_op(f, "Add"), 1);
  }
  Linear l = linear(rand_f32({3}, 19), false, "", 3);  // N = 3 matches: fuses
  EpilogueStats st;
  fuse_and_compare(l.g, {rand_f32({2, 3, 5}, 20)}, &st);
  EXPECT_EQ(st.matmul_bias, 1u);
}

TEST(FuseEpilogueTest, AddOfNonConstantIsLeftAlone) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({4, 5}));
  const int b = g.add_value("b", DType::kF32, ir::Shape::of({6}));
  const int w = g.add_constant("W", rand_f32({5, 6}, 21));
  const int mm = g.add_value("mm", DType::kF32), y = g.add_value("y", DType::kF32);
  g.inputs = {x, b};
  g.add_node(ir::Node{"matmul", "MatMul", {}, {x, w}, {mm}});
  g.add_node(ir::Node{"add", "Add", {}, {mm, b}, {y}});
  g.outputs = {y};
  EpilogueStats st;
  ir::Graph f = fuse_and_compare(g, {rand_f32({4, 5}, 22), rand_f32({6}, 23)}, &st);
  EXPECT_EQ(st.nodes_removed, 0u);
  EXPECT_EQ(f.nodes.size(), 2u);
}

TEST(FuseEpilogueTest, IntermediateReadTwiceOrAGraphOutputIsLeftAlone) {
  // mm is read by Relu and by another node.
  {
    ir::Graph g;
    const int x = g.add_value("x", DType::kF32, ir::Shape::of({4, 5}));
    const int w = g.add_constant("W", rand_f32({5, 6}, 24));
    const int mm = g.add_value("mm"), r = g.add_value("r"), s = g.add_value("s");
    g.inputs = {x};
    g.add_node(ir::Node{"matmul", "MatMul", {}, {x, w}, {mm}});
    g.add_node(ir::Node{"relu", "Relu", {}, {mm}, {r}});
    g.add_node(ir::Node{"neg", "Neg", {}, {mm}, {s}});
    g.outputs = {r, s};
    EpilogueStats st;
    fuse_and_compare(g, {rand_f32({4, 5}, 25)}, &st);
    EXPECT_EQ(st.nodes_removed, 0u);
  }
  // Relu reads mm twice through one node: Add(mm, mm) is not a bias either.
  {
    ir::Graph g;
    const int x = g.add_value("x", DType::kF32, ir::Shape::of({4, 5}));
    const int w = g.add_constant("W", rand_f32({5, 6}, 26));
    const int mm = g.add_value("mm"), y = g.add_value("y");
    g.inputs = {x};
    g.add_node(ir::Node{"matmul", "MatMul", {}, {x, w}, {mm}});
    g.add_node(ir::Node{"add", "Add", {}, {mm, mm}, {y}});
    g.outputs = {y};
    EpilogueStats st;
    fuse_and_compare(g, {rand_f32({4, 5}, 27)}, &st);
    EXPECT_EQ(st.nodes_removed, 0u);
  }
  // mm is itself a graph output.
  {
    Linear l = linear(rand_f32({7}, 28), false, "Relu");
    l.g.outputs.push_back(l.mm);
    EpilogueStats st;
    ir::Graph f = fuse_and_compare(l.g, {rand_f32({2, 3, 5}, 29)}, &st);
    EXPECT_EQ(st.matmul_bias, 0u);
    EXPECT_EQ(st.nodes_removed, 0u);  // Add -> Relu is no pattern; MatMul keeps its output
    EXPECT_EQ(count_op(f, "Add"), 1);
    EXPECT_EQ(count_op(f, "Relu"), 1);
  }
}

// x [N, C, H, W] -> Conv(W, B?) -> c -> [BatchNormalization ->] [Relu ->] y
ir::Graph conv_graph(DType dt, bool conv_bias, bool bn, const std::string& act, int64_t group = 1) {
  auto rnd = [&](const Dims& d, unsigned seed) { return dt == DType::kF64 ? rand_f64(d, seed) : rand_f32(d, seed); };
  ir::Graph g;
  const int x = g.add_value("x", dt, ir::Shape::of({2, 4, 6, 5}));
  g.inputs = {x};
  std::vector<int> in = {x, g.add_constant("W", rnd({6, 4 / group, 3, 3}, 30))};
  if (conv_bias) in.push_back(g.add_constant("B", rnd({6}, 31)));
  int cur = g.add_value("c", dt);
  ir::Node conv{"conv", "Conv", {}, in, {cur}};
  conv.attrs.set_ints("pads", {1, 1, 1, 1});
  conv.attrs.set_int("group", group);
  g.add_node(std::move(conv));
  if (bn) {
    Tensor var = rnd({6}, 35);
    for (int64_t i = 0; i < 6; ++i) {  // positive variances
      if (dt == DType::kF64) var.data_as<double>()[i] = std::abs(var.data_as<double>()[i]) + 0.1;
      else var.data_as<float>()[i] = std::abs(var.data_as<float>()[i]) + 0.1f;
    }
    const int out = g.add_value("bn", dt);
    ir::Node n{"bn", "BatchNormalization", {},
               {cur, g.add_constant("scale", rnd({6}, 32)), g.add_constant("bias", rnd({6}, 33)),
                g.add_constant("mean", rnd({6}, 34)), g.add_constant("var", std::move(var))},
               {out}};
    n.attrs.set_float("epsilon", 1e-3);
    g.add_node(std::move(n));
    cur = out;
  }
  if (!act.empty()) {
    const int out = g.add_value("act", dt);
    g.add_node(ir::Node{"act", act, {}, {cur}, {out}});
    cur = out;
  }
  g.outputs = {cur};
  return g;
}

TEST(FuseEpilogueTest, ConvBatchNormFoldsExactly) {
  for (DType dt : {DType::kF32, DType::kF64}) {
    for (bool conv_bias : {false, true}) {
      for (int64_t group : {1, 2}) {
        ir::Graph g = conv_graph(dt, conv_bias, true, "Relu", group);
        const Tensor x = dt == DType::kF64 ? rand_f64({2, 4, 6, 5}, 36) : rand_f32({2, 4, 6, 5}, 36);
        EpilogueStats st;
        ir::Graph f = fuse_and_compare(g, {x}, &st, dt == DType::kF64 ? 1e-12 : 2e-5);
        EXPECT_EQ(st.batchnorm_folded, 1u);
        EXPECT_EQ(st.activations, 1u);
        EXPECT_EQ(st.nodes_removed, 2u);
        ASSERT_EQ(f.nodes.size(), 1u);
        EXPECT_EQ(f.nodes[0].inputs.size(), 3u);
        EXPECT_EQ(f.nodes[0].attrs.get_string("kiln_activation", ""), "Relu");
        f.prune();  // the unfolded W, B and statistics are no longer needed
        EXPECT_EQ(f.constants.size(), 2u);
      }
    }
  }
}

TEST(FuseEpilogueTest, BatchNormOfNonConstantWeightsStays) {
  ir::Graph g = conv_graph(DType::kF32, true, true, "");
  const int w = g.nodes[0].inputs[1];
  g.values[w].constant = -1;  // W becomes a graph input
  g.inputs.push_back(w);
  EpilogueStats st;
  fuse_and_compare(g, {rand_f32({2, 4, 6, 5}, 37), rand_f32({6, 4, 3, 3}, 38)}, &st);
  EXPECT_EQ(st.batchnorm_folded, 0u);
}

TEST(FuseEpilogueTest, GemmAndConvActivations) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({3, 4}));
  const int w = g.add_constant("W", rand_f32({6, 4}, 40)), c = g.add_constant("C", rand_f32({6}, 41));
  const int y = g.add_value("y"), z = g.add_value("z");
  g.inputs = {x};
  ir::Node gemm{"gemm", "Gemm", {}, {x, w, c}, {y}};
  gemm.attrs.set_int("transB", 1);
  g.add_node(std::move(gemm));
  ir::Node gelu{"gelu", "Gelu", {}, {y}, {z}};
  gelu.attrs.set_string("approximate", "tanh");
  g.add_node(std::move(gelu));
  g.outputs = {z};
  EpilogueStats st;
  ir::Graph f = fuse_and_compare(g, {rand_f32({3, 4}, 42)}, &st);
  ASSERT_EQ(f.nodes.size(), 1u);
  EXPECT_EQ(f.nodes[0].attrs.get_string("kiln_activation", ""), "Gelu:tanh");

  ir::Graph cg = conv_graph(DType::kF32, false, false, "Relu");
  f = fuse_and_compare(cg, {rand_f32({2, 4, 6, 5}, 43)}, &st);
  ASSERT_EQ(f.nodes.size(), 1u);
  EXPECT_EQ(f.nodes[0].attrs.get_string("kiln_activation", ""), "Relu");
  // Gelu(tanh) after a Conv has no epilogue: left alone.
  ir::Graph cg2 = conv_graph(DType::kF32, true, false, "Gelu");
  cg2.nodes[1].attrs.set_string("approximate", "tanh");
  f = fuse_and_compare(cg2, {rand_f32({2, 4, 6, 5}, 44)}, nullptr);
  EXPECT_EQ(f.nodes.size(), 2u);
}

TEST(FuseEpilogueTest, IntegerMatMulIsLeftAlone) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kI64, ir::Shape::of({2, 2}));
  const int w = g.add_constant("W", Tensor::from_vector<int64_t>(DType::kI64, {2, 2}, {1, -1, 2, 0}));
  const int mm = g.add_value("mm"), y = g.add_value("y");
  g.inputs = {x};
  g.add_node(ir::Node{"matmul", "MatMul", {}, {x, w}, {mm}});
  g.add_node(ir::Node{"relu", "Relu", {}, {mm}, {y}});
  g.outputs = {y};
  EpilogueStats st;
  ASSERT_TRUE(fuse_epilogues(g, &st).ok());
  EXPECT_EQ(st.nodes_removed, 0u);
}

}  // namespace
}  // namespace kiln::compiler
