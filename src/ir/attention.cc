#include "ir/attention.h"

#include <string>

#include "ir/op_registry.h"

namespace kiln::ir {
namespace {

const char* const kViewNames[3] = {"q", "k", "v"};

std::string where(const Node& node) { return "node '" + node.name + "' (" + node.op + ")"; }

Status check_axes(const Node& node, const std::string& what, const std::array<int, 4>& axes, int64_t rank,
                  bool permutation) {
  std::vector<char> seen(static_cast<size_t>(std::max<int64_t>(rank, 0)), 0);
  int present = 0;
  for (int l = 0; l < 4; ++l) {
    const int a = axes[static_cast<size_t>(l)];
    if (a == -1 && l < kAttnS) continue;
    if (a < 0 || a >= rank || seen[static_cast<size_t>(a)])
      return invalid_argument(where(node) + ": " + what + " must name distinct axes of a rank-" + std::to_string(rank) +
                              " tensor (s and d required)");
    seen[static_cast<size_t>(a)] = 1;
    ++present;
  }
  if (permutation && present != rank)
    return invalid_argument(where(node) + ": " + what + " must be a permutation of the output's axes");
  return Status();
}

}  // namespace

Result<AttentionAttrs> attention_attrs(const Node& node, std::span<const int64_t> input_ranks) {
  if (input_ranks.size() != 3) return invalid_argument(where(node) + ": takes Q, K and V");
  AttentionAttrs a;
  a.scale = node.attrs.get_float("scale", 1.0);
  for (int o = 0; o < 3; ++o) {
    const std::string name = kViewNames[o];
    const std::vector<int64_t> axes = node.attrs.get_ints(name + "_axes");
    if (axes.size() != 4) return invalid_argument(where(node) + ": " + name + "_axes must hold 4 axes");
    AttentionView& v = a.view[o];
    for (int l = 0; l < 4; ++l) {
      const int64_t x = axes[static_cast<size_t>(l)];
      v.axes[static_cast<size_t>(l)] = x < -1 || x > 64 ? -2 : static_cast<int>(x);
    }
    const int64_t rank = input_ranks[static_cast<size_t>(o)];
    KILN_RETURN_IF_ERROR(check_axes(node, name + "_axes", v.axes, rank, false));
    v.index = node.attrs.get_ints(name + "_index");
    if (v.index.empty()) v.index.assign(static_cast<size_t>(rank), 0);
    if (static_cast<int64_t>(v.index.size()) != rank)
      return invalid_argument(where(node) + ": " + name + "_index must hold one index per axis of the input");
  }
  const std::vector<int64_t> out = node.attrs.get_ints("out_axes", {0, 1, 2, 3});
  if (out.size() != 4) return invalid_argument(where(node) + ": out_axes must hold 4 axes");
  a.out_rank = 0;
  for (int l = 0; l < 4; ++l) {
    const int64_t x = out[static_cast<size_t>(l)];
    a.out_axes[static_cast<size_t>(l)] = x < -1 || x > 3 ? -2 : static_cast<int>(x);
    a.out_rank += x >= 0;
  }
  KILN_RETURN_IF_ERROR(check_axes(node, "out_axes", a.out_axes, a.out_rank, true));
  return a;
}

Result<AttentionGeometry> attention_geometry(const Node& node, const AttentionAttrs& attrs, const Dims& q,
                                             const Dims& k, const Dims& v) {
  const Dims* dims[3] = {&q, &k, &v};
  AttentionGeometry g;
  int64_t size[3][4];
  for (int o = 0; o < 3; ++o) {
    const Dims& d = *dims[o];
    const AttentionView& view = attrs.view[o];
    if (view.index.size() != d.size())
      return invalid_argument(where(node) + ": input " + std::to_string(o) + " has rank " + std::to_string(d.size()) +
                              ", the node was built for rank " + std::to_string(view.index.size()));
    std::vector<int64_t> strides(d.size(), 1);
    for (size_t i = d.size(); i-- > 1;) strides[i - 1] = strides[i] * d[i];
    std::vector<char> named(d.size(), 0);
    for (int l = 0; l < 4; ++l) {
      const int a = view.axes[static_cast<size_t>(l)];
      size[o][l] = a < 0 ? 1 : d[static_cast<size_t>(a)];
      g.stride[o][l] = a < 0 ? 0 : strides[static_cast<size_t>(a)];
      if (a >= 0) named[static_cast<size_t>(a)] = 1;
    }
    for (size_t i = 0; i < d.size(); ++i) {
      if (named[i]) continue;
      const int64_t x = view.index[i];
      if (x < 0 || x >= d[i])
        return invalid_argument(where(node) + ": " + kViewNames[o] + "_index " + std::to_string(x) +
                                " is out of range for axis " + std::to_string(i) + " of " + dims_to_string(d));
      g.offset[o] += x * strides[i];
    }
  }
  g.batch = size[0][kAttnB];
  g.heads = size[0][kAttnH];
  g.seq_q = size[0][kAttnS];
  g.dim = size[0][kAttnD];
  g.seq_k = size[1][kAttnS];
  g.dim_v = size[2][kAttnD];
  for (int o = 1; o < 3; ++o)
    if (size[o][kAttnB] != g.batch || size[o][kAttnH] != g.heads)
      return invalid_argument(where(node) + ": batch and heads of " + kViewNames[o] + " " + dims_to_string(*dims[o]) +
                              " differ from q " + dims_to_string(q));
  if (size[1][kAttnD] != g.dim)
    return invalid_argument(where(node) + ": q " + dims_to_string(q) + " and k " + dims_to_string(k) +
                            " have different feature sizes");
  if (size[2][kAttnS] != g.seq_k)
    return invalid_argument(where(node) + ": k " + dims_to_string(k) + " and v " + dims_to_string(v) +
                            " have different sequence lengths");
  const int64_t logical[4] = {g.batch, g.heads, g.seq_q, g.dim_v};
  g.out_dims.assign(static_cast<size_t>(attrs.out_rank), 1);
  for (int l = 0; l < 4; ++l) {
    const int a = attrs.out_axes[static_cast<size_t>(l)];
    if (a >= 0) g.out_dims[static_cast<size_t>(a)] = logical[l];
    else if (logical[l] != 1)
      return invalid_argument(where(node) + ": out_axes drops an axis of size " + std::to_string(logical[l]));
  }
  std::vector<int64_t> os(g.out_dims.size(), 1);
  for (size_t i = os.size(); i-- > 1;) os[i - 1] = os[i] * g.out_dims[i];
  for (int l = 0; l < 4; ++l) {
    const int a = attrs.out_axes[static_cast<size_t>(l)];
    g.stride[3][l] = a < 0 ? 0 : os[static_cast<size_t>(a)];
  }
  return g;
}

void set_attention_attrs(Node& node, const AttentionAttrs& attrs) {
  node.attrs.set_float("scale", attrs.scale);
  for (int o = 0; o < 3; ++o) {
    const std::string name = kViewNames[o];
    const AttentionView& v = attrs.view[o];
    node.attrs.set_ints(name + "_axes", {v.axes[0], v.axes[1], v.axes[2], v.axes[3]});
    node.attrs.set_ints(name + "_index", v.index);
  }
  const std::array<int, 4>& o = attrs.out_axes;
  node.attrs.set_ints("out_axes", {o[0], o[1], o[2], o[3]});
}

// Shape inference: the output is [B, H, Sq, Dv] (from Q and V's views) permuted by out_axes.
Status infer_attention(InferContext& ctx) {
  ctx.output(0).dtype = ctx.input(0).dtype;
  int64_t ranks[3];
  for (int o = 0; o < 3; ++o) {
    const Shape& s = ctx.input(static_cast<size_t>(o)).shape;
    if (!s.rank_known) return Status();
    ranks[o] = static_cast<int64_t>(s.dims.size());
  }
  Result<AttentionAttrs> attrs = attention_attrs(ctx.node(), ranks);
  if (!attrs.ok()) return invalid_data(attrs.status().message());
  auto dim_of = [&](int o, int l) {
    const int a = attrs->view[o].axes[static_cast<size_t>(l)];
    return a < 0 ? Dim::known(1) : ctx.input(static_cast<size_t>(o)).shape.dims[static_cast<size_t>(a)];
  };
  const Dim logical[4] = {dim_of(0, kAttnB), dim_of(0, kAttnH), dim_of(0, kAttnS), dim_of(2, kAttnD)};
  Shape out;
  out.rank_known = true;
  out.dims.assign(static_cast<size_t>(attrs->out_rank), Dim::known(1));
  for (int l = 0; l < 4; ++l) {
    const int a = attrs->out_axes[static_cast<size_t>(l)];
    if (a >= 0) out.dims[static_cast<size_t>(a)] = logical[l];
  }
  ctx.output(0).shape = std::move(out);
  return Status();
}

}  // namespace kiln::ir
