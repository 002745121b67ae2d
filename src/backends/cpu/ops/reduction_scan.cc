// CumSum(x, axis; exclusive=0, reverse=0): running sums along `axis` (a scalar or one-element
// i32/i64 tensor). Sums accumulate in the input dtype; integers wrap.
#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/reduction_ops.h"

namespace kiln::cpu {
namespace {

// One [red, inner] slab, columns [0, n) of it (rows `inner` apart).
template <typename T>
void cumsum_slab(const T* x, T* y, int64_t red, int64_t inner, int64_t n, bool exclusive,
                 bool reverse) {
  for (int64_t k = 0; k < red; ++k) {
    const int64_t r = reverse ? red - 1 - k : k;
    const int64_t prev = reverse ? r + 1 : r - 1;  // the row written just before
    T* dst = y + r * inner;
    if (k == 0) {
      const T* src = x + r * inner;
      for (int64_t i = 0; i < n; ++i) dst[i] = exclusive ? T(0) : src[i];
    } else {
      const T* acc = y + prev * inner;
      const T* src = x + (exclusive ? prev : r) * inner;
      for (int64_t i = 0; i < n; ++i) dst[i] = wrap_add(acc[i], src[i]);
    }
  }
}

Status cumsum_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "x"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 1, "axis"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  const Tensor& x = in[0];
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axis_list, read_int_list(node, in[1], "axis"));
  if (axis_list.size() != 1)
    return invalid_argument(node_context(node) + ": axis must hold exactly one value, got " +
                            std::to_string(axis_list.size()));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node, axis_list[0], x.rank()));
  const bool exclusive = node.attrs.get_int("exclusive", 0) != 0;
  const bool reverse = node.attrs.get_int("reverse", 0) != 0;
  const AxisSplit s = split_at_axis(x.dims(), axis);
  return dispatch_dtype(node, x.dtype(), kNumeric, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kNumeric) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(x.dtype(), x.dims()));
      const T* px = x.data_as<const T>();
      T* py = y.data_as<T>();
      constexpr int64_t kChunk = 4096;
      const int64_t chunks = (s.inner + kChunk - 1) / kChunk;
      const int64_t work = std::max<int64_t>(1, s.axis * std::min(s.inner, kChunk));
      parallel_for(s.outer * chunks, std::max<int64_t>(1, kElementwiseGrain / work),
                   [&](int64_t b, int64_t e) {
                     for (int64_t t = b; t < e; ++t) {
                       const int64_t o = t / chunks, i0 = (t % chunks) * kChunk;
                       const int64_t off = o * s.axis * s.inner + i0;
                       cumsum_slab(px + off, py + off, s.axis, s.inner,
                                   std::min(kChunk, s.inner - i0), exclusive, reverse);
                     }
                   });
      out[0] = std::move(y);
      return Status();
    }
  });
}

}  // namespace

void register_scan_ops(KernelRegistry& r) { r.add("CumSum", &cumsum_kernel); }

}  // namespace kiln::cpu
