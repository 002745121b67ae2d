// Reductions on the GPU: Reduce*, GlobalAveragePool / GlobalMaxPool, Softmax / LogSoftmax and
// LayerNormalization, all as [outer, R, inner] kernels (kernels/reduce.h). Reduced axes that are
// not adjacent are first moved last by a strided copy.
#include <algorithm>

#include "backends/cpu/kernel.h"
#include "backends/cuda/kernels/common.h"
#include "backends/cuda/kernels/reduce.h"
#include "backends/cuda/ops/launch.h"

namespace kiln::cuda {
namespace {

namespace k = kernels;

unsigned row_block(int64_t r) {
  unsigned b = 32;
  while (b < 256 && static_cast<int64_t>(b) < r) b *= 2;
  return b;
}

unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 1 << 20)); }

// Launches a reduce/softmax kernel over [outer, R, inner].
Status launch_reduce(RunContext& ctx, const k::ReduceSpec& spec0, void* out, const void* in, long long outer,
                     long long r, long long inner) {
  k::ReduceSpec spec = spec0;
  spec.layout = inner == 1 ? k::ReduceLayout::kRows : k::ReduceLayout::kColumns;
  void* op = out;
  const void* ip = in;
  void* args[] = {&op, &ip, &outer, &r, &inner};
  const bool rows = spec.layout == k::ReduceLayout::kRows;
  const unsigned block = rows ? row_block(r) : 256;
  const unsigned grid = rows ? row_grid(outer) : k::grid_for(outer * inner, 256, ctx.device().multiprocessors);
  if (outer * inner == 0) return Status();
  k::Bake bake{{k::bake_i64("outer", outer), k::bake_i64("R", r), k::bake_i64("inner", inner)}, block};
  return ctx.launch(specialisable(k::reduce_key(spec), [spec] { return k::reduce_source(spec); }, std::move(bake)),
                    grid, block, args);
}

class ReduceHandler final : public OpHandler {
 public:
  bool host_input(const ir::Node&, size_t i) const override { return i == 1; }
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    if (in.empty() || !in[0].defined()) return invalid_argument(ctx.where() + ": data is missing");
    const Tensor& x = in[0];
    const int64_t rank = x.rank();
    std::vector<int64_t> axes;
    if (in.size() > 1 && in[1].defined()) {
      KILN_ASSIGN_OR_RETURN(axes, cpu::read_int_list(node, in[1], "axes"));
    } else {
      axes = node.attrs.get_ints("axes");
    }
    const bool keepdims = node.attrs.get_int("keepdims", 1) != 0;
    if (axes.empty()) {
      if (node.attrs.get_int("noop_with_empty_axes", 0) != 0) {
        out[0] = x;
        return Status();
      }
      for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
    }
    std::vector<bool> reduced(static_cast<size_t>(rank), false);
    for (int64_t a : axes) {
      KILN_ASSIGN_OR_RETURN(int64_t n, cpu::normalize_axis(node, a, rank));
      reduced[static_cast<size_t>(n)] = true;
    }
    return reduce(ctx, node.op, x, reduced, keepdims, out);
  }

  // Reduces the dims marked in `reduced`.
  static Status reduce(RunContext& ctx, const std::string& op, const Tensor& x, const std::vector<bool>& reduced,
                       bool keepdims, std::span<Tensor> out) {
    const size_t rank = x.dims().size();
    Dims out_dims;
    for (size_t d = 0; d < rank; ++d) {
      if (!reduced[d]) out_dims.push_back(x.dims()[d]);
      else if (keepdims) out_dims.push_back(1);
    }
    // Adjacent reduced dims (ignoring size-1 dims) reduce in place; otherwise move them last.
    int first = -1, last = -1;
    bool adjacent = true;
    for (size_t d = 0; d < rank; ++d) {
      if (!reduced[d] || x.dims()[d] == 1) continue;
      if (first < 0) first = static_cast<int>(d);
      else
        for (size_t e = static_cast<size_t>(last) + 1; e < d; ++e)
          if (!reduced[e] && x.dims()[e] != 1) adjacent = false;
      last = static_cast<int>(d);
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), out_dims));
    k::ReduceSpec spec{op, x.dtype(), x.dtype()};
    long long outer = 1, r = 1, inner = 1;
    Tensor src = x;
    if (first < 0) {  // only size-1 dims are reduced: R = 1, one thread per element
      inner = x.numel();
    } else if (adjacent) {
      for (int d = 0; d < first; ++d) outer *= x.dims()[static_cast<size_t>(d)];
      for (int d = first; d <= last; ++d) r *= x.dims()[static_cast<size_t>(d)];
      for (size_t d = static_cast<size_t>(last) + 1; d < rank; ++d) inner *= x.dims()[d];
    } else {
      Dims perm_dims;
      std::vector<int64_t> perm_strides;
      const std::vector<int64_t> xs = contiguous_strides(x.dims());
      for (int pass = 0; pass < 2; ++pass)
        for (size_t d = 0; d < rank; ++d)
          if (reduced[d] == (pass == 1)) {
            perm_dims.push_back(x.dims()[d]);
            perm_strides.push_back(xs[d]);
            (pass == 1 ? r : outer) *= x.dims()[d];
          }
      KILN_ASSIGN_OR_RETURN(src, ctx.alloc(x.dtype(), perm_dims));
      KILN_RETURN_IF_ERROR(strided_copy(ctx, src.data(), contiguous_strides(perm_dims), x.data(), perm_strides,
                                        perm_dims, x.dtype()));
    }
    KILN_RETURN_IF_ERROR(launch_reduce(ctx, spec, y.data(), src.data(), outer, r, inner));
    out[0] = y;
    return Status();
  }
};

class GlobalPoolHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.empty() || !in[0].defined() || in[0].rank() < 3)
      return invalid_argument(ctx.where() + ": X must be [N, C, spatial...]");
    std::vector<bool> reduced(in[0].dims().size(), true);
    reduced[0] = reduced[1] = false;
    const bool is_max = ctx.node().op == "GlobalMaxPool";
    if (!dtype_is_float(in[0].dtype())) return unsupported(ctx.where() + ": non-float dtype");
    return ReduceHandler::reduce(ctx, is_max ? "ReduceMax" : "ReduceMean", in[0], reduced, true, out);
  }
};

class SoftmaxHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.empty() || !in[0].defined()) return invalid_argument(ctx.where() + ": input is missing");
    const Tensor& x = in[0];
    KILN_ASSIGN_OR_RETURN(int64_t axis, cpu::normalize_axis(ctx.node(), ctx.node().attrs.get_int("axis", -1), x.rank()));
    long long outer = 1, r = x.rank() == 0 ? 1 : x.dim(axis), inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), x.dims()));
    k::ReduceSpec spec{ctx.node().op, x.dtype(), x.dtype()};
    if (r > 0) KILN_RETURN_IF_ERROR(launch_reduce(ctx, spec, y.data(), x.data(), outer, r, inner));
    out[0] = y;
    return Status();
  }
};

class LayerNormHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    if (in.size() < 2 || !in[0].defined() || !in[1].defined()) return invalid_argument(ctx.where() + ": takes X and Scale");
    if (node.attrs.get_int("stash_type", 1) != 1) return unsupported(ctx.where() + ": stash_type other than float");
    const Tensor& x = in[0];
    if (x.rank() == 0) return invalid_argument(ctx.where() + ": X must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(int64_t axis, cpu::normalize_axis(node, node.attrs.get_int("axis", -1), x.rank()));
    long long rows = 1, r = 1;
    for (int64_t d = 0; d < axis; ++d) rows *= x.dim(d);
    for (int64_t d = axis; d < x.rank(); ++d) r *= x.dim(d);
    const Dims norm_dims(x.dims().begin() + axis, x.dims().end());
    Tensor params[2] = {in[1], in.size() > 2 ? in[2] : Tensor()};
    bool scalar[2] = {false, false};
    for (int i = 0; i < 2; ++i) {
      Tensor& p = params[i];
      if (!p.defined()) continue;
      if (p.dtype() != params[0].dtype()) return unsupported(ctx.where() + ": Scale and B of different dtypes");
      if (p.numel() == 1) {
        scalar[i] = true;
      } else if (p.numel() != r) {  // broadcast within the normalized dims: expand it first
        if (p.rank() > static_cast<int64_t>(norm_dims.size()))
          return invalid_argument(ctx.where() + ": " + (i ? "B " : "Scale ") + dims_to_string(p.dims()) +
                                  " does not broadcast to the normalized shape " + dims_to_string(norm_dims));
        for (size_t d = 0; d < p.dims().size(); ++d) {
          int64_t want = norm_dims[norm_dims.size() - p.dims().size() + d];
          if (p.dims()[d] != 1 && p.dims()[d] != want)
            return invalid_argument(ctx.where() + ": " + (i ? "B " : "Scale ") + dims_to_string(p.dims()) +
                                    " does not broadcast to the normalized shape " + dims_to_string(norm_dims));
        }
        KILN_ASSIGN_OR_RETURN(Tensor full, ctx.alloc(p.dtype(), norm_dims));
        KILN_RETURN_IF_ERROR(strided_copy(ctx, full.data(), contiguous_strides(norm_dims), p.data(),
                                          broadcast_strides(p.dims(), norm_dims), norm_dims, p.dtype()));
        p = full;
      }
    }
    Dims stat_dims = x.dims();
    for (size_t d = static_cast<size_t>(axis); d < stat_dims.size(); ++d) stat_dims[d] = 1;
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), x.dims()));
    Tensor mean, inv;
    if (node.outputs.size() > 1 && node.outputs[1] >= 0) {
      KILN_ASSIGN_OR_RETURN(mean, ctx.alloc(DType::kF32, stat_dims));
    }
    if (node.outputs.size() > 2 && node.outputs[2] >= 0) {
      KILN_ASSIGN_OR_RETURN(inv, ctx.alloc(DType::kF32, stat_dims));
    }
    k::ReduceSpec spec{"LayerNormalization", x.dtype(), x.dtype(), params[0].dtype(), scalar[0], scalar[1],
                       k::ReduceLayout::kRows};
    if (rows > 0 && r > 0) {
      void* yp = y.data();
      const void* xp = x.data();
      const void* sp = params[0].data();
      const void* bp = params[1].defined() ? params[1].data() : nullptr;
      void* mp = mean.defined() ? mean.data() : nullptr;
      void* ip = inv.defined() ? inv.data() : nullptr;
      double eps = node.attrs.get_float("epsilon", 1e-5);
      void* args[] = {&yp, &xp, &sp, &bp, &mp, &ip, &rows, &r, &eps};
      k::Bake bake{{k::bake_i64("rows", rows), k::bake_i64("R", r)}, row_block(r)};
      KILN_RETURN_IF_ERROR(ctx.launch(
          specialisable(k::reduce_key(spec), [spec] { return k::reduce_source(spec); }, std::move(bake)),
          row_grid(rows), row_block(r), args));
    }
    out[0] = y;
    if (out.size() > 1) out[1] = mean;
    if (out.size() > 2) out[2] = inv;
    return Status();
  }
};

}  // namespace

void register_reduce_handlers(HandlerTable& t) {
  for (const std::string& op : k::reduce_ops()) {
    if (op == "Softmax" || op == "LogSoftmax") t.add(op, std::make_unique<SoftmaxHandler>());
    else if (op == "LayerNormalization") t.add(op, std::make_unique<LayerNormHandler>());
    else t.add(op, std::make_unique<ReduceHandler>());
  }
  t.add("GlobalAveragePool", std::make_unique<GlobalPoolHandler>());
  t.add("GlobalMaxPool", std::make_unique<GlobalPoolHandler>());
}

}  // namespace kiln::cuda
