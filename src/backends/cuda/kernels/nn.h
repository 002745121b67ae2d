// Generated kernels for sliding windows (pooling, direct convolution, im2col) and Gather.
//
// Window kernels take a KilnWindow by value (mirrored by WindowArgs): up to 3 spatial dims,
// unused dims of size 1 with no padding. Geometry follows cpu::nn::window_geometry.
//   pool:   (T* y, const T* x, KilnWindow w)              y: [N, C, out...], thread per output
//   conv:   (T* y, const T* x, const T* w, const T* bias, KilnWindow g)
//           direct convolution, any group count; bias may be null; accumulates in float/double;
//           WindowSpec::relu applies Relu to the biased sum before the store (fused epilogue)
//   im2col: (T* col, const T* x, KilnWindow g)           col: [N, C*prod(k), prod(out)]
//           WindowSpec::bias adds (T* y, const T* bias): the same launch also writes
//           y[n, m, :] = bias[m] over [N, M, prod(out)] (the conv GEMM then accumulates, beta 1)
//   gather: (E* out, const E* data, const I* idx, long long outer, long long axis_n,
//            long long nidx, long long inner, int* err, int code)
//           an index outside [-axis_n, axis_n) writes 0 and records `code` in *err.
#pragma once

#include <cstdint>
#include <string>

#include "backends/cuda/nvrtc.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda::kernels {

struct WindowArgs {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  int64_t n, c, m, groups;  // batch, input channels, output channels (conv), groups (conv)
  int32_t rank;
};

enum class WindowOp : uint8_t { kMaxPool, kAvgPool, kAvgPoolIncludePad, kConv, kIm2col };

struct WindowSpec {
  WindowOp op = WindowOp::kMaxPool;
  DType dtype = DType::kF32;
  bool relu = false;  // kConv only: Relu epilogue (kiln_activation="Relu")
  bool bias = false;  // kIm2col only: also prefill y with the conv bias
};

std::string window_key(const WindowSpec& spec);
Result<KernelSource> window_source(const WindowSpec& spec);

struct GatherSpec {
  size_t element_size = 4;            // data is moved as 1/2/4/8-byte words
  DType index = DType::kI64;          // i32 or i64
};

std::string gather_key(const GatherSpec& spec);
Result<KernelSource> gather_source(const GatherSpec& spec);

// The unsigned word type moving `element_size` bytes ("unsigned int" for 4), or "" if none.
std::string word_type(size_t element_size);

}  // namespace kiln::cuda::kernels
