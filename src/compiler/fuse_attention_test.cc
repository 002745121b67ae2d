// fuse_attention: the exporter's attention pattern becomes one kiln.Attention node reading the
// packed projection through views, results stay those of the unfused graph (CPU kernels), and
// the patterns it must leave alone are left alone.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"
#include "ir/attention.h"

namespace kiln::compiler {
namespace {

Tensor rand_f32(const Dims& d, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(dims_numel(d)));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector<float>(DType::kF32, d, v);
}

Tensor i64s(std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(DType::kI64, {static_cast<int64_t>(v.size())}, v); }

std::vector<Tensor> evaluate(const ir::Graph& g, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> vals(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i)
    if (g.values[i].constant >= 0) vals[i] = g.constants[static_cast<size_t>(g.values[i].constant)];
  for (size_t i = 0; i < g.inputs.size(); ++i) vals[static_cast<size_t>(g.inputs[i])] = inputs[i];
  for (const ir::Node& n : g.nodes) {
    std::vector<Tensor> in, out(n.outputs.size());
    for (int id : n.inputs) in.push_back(id >= 0 ? vals[static_cast<size_t>(id)] : Tensor());
    Status s = cpu::run_node(n, in, out);
    EXPECT_TRUE(s.ok()) << n.op << ": " << s.to_string();
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (n.outputs[k] >= 0) vals[static_cast<size_t>(n.outputs[k])] = out[k];
  }
  std::vector<Tensor> res;
  for (int o : g.outputs) res.push_back(vals[static_cast<size_t>(o)]);
  return res;
}

int count_op(const ir::Graph& g, std::string_view op) {
  int n = 0;
  for (const ir::Node& node : g.nodes) n += node.op == op;
  return n;
}

// The encoder's attention as the PyTorch exporter writes it (bench/harness/models.py):
// x [B, S, 3*H*D] -> Reshape [B, S, 3, H, D] -> Transpose(2, 0, 3, 1, 4) -> Split(axis 0) ->
// Squeeze(0) x3 -> MatMul(q, k, trans_b, alpha) -> Softmax -> MatMul(., v) -> Transpose(0, 2, 1, 3)
// -> Reshape [B, S, H*D].
struct Options {
  int64_t b = 2, s = 9, h = 3, d = 8;
  int64_t softmax_axis = -1;
  bool scores_read_twice = false;
  bool trans_b = true;  // else an explicit Transpose of K feeds the MatMul
};

ir::Graph encoder_attention(const Options& o) {
  ir::Graph g;
  auto v = [&](const std::string& name) { return g.add_value(name, DType::kF32); };
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({o.b, o.s, 3 * o.h * o.d}));
  g.inputs = {x};
  const int r = v("r"), t = v("t"), p0 = v("p0"), p1 = v("p1"), p2 = v("p2"), q = v("q"), k = v("k"), vv = v("v");
  g.add_node(ir::Node{"reshape", "Reshape", {}, {x, g.add_constant("shape", i64s({o.b, o.s, 3, o.h, o.d}))}, {r}});
  ir::Node tr{"transpose", "Transpose", {}, {r}, {t}};
  tr.attrs.set_ints("perm", {2, 0, 3, 1, 4});
  g.add_node(std::move(tr));
  ir::Node split{"split", "Split", {}, {t, g.add_constant("split", i64s({1, 1, 1}))}, {p0, p1, p2}};
  split.attrs.set_int("axis", 0);
  g.add_node(std::move(split));
  const int axes = g.add_constant("axes", i64s({0}));
  g.add_node(ir::Node{"sq0", "Squeeze", {}, {p0, axes}, {q}});
  g.add_node(ir::Node{"sq1", "Squeeze", {}, {p1, axes}, {k}});
  g.add_node(ir::Node{"sq2", "Squeeze", {}, {p2, axes}, {vv}});
  int kin = k;
  if (!o.trans_b) {
    kin = v("kt");
    ir::Node kt{"kt", "Transpose", {}, {k}, {kin}};
    kt.attrs.set_ints("perm", {0, 1, 3, 2});
    g.add_node(std::move(kt));
  }
  const int s = v("scores"), pr = v("probs"), a = v("att"), at = v("att_t"), y = v("y");
  ir::Node mm1{"mm1", "MatMul", {}, {q, kin}, {s}};
  if (o.trans_b) mm1.attrs.set_int("kiln_trans_b", 1);
  mm1.attrs.set_float("kiln_alpha", 1.0 / std::sqrt(static_cast<double>(o.d)));
  g.add_node(std::move(mm1));
  ir::Node sm{"softmax", "Softmax", {}, {s}, {pr}};
  sm.attrs.set_int("axis", o.softmax_axis);
  g.add_node(std::move(sm));
  g.add_node(ir::Node{"mm2", "MatMul", {}, {pr, vv}, {a}});
  ir::Node tr2{"transpose2", "Transpose", {}, {a}, {at}};
  tr2.attrs.set_ints("perm", {0, 2, 1, 3});
  g.add_node(std::move(tr2));
  g.add_node(ir::Node{"reshape2", "Reshape", {}, {at, g.add_constant("shape2", i64s({o.b, o.s, o.h * o.d}))}, {y}});
  g.outputs = {y};
  if (o.scores_read_twice) g.outputs.push_back(s);
  return g;
}

