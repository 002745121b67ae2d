// TopK(X, K; axis=-1, largest=1, sorted=1) -> Values, Indices (i64).
// Equal values keep their index order (lower index first), as the ONNX reference does; NaN
// sorts above every number (first when largest=1, last when largest=0), as numpy's sort. The
// output is always sorted, which also satisfies sorted=0.
#include <algorithm>
#include <numeric>

#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/reduction_ops.h"

namespace kiln::cpu {
namespace {

// Strict "a ranks above b" for values; ties are broken by index by the caller.
template <typename T>
bool value_greater(T a, T b) {
  if (a != a) return b == b;  // NaN above numbers
  if (b != b) return false;
  return a > b;
}

Status topk_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "X"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 1, "K"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  const Tensor& x = in[0];
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> k_list, read_int_list(node, in[1], "K"));
  if (k_list.size() != 1)
    return invalid_argument(node_context(node) + ": K must hold exactly one value, got " +
                            std::to_string(k_list.size()));
  if (x.rank() == 0) return invalid_argument(node_context(node) + ": X must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalize_axis(node, node.attrs.get_int("axis", -1), x.rank()));
  const bool largest = node.attrs.get_int("largest", 1) != 0;
  const int64_t k = k_list[0];
  const AxisSplit s = split_at_axis(x.dims(), axis);
  if (k < 0 || k > s.axis)
    return invalid_argument(node_context(node) + ": K=" + std::to_string(k) + " must be in [0, " +
                            std::to_string(s.axis) + "], the length of axis " +
                            std::to_string(axis) + " of X " + dims_to_string(x.dims()));
  Dims out_dims = x.dims();
  out_dims[static_cast<size_t>(axis)] = k;
  return dispatch_dtype(node, x.dtype(), kNumeric, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kNumeric) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor values, Tensor::empty(x.dtype(), out_dims));
      KILN_ASSIGN_OR_RETURN(Tensor indices, Tensor::empty(DType::kI64, out_dims));
      const T* px = x.data_as<const T>();
      T* pv = values.data_as<T>();
      int64_t* pi = indices.data_as<int64_t>();
      const int64_t slices = k == 0 ? 0 : s.outer * s.inner;
      const int64_t per_slice = std::max<int64_t>(1, s.axis);
      parallel_for(slices, std::max<int64_t>(1, kElementwiseGrain / per_slice),
                   [&](int64_t b, int64_t e) {
                     std::vector<int64_t> idx(static_cast<size_t>(s.axis));
                     for (int64_t t = b; t < e; ++t) {
                       const int64_t o = t / s.inner, i = t % s.inner;
                       const T* p = px + o * s.axis * s.inner + i;
                       auto at = [&](int64_t r) { return p[r * s.inner]; };
                       auto before = [&](int64_t a, int64_t c) {
                         T va = at(a), vc = at(c);
                         if (largest ? value_greater(va, vc) : value_greater(vc, va)) return true;
                         if (largest ? value_greater(vc, va) : value_greater(va, vc)) return false;
                         return a < c;
                       };
                       std::iota(idx.begin(), idx.end(), int64_t{0});
                       std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
                       const int64_t base = o * k * s.inner + i;
                       for (int64_t j = 0; j < k; ++j) {
                         pv[base + j * s.inner] = at(idx[static_cast<size_t>(j)]);
                         pi[base + j * s.inner] = idx[static_cast<size_t>(j)];
                       }
                     }
                   });
      out[0] = std::move(values);
      if (out.size() > 1) out[1] = std::move(indices);
      return Status();
    }
  });
}

}  // namespace

void register_topk_op(KernelRegistry& r) { r.add("TopK", &topk_kernel); }

}  // namespace kiln::cpu
