// Generated reduction kernels: Reduce*, Softmax / LogSoftmax and LayerNormalization.
//
// All work on a tensor viewed as [outer, R, inner] (R = the reduced extent) and come in two
// layouts: kRows (inner == 1: one block per row, warp-shuffle tree, any blockDim that is a
// multiple of 32 up to 1024) and kColumns (inner > 1: one thread per (outer, inner) pair, loops
// over R, coalesced along inner). Half inputs accumulate in float, f32 in float, f64 in double,
// integers in 64-bit integers.
//
// Kernel signatures:
//   reduce:     (OUT* out, const IN* in, long long outer, long long R, long long inner)
//   softmax:    (T* out, const T* in, long long outer, long long R, long long inner)
//   layer_norm: (T* y, const T* x, const S* scale, const S* bias, float* mean, float* inv_std,
//                long long rows, long long R, double epsilon)   [kRows only]
//     scale/bias are indexed [j] when full-length, [0] when scalar (ReduceSpec::param_scalar),
//     bias and mean/inv_std may be null.
#pragma once

#include <string>

#include "backends/cuda/nvrtc.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda::kernels {

enum class ReduceLayout : uint8_t { kRows, kColumns };

struct ReduceSpec {
  std::string op;  // ReduceSum|ReduceMean|ReduceMax|ReduceMin|ReduceProd|ReduceL1|ReduceL2|
                   // ReduceSumSquare|ReduceLogSum|ReduceLogSumExp|Softmax|LogSoftmax|
                   // LayerNormalization
  DType input = DType::kUndefined;
  DType output = DType::kUndefined;     // reduce: usually == input
  DType param = DType::kUndefined;      // LayerNormalization: scale/bias dtype
  bool scale_scalar = false, bias_scalar = false;  // LayerNormalization
  ReduceLayout layout = ReduceLayout::kRows;
};

std::string reduce_key(const ReduceSpec& spec);
// Errors: kUnsupported for an unknown op or dtype (LayerNormalization: kRows and floats only).
Result<KernelSource> reduce_source(const ReduceSpec& spec);

// The ops reduce_source() knows, for tests.
const std::vector<std::string>& reduce_ops();

}  // namespace kiln::cuda::kernels
