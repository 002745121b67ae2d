// Shape and data-movement ops on the GPU.
//
// Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout in inference) and Shape/Size
// only read dims: they run the CPU kernel, which returns a tensor sharing the device storage (or
// a host tensor of dims), so no data moves. Transpose, Slice, Expand, Concat and Split are
// strided copies (launch.h); Gather has its own kernel with bounds checks.
#include <algorithm>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel.h"
#include "backends/cuda/kernels/common.h"
#include "backends/cuda/kernels/nn.h"
#include "backends/cuda/ops/launch.h"

namespace kiln::cuda {
namespace {

// Runs the CPU kernel on device tensors: valid only for kernels that read dims, never data,
// of their non-host inputs.
class DimsOnlyHandler final : public OpHandler {
 public:
  explicit DimsOnlyHandler(std::vector<size_t> host_inputs) : host_(std::move(host_inputs)) {}
  bool host_input(const ir::Node&, size_t i) const override {
    return std::find(host_.begin(), host_.end(), i) != host_.end();
  }
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    if (node.op == "Dropout") {
      if (node.outputs.size() > 1 && node.outputs[1] >= 0) return unsupported(ctx.where() + ": Dropout mask output");
      if (in.size() > 2 && in[2].defined()) return unsupported(ctx.where() + ": Dropout training_mode input");
    }
    // A kernel without native half support would convert its inputs on the host: not for device data.
    const cpu::KernelInfo* k = cpu::kernel_registry().find(node.op);
    if (!k) return unsupported(ctx.where() + ": no kernel");
    if (!k->native_half)
      for (const Tensor& t : in)
        if (t.defined() && (t.dtype() == DType::kF16 || t.dtype() == DType::kBF16))
          return unsupported(ctx.where() + ": half-precision input to a kernel without native half support");
    return cpu::run_node(node, in, out);
  }

 private:
  std::vector<size_t> host_;
};

class TransposeHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.empty() || !in[0].defined()) return invalid_argument(ctx.where() + ": input is missing");
    const Tensor& x = in[0];
    const size_t rank = x.dims().size();
    std::vector<int64_t> perm = ctx.node().attrs.get_ints("perm");
    if (perm.empty())
      for (size_t d = 0; d < rank; ++d) perm.push_back(static_cast<int64_t>(rank - 1 - d));
    if (perm.size() != rank) return invalid_argument(ctx.where() + ": perm has the wrong length for input " + dims_to_string(x.dims()));
    std::vector<bool> seen(rank, false);
    Dims dims(rank);
    std::vector<int64_t> src(rank);
    const std::vector<int64_t> xs = contiguous_strides(x.dims());
    for (size_t d = 0; d < rank; ++d) {
      int64_t p = perm[d] < 0 ? perm[d] + static_cast<int64_t>(rank) : perm[d];
      if (p < 0 || p >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(p)])
        return invalid_argument(ctx.where() + ": perm " + dims_to_string(perm) + " is not a permutation");
      seen[static_cast<size_t>(p)] = true;
      dims[d] = x.dims()[static_cast<size_t>(p)];
      src[d] = xs[static_cast<size_t>(p)];
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), dims));
    KILN_RETURN_IF_ERROR(strided_copy(ctx, y.data(), contiguous_strides(dims), x.data(), src, dims, x.dtype()));
    out[0] = y;
    return Status();
  }
};

Result<std::vector<int64_t>> host_ints(const RunContext& ctx, std::span<const Tensor> in, size_t i, const char* what) {
  return cpu::read_int_list(ctx.node(), in[i], what);
}

class SliceHandler final : public OpHandler {
 public:
  bool host_input(const ir::Node&, size_t i) const override { return i >= 1; }
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.size() < 3 || !in[0].defined() || !in[1].defined() || !in[2].defined())
      return invalid_argument(ctx.where() + ": takes data, starts and ends");
    const Tensor& x = in[0];
    const int64_t rank = x.rank();
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> starts, host_ints(ctx, in, 1, "starts"));
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ends, host_ints(ctx, in, 2, "ends"));
    std::vector<int64_t> axes, steps;
    if (in.size() > 3 && in[3].defined()) {
      KILN_ASSIGN_OR_RETURN(axes, host_ints(ctx, in, 3, "axes"));
    } else {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (in.size() > 4 && in[4].defined()) {
      KILN_ASSIGN_OR_RETURN(steps, host_ints(ctx, in, 4, "steps"));
    } else {
      steps.assign(starts.size(), 1);
    }
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      return invalid_argument(ctx.where() + ": starts, ends, axes and steps must have one length");
    Dims dims = x.dims();
    const std::vector<int64_t> xs = contiguous_strides(x.dims());
    std::vector<int64_t> src = xs;
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    int64_t offset = 0;
    for (size_t i = 0; i < starts.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t a, cpu::normalize_axis(ctx.node(), axes[i], rank));
      if (seen[static_cast<size_t>(a)]) return invalid_argument(ctx.where() + ": axis " + std::to_string(a) + " repeats");
      seen[static_cast<size_t>(a)] = true;
      const int64_t dim = x.dim(a), step = steps[i];
      if (step == 0) return invalid_argument(ctx.where() + ": steps must not be 0");
      int64_t s = starts[i], e = ends[i];
      if (s < 0) s += dim;
      if (e < 0) e += dim;
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
      } else {
        s = std::clamp<int64_t>(s, -1, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
      }
      const int64_t len = step > 0 ? (e > s ? (e - s + step - 1) / step : 0) : (s > e ? (s - e - step - 1) / -step : 0);
      dims[static_cast<size_t>(a)] = len;
      src[static_cast<size_t>(a)] = xs[static_cast<size_t>(a)] * step;
      if (len > 0) offset += s * xs[static_cast<size_t>(a)];
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), dims));
    if (y.numel() > 0) {
      const char* base = static_cast<const char*>(x.data()) + offset * static_cast<int64_t>(dtype_size(x.dtype()));
      KILN_RETURN_IF_ERROR(strided_copy(ctx, y.data(), contiguous_strides(dims), base, src, dims, x.dtype()));
    }
    out[0] = y;
    return Status();
  }
};

