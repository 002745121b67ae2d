#include "backends/cuda/kernels/attention.h"

#include "backends/cuda/kernels/common.h"
#include "ir/attention.h"

namespace kiln::cuda::kernels {

static_assert(sizeof(AttentionArgs) == 200, "AttentionArgs must match struct KilnAttention");

int attention_rows_per_warp(int64_t batch_heads, int64_t seq_q, int multiprocessors) {
  for (int rw : {4, 2}) {
    const int64_t rows = 4 * rw;
    if (batch_heads * ((seq_q + rows - 1) / rows) >= multiprocessors) return rw;
  }
  return 1;
}

std::string attention_key(const AttentionSpec& s) {
  return "attn:" + tag(s.dtype) + ":d" + std::to_string(s.dim) + ":dv" + std::to_string(s.dim_v) + ":rw" +
         std::to_string(s.rows_per_warp);
}

Result<KernelSource> attention_source(const AttentionSpec& s) {
  if (s.dtype != DType::kF32 && s.dtype != DType::kF16 && s.dtype != DType::kBF16)
    return unsupported("attention kernel: dtype " + tag(s.dtype) + " is not supported");
  if (s.dim < 1 || s.dim > ir::kMaxAttentionHeadDim || s.dim_v < 1 || s.dim_v > ir::kMaxAttentionHeadDim)
    return unsupported("attention kernel: head dims " + std::to_string(s.dim) + "/" + std::to_string(s.dim_v) +
                       " outside 1.." + std::to_string(ir::kMaxAttentionHeadDim));
  if (s.rows_per_warp != 1 && s.rows_per_warp != 2 && s.rows_per_warp != 4)
    return unsupported("attention kernel: rows per warp must be 1, 2 or 4");
  const std::string name = "kiln_attention_" + tag(s.dtype) + "_d" + std::to_string(s.dim) + "_dv" +
                           std::to_string(s.dim_v) + "_rw" + std::to_string(s.rows_per_warp);
  const DType d = s.dtype;
  std::string src(prelude());
  src += "typedef " + std::string(storage_type(d)) + " T;\n";
  src += "#define DQ " + std::to_string(s.dim) + "\n#define DV " + std::to_string(s.dim_v) + "\n#define RW " +
         std::to_string(s.rows_per_warp) + "\n";
  src += R"(#define DQ4 ((DQ + 3) / 4)
// K row pitch in float4s: odd, so the 8 lanes of a quarter-warp read 8 different bank groups.
#define KP4 ((DQ4 & 1) ? DQ4 : DQ4 + 1)
#define NV ((DV + 31) / 32)
#define ROWS (4 * RW)
struct KilnAttention {
  long long heads, seq_q, seq_k, tiles;
  long long off[4];
  long long st[4][4];
  float scale;
};
)";
  src += "extern \"C\" __global__ void __launch_bounds__(128) " + name +
         "(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,"
         " KilnAttention a) {\n";
  src += R"(  __shared__ float4 ks[32 * KP4];
  __shared__ float vs[32 * DV];
  __shared__ float4 qs[ROWS * DQ4];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const long long tile = blockIdx.x % a.tiles, bh = blockIdx.x / a.tiles;
  const long long b = bh / a.heads, h = bh - b * a.heads;
  const long long row0 = tile * ROWS;
  const T* qb = q + a.off[0] + b * a.st[0][0] + h * a.st[0][1];
  const T* kb = k + a.off[1] + b * a.st[1][0] + h * a.st[1][1];
  const T* vb = v + a.off[2] + b * a.st[2][0] + h * a.st[2][1];
  T* ob = out + a.off[3] + b * a.st[3][0] + h * a.st[3][1];
  float* qf = (float*)qs;
  for (int e = threadIdx.x; e < ROWS * DQ4 * 4; e += 128) {
    const int r = e / (DQ4 * 4), d = e - r * (DQ4 * 4);
    const long long i = row0 + r;
    qf[e] = (i < a.seq_q && d < DQ) ? )" + load_expr(d, "qb[i * a.st[0][2] + d * a.st[0][3]]") + R"( : 0.0f;
  }
  float m[RW], l[RW], acc[RW][NV];
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    m[r] = -__int_as_float(0x7f800000);
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < NV; ++c) acc[r][c] = 0.0f;
  }
  float* kf = (float*)ks;
  for (long long j0 = 0; j0 < a.seq_k; j0 += 32) {
    __syncthreads();  // the previous tile is read (and, the first time, Q is staged)
    for (int e = threadIdx.x; e < 32 * DQ4 * 4; e += 128) {
      const int j = e / (DQ4 * 4), d = e - j * (DQ4 * 4);
      const long long jj = j0 + j;
      kf[j * KP4 * 4 + d] = (jj < a.seq_k && d < DQ) ? )" + load_expr(d, "kb[jj * a.st[1][2] + d * a.st[1][3]]") + R"( : 0.0f;
    }
    for (int e = threadIdx.x; e < 32 * DV; e += 128) {
      const int j = e / DV, d = e - j * DV;
      const long long jj = j0 + j;
      vs[e] = jj < a.seq_k ? )" + load_expr(d, "vb[jj * a.st[2][2] + d * a.st[2][3]]") + R"( : 0.0f;
    }
    __syncthreads();
    float s[RW];
#pragma unroll
    for (int r = 0; r < RW; ++r) s[r] = 0.0f;
    const float4* kr = ks + lane * KP4;
#pragma unroll 4
    for (int c = 0; c < DQ4; ++c) {
      const float4 kv = kr[c];
#pragma unroll
      for (int r = 0; r < RW; ++r) {
        const float4 qv = qs[(w * RW + r) * DQ4 + c];
        s[r] = fmaf(qv.x, kv.x, s[r]);
        s[r] = fmaf(qv.y, kv.y, s[r]);
        s[r] = fmaf(qv.z, kv.z, s[r]);
        s[r] = fmaf(qv.w, kv.w, s[r]);
      }
    }
    const bool valid = j0 + lane < a.seq_k;
    float p[RW];
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      const float x = valid ? s[r] * a.scale : -__int_as_float(0x7f800000);
      float mt = x;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      const float mn = fmaxf(m[r], mt);  // finite: key j0 is always valid
      p[r] = valid ? expf(x - mn) : 0.0f;
      const float corr = expf(m[r] - mn);
      float ps = p[r];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
      l[r] = l[r] * corr + ps;
#pragma unroll
      for (int c = 0; c < NV; ++c) acc[r][c] *= corr;
      m[r] = mn;
    }
#pragma unroll 4
    for (int j = 0; j < 32; ++j) {
      float vv[NV];
#pragma unroll
      for (int c = 0; c < NV; ++c) vv[c] = (lane + 32 * c < DV) ? vs[j * DV + lane + 32 * c] : 0.0f;
#pragma unroll
      for (int r = 0; r < RW; ++r) {
        const float pj = __shfl_sync(0xffffffffu, p[r], j);
#pragma unroll
        for (int c = 0; c < NV; ++c) acc[r][c] = fmaf(pj, vv[c], acc[r][c]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    const long long i = row0 + w * RW + r;
    if (i >= a.seq_q) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // no keys: zeros, the empty sum
#pragma unroll
    for (int c = 0; c < NV; ++c) {
      const int d = lane + 32 * c;
      if (d < DV) ob[i * a.st[3][2] + d * a.st[3][3]] = )" + store_expr(d, "acc[r][c] * inv") + R"(;
    }
  }
}
)";
  return KernelSource{name, src};
}

}  // namespace kiln::cuda::kernels
