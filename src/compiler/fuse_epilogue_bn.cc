// Conv -> BatchNormalization (inference) folded into the Conv's weights and bias:
//   a[m] = scale[m] / sqrt(var[m] + epsilon)
//   W'[m, ...] = W[m, ...] * a[m]
//   B'[m] = (B[m] - mean[m]) * a[m] + bias[m]      (B = 0 when the Conv has none)
// computed in f64 and stored in W's dtype (f32 or f64 only: half weights are left alone, where the
// rounding of the folded weights could differ visibly from the two-step result).
#include <algorithm>
#include <cmath>
#include <string>

#include "compiler/fuse_epilogue_internal.h"

namespace kiln::compiler::epilogue {
namespace {

bool fold_one(ir::Graph& g, Uses& u, std::vector<char>& removed, int p) {
  const ir::Node& conv = g.nodes[static_cast<size_t>(p)];
  if (conv.op != "Conv" || conv.inputs.size() < 2 || conv.attrs.has("kiln_activation")) return false;
  const std::optional<int> c = u.sole_reader(g, p);
  if (!c || removed[static_cast<size_t>(*c)]) return false;
  const ir::Node& bn = g.nodes[static_cast<size_t>(*c)];
  if (bn.op != "BatchNormalization" || bn.inputs.size() != 5 || bn.inputs[0] != conv.outputs[0]) return false;
  if (bn.attrs.get_int("training_mode", 0) != 0) return false;
  for (size_t k = 1; k < bn.outputs.size(); ++k)
    if (bn.outputs[k] >= 0) return false;
  const Tensor* w = constant_of(g, conv.inputs[1]);
  if (!w || (w->dtype() != DType::kF32 && w->dtype() != DType::kF64) || w->rank() < 3) return false;
  const int64_t m = w->dim(0);
  const bool has_b = conv.inputs.size() > 2 && conv.inputs[2] >= 0;
  const Tensor* b = has_b ? constant_of(g, conv.inputs[2]) : nullptr;
  if (has_b && (!b || b->dtype() != w->dtype() || b->rank() != 1 || b->dim(0) != m)) return false;
  std::vector<double> stat[4];  // scale, bias, mean, var
  for (size_t k = 0; k < 4; ++k) {
    const Tensor* t = constant_of(g, bn.inputs[k + 1]);
    if (!t || t->rank() != 1 || t->dim(0) != m) return false;
    std::optional<std::vector<double>> v = to_doubles(*t);
    if (!v) return false;
    stat[k] = std::move(*v);
  }
  const double eps = bn.attrs.get_float("epsilon", 1e-5);
  std::vector<double> a(static_cast<size_t>(m));
  for (size_t i = 0; i < a.size(); ++i) {
    const double denom = std::sqrt(stat[3][i] + eps);
    if (!(denom > 0) || !std::isfinite(denom)) return false;  // a degenerate BN stays as it is
    a[i] = stat[0][i] / denom;
  }
  std::optional<std::vector<double>> wv = to_doubles(*w);
  std::vector<double> bv(static_cast<size_t>(m), 0.0);
  if (b) bv = *to_doubles(*b);
  const size_t per = static_cast<size_t>(w->numel() / std::max<int64_t>(m, 1));
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < per; ++j) (*wv)[i * per + j] *= a[i];
    bv[i] = (bv[i] - stat[2][i]) * a[i] + stat[1][i];
  }
  const std::string base = g.values[conv.outputs[0]].name;
  const DType dt = w->dtype();
  Tensor new_w = from_doubles(dt, w->dims(), *wv), new_b = from_doubles(dt, {m}, bv);
  // add_constant may move the constants: w and b must not be used after here.
  const int w_id = g.add_constant(base + "/bn_folded_W", std::move(new_w));
  const int b_id = g.add_constant(base + "/bn_folded_B", std::move(new_b));
  for (int k = 0; k < 2; ++k) {  // the two new constants, read by the Conv
    u.count.push_back(1);
    u.reader.push_back(p);
    u.output.push_back(0);
    u.producer.push_back(-1);
  }
  ir::Node& cv = g.nodes[static_cast<size_t>(p)];
  for (size_t k = 1; k < cv.inputs.size(); ++k)
    if (cv.inputs[k] >= 0) --u.count[cv.inputs[k]];
  cv.inputs.resize(3);
  cv.inputs[1] = w_id;
  cv.inputs[2] = b_id;
  ir::Node& bnn = g.nodes[static_cast<size_t>(*c)];
  for (int in : bnn.inputs)
    if (in >= 0) --u.count[in];
  const int out = bnn.outputs[0];
  cv.outputs[0] = out;
  u.producer[out] = p;
  removed[static_cast<size_t>(*c)] = 1;
  return true;
}

}  // namespace

size_t fold_conv_batchnorm(ir::Graph& g, Uses& u, std::vector<char>& removed) {
  size_t folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i] && fold_one(g, u, removed, static_cast<int>(i))) ++folded;
  return folded;
}

}  // namespace kiln::compiler::epilogue
