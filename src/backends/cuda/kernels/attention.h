// kiln.Attention's kernel (ir/attention.h): softmax(scale * Q K^T) V in one launch, flash-attention
// style: scores never reach memory, the softmax is computed online over tiles of 32 keys.
//
//   (T* out, const T* q, const T* k, const T* v, KilnAttention a)
// Block: 128 threads (4 warps), each warp owns `rows_per_warp` query rows; the block covers
// 4 * rows_per_warp rows of one (batch, head). Grid: batch * heads * tiles blocks (1-D; block x is
// (b * heads + h) * tiles + tile). Per tile of 32 keys the block stages K and V rows in shared
// memory (f32); lane j scores key j against each of its warp's rows, the warp updates each row's
// running max and sum, and every lane accumulates the weighted V for its features
// (d = lane, lane + 32, ...). Staging loads have fixed per-thread counts and are all issued before
// their first use; the next tile's loads are in flight while the block computes on the current
// one. Every operand is read through its strided view (offset, strides
// along b, h, s, d), so packed QKV tensors and transposed outputs cost no copy. f32 / f16 / bf16
// storage, f32 arithmetic; the head dims (D, Dv <= 128) are compile-time constants of the kernel.
#pragma once

#include <cstdint>
#include <string>

#include "backends/cuda/nvrtc.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda::kernels {

inline constexpr int kAttentionThreads = 128;
inline constexpr int kAttentionKeyTile = 32;

// Mirrors `struct KilnAttention` in the kernel source.
struct AttentionArgs {
  int64_t heads = 1, seq_q = 0, seq_k = 0, tiles = 1;
  int64_t off[4] = {0, 0, 0, 0};  // q, k, v, out: element offsets
  int64_t st[4][4] = {};          // [operand][b, h, s, d]: element strides
  float scale = 1.0f;
  int32_t aligned = 0;  // vector kernels: q, k and v data pointers are 16-byte aligned this call
};

struct AttentionSpec {
  DType dtype = DType::kF32;  // f32, f16 or bf16
  int dim = 64, dim_v = 64;   // 1..128
  int rows_per_warp = 4;      // 1, 2 or 4
  // Stage Q, K and V with 16-byte loads (attention_vector_width elements) when the call's
  // `aligned` says the pointers allow it. Needs head dims that are multiples of the width, and
  // operands whose features are contiguous with offsets and strides that are multiples of it.
  bool vector = false;
  // The tensor-core form (f16 / bf16 only, sm_80 and later): 64 query rows per block, 16 per
  // warp; rows_per_warp does not apply.
  bool mma = false;
};

inline constexpr int kAttentionMmaRows = 64;

// Whether a call takes the tensor-core kernel: half types on sm_80+, and 64-row blocks for at
// least half the SMs (else the SIMT kernel's smaller blocks spread wider).
bool attention_use_mma(DType dtype, int sm, int64_t batch_heads);

// Elements per 16-byte vector load: 4 for f32, 8 for f16 / bf16.
int attention_vector_width(DType dtype);

// The kernel form and rows per warp are chosen from the architecture and batch x heads alone,
// judged as if the query sequence were kAttentionPolicySeq long on a GPU of kAttentionPolicySms
// SMs (an H100 / H200): every call of one engine at any sequence length then takes one kernel, the
// one planned at context creation (a dynamic sequence never meets a kernel that was not compiled
// and loaded before its first call), and planning without a GPU (`kiln cache warm --arch`)
// chooses what the device will.
inline constexpr int64_t kAttentionPolicySeq = 128;
inline constexpr int64_t kAttentionPolicySms = 132;

// Rows per warp: the most (fewer loads of K and V per row) that still gives at least one block
// per SM, else 1.
int attention_rows_per_warp(int64_t batch_heads);

std::string attention_key(const AttentionSpec& spec);
// Errors: kUnsupported for another dtype, a head dim outside 1..128 or another rows_per_warp.
Result<KernelSource> attention_source(const AttentionSpec& spec);

}  // namespace kiln::cuda::kernels
