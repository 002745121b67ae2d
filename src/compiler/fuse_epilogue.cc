// fuse_epilogues: folds the bias add and activation that follow a GEMM-like node into it, so a
// backend runs them in the GEMM's epilogue (cuBLASLt) instead of as separate kernels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

#include "compiler/fuse_epilogue_internal.h"
#include "compiler/passes.h"
#include "core/half.h"
#include "ir/shape_inference.h"

namespace kiln::compiler {
namespace epilogue {

Uses Uses::of(const ir::Graph& g) {
  Uses u;
  const size_t nv = g.values.size();
  u.count.assign(nv, 0);
  u.reader.assign(nv, -1);
  u.output.assign(nv, 0);
  u.producer.assign(nv, -1);
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    for (int in : g.nodes[n].inputs) {
      if (in < 0 || static_cast<size_t>(in) >= nv) continue;
      ++u.count[in];
      u.reader[in] = static_cast<int>(n);
    }
    for (int out : g.nodes[n].outputs)
      if (out >= 0 && static_cast<size_t>(out) < nv) u.producer[out] = static_cast<int>(n);
  }
  for (int o : g.outputs)
    if (o >= 0 && static_cast<size_t>(o) < nv) u.output[o] = 1;
  return u;
}

std::optional<int> Uses::sole_reader(const ir::Graph& g, int p) const {
  const ir::Node& node = g.nodes[static_cast<size_t>(p)];
  if (node.outputs.empty()) return std::nullopt;
  const int v = node.outputs[0];
  if (v < 0 || output[v] || count[v] != 1) return std::nullopt;
  for (size_t k = 1; k < node.outputs.size(); ++k)  // other outputs must be unused
    if (node.outputs[k] >= 0 && (count[node.outputs[k]] > 0 || output[node.outputs[k]]))
      return std::nullopt;
  return reader[v];
}

const Tensor* constant_of(const ir::Graph& g, int id) {
  if (id < 0 || static_cast<size_t>(id) >= g.values.size()) return nullptr;
  const int c = g.values[id].constant;
  if (c < 0 || static_cast<size_t>(c) >= g.constants.size()) return nullptr;
  return &g.constants[static_cast<size_t>(c)];
}

bool is_float(DType d) {
  return d == DType::kF32 || d == DType::kF64 || d == DType::kF16 || d == DType::kBF16;
}

std::optional<std::vector<double>> to_doubles(const Tensor& t) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<double> v(n);
  switch (t.dtype()) {
    case DType::kF32:
      for (size_t i = 0; i < n; ++i) v[i] = t.data_as<const float>()[i];
      return v;
    case DType::kF64:
      std::memcpy(v.data(), t.data(), n * sizeof(double));
      return v;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) v[i] = f16_to_f32(t.data_as<const uint16_t>()[i]);
      return v;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) v[i] = bf16_to_f32(t.data_as<const uint16_t>()[i]);
      return v;
    default:
      return std::nullopt;
  }
}

Tensor from_doubles(DType dtype, const Dims& dims, const std::vector<double>& values) {
  if (dtype == DType::kF64) return Tensor::from_vector<double>(dtype, dims, values);
  std::vector<float> f(values.begin(), values.end());
  return Tensor::from_vector<float>(DType::kF32, dims, f);
}

}  // namespace epilogue

