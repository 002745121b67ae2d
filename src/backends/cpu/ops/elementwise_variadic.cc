// Variadic broadcasting ops (Max Min Sum Mean), Clip(input, min?, max?) and
// Where(condition, X, Y). Max and Min propagate NaN like numpy's maximum/minimum.
#include <cstring>

#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/elementwise_ops.h"

namespace kiln::cpu {
namespace {

struct MaxOp {
  template <typename T>
  T operator()(T a, T b) const {
    return (a > b || a != a) ? a : b;
  }
};
struct MinOp {
  template <typename T>
  T operator()(T a, T b) const {
    return (a < b || a != a) ? a : b;
  }
};
struct SumOp {
  template <typename T>
  T operator()(T a, T b) const {
    return wrap_add(a, b);
  }
};

// Folds op over all inputs broadcast together: out = op(...op(op(x0, x1), x2)..., xn).
template <typename Op, unsigned kTypes, bool kMean = false>
Status variadic_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  if (in.empty()) return invalid_argument(node_context(node) + ": needs at least one input");
  std::vector<Dims> shapes;
  for (size_t i = 0; i < in.size(); ++i) {
    KILN_RETURN_IF_ERROR(require_input(node, in, i, "data"));
    KILN_RETURN_IF_ERROR(require_same_dtype(node, in, 0, i));
    shapes.push_back(in[i].dims());
  }
  KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_shapes(node, shapes));
  return dispatch_dtype(node, in[0].dtype(), kTypes, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kTypes) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(in[0].dtype(), dims));
      if (in.size() == 1) {
        if (y.nbytes()) std::memcpy(y.data(), in[0].data(), y.nbytes());
      } else {
        broadcast_binary<T, T, T>(in[0], in[1], y, Op{});
        // y has the full output shape, so each element is read and written at one index.
        for (size_t i = 2; i < in.size(); ++i) broadcast_binary<T, T, T>(y, in[i], y, Op{});
      }
      if constexpr (kMean) {
        T* p = y.data_as<T>();
        const T count = static_cast<T>(in.size());
        parallel_map(p, p, y.numel(), [count](T v) { return v / count; });
      }
      out[0] = std::move(y);
      return Status();
    }
  });
}

// Reads an optional scalar bound of Clip; `fallback` when omitted.
template <typename T>
Result<T> clip_bound(const ir::Node& node, std::span<const Tensor> in, size_t i, T fallback) {
  if (i >= in.size() || !in[i].defined()) return fallback;
  const char* name = i == 1 ? "min" : "max";
  if (in[i].dtype() != in[0].dtype())
    return invalid_argument(node_context(node) + ": " + name + " must have the input's dtype " +
                            std::string(dtype_name(in[0].dtype())) + ", got " +
                            std::string(dtype_name(in[i].dtype())));
  if (in[i].numel() != 1)
    return invalid_argument(node_context(node) + ": " + name + " must be a scalar, got shape " +
                            dims_to_string(in[i].dims()));
  return *in[i].data_as<const T>();
}

Status clip_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "input"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  const Tensor& x = in[0];
  return dispatch_dtype(node, x.dtype(), kNumeric, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kNumeric) == 0) {
      return internal_error("unreachable dtype");
    } else {
      constexpr T kLow = std::is_floating_point_v<T> ? -std::numeric_limits<T>::infinity()
                                                     : std::numeric_limits<T>::lowest();
      constexpr T kHigh = std::is_floating_point_v<T> ? std::numeric_limits<T>::infinity()
                                                      : std::numeric_limits<T>::max();
      KILN_ASSIGN_OR_RETURN(T lo, clip_bound<T>(node, in, 1, kLow));
      KILN_ASSIGN_OR_RETURN(T hi, clip_bound<T>(node, in, 2, kHigh));
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(x.dtype(), x.dims()));
      // min(max(x, lo), hi): with lo > hi every value becomes hi, as ONNX specifies; NaN stays.
      parallel_map(x.data_as<const T>(), y.data_as<T>(), x.numel(), [lo, hi](T v) {
        v = v < lo ? lo : v;
        return hi < v ? hi : v;
      });
      out[0] = std::move(y);
      return Status();
    }
  });
}

// Where only moves elements, so it works on element bytes of any dtype, half types included.
template <typename E>
void where_loop(const Tensor& c, const Tensor& x, const Tensor& y, const Tensor& r) {
  const Dims shapes[3] = {c.dims(), x.dims(), y.dims()};
  BroadcastPlan plan = broadcast_plan(shapes, r.dims());
  const uint8_t* pc = c.data_as<const uint8_t>();
  const E* px = x.data_as<const E>();
  const E* py = y.data_as<const E>();
  E* pr = r.data_as<E>();
  broadcast_for_each<3>(plan, [&](int64_t o, const std::array<int64_t, 3>& off,
                                  const std::array<int64_t, 3>& st, int64_t n) {
    const uint8_t* cc = pc + off[0];
    const E* xx = px + off[1];
    const E* yy = py + off[2];
    E* rr = pr + o;
    if (st[0] && st[1] && st[2]) {
      for (int64_t i = 0; i < n; ++i) rr[i] = cc[i] ? xx[i] : yy[i];
    } else {
      for (int64_t i = 0; i < n; ++i) rr[i] = cc[i * st[0]] ? xx[i * st[1]] : yy[i * st[2]];
    }
  });
}

Status where_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "condition"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 1, "X"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 2, "Y"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  if (in[0].dtype() != DType::kBool)
    return invalid_argument(node_context(node) + ": condition must be bool, got " +
                            std::string(dtype_name(in[0].dtype())));
  KILN_RETURN_IF_ERROR(require_same_dtype(node, in, 1, 2));
  const Dims shapes[3] = {in[0].dims(), in[1].dims(), in[2].dims()};
  KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_shapes(node, shapes));
  KILN_ASSIGN_OR_RETURN(Tensor r, Tensor::empty(in[1].dtype(), dims));
  switch (dtype_size(in[1].dtype())) {
    case 1:
      where_loop<uint8_t>(in[0], in[1], in[2], r);
      break;
    case 2:
      where_loop<uint16_t>(in[0], in[1], in[2], r);
      break;
    case 4:
      where_loop<uint32_t>(in[0], in[1], in[2], r);
      break;
    case 8:
      where_loop<uint64_t>(in[0], in[1], in[2], r);
      break;
    default:
      return unsupported(node_context(node) + ": dtype " + std::string(dtype_name(in[1].dtype())) +
                         " is not supported");
  }
  out[0] = std::move(r);
  return Status();
}

}  // namespace

void register_variadic_ops(KernelRegistry& r) {
  r.add("Max", &variadic_kernel<MaxOp, kNumeric>);
  r.add("Min", &variadic_kernel<MinOp, kNumeric>);
  r.add("Sum", &variadic_kernel<SumOp, kNumeric>);
  r.add("Mean", &variadic_kernel<SumOp, kFloats, true>);
  r.add("Clip", &clip_kernel);
  r.add("Where", &where_kernel, /*native_half=*/true);
}

}  // namespace kiln::cpu
