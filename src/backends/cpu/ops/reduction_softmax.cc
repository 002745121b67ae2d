// Softmax / LogSoftmax(input; axis=-1, coerce_2d=0). With coerce_2d=1 (models before opset 13)
// the input is treated as 2-D [prod(dims[:axis]), prod(dims[axis:])] and normalised along the
// second dimension; otherwise along `axis` alone. Rows are shifted by their maximum, so large
// inputs do not overflow; sums accumulate in double; f32 uses a vectorisable exp.
#include <cmath>
#include <cstring>

#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/reduction_ops.h"

namespace kiln::cpu {
namespace {

// These loops raise no FP exceptions anyone reads; without this GCC will not if-convert the
// selects below (a compare might trap), and the exp loops stay scalar.
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

// exp(x) for x <= 0 (softmax's shifted inputs), written without branches or calls so loops
// over it vectorise: Cephes' expf polynomial after reduction by ln 2, within 2 ulp of expf.
// Inputs below -87.3 (including -inf) give 0; NaN gives NaN.
inline float exp_nonpositive(float x) {
  const float xc = x >= -87.3f ? x : -87.3f;  // NaN too, so the int conversion stays defined
  const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float in_range = p * scale;
  const float below = x != x ? x : 0.0f;
  return x >= -87.3f ? in_range : below;
}

template <typename T>
T exp_shifted(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_nonpositive(x);
  else
    return std::exp(x);
}

// One contiguous row of length n.
template <typename T, bool kLog>
void softmax_row(const T* x, T* y, int64_t n) {
  if (n == 0) return;
  T mx = x[0];
  for (int64_t r = 1; r < n; ++r) mx = x[r] > mx ? x[r] : mx;
  for (int64_t r = 0; r < n; ++r) y[r] = exp_shifted(x[r] - mx);
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) s0 += y[r], s1 += y[r + 1], s2 += y[r + 2], s3 += y[r + 3];
  for (; r < n; ++r) s0 += y[r];
  const double sum = (s0 + s1) + (s2 + s3);
  if constexpr (kLog) {
    const T shift = mx + static_cast<T>(std::log(sum));
    for (int64_t r = 0; r < n; ++r) y[r] = x[r] - shift;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t r = 0; r < n; ++r) y[r] *= inv;
  }
}

// Columns [i0, i0+n) of one [red, inner] slab, normalised along `red`.
template <typename T, bool kLog>
void softmax_cols(const T* x, T* y, int64_t red, int64_t inner, int64_t n) {
  constexpr int64_t kChunk = 256;
  T mx[kChunk];
  double sum[kChunk];
  for (int64_t i = 0; i < n; ++i) mx[i] = x[i], sum[i] = 0;
  for (int64_t r = 1; r < red; ++r)
    for (int64_t i = 0; i < n; ++i) mx[i] = x[r * inner + i] > mx[i] ? x[r * inner + i] : mx[i];
  for (int64_t r = 0; r < red; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      T e = exp_shifted(x[r * inner + i] - mx[i]);
      if constexpr (!kLog) y[r * inner + i] = e;
      sum[i] += static_cast<double>(e);
    }
  }
  for (int64_t i = 0; i < n; ++i)
    sum[i] = kLog ? static_cast<double>(mx[i]) + std::log(sum[i]) : 1.0 / sum[i];
  for (int64_t r = 0; r < red; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (kLog)
        y[r * inner + i] = x[r * inner + i] - static_cast<T>(sum[i]);
      else
        y[r * inner + i] *= static_cast<T>(sum[i]);
    }
  }
}

#pragma GCC pop_options

template <bool kLog>
Status softmax_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "input"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  const Tensor& x = in[0];
  const bool coerce = node.attrs.get_int("coerce_2d", 0) != 0;
  KILN_ASSIGN_OR_RETURN(
      int64_t axis, normalize_axis(node, node.attrs.get_int("axis", coerce ? 1 : -1), x.rank()));
  AxisSplit s = split_at_axis(x.dims(), axis);
  if (coerce) s.axis *= s.inner, s.inner = 1;
  return dispatch_dtype(node, x.dtype(), kFloats, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kFloats) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(x.dtype(), x.dims()));
      const T* px = x.data_as<const T>();
      T* py = y.data_as<T>();
      if (x.numel() == 0) {
        // nothing to normalise
      } else if (s.inner == 1) {
        parallel_for(s.outer,
                     std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(s.axis, 1)),
                     [&](int64_t b, int64_t e) {
                       for (int64_t o = b; o < e; ++o)
                         softmax_row<T, kLog>(px + o * s.axis, py + o * s.axis, s.axis);
                     });
      } else {
        constexpr int64_t kChunk = 256;
        const int64_t chunks = (s.inner + kChunk - 1) / kChunk;
        const int64_t work = std::max<int64_t>(1, s.axis * std::min(s.inner, kChunk));
        parallel_for(s.outer * chunks, std::max<int64_t>(1, kElementwiseGrain / work),
                     [&](int64_t b, int64_t e) {
                       for (int64_t t = b; t < e; ++t) {
                         const int64_t o = t / chunks, i0 = (t % chunks) * kChunk;
                         const int64_t off = o * s.axis * s.inner + i0;
                         softmax_cols<T, kLog>(px + off, py + off, s.axis, s.inner,
                                               std::min(kChunk, s.inner - i0));
                       }
                     });
      }
      out[0] = std::move(y);
      return Status();
    }
  });
}

}  // namespace

void register_softmax_ops(KernelRegistry& r) {
  r.add("Softmax", &softmax_kernel<false>);
  r.add("LogSoftmax", &softmax_kernel<true>);
}

}  // namespace kiln::cpu