class ExpandHandler final : public OpHandler {
 public:
  bool host_input(const ir::Node&, size_t i) const override { return i == 1; }
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.size() < 2 || !in[0].defined() || !in[1].defined()) return invalid_argument(ctx.where() + ": takes input and shape");
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, host_ints(ctx, in, 1, "shape"));
    for (int64_t v : shape)
      if (v < 0) return invalid_argument(ctx.where() + ": shape " + dims_to_string(shape) + " has a negative dim");
    const Dims& xd = in[0].dims();
    const size_t rank = std::max(xd.size(), shape.size());
    Dims dims(rank);
    for (size_t d = 0; d < rank; ++d) {
      const int64_t a = d + xd.size() >= rank ? xd[d + xd.size() - rank] : 1;
      const int64_t b = d + shape.size() >= rank ? shape[d + shape.size() - rank] : 1;
      if (a != b && a != 1 && b != 1)
        return invalid_argument(ctx.where() + ": cannot expand " + dims_to_string(xd) + " to " + dims_to_string(shape));
      dims[d] = a == 1 ? b : a;
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(in[0].dtype(), dims));
    KILN_RETURN_IF_ERROR(strided_copy(ctx, y.data(), contiguous_strides(dims), in[0].data(),
                                      broadcast_strides(xd, dims), dims, in[0].dtype()));
    out[0] = y;
    return Status();
  }
};

class ConcatHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.empty()) return invalid_argument(ctx.where() + ": needs at least one input");
    for (const Tensor& t : in)
      if (!t.defined()) return invalid_argument(ctx.where() + ": an input is missing");
    const int64_t rank = in[0].rank();
    KILN_ASSIGN_OR_RETURN(int64_t axis, cpu::normalize_axis(ctx.node(), ctx.node().attrs.get_int("axis", 0), rank));
    Dims dims = in[0].dims();
    dims[static_cast<size_t>(axis)] = 0;
    for (const Tensor& t : in) {
      bool ok = t.rank() == rank && t.dtype() == in[0].dtype();
      for (int64_t d = 0; ok && d < rank; ++d) ok = d == axis || t.dim(d) == in[0].dim(d);
      if (!ok)
        return invalid_argument(ctx.where() + ": inputs " + dims_to_string(in[0].dims()) + " and " +
                                dims_to_string(t.dims()) + " cannot be concatenated on axis " + std::to_string(axis));
      dims[static_cast<size_t>(axis)] += t.dim(axis);
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(in[0].dtype(), dims));
    const std::vector<int64_t> ys = contiguous_strides(dims);
    const int64_t es = static_cast<int64_t>(dtype_size(y.dtype()));
    int64_t pos = 0;
    for (const Tensor& t : in) {
      if (t.numel() > 0) {
        char* dst = static_cast<char*>(y.data()) + pos * ys[static_cast<size_t>(axis)] * es;
        KILN_RETURN_IF_ERROR(strided_copy(ctx, dst, ys, t.data(), contiguous_strides(t.dims()), t.dims(), t.dtype()));
      }
      pos += t.dim(axis);
    }
    out[0] = y;
    return Status();
  }
};