ir::Graph fuse_and_compare(const ir::Graph& g, const Options& o, AttentionStats* stats) {
  ir::Graph fused = g;
  Status s = fuse_attention(fused, stats);
  EXPECT_TRUE(s.ok()) << s.to_string();
  EXPECT_TRUE(fused.validate().ok());
  const std::vector<Tensor> in = {rand_f32({o.b, o.s, 3 * o.h * o.d}, 5)};
  const std::vector<Tensor> want = evaluate(g, in), got = evaluate(fused, in);
  EXPECT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    EXPECT_EQ(got[i].dims(), want[i].dims());
    int64_t bad = 0;
    for (int64_t e = 0; e < want[i].numel() && got[i].numel() == want[i].numel(); ++e)
      bad += !(std::fabs(got[i].data_as<const float>()[e] - want[i].data_as<const float>()[e]) <= 2e-6);
    EXPECT_EQ(bad, 0) << "output " << i;
  }
  return fused;
}

TEST(FuseAttentionTest, ExportedEncoderAttentionBecomesOneNodeOverThePackedProjection) {
  for (bool trans_b : {true, false}) {
    Options o;
    o.trans_b = trans_b;
    AttentionStats st;
    ir::Graph f = fuse_and_compare(encoder_attention(o), o, &st);
    EXPECT_EQ(st.fused, 1u);
    EXPECT_EQ(st.transposes_folded, 1u);
    // Left: the two Reshapes (views) and the attention node; the head split is pruned.
    ASSERT_EQ(f.nodes.size(), 3u) << "trans_b " << trans_b;
    EXPECT_EQ(count_op(f, ir::kAttentionOp), 1);
    const ir::Node& att = f.nodes[1];
    ASSERT_EQ(att.op, ir::kAttentionOp);
    const int r = f.nodes[0].outputs[0];
    EXPECT_EQ(att.inputs, (std::vector<int>{r, r, r}));  // Q, K and V all read the packed tensor
    EXPECT_EQ(att.attrs.get_ints("q_axes"), (std::vector<int64_t>{0, 3, 1, 4}));
    EXPECT_EQ(att.attrs.get_ints("k_index"), (std::vector<int64_t>{0, 0, 1, 0, 0}));
    EXPECT_EQ(att.attrs.get_ints("v_index"), (std::vector<int64_t>{0, 0, 2, 0, 0}));
    EXPECT_EQ(att.attrs.get_ints("out_axes"), (std::vector<int64_t>{0, 2, 1, 3}));  // written [B, S, H, D]
  }
}

TEST(FuseAttentionTest, LeavesOtherPatternsAlone) {
  Options other_axis;
  other_axis.softmax_axis = 2;  // over queries, not keys
  Options twice;
  twice.scores_read_twice = true;  // the scores are a graph output too
  for (const Options& o : {other_axis, twice}) {
    ir::Graph g = encoder_attention(o);
    const size_t before = g.nodes.size();
    AttentionStats st;
    ASSERT_TRUE(fuse_attention(g, &st).ok());
    EXPECT_EQ(st.fused, 0u);
    EXPECT_EQ(g.nodes.size(), before);
  }
  // A head dim over the GPU kernel's bound stays unfused.
  Options wide;
  wide.h = 1;
  wide.d = ir::kMaxAttentionHeadDim + 8;
  ir::Graph g = encoder_attention(wide);
  AttentionStats st;
  ASSERT_TRUE(fuse_attention(g, &st).ok());
  EXPECT_EQ(st.fused, 0u);
}

// K broadcast over the heads (one K for all heads, as multi-query attention has) is not fused:
// the node indexes Q, K and V by the same batch and head.
TEST(FuseAttentionTest, BroadcastBatchDimsAreNotFused) {
  ir::Graph g;
  const int q = g.add_value("q", DType::kF32, ir::Shape::of({1, 4, 6, 8}));
  const int k = g.add_value("k", DType::kF32, ir::Shape::of({1, 1, 6, 8}));
  const int v = g.add_value("v", DType::kF32, ir::Shape::of({1, 1, 6, 8}));
  g.inputs = {q, k, v};
  const int s = g.add_value("s", DType::kF32), p = g.add_value("p", DType::kF32), y = g.add_value("y", DType::kF32);
  ir::Node mm1{"mm1", "MatMul", {}, {q, k}, {s}};
  mm1.attrs.set_int("kiln_trans_b", 1);
  g.add_node(std::move(mm1));
  g.add_node(ir::Node{"sm", "Softmax", {}, {s}, {p}});
  g.add_node(ir::Node{"mm2", "MatMul", {}, {p, v}, {y}});
  g.outputs = {y};
  AttentionStats st;
  ASSERT_TRUE(fuse_attention(g, &st).ok());
  EXPECT_EQ(st.fused, 0u);
}

// Shape inference gives the fused node's output the layout out_axes names; bad attributes are
// errors naming the node, on the CPU kernel as well.
TEST(FuseAttentionTest, NodeAttributesAreCheckedAndInferred) {
  Options o;
  ir::Graph f = encoder_attention(o);
  ASSERT_TRUE(fuse_attention(f, nullptr).ok());
  const ir::Node& att = f.nodes[1];
  EXPECT_EQ(f.values[static_cast<size_t>(att.outputs[0])].shape, ir::Shape::of({o.b, o.s, o.h, o.d}));
  ir::Node bad = att;
  bad.attrs.set_ints("q_axes", {0, 3, 3, 4});  // an axis twice
  std::vector<Tensor> in(3, rand_f32({o.b, o.s, 3, o.h, o.d}, 1)), out(1);
  Status s = cpu::run_node(bad, in, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("q_axes"), std::string::npos) << s.to_string();
  bad = att;
  bad.attrs.set_ints("k_index", {0, 0, 3, 0, 0});  // slot 3 of 3
  s = cpu::run_node(bad, in, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.to_string();
  bad = att;
  bad.attrs.set_ints("out_axes", {0, 2, 1, 5});
  s = cpu::run_node(bad, in, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::compiler
