// Helpers shared by the nn kernels (ops/nn_*.cc): GEMM wrappers over OpenBLAS with a plain loop for
// integer types, and the sliding-window geometry of Conv and the pooling ops.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/kernel.h"

namespace kiln::cpu::nn {

// Row-major C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T. A is [m, k] after op, B is
// [k, n] after op; lda/ldb/ldc are row strides of the stored matrices. float/double go to
// cblas_?gemm, split into row or column blocks over kiln's thread pool when large (OpenBLAS's own
// threading is switched off process-wide on first use); integer types use a plain loop, alpha and
// beta applied in T with wrapping arithmetic. Callers check gemm_dims_fit() first: BLAS takes
// 32-bit ints.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// True when every value fits BLAS's 32-bit integer arguments.
bool gemm_dims_fit(std::initializer_list<int64_t> values);

// c[i] = op(a[a_off[i] ...]) * op(b[b_off[i] ...]) for each batch entry i: op(A) is [m, k], op(B)
// is [k, n] and C is [m, n], each stored contiguous row-major (A as [k, m] when trans_a, B as
// [n, k] when trans_b); c gets batches stored back to back. Batch entries run in parallel on the
// thread pool when they are small or at least as many as the threads; otherwise one after the
// other, each split over the threads by gemm().
template <typename T>
void batched_matmul(int64_t m, int64_t n, int64_t k, const T* a, std::span<const int64_t> a_off,
                    const T* b, std::span<const int64_t> b_off, T* c, bool trans_a = false,
                    bool trans_b = false);

// Geometry of one sliding-window op (Conv, MaxPool, AveragePool) over the spatial dims of an
// [N, C, D1, ..., Dn] input. Pads are resolved (auto_pad applied); `out` is the output size.
struct Window {
  size_t rank = 0;  // number of spatial dims
  std::vector<int64_t> in, kernel, strides, dilations, pad_begin, pad_end, out;
};

// Reads strides, dilations, pads, auto_pad (NOTSET|SAME_UPPER|SAME_LOWER|VALID) and, when
// `ceil_mode_allowed`, ceil_mode from node.attrs, for an input of shape `x` and the given kernel
// (spatial sizes). Output sizes follow ONNX: floor (or ceil, where the last window must start
// inside the input or the begin padding) of (in + pads - dilated kernel) / stride + 1; SAME gives
// ceil(in / stride) with the total padding split evenly, the odd one at the end (SAME_UPPER) or at
// the beginning (SAME_LOWER). Errors name the node: wrong attribute lengths, non-positive
// strides/dilations/kernel, negative pads, an output size below zero.
Result<Window> window_geometry(const ir::Node& node, const Dims& x, std::vector<int64_t> kernel,
                               bool ceil_mode_allowed);

// Checks that `x` is defined and has rank >= 3 ([N, C, spatial...]); the message names the node
// and `what`.
Status check_spatial_input(const ir::Node& node, const Tensor& x, const char* what);

// Allocates out[i] as a new zero-filled tensor and returns it (sharing storage with out[i]).
// Fails when `out` has no slot i or the size is too large.
Result<Tensor> make_output(const ir::Node& node, std::span<Tensor> out, size_t i, DType dtype,
                           Dims dims);

// True when the node wants its output i: a slot exists and the output is not omitted.
inline bool wants_output(const ir::Node& node, std::span<Tensor> out, size_t i) {
  return i < out.size() && i < node.outputs.size() && node.outputs[i] != ir::kNoValue;
}

// dispatch_dtype restricted at compile time: only the allowed types instantiate `fn`.
// kFloats: f32, f64. kNumeric: floats and integers (no bool).
template <typename Fn>
Status dispatch_floats(const ir::Node& node, DType dtype, Fn&& fn) {
  return dispatch_dtype(node, dtype, kFloats, [&]<typename T>() -> Status {
    if constexpr (std::is_floating_point_v<T>) return fn.template operator()<T>();
    else return internal_error("unreachable dtype");
  });
}
template <typename Fn>
Status dispatch_numeric(const ir::Node& node, DType dtype, Fn&& fn) {
  return dispatch_dtype(node, dtype, kNumeric, [&]<typename T>() -> Status {
    if constexpr (!std::is_same_v<T, bool>) return fn.template operator()<T>();
    else return internal_error("unreachable dtype");
  });
}

// Omitted-input test: an index past in.size() or an undefined tensor.
inline bool has_input(std::span<const Tensor> in, size_t i) {
  return i < in.size() && in[i].defined();
}

}  // namespace kiln::cpu::nn
