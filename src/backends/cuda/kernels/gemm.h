// kiln's own GEMM kernel: the "bridge" that lazy runs while cuBLASLt gets ready (gemm.h,
// docs/cuda_backend.md "The GEMM bridge").
//
// D = act(alpha * op(A) op(B) + beta * C + bias), row-major, f32 / f16 / bf16 storage with f32
// accumulation, strided batches; the same contract as cuBLASLt's path in gemm.h (bias: a length-n
// vector added to every row; act: none, Relu or the tanh-approximated Gelu; C laid out like D).
// One generic kernel per (dtype, transposes, epilogue): shapes and strides are arguments.
//   (const T* A, const T* B, T* D, const T* bias, const T* C, long long m, long long n,
//    long long k, long long lda, long long ldb, long long ldd, long long stride_a,
//    long long stride_b, long long stride_d, float alpha, float beta)
// Grid (ceil(n / 64), ceil(m / 64), batch), 256 threads: a 64x64 tile of D per block, 4x4
// outputs per thread, K in steps of 16 through shared memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "backends/cuda/nvrtc.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda::kernels {

enum class GemmEpilogue : uint8_t { kNone, kRelu, kGeluTanh };

struct GemmKernelSpec {
  DType dtype = DType::kF32;  // f32, f16 or bf16
  bool trans_a = false, trans_b = false;
  bool bias = false;
  bool beta = false;  // reads C (beta != 0)
  GemmEpilogue act = GemmEpilogue::kNone;
};

inline constexpr int kGemmTile = 64;
inline constexpr int kGemmThreads = 256;

// Every key starts with this: planning tells the bridge's kernels from the others by it.
inline constexpr std::string_view kGemmKernelKeyPrefix = "gemm_bridge|";

// "gemm_bridge|f32|NT|bias|relu|beta"; kernel names follow it.
std::string gemm_kernel_key(const GemmKernelSpec& spec);
Result<KernelSource> gemm_kernel_source(const GemmKernelSpec& spec);

}  // namespace kiln::cuda::kernels
