// fuse_attention: MatMul(Q, K^T) * scale -> Softmax -> MatMul(., V) becomes one kiln.Attention
// node (ir/attention.h) that reads Q, K and V through views of the tensors the exporter's head
// split started from, and writes its result in the layout of a Transpose that follows it.
#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <vector>

#include "compiler/fuse_epilogue_internal.h"
#include "compiler/passes.h"
#include "ir/attention.h"
#include "ir/shape_inference.h"

namespace kiln::compiler {
namespace {

using epilogue::constant_of;
using epilogue::Uses;

// An operand's view while walking back from the MatMul: per logical axis (b, h, s, d) the axis of
// `value` holding it (-1: absent), and the fixed index along each other axis of `value`.
struct Trace {
  int value = -1;
  std::array<int, 4> axes{-1, -1, -1, -1};
  std::map<int, int64_t> fixed;
};

std::optional<int64_t> rank_of(const ir::Graph& g, int id) {
  if (const Tensor* t = constant_of(g, id)) return t->rank();
  const ir::Shape& s = g.values[static_cast<size_t>(id)].shape;
  if (!s.rank_known) return std::nullopt;
  return static_cast<int64_t>(s.dims.size());
}

std::optional<std::vector<int64_t>> const_ints(const ir::Graph& g, const ir::Node& n, size_t slot) {
  if (slot >= n.inputs.size() || n.inputs[slot] < 0) return std::nullopt;
  const Tensor* t = constant_of(g, n.inputs[slot]);
  if (!t || t->rank() > 1 || (t->dtype() != DType::kI64 && t->dtype() != DType::kI32)) return std::nullopt;
  std::vector<int64_t> v(static_cast<size_t>(t->numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = t->dtype() == DType::kI64 ? t->data_as<const int64_t>()[i] : t->data_as<const int32_t>()[i];
  return v;
}

// One step back through a Squeeze, Split or Transpose: `t` is rewritten in terms of the node's
// input. False (t unchanged) for any other producer or a case this does not follow.
bool step_back(const ir::Graph& g, const Uses& u, Trace& t) {
  const int p = u.producer[static_cast<size_t>(t.value)];
  if (p < 0) return false;
  const ir::Node& n = g.nodes[static_cast<size_t>(p)];
  if (n.inputs.empty() || n.inputs[0] < 0) return false;
  const int in = n.inputs[0];
  const std::optional<int64_t> in_rank = rank_of(g, in), out_rank = rank_of(g, t.value);
  if (!in_rank || !out_rank) return false;
  std::vector<int> to_in(static_cast<size_t>(*out_rank), -1);  // axis of the output -> axis of the input
  std::map<int, int64_t> extra;                                 // input axes newly fixed
  if (n.op == "Squeeze") {
    std::optional<std::vector<int64_t>> axes = const_ints(g, n, 1);
    if (!axes) return false;
    std::vector<char> squeezed(static_cast<size_t>(*in_rank), 0);
    for (int64_t a : *axes) {
      if (a < 0) a += *in_rank;
      if (a < 0 || a >= *in_rank) return false;
      squeezed[static_cast<size_t>(a)] = 1;
      extra[static_cast<int>(a)] = 0;
    }
    int o = 0;
    for (int64_t i = 0; i < *in_rank; ++i)
      if (!squeezed[static_cast<size_t>(i)]) {
        if (o >= *out_rank) return false;
        to_in[static_cast<size_t>(o++)] = static_cast<int>(i);
      }
    if (o != *out_rank) return false;
  } else if (n.op == "Split") {
    if (*in_rank != *out_rank) return false;
    int64_t axis = n.attrs.get_int("axis", 0);
    if (axis < 0) axis += *in_rank;
    if (axis < 0 || axis >= *in_rank) return false;
    const size_t j = static_cast<size_t>(std::find(n.outputs.begin(), n.outputs.end(), t.value) - n.outputs.begin());
    std::optional<std::vector<int64_t>> sizes = const_ints(g, n, 1);
    if (!sizes) {  // equal parts of a known dim
      const ir::Shape& s = g.values[static_cast<size_t>(in)].shape;
      const int64_t dim = s.dims[static_cast<size_t>(axis)].value;
      const int64_t parts = static_cast<int64_t>(n.outputs.size());
      if (dim < 0 || parts == 0 || dim % parts != 0) return false;
      sizes = std::vector<int64_t>(n.outputs.size(), dim / parts);
    }
    if (j >= sizes->size()) return false;
    int64_t offset = 0;
    for (size_t i = 0; i < j; ++i) offset += (*sizes)[i];
    // Only a part one wide along an axis the view already fixes: the fixed index moves by the
    // part's offset (a packed QKV tensor's slot).
    auto it = t.fixed.find(static_cast<int>(axis));
    if (it == t.fixed.end() || (*sizes)[j] != 1) return false;
    it->second += offset;
    for (int64_t i = 0; i < *in_rank; ++i) to_in[static_cast<size_t>(i)] = static_cast<int>(i);
  } else if (n.op == "Transpose") {
    std::vector<int64_t> perm = n.attrs.get_ints("perm");
    if (perm.empty())
      for (int64_t i = *in_rank; i-- > 0;) perm.push_back(i);
    if (static_cast<int64_t>(perm.size()) != *out_rank || *in_rank != *out_rank) return false;
    for (size_t i = 0; i < perm.size(); ++i) {
      if (perm[i] < 0 || perm[i] >= *in_rank) return false;
      to_in[i] = static_cast<int>(perm[i]);
    }
  } else {
    return false;
  }
  Trace next;
  next.value = in;
  for (int l = 0; l < 4; ++l) {
    const int a = t.axes[static_cast<size_t>(l)];
    next.axes[static_cast<size_t>(l)] = a < 0 ? -1 : to_in[static_cast<size_t>(a)];
  }
  for (const auto& [a, x] : t.fixed) next.fixed[to_in[static_cast<size_t>(a)]] = x;
  for (const auto& [a, x] : extra) next.fixed[a] = x;
  t = std::move(next);
  return true;
}

// The view of `value` as logical `axes`, followed back through Squeeze / Split / Transpose to
// the value they started from (`base`).
struct Operand {
  int base = -1;
  ir::AttentionView view;
};

Operand operand_of(const ir::Graph& g, const Uses& u, int value, std::array<int, 4> axes) {
  Trace t;
  t.value = value;
  t.axes = axes;
  while (step_back(g, u, t)) {
  }
  Operand o;
  o.base = t.value;
  o.view.axes = t.axes;
  o.view.index.assign(static_cast<size_t>(*rank_of(g, t.value)), 0);
  for (const auto& [a, x] : t.fixed) o.view.index[static_cast<size_t>(a)] = x;
  return o;
}

bool plain_matmul(const ir::Node& n) {
  return n.op == "MatMul" && n.inputs.size() == 2 && n.outputs.size() == 1 && !n.attrs.has("kiln_activation") &&
         !n.attrs.has("kiln_trans_a");
}

// The value's producer when it is read once, by the node being matched, and is no graph output.
int sole_producer(const Uses& u, int v) {
  if (v < 0 || u.count[static_cast<size_t>(v)] != 1 || u.output[static_cast<size_t>(v)]) return -1;
  return u.producer[static_cast<size_t>(v)];
}

// Matches the pattern ending at MatMul node `p2` and replaces that node by the kiln.Attention node
// in place; the first MatMul, the Softmax and a folded Transpose are marked removed. The head
// split nodes the operands were traced through stay for other readers (or are pruned).
bool fuse_at(ir::Graph& g, Uses& u, std::vector<char>& removed, int p2, AttentionStats* stats) {
  ir::Node& mm2 = g.nodes[static_cast<size_t>(p2)];
  if (!plain_matmul(mm2) || mm2.attrs.has("kiln_trans_b") || mm2.attrs.has("kiln_alpha")) return false;
  const int ps = sole_producer(u, mm2.inputs[0]);
  if (ps < 0 || removed[static_cast<size_t>(ps)]) return false;
  const ir::Node& sm = g.nodes[static_cast<size_t>(ps)];
  if (sm.op != "Softmax" || sm.inputs.size() != 1 || sm.outputs.size() != 1) return false;
  const int p1 = sole_producer(u, sm.inputs[0]);
  if (p1 < 0 || removed[static_cast<size_t>(p1)]) return false;
  const ir::Node& mm1 = g.nodes[static_cast<size_t>(p1)];
  if (!plain_matmul(mm1)) return false;
  const int q = mm1.inputs[0], k = mm1.inputs[1], v = mm2.inputs[1];
  if (q < 0 || k < 0 || v < 0) return false;
  const ir::Shape* shapes[3] = {&g.values[static_cast<size_t>(q)].shape, &g.values[static_cast<size_t>(k)].shape,
                                &g.values[static_cast<size_t>(v)].shape};
  const ir::Shape& so = g.values[static_cast<size_t>(mm2.outputs[0])].shape;
  for (const ir::Shape* s : shapes)
    if (!s->rank_known || s->dims.size() != shapes[0]->dims.size()) return false;
  const size_t rank = shapes[0]->dims.size();
  if (rank != 3 && rank != 4) return false;
  if (!so.rank_known || so.dims.size() != rank) return false;
  // Softmax over the last axis of the scores.
  const int64_t axis = sm.attrs.get_int("axis", -1);
  if (axis != -1 && axis != static_cast<int64_t>(rank) - 1) return false;
  // No broadcasting between the batch dims (the kernel indexes all three alike).
  for (size_t d = 0; d + 2 < rank; ++d)
    for (const ir::Shape* s : shapes)
      if (s->dims[d] != shapes[0]->dims[d] || (!s->dims[d].is_known() && s->dims[d].symbol.empty())) return false;
  const DType dt = g.values[static_cast<size_t>(q)].dtype;
  if (!epilogue::is_float(dt) || g.values[static_cast<size_t>(k)].dtype != dt ||
      g.values[static_cast<size_t>(v)].dtype != dt)
    return false;
  // Static head dims within the GPU kernel's bound.
  const bool trans_b = mm1.attrs.get_int("kiln_trans_b", 0) != 0;
  const ir::Dim& dq = shapes[0]->dims[rank - 1];
  const ir::Dim& dk = shapes[1]->dims[trans_b ? rank - 1 : rank - 2];
  const ir::Dim& dv = shapes[2]->dims[rank - 1];
  if (!dq.is_known() || dq != dk || !dv.is_known() || dq.value < 1 || dv.value < 1 ||
      dq.value > ir::kMaxAttentionHeadDim || dv.value > ir::kMaxAttentionHeadDim)
    return false;

  const int r = static_cast<int>(rank);
  const int b_axis = rank == 4 ? 0 : -1, h_axis = r - 3;
  ir::AttentionAttrs attrs;
  attrs.scale = mm1.attrs.get_float("kiln_alpha", 1.0);
  const Operand ops[3] = {operand_of(g, u, q, {b_axis, h_axis, r - 2, r - 1}),
                          operand_of(g, u, k, {b_axis, h_axis, trans_b ? r - 2 : r - 1, trans_b ? r - 1 : r - 2}),
                          operand_of(g, u, v, {b_axis, h_axis, r - 2, r - 1})};
  for (int o = 0; o < 3; ++o) attrs.view[o] = ops[o].view;
  attrs.out_axes = {b_axis, h_axis, r - 2, r - 1};
  attrs.out_rank = r;
  int out = mm2.outputs[0];
  // A Transpose reading the result alone: write in its layout.
  const std::optional<int> t = u.sole_reader(g, p2);
  if (t && !removed[static_cast<size_t>(*t)]) {
    const ir::Node& tr = g.nodes[static_cast<size_t>(*t)];
    std::vector<int64_t> perm = tr.attrs.get_ints("perm");
    if (perm.empty())
      for (int64_t i = r; i-- > 0;) perm.push_back(i);
    bool ok = tr.op == "Transpose" && tr.outputs.size() == 1 && static_cast<int>(perm.size()) == r;
    for (int64_t x : perm) ok = ok && x >= 0 && x < r;
    if (ok) {
      for (int l = 0; l < 4; ++l) {
        const int a = attrs.out_axes[static_cast<size_t>(l)];
        if (a >= 0)
          attrs.out_axes[static_cast<size_t>(l)] = static_cast<int>(std::find(perm.begin(), perm.end(), a) - perm.begin());
      }
      out = tr.outputs[0];
      removed[static_cast<size_t>(*t)] = 1;
      ++stats->transposes_folded;
    }
  }
  ir::Node fused;
  fused.name = mm2.name;
  fused.op = std::string(ir::kAttentionOp);
  fused.inputs = {ops[0].base, ops[1].base, ops[2].base};
  fused.outputs = {out};
  ir::set_attention_attrs(fused, attrs);
  removed[static_cast<size_t>(p1)] = 1;
  removed[static_cast<size_t>(ps)] = 1;
  mm2 = std::move(fused);
  return true;
}

}  // namespace

Status fuse_attention(ir::Graph& graph, AttentionStats* stats) {
  AttentionStats local;
  if (!stats) stats = &local;
  KILN_RETURN_IF_ERROR(graph.validate());
  (void)ir::infer_shapes(graph, nullptr);  // the pattern reads ranks and head dims
  Uses u = Uses::of(graph);
  std::vector<char> removed(graph.nodes.size(), 0);
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i] && fuse_at(graph, u, removed, static_cast<int>(i), stats)) ++stats->fused;
  if (stats->fused == 0) return Status();
  std::vector<ir::Node> kept;
  kept.reserve(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  for (ir::Value& v : graph.values) v.producer = -1;
  for (size_t n = 0; n < graph.nodes.size(); ++n)
    for (int o : graph.nodes[n].outputs)
      if (o >= 0) graph.values[static_cast<size_t>(o)].producer = static_cast<int>(n);
  const size_t before = graph.nodes.size();
  graph.prune();  // the head split nodes only the fused operands read
  stats->nodes_removed = before - graph.nodes.size();
  return graph.validate();
}

}  // namespace kiln::compiler