namespace {

using epilogue::constant_of;
using epilogue::Uses;

// The element type a node computes in, from its second input (the weight), else its first.
DType compute_dtype(const ir::Graph& g, const ir::Node& n) {
  for (size_t k : {size_t{1}, size_t{0}}) {
    if (k >= n.inputs.size() || n.inputs[k] < 0) continue;
    if (const Tensor* t = constant_of(g, n.inputs[k])) return t->dtype();
    if (g.values[n.inputs[k]].dtype != DType::kUndefined) return g.values[n.inputs[k]].dtype;
  }
  return DType::kUndefined;
}

// Rank and dims of a value when known (constants always are).
std::optional<Dims> known_dims(const ir::Graph& g, int id) {
  if (const Tensor* t = constant_of(g, id)) return t->dims();
  const ir::Shape& s = g.values[id].shape;
  if (!s.rank_known) return std::nullopt;
  Dims d;
  for (const ir::Dim& dim : s.dims) d.push_back(dim.value);  // -1 where unknown
  return d;
}

// Moves reader `c`'s first output onto producer `p` and drops `c`.
void absorb(ir::Graph& g, Uses& u, std::vector<char>& removed, int p, int c) {
  ir::Node& pn = g.nodes[static_cast<size_t>(p)];
  ir::Node& cn = g.nodes[static_cast<size_t>(c)];
  const int mid = pn.outputs[0], out = cn.outputs[0];
  for (int in : cn.inputs)
    if (in >= 0) --u.count[in];
  u.count[mid] = 0;
  pn.outputs[0] = out;
  u.producer[out] = p;
  removed[static_cast<size_t>(c)] = 1;
}

// The node that alone reads node `p`'s first output when it is a binary `op` not yet absorbed,
// and its other operand.
struct BinaryReader {
  int node;
  int other;
};

std::optional<BinaryReader> binary_reader(const ir::Graph& g, const Uses& u, const std::vector<char>& removed, int p,
                                          std::string_view op) {
  const std::optional<int> c = u.sole_reader(g, p);
  if (!c || removed[static_cast<size_t>(*c)]) return std::nullopt;
  const ir::Node& n = g.nodes[static_cast<size_t>(*c)];
  if (n.op != op || n.inputs.size() != 2 || n.outputs.size() != 1) return std::nullopt;
  const int mid = g.nodes[static_cast<size_t>(p)].outputs[0];
  return BinaryReader{*c, n.inputs[0] == mid ? n.inputs[1] : n.inputs[0]};
}

// MatMul(x, W) -> Add(., b) with b a constant [N] or [1, .., 1, N] (N = W's last dim, or b a
// single element, expanded to N) -> MatMul(x, W, b).
bool fuse_matmul_bias(ir::Graph& g, Uses& u, std::vector<char>& removed, int p) {
  ir::Node& mm = g.nodes[static_cast<size_t>(p)];
  if (mm.op != "MatMul" || mm.inputs.size() != 2 || mm.attrs.has("kiln_activation")) return false;
  const std::optional<BinaryReader> add = binary_reader(g, u, removed, p, "Add");
  if (!add) return false;
  const int other = add->other;
  const Tensor* bias = constant_of(g, other);
  const DType dt = compute_dtype(g, mm);
  if (!bias || !epilogue::is_float(dt) || bias->dtype() != dt || bias->rank() == 0) return false;
  const std::optional<Dims> wd = known_dims(g, mm.inputs[1]);
  if (!wd || wd->size() < 2 || wd->back() < 1) return false;
  const int64_t n = wd->back();
  // Every dim of b but the last is 1, and the last is N (or 1: the same value for every column).
  for (int64_t i = 0; i + 1 < bias->rank(); ++i)
    if (bias->dim(i) != 1) return false;
  if (bias->dims().back() != n && bias->dims().back() != 1) return false;
  // A b of rank r > 1 must not raise the result's rank: with A of rank >= 2 the result has rank
  // max(rank A, rank W); a 1-D A drops a dim.
  if (bias->rank() > 1) {
    const std::optional<Dims> ad = known_dims(g, mm.inputs[0]);
    if (!ad || ad->size() < 2 || std::max(ad->size(), wd->size()) < static_cast<size_t>(bias->rank()))
      return false;
  }
  int bias_id = other;
  if (bias->rank() != 1 || bias->dim(0) != n) {
    Tensor vec;
    if (bias->dims().back() == n) {
      vec = bias->reshaped({n});
    } else {
      Result<Tensor> t = Tensor::empty(dt, {n});
      if (!t.ok()) return false;
      vec = *t;
      const size_t es = dtype_size(dt);
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(static_cast<char*>(vec.data()) + i * es, bias->data(), es);
    }
    bias_id = g.add_constant(g.values[other].name + "/bias" + std::to_string(n), std::move(vec));
    u.count.push_back(0);
    u.reader.push_back(-1);
    u.output.push_back(0);
    u.producer.push_back(-1);
  }
  ++u.count[bias_id];
  mm.inputs.push_back(bias_id);
  absorb(g, u, removed, p, add->node);
  return true;
}

// Transpose(X, perm swapping the last two axes only) -> MatMul: the MatMul reads X and takes the
// attribute kiln_trans_a / kiln_trans_b, so a GEMM reads X transposed in place (no copy).
bool fold_matmul_transpose(ir::Graph& g, Uses& u, std::vector<char>& removed, int p) {
  ir::Node& mm = g.nodes[static_cast<size_t>(p)];
  if (mm.op != "MatMul" || mm.inputs.size() < 2 || !epilogue::is_float(compute_dtype(g, mm))) return false;
  bool folded = false;
  for (size_t k : {size_t{0}, size_t{1}}) {
    const char* attr = k == 0 ? "kiln_trans_a" : "kiln_trans_b";
    const int v = mm.inputs[k];
    if (v < 0 || mm.attrs.has(attr) || u.count[v] != 1 || u.output[v]) continue;
    if (k == 1 && mm.inputs[0] == v) continue;  // MatMul(t, t): both slots read it
    const int t = u.producer[v];
    if (t < 0 || removed[static_cast<size_t>(t)]) continue;
    const ir::Node& tr = g.nodes[static_cast<size_t>(t)];
    if (tr.op != "Transpose" || tr.inputs.size() != 1 || tr.outputs.size() != 1 || tr.inputs[0] < 0) continue;
    const std::optional<Dims> xd = known_dims(g, tr.inputs[0]);
    if (!xd || xd->size() < 2) continue;
    const int64_t r = static_cast<int64_t>(xd->size());
    std::vector<int64_t> perm = tr.attrs.get_ints("perm", {});
    if (perm.empty() && r == 2) perm = {1, 0};  // no perm: the axes reversed
    if (static_cast<int64_t>(perm.size()) != r) continue;
    bool swap_last = true;
    for (int64_t i = 0; i < r; ++i)
      swap_last = swap_last && perm[static_cast<size_t>(i)] == (i < r - 2 ? i : (i == r - 2 ? r - 1 : r - 2));
    if (!swap_last) continue;
    const int x = tr.inputs[0];  // read once by the Transpose before, once by the MatMul now
    --u.count[v];
    u.reader[x] = p;
    mm.inputs[k] = x;
    mm.attrs.set_int(attr, 1);
    removed[static_cast<size_t>(t)] = 1;
    folded = true;
  }
  return folded;
}

// MatMul(A, B) (no bias, no activation) -> Mul by a constant single float value s (a scalar or
// all-ones dims no longer than the product's rank) -> MatMul with kiln_alpha = s, the factor a GEMM
// applies to A*B.
bool fold_matmul_scale(ir::Graph& g, Uses& u, std::vector<char>& removed, int p) {
  ir::Node& mm = g.nodes[static_cast<size_t>(p)];
  if (mm.op != "MatMul" || mm.inputs.size() != 2 || mm.attrs.has("kiln_activation") || mm.attrs.has("kiln_alpha"))
    return false;
  const DType dt = compute_dtype(g, mm);
  if (!epilogue::is_float(dt)) return false;
  const std::optional<BinaryReader> mul = binary_reader(g, u, removed, p, "Mul");
  if (!mul) return false;
  const Tensor* s = constant_of(g, mul->other);
  if (!s || s->dtype() != dt || s->numel() != 1) return false;
  const std::optional<Dims> ad = known_dims(g, mm.inputs[0]), bd = known_dims(g, mm.inputs[1]);
  if (!ad || !bd || ad->size() < 2 || bd->size() < 2) return false;
  if (static_cast<size_t>(s->rank()) > std::max(ad->size(), bd->size())) return false;  // would raise the rank
  const std::optional<std::vector<double>> v = epilogue::to_doubles(*s);
  if (!v || !std::isfinite((*v)[0])) return false;
  mm.attrs.set_float("kiln_alpha", (*v)[0]);
  absorb(g, u, removed, p, mul->node);
  return true;
}

// MatMul(A, B[, bias]) -> Add(., R) with R a value of exactly the product's dims and dtype (a
// residual connection) -> MatMul(A, B, bias or none, R): a GEMM adds R in its epilogue (beta = 1),
// before kiln_activation.
bool fuse_matmul_residual(ir::Graph& g, Uses& u, std::vector<char>& removed, int p) {
  ir::Node& mm = g.nodes[static_cast<size_t>(p)];
  if (mm.op != "MatMul" || mm.inputs.size() < 2 || mm.inputs.size() > 3 || mm.attrs.has("kiln_activation"))
    return false;
  const DType dt = compute_dtype(g, mm);
  if (!epilogue::is_float(dt)) return false;
  const std::optional<BinaryReader> add = binary_reader(g, u, removed, p, "Add");
  if (!add) return false;
  const int mid = mm.outputs[0], other = add->other;
  if (other < 0 || g.values[other].dtype != dt) return false;
  // Equal dims: each known and the same, or the same named (symbolic) dim.
  const ir::Shape& os = g.values[mid].shape;
  const ir::Shape& rs = g.values[other].shape;
  if (!os.rank_known || !rs.rank_known || os.dims.size() < 2 || os.dims != rs.dims) return false;
  for (const ir::Dim& d : os.dims)
    if (!d.is_known() && d.symbol.empty()) return false;
  if (mm.inputs.size() == 2) mm.inputs.push_back(-1);
  mm.inputs.push_back(other);
  // `other`'s use moves from the Add to the MatMul: its count is unchanged.
  u.reader[other] = p;
  absorb(g, u, removed, p, add->node);
  ++u.count[other];  // absorb() dropped the Add's reads
  return true;
}

// Gemm / MatMul / Conv -> Relu, and Gemm / MatMul -> Gelu(approximate="tanh"): the activation
// becomes the attribute kiln_activation. Exact (erf) Gelu has no GEMM epilogue and stays.
bool fuse_activation(ir::Graph& g, Uses& u, std::vector<char>& removed, int p) {
  ir::Node& node = g.nodes[static_cast<size_t>(p)];
  if (node.op != "Gemm" && node.op != "MatMul" && node.op != "Conv") return false;
  if (node.attrs.has("kiln_activation") || !epilogue::is_float(compute_dtype(g, node))) return false;
  const std::optional<int> c = u.sole_reader(g, p);
  if (!c || removed[static_cast<size_t>(*c)]) return false;
  const ir::Node& act = g.nodes[static_cast<size_t>(*c)];
  if (act.inputs.size() != 1 || act.outputs.size() != 1) return false;
  std::string name;
  if (act.op == "Relu") {
    name = "Relu";
  } else if (act.op == "Gelu" && node.op != "Conv" && act.attrs.get_string("approximate", "none") == "tanh") {
    name = "Gelu:tanh";
  } else {
    return false;
  }
  node.attrs.set_string("kiln_activation", name);
  absorb(g, u, removed, p, *c);
  return true;
}

}  // namespace

