// ArgMax / ArgMin(data; axis=0, keepdims=1, select_last_index=0) -> i64 indices.
// NaN counts as larger than any number for ArgMax and smaller for ArgMin, so the first NaN wins,
// as in numpy. Reducing an axis of length 0 is an error.
#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/reduction_ops.h"

namespace kiln::cpu {
namespace {

// True if `x` should replace `best` as the extremum (strictly better, or equal and `last`).
template <bool kMax, typename T>
bool arg_better(T x, T best, bool last) {
  const bool xn = x != x, bn = best != best;
  if (xn || bn) return xn && (!bn || last);  // NaN beats numbers; NaN vs NaN is a tie
  if (kMax ? x > best : x < best) return true;
  return last && x == best;
}

template <bool kMax>
Status arg_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "data"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  const Tensor& x = in[0];
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalize_axis(node, node.attrs.get_int("axis", 0), x.rank()));
  const bool keepdims = node.attrs.get_int("keepdims", 1) != 0;
  const bool last = node.attrs.get_int("select_last_index", 0) != 0;
  const AxisSplit s = split_at_axis(x.dims(), axis);
  if (s.axis == 0)
    return invalid_argument(node_context(node) + ": cannot take the arg-extremum over axis " +
                            std::to_string(axis) + " of length 0 (input shape " +
                            dims_to_string(x.dims()) + ")");
  Dims out_dims;
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (d != axis)
      out_dims.push_back(x.dim(d));
    else if (keepdims)
      out_dims.push_back(1);
  }
  return dispatch_dtype(node, x.dtype(), kNumeric, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kNumeric) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(DType::kI64, out_dims));
      const T* px = x.data_as<const T>();
      int64_t* py = y.data_as<int64_t>();
      const int64_t n = s.outer * s.inner;
      parallel_for(n, std::max<int64_t>(1, kElementwiseGrain / s.axis), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / s.inner, i = t % s.inner;
          const T* p = px + o * s.axis * s.inner + i;
          T best = p[0];
          int64_t arg = 0;
          for (int64_t r = 1; r < s.axis; ++r) {
            T v = p[r * s.inner];
            if (arg_better<kMax>(v, best, last)) best = v, arg = r;
          }
          py[t] = arg;
        }
      });
      out[0] = std::move(y);
      return Status();
    }
  });
}

}  // namespace

void register_arg_ops(KernelRegistry& r) {
  r.add("ArgMax", &arg_kernel<true>);
  r.add("ArgMin", &arg_kernel<false>);
}

}  // namespace kiln::cpu
