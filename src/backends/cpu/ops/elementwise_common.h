// Shared machinery of the CPU elementwise kernels: input checks, the broadcasting loop and the
// parallel map over contiguous data. Header-only templates; every function is thread-safe and
// allocates only small per-call bookkeeping.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/kernel.h"
#include "platform/thread_pool.h"

namespace kiln::cpu {

// The DTypeSet bit of a C++ element type (0 for a type dispatch_dtype never produces).
template <typename T>
constexpr unsigned dtype_class() {
  if constexpr (std::is_same_v<T, bool>)
    return kBools;
  else if constexpr (std::is_floating_point_v<T>)
    return kFloats;
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
    return kSignedInts;
  else if constexpr (std::is_integral_v<T>)
    return kUnsignedInts;
  else
    return 0;
}

// Wrapping (two's complement) integer arithmetic without signed-overflow UB; plain for floats.
template <typename T>
T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::conditional_t<(sizeof(T) < 4), uint32_t, std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <typename T>
T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::conditional_t<(sizeof(T) < 4), uint32_t, std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
  } else {
    return a - b;
  }
}
template <typename T>
T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::conditional_t<(sizeof(T) < 4), uint32_t, std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}
template <typename T>
T wrap_neg(T a) {
  return wrap_sub(T(0), a);
}

// Float to integer as numpy's astype does for in-range values: truncation toward zero. NaN
// gives 0; values within the int64 range are truncated to int64 and wrap to T's width (so -1.0
// -> u8 is 255 and 300.0 -> i8 is 44, as in numpy); values beyond it (and infinities) saturate
// to T's limits.
template <typename T>
T float_to_int(double v) {
  if (v != v) return T(0);
  if constexpr (std::is_same_v<T, uint64_t>) {
    if (v >= 9223372036854775808.0)
      return v >= 18446744073709551616.0 ? ~uint64_t{0} : static_cast<uint64_t>(v);
  }
  if (v >= 9223372036854775807.0) return std::numeric_limits<T>::max();
  if (v < -9223372036854775808.0) return std::numeric_limits<T>::lowest();
  return static_cast<T>(static_cast<int64_t>(v));
}

// Elements per parallel chunk: large enough that scheduling costs nothing next to the work.
inline constexpr int64_t kElementwiseGrain = 32768;

// Fails unless input `i` is present.
Status require_input(const ir::Node& node, std::span<const Tensor> in, size_t i, const char* what);
// Fails unless inputs `i` and `j` have the same dtype.
Status require_same_dtype(const ir::Node& node, std::span<const Tensor> in, size_t i, size_t j);
// Fails unless `out` has room for `n` outputs.
Status require_outputs(const ir::Node& node, std::span<Tensor> out, size_t n);

// Loop plan for an elementwise op over inputs broadcast (numpy rules) to a contiguous output.
// Output dims of size 1 are dropped and adjacent dims merged where every input is contiguous
// across both or broadcast along both, so same-shape, scalar and trailing-vector cases collapse
// to one or two dims. Along the innermost merged dim each input's stride is 0 or 1.
struct BroadcastPlan {
  Dims dims;                                  // merged output dims; never empty
  std::vector<std::vector<int64_t>> strides;  // per input, per merged dim; 0 = broadcast
  int64_t numel = 0;
};

// `inputs` must broadcast to `out` (checked by broadcast_shapes beforehand).
BroadcastPlan broadcast_plan(std::span<const Dims> inputs, const Dims& out);

// Calls fn(out_offset, in_offsets, inner_strides, count) on runs along the innermost merged dim
// that together cover every output element exactly once, in parallel for large outputs.
// in_offsets and inner_strides are std::array<int64_t, N>; each inner stride is 0 or 1.
template <size_t N, typename Fn>
void broadcast_for_each(const BroadcastPlan& plan, Fn&& fn) {
  if (plan.numel == 0) return;
  const size_t rank = plan.dims.size();
  const int64_t inner = plan.dims.back();
  const int64_t rows = plan.numel / inner;
  std::array<int64_t, N> inner_st{};
  for (size_t k = 0; k < N; ++k) inner_st[k] = plan.strides[k][rank - 1];
  // Offsets of the start of row `r` (a flat index over the outer merged dims).
  auto row_offsets = [&](int64_t r) {
    std::array<int64_t, N> off{};
    for (size_t d = rank - 1; d-- > 0;) {
      int64_t idx = r % plan.dims[d];
      r /= plan.dims[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx * plan.strides[k][d];
    }
    return off;
  };
  if (inner >= kElementwiseGrain) {
    // Long rows: split each row into chunks, one task per (row, chunk).
    const int64_t per_row = (inner + kElementwiseGrain - 1) / kElementwiseGrain;
    parallel_for(rows * per_row, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        int64_t r = t / per_row, c = t % per_row;
        int64_t begin = c * kElementwiseGrain;
        int64_t count = std::min(inner, begin + kElementwiseGrain) - begin;
        std::array<int64_t, N> off = row_offsets(r);
        for (size_t k = 0; k < N; ++k) off[k] += begin * inner_st[k];
        fn(r * inner + begin, off, inner_st, count);
      }
    });
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / inner);
  parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    std::array<int64_t, N> off = row_offsets(b);
    std::vector<int64_t> idx(rank, 0);  // odometer over the outer dims
    for (size_t d = rank - 1, r = static_cast<size_t>(b); d-- > 0;) {
      idx[d] = static_cast<int64_t>(r % static_cast<size_t>(plan.dims[d]));
      r /= static_cast<size_t>(plan.dims[d]);
    }
    for (int64_t r = b; r < e; ++r) {
      fn(r * inner, off, inner_st, inner);
      for (size_t d = rank - 1; d-- > 0;) {
        for (size_t k = 0; k < N; ++k) off[k] += plan.strides[k][d];
        if (++idx[d] < plan.dims[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= idx[d] * plan.strides[k][d];
        idx[d] = 0;
      }
    }
  });
}

// out[i] = op(a[ia], b[ib]) over the broadcast of a and b; `out` already has the broadcast dims.
template <typename A, typename B, typename R, typename Op>
void broadcast_binary(const Tensor& a, const Tensor& b, const Tensor& out, Op op) {
  const Dims shapes[2] = {a.dims(), b.dims()};
  BroadcastPlan plan = broadcast_plan(shapes, out.dims());
  const A* pa = a.data_as<const A>();
  const B* pb = b.data_as<const B>();
  R* pr = out.data_as<R>();
  broadcast_for_each<2>(plan, [&](int64_t o, const std::array<int64_t, 2>& off,
                                  const std::array<int64_t, 2>& st, int64_t n) {
    const A* x = pa + off[0];
    const B* y = pb + off[1];
    R* r = pr + o;
    if (st[0] && st[1]) {
      for (int64_t i = 0; i < n; ++i) r[i] = op(x[i], y[i]);
    } else if (st[0]) {
      const B yv = *y;
      for (int64_t i = 0; i < n; ++i) r[i] = op(x[i], yv);
    } else if (st[1]) {
      const A xv = *x;
      for (int64_t i = 0; i < n; ++i) r[i] = op(xv, y[i]);
    } else {
      const R v = op(*x, *y);
      for (int64_t i = 0; i < n; ++i) r[i] = v;
    }
  });
}

// out[i] = op(in[i]) over contiguous data, in parallel.
template <typename T, typename R, typename Op>
void parallel_map(const T* in, R* out, int64_t n, Op op) {
  parallel_for(n, kElementwiseGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = op(in[i]);
  });
}

}  // namespace kiln::cpu
