// kiln's own GEMM kernel: the "bridge" that lazy runs while cuBLASLt gets ready (gemm.h,
// docs/cuda_backend.md "The GEMM bridge").
//
// D = act(alpha * op(A) op(B) + beta * C + bias), row-major, f32 / f16 / bf16 storage with f32
// accumulation, strided batches; the same contract as cuBLASLt's path in gemm.h (bias: a length-n
// vector added to every row; act: none, Relu or the tanh-approximated Gelu; C laid out like D).
// One generic kernel per (dtype, transposes, epilogue): shapes and strides are arguments.
//   (const T* A, const T* B, T* D, const T* bias, const T* C, long long m, long long n,
//    long long k, long long lda, long long ldb, long long ldd, long long stride_a,
//    long long stride_b, long long stride_d, float alpha, float beta,
//    float* ws, unsigned* counters, int splits, long long kc)
// Grid (ceil(n / 32), ceil(m / 32), batch * splits), 128 threads: a 32x32 tile of D per block,
// 2x4 outputs per thread, K in steps of 32 through shared memory with the next step's loads in
// flight. Split K (splits > 1, for problems with fewer tiles than SMs): block z covers
// K range [s * kc, (s + 1) * kc) of batch z / splits, s = z % splits, writes its partial tile to
// ws[tile * splits + s] (kGemmPartialFloats floats each; tile = (batch * gridDim.y + y) * gridDim.x
// + x), and the last of a tile's blocks to finish (counted in counters[tile], which must start at 0
// and which it resets) sums the partials in split order - deterministic - and applies the epilogue.
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

inline constexpr int kGemmTileM = 32;
inline constexpr int kGemmTileN = 32;
inline constexpr int kGemmTileK = 32;
inline constexpr int kGemmThreads = 128;
inline constexpr int kGemmPartialFloats = kGemmTileM * kGemmTileN;
// Split K: the scratch a stream keeps for it holds this many partial tiles (kGemmPartialFloats
// floats each) and as many tile counters; splits * tiles never exceeds it.
inline constexpr int kGemmSplitScratchTiles = 512;

// How many K splits a problem of `tiles` output tiles (over all batches) and depth k gets: about
// two blocks per SM of `multiprocessors`, each split at least 2 steps of K, at most 16. Returns 1
// (no split) for problems with a tile per SM already. (Session 13 on the H200, gemm_probe.py over
// the benchmark encoder's GEMM problems at M = 112 and 304: against gemm_split's earlier rule, at
// least 4 steps per split and blocks for one SM each, this took 8.7 instead of 9.4 us at 96 tiles,
// 9.9 instead of 12.5 at 32 tiles over K = 1024; splitting 240 tiles in two cost 15.8 against 13.8
// unsplit.)
struct GemmSplit {
  int splits = 1;
  long long kc = 0;  // K per split, a multiple of kGemmTileK (k itself when splits == 1)
};
GemmSplit gemm_split(long long tiles, long long k, int multiprocessors);

// Every key starts with this: planning tells the bridge's kernels from the others by it.
inline constexpr std::string_view kGemmKernelKeyPrefix = "gemm_bridge|";

// "gemm_bridge|f32|NT|bias|relu|beta"; kernel names follow it.
std::string gemm_kernel_key(const GemmKernelSpec& spec);
Result<KernelSource> gemm_kernel_source(const GemmKernelSpec& spec);

// kiln's GEMV kernel: the contract above for one row of D (m == 1, one batch entry), which
// cuBLASLt runs as a GEMM (about 5-6 us of GPU time and as much host time for 1x1024x1024 on the
// H200). The product reads B once; it is bound by memory, so the kernel keeps many loads in flight:
//   (const T* A, const T* B, T* D, const T* bias, const T* C, long long n, long long k,
//    long long lda, long long ldb, float alpha, float beta)
// A's row is A[kk] (A[kk * lda] when trans_a); D and C are rows of n. B as stored [k, n]
// (trans_b false): a block of 1024 threads owns the columns of one 32-byte sector of a row
// (gemv_columns_per_block: 8 f32, 16 f16 / bf16), so that N = 1024 spreads over 64-128 blocks; a
// warp's load covers 32 / that many rows, its 32 warps interleave over K, 8 loads in flight per
// thread; partial sums meet by fixed shuffle trees within each warp and across the warps. B
// stored [n, k] (trans_b): a warp per column, its lanes along k, 8 loads in flight each, summed by
// a fixed shuffle tree. Either way the order of every addition is fixed: results are
// deterministic, with or without CUDA graphs.
inline constexpr std::string_view kGemvKernelKeyPrefix = "gemv|";
std::string gemv_kernel_key(const GemmKernelSpec& spec);
Result<KernelSource> gemv_kernel_source(const GemmKernelSpec& spec);
int gemv_columns_per_block(DType dtype);  // B [k, n]: columns a block owns
struct GemvGeometry {
  unsigned grid = 0, block = 0;
};
GemvGeometry gemv_geometry(const GemmKernelSpec& spec, long long n);

}  // namespace kiln::cuda::kernels