Status fuse_epilogues(ir::Graph& graph, EpilogueStats* stats) {
  EpilogueStats local;
  if (!stats) stats = &local;
  KILN_RETURN_IF_ERROR(graph.validate());
  // The patterns read value shapes; where inference cannot tell, they do not apply.
  (void)ir::infer_shapes(graph, nullptr);
  Uses u = Uses::of(graph);
  std::vector<char> removed(graph.nodes.size(), 0);
  stats->batchnorm_folded += epilogue::fold_conv_batchnorm(graph, u, removed);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (removed[i]) continue;
    const int p = static_cast<int>(i);
    if (fold_matmul_transpose(graph, u, removed, p)) ++stats->transposes_folded;
    if (fold_matmul_scale(graph, u, removed, p)) ++stats->matmul_scale;
    if (fuse_matmul_bias(graph, u, removed, p)) ++stats->matmul_bias;
    if (fuse_matmul_residual(graph, u, removed, p)) ++stats->matmul_residual;
    if (fuse_activation(graph, u, removed, p)) ++stats->activations;
  }
  std::vector<ir::Node> kept;
  kept.reserve(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(graph.nodes[i]));
  stats->nodes_removed += graph.nodes.size() - kept.size();
  graph.nodes = std::move(kept);
  for (ir::Value& v : graph.values) v.producer = -1;
  for (size_t n = 0; n < graph.nodes.size(); ++n)
    for (int o : graph.nodes[n].outputs)
      if (o >= 0) graph.values[o].producer = static_cast<int>(n);
  return graph.validate();
}

}  // namespace kiln::compiler