class SplitHandler final : public OpHandler {
 public:
  bool host_input(const ir::Node&, size_t i) const override { return i == 1; }
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.empty() || !in[0].defined()) return invalid_argument(ctx.where() + ": input is missing");
    const Tensor& x = in[0];
    if (x.rank() == 0) return invalid_argument(ctx.where() + ": cannot split a scalar");
    KILN_ASSIGN_OR_RETURN(int64_t axis, cpu::normalize_axis(ctx.node(), ctx.node().attrs.get_int("axis", 0), x.rank()));
    const int64_t dim = x.dim(axis), n = static_cast<int64_t>(out.size());
    std::vector<int64_t> sizes;
    if (in.size() > 1 && in[1].defined()) {
      KILN_ASSIGN_OR_RETURN(sizes, host_ints(ctx, in, 1, "split"));
      int64_t total = 0;
      bool valid = static_cast<int64_t>(sizes.size()) == n;
      for (int64_t s : sizes) valid = valid && s >= 0 && (total += s) <= dim;
      if (!valid || total != dim)
        return invalid_argument(ctx.where() + ": split " + dims_to_string(sizes) + " does not sum to the axis size " +
                                std::to_string(dim) + " over " + std::to_string(n) + " outputs");
    } else {
      const int64_t chunk = n > 0 ? (dim + n - 1) / n : 0;
      if (n == 0 || chunk * (n - 1) > dim)
        return invalid_argument(ctx.where() + ": axis size " + std::to_string(dim) + " cannot be split into " +
                                std::to_string(n) + " outputs");
      sizes.assign(static_cast<size_t>(n), chunk);
      sizes.back() = dim - chunk * (n - 1);
    }
    const std::vector<int64_t> xs = contiguous_strides(x.dims());
    const int64_t es = static_cast<int64_t>(dtype_size(x.dtype()));
    // Every dim before the axis is 1: each piece is a contiguous run of x, so the outputs are
    // views of x's memory (they keep it alive) and nothing is copied or launched.
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
    int64_t pos = 0;
    if (outer == 1 && x.storage()) {
      for (size_t i = 0; i < sizes.size(); ++i) {
        Dims dims = x.dims();
        dims[static_cast<size_t>(axis)] = sizes[i];
        char* p = static_cast<char*>(x.data()) + pos * xs[static_cast<size_t>(axis)] * es;
        out[i] = Tensor::wrap(x.dtype(), std::move(dims), p, x.storage(), x.device());
        pos += sizes[i];
      }
      return Status();
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      Dims dims = x.dims();
      dims[static_cast<size_t>(axis)] = sizes[i];
      KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), dims));
      if (y.numel() > 0) {
        const char* src = static_cast<const char*>(x.data()) + pos * xs[static_cast<size_t>(axis)] * es;
        KILN_RETURN_IF_ERROR(strided_copy(ctx, y.data(), contiguous_strides(dims), src, xs, dims, x.dtype()));
      }
      pos += sizes[i];
      out[i] = y;
    }
    return Status();
  }
};

class GatherHandler final : public OpHandler {
 public:
  bool writes_error_flag() const override { return true; }  // an index out of range
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.size() < 2 || !in[0].defined() || !in[1].defined()) return invalid_argument(ctx.where() + ": takes data and indices");
    const Tensor& data = in[0];
    const Tensor& idx = in[1];
    if (idx.dtype() != DType::kI32 && idx.dtype() != DType::kI64)
      return invalid_argument(ctx.where() + ": indices must be i32 or i64");
    if (data.rank() == 0) return invalid_argument(ctx.where() + ": data must have rank >= 1");
    KILN_ASSIGN_OR_RETURN(int64_t axis, cpu::normalize_axis(ctx.node(), ctx.node().attrs.get_int("axis", 0), data.rank()));
    Dims dims(data.dims().begin(), data.dims().begin() + axis);
    dims.insert(dims.end(), idx.dims().begin(), idx.dims().end());
    dims.insert(dims.end(), data.dims().begin() + axis + 1, data.dims().end());
    long long outer = 1, inner = 1, axis_n = data.dim(axis), nidx = idx.numel();
    for (int64_t d = 0; d < axis; ++d) outer *= data.dim(d);
    for (int64_t d = axis + 1; d < data.rank(); ++d) inner *= data.dim(d);
    if (axis_n == 0 && nidx > 0) return invalid_argument(ctx.where() + ": gathering from an empty axis");
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(data.dtype(), dims));
    const long long total = outer * nidx * inner;
    if (total > 0) {
      kernels::GatherSpec spec{dtype_size(data.dtype()), idx.dtype()};
      void* yp = y.data();
      const void* dp = data.data();
      const void* ip = idx.data();
      int* err = ctx.error_flag();
      int code = ctx.error_code();
      void* args[] = {&yp, &dp, &ip, &outer, &axis_n, &nidx, &inner, &err, &code};
      KILN_RETURN_IF_ERROR(ctx.launch(kernels::gather_key(spec), [spec] { return kernels::gather_source(spec); },
                                      kernels::grid_for(total, 256, ctx.device().multiprocessors), 256, args));
    }
    out[0] = y;
    return Status();
  }
};

}  // namespace

void register_movement_handlers(HandlerTable& t) {
  t.add("Reshape", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{1}));
  t.add("Flatten", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{}));
  t.add("Squeeze", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{1}));
  t.add("Unsqueeze", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{1}));
  t.add("Identity", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{}));
  t.add("Dropout", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{1, 2}));
  t.add("Shape", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{}));
  t.add("Size", std::make_unique<DimsOnlyHandler>(std::vector<size_t>{}));
  t.add("Transpose", std::make_unique<TransposeHandler>());
  t.add("Slice", std::make_unique<SliceHandler>());
  t.add("Expand", std::make_unique<ExpandHandler>());
  t.add("Concat", std::make_unique<ConcatHandler>());
  t.add("Split", std::make_unique<SplitHandler>());
  t.add("Gather", std::make_unique<GatherHandler>());
}

}  // namespace kiln::cuda
