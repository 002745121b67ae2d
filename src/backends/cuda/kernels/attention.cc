#include "backends/cuda/kernels/attention.h"

#include "backends/cuda/kernels/common.h"
#include "ir/attention.h"

namespace kiln::cuda::kernels {

static_assert(sizeof(AttentionArgs) == 200, "AttentionArgs must match struct KilnAttention");

int attention_rows_per_warp(int64_t batch_heads) {
  for (int rw : {4, 2}) {
    const int64_t rows = 4 * rw;
    if (batch_heads * ((kAttentionPolicySeq + rows - 1) / rows) >= kAttentionPolicySms) return rw;
  }
  return 1;
}

std::string attention_key(const AttentionSpec& s) {
  if (s.mma)
    return "attn_mma:" + tag(s.dtype) + ":d" + std::to_string(s.dim) + ":dv" + std::to_string(s.dim_v) +
           (s.vector ? ":v" : "");
  return "attn:" + tag(s.dtype) + ":d" + std::to_string(s.dim) + ":dv" + std::to_string(s.dim_v) + ":rw" +
         std::to_string(s.rows_per_warp) + (s.vector ? ":v" : "");
}

int attention_vector_width(DType dtype) { return dtype == DType::kF32 ? 4 : 8; }

bool attention_use_mma(DType dtype, int sm, int64_t batch_heads) {
  if ((dtype != DType::kF16 && dtype != DType::kBF16) || sm < 80) return false;
  const int64_t blocks = batch_heads * ((kAttentionPolicySeq + kAttentionMmaRows - 1) / kAttentionMmaRows);
  return 2 * blocks >= kAttentionPolicySms;
}

namespace {

// Both kernel forms stage K and V tiles the same way: per thread, a fixed number of 16-byte
// vectors (VEC, when the call's pointers are aligned) or of elements, loaded into registers for
// the tile starting at key j0 (zeros past the sequence) before any of them is stored.
constexpr const char* kTileLoads = R"(#if VEC
  uint4 kr4[KU], vr4[VU];
#endif
  T krs[KS], vrs[VS];
  auto load_tile = [&](long long j0) {
#if VEC
    if (vec) {
#pragma unroll
      for (int i = 0; i < KU; ++i) {
        const int u = i * 128 + tid, j = u / (DQ / VW), c = u - j * (DQ / VW);
        const long long jj = j0 + j;
        kr4[i] = (u < 32 * (DQ / VW) && jj < a.seq_k) ? *(const uint4*)(kb + jj * a.st[1][2] + c * VW)
                                                       : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int i = 0; i < VU; ++i) {
        const int u = i * 128 + tid, j = u / (DV / VW), c = u - j * (DV / VW);
        const long long jj = j0 + j;
        vr4[i] = (u < 32 * (DV / VW) && jj < a.seq_k) ? *(const uint4*)(vb + jj * a.st[2][2] + c * VW)
                                                       : make_uint4(0u, 0u, 0u, 0u);
      }
      return;
    }
#endif
#pragma unroll
    for (int i = 0; i < KS; ++i) {
      const int e = i * 128 + tid, j = e / DQ, c = e - j * DQ;
      const long long jj = j0 + j;
      krs[i] = (e < 32 * DQ && jj < a.seq_k) ? kb[jj * a.st[1][2] + c * a.st[1][3]] : (T)0;
    }
#pragma unroll
    for (int i = 0; i < VS; ++i) {
      const int e = i * 128 + tid, j = e / DV, c = e - j * DV;
      const long long jj = j0 + j;
      vrs[i] = (e < 32 * DV && jj < a.seq_k) ? vb[jj * a.st[2][2] + c * a.st[2][3]] : (T)0;
    }
  };
)";

// The kernels' argument struct (AttentionArgs on the host) and, per thread and key tile, the
// elements (KS, VS) or 16-byte vectors of VW elements (KU, VU) it stages.
constexpr const char* kArgsAndCounts = R"(#define KS ((32 * DQ + 127) / 128)
#define VS ((32 * DV + 127) / 128)
#define KU ((32 * (DQ / VW) + 127) / 128)
#define VU ((32 * (DV / VW) + 127) / 128)
struct KilnAttention {
  long long heads, seq_q, seq_k, tiles;
  long long off[4];
  long long st[4][4];
  float scale;
  int aligned;
};
)";

// The tensor-core form (AttentionSpec::mma): f16 / bf16 operands, m16n8k16 MMAs with f32
// accumulation. A warp owns 16 query rows (a block 64); per tile of 32 keys it computes its
// 16 x 32 scores as 4 x (D16 / 16) MMAs from Q fragments held in registers and K rows in shared
// memory, updates each row's running max and sum (a row's values live in the 4 lanes of a quad),
// packs the probabilities into A fragments in registers (the scores' accumulator layout is the
// next MMA's operand layout) and accumulates P V as 2 x (DV8 / 8) MMAs against V staged
// transposed. Head dims are padded with zeros to multiples of 16 (D) and 8 (DV) in shared memory.
Result<KernelSource> attention_mma_source(const AttentionSpec& s) {
  const DType d = s.dtype;
  const std::string ab = d == DType::kF16 ? "f16" : "bf16";
  const std::string name = "kiln_attention_mma_" + tag(d) + "_d" + std::to_string(s.dim) + "_dv" +
                           std::to_string(s.dim_v) + (s.vector ? "_v" : "");
  std::string src(prelude());
  src += "typedef unsigned short T;\n";
  src += "#define DQ " + std::to_string(s.dim) + "\n#define DV " + std::to_string(s.dim_v) + "\n#define VEC " +
         (s.vector ? "1" : "0") + "\n#define VW 8\n";
  src += "#define LOAD(x) " + load_expr(d, "(x)") + "\n";
  src += "__device__ __forceinline__ unsigned int kiln_pack(float lo, float hi) {\n"
         "  unsigned int r; asm(\"cvt.rn." + ab + "x2.f32 %0, %1, %2;\" : \"=r\"(r) : \"f\"(hi), \"f\"(lo)); return r;\n}\n";
  src += "__device__ __forceinline__ void kiln_mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {\n"
         "  asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32." + ab + "." + ab + ".f32 "
         "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\"\n"
         "               : \"+f\"(c[0]), \"+f\"(c[1]), \"+f\"(c[2]), \"+f\"(c[3])\n"
         "               : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"r\"(b0), \"r\"(b1));\n}\n";
  src += R"(#define D16 ((DQ + 15) / 16 * 16)
#define DV8 ((DV + 7) / 8 * 8)
// Row pitches in 16-bit elements: a multiple of 8 (16-byte rows) plus 8, so the 8 row groups of a
// fragment load fall in different banks.
#define QP (D16 + 8)
#define VP (32 + 8)
)";
  src += kArgsAndCounts;
  src += "extern \"C\" __global__ void __launch_bounds__(128) " + name +
         "(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,"
         " KilnAttention a) {\n";
  src += R"(  __shared__ __align__(16) T qsm[64 * QP];
  __shared__ __align__(16) T ksm[32 * QP];
  __shared__ __align__(16) T vt[DV8 * VP];
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
  const long long tile = blockIdx.x % a.tiles, bh = blockIdx.x / a.tiles;
  const long long b = bh / a.heads, h = bh - b * a.heads;
  const long long row0 = tile * 64;
  const T* qb = q + a.off[0] + b * a.st[0][0] + h * a.st[0][1];
  const T* kb = k + a.off[1] + b * a.st[1][0] + h * a.st[1][1];
  const T* vb = v + a.off[2] + b * a.st[2][0] + h * a.st[2][1];
  T* ob = out + a.off[3] + b * a.st[3][0] + h * a.st[3][1];
  const bool vec = VEC && a.aligned;
  // Zero padding (feature columns DQ..D16 of Q and K, rows DV..DV8 of V^T) and, for a partial
  // tile of queries, the missing rows: written once, never overwritten.
  for (int e = tid; e < 64 * QP; e += 128) qsm[e] = 0;
  for (int e = tid; e < 32 * QP; e += 128) ksm[e] = 0;
  for (int e = tid; e < DV8 * VP; e += 128) vt[e] = 0;
  __syncthreads();
  // Q: 64 rows, every load issued before the first store.
#if VEC
  if (vec) {
    uint4 r[(64 * (DQ / 8) + 127) / 128];
#pragma unroll
    for (int i = 0; i < (64 * (DQ / 8) + 127) / 128; ++i) {
      const int u = i * 128 + tid, row = u / (DQ / 8), c = u - row * (DQ / 8);
      r[i] = (u < 64 * (DQ / 8) && row0 + row < a.seq_q) ? *(const uint4*)(qb + (row0 + row) * a.st[0][2] + c * 8)
                                                          : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int i = 0; i < (64 * (DQ / 8) + 127) / 128; ++i) {
      const int u = i * 128 + tid, row = u / (DQ / 8), c = u - row * (DQ / 8);
      if (u < 64 * (DQ / 8)) *(uint4*)(qsm + row * QP + c * 8) = r[i];
    }
  } else
#endif
  {
    T r[(64 * DQ + 127) / 128];
#pragma unroll
    for (int i = 0; i < (64 * DQ + 127) / 128; ++i) {
      const int e = i * 128 + tid, row = e / DQ, c = e - row * DQ;
      r[i] = (e < 64 * DQ && row0 + row < a.seq_q) ? qb[(row0 + row) * a.st[0][2] + c * a.st[0][3]] : (T)0;
    }
#pragma unroll
    for (int i = 0; i < (64 * DQ + 127) / 128; ++i) {
      const int e = i * 128 + tid, row = e / DQ, c = e - row * DQ;
      if (e < 64 * DQ) qsm[row * QP + c] = r[i];
    }
  }
)";
  src += kTileLoads;
  src += R"(  auto store_tile = [&]() {
#if VEC
    if (vec) {
#pragma unroll
      for (int i = 0; i < KU; ++i) {
        const int u = i * 128 + tid, j = u / (DQ / 8), c = u - j * (DQ / 8);
        if (u < 32 * (DQ / 8)) *(uint4*)(ksm + j * QP + c * 8) = kr4[i];
      }
#pragma unroll
      for (int i = 0; i < VU; ++i) {
        const int u = i * 128 + tid, j = u / (DV / 8), c = u - j * (DV / 8);
        if (u < 32 * (DV / 8)) {
          const unsigned int wv[4] = {vr4[i].x, vr4[i].y, vr4[i].z, vr4[i].w};
#pragma unroll
          for (int x = 0; x < 4; ++x) {
            vt[(c * 8 + 2 * x) * VP + j] = (T)(wv[x] & 0xffffu);
            vt[(c * 8 + 2 * x + 1) * VP + j] = (T)(wv[x] >> 16);
          }
        }
      }
      return;
    }
#endif
#pragma unroll
    for (int i = 0; i < KS; ++i) {
      const int e = i * 128 + tid, j = e / DQ, c = e - j * DQ;
      if (e < 32 * DQ) ksm[j * QP + c] = krs[i];
    }
#pragma unroll
    for (int i = 0; i < VS; ++i) {
      const int e = i * 128 + tid, j = e / DV, c = e - j * DV;
      if (e < 32 * DV) vt[c * VP + j] = vrs[i];
    }
  };
  load_tile(0);
  __syncthreads();  // Q staged
  // This warp's Q rows as A fragments, for every 16-feature step.
  unsigned int qa[D16 / 16][4];
#pragma unroll
  for (int kk = 0; kk < D16 / 16; ++kk) {
    const T* r0 = qsm + (w * 16 + g) * QP + kk * 16 + t * 2;
    qa[kk][0] = *(const unsigned int*)r0;
    qa[kk][1] = *(const unsigned int*)(r0 + 8 * QP);
    qa[kk][2] = *(const unsigned int*)(r0 + 8);
    qa[kk][3] = *(const unsigned int*)(r0 + 8 * QP + 8);
  }
  const float sl = a.scale * 1.4426950408889634f;  // scores in log2 units: exp2 below
  float m[2] = {-__int_as_float(0x7f800000), -__int_as_float(0x7f800000)}, l[2] = {0.0f, 0.0f};
  float o[DV8 / 8][4];
#pragma unroll
  for (int n = 0; n < DV8 / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  for (long long j0 = 0; j0 < a.seq_k; j0 += 32) {
    __syncthreads();  // the previous tile is read
    store_tile();
    __syncthreads();
    if (j0 + 32 < a.seq_k) load_tile(j0 + 32);
    float sc[4][4];
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D16 / 16; ++kk) {
        const T* kr = ksm + (n * 8 + g) * QP + kk * 16 + t * 2;
        kiln_mma(sc[n], qa[kk], *(const unsigned int*)kr, *(const unsigned int*)(kr + 8));
      }
    }
    // Online softmax: sc[n][0..1] belong to row g, sc[n][2..3] to row g + 8; key n*8 + 2t + {0,1}.
    float mt[2] = {-__int_as_float(0x7f800000), -__int_as_float(0x7f800000)};
#pragma unroll
    for (int n = 0; n < 4; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const bool valid = j0 + n * 8 + 2 * t + (e & 1) < a.seq_k;
        sc[n][e] = valid ? sc[n][e] * sl : -__int_as_float(0x7f800000);
        mt[e >> 1] = fmaxf(mt[e >> 1], sc[n][e]);
      }
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 1));
      mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 2));
      const float mn = fmaxf(m[r], mt[r]);  // finite: key j0 is always valid
      corr[r] = exp2f(m[r] - mn);
      m[r] = mn;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int n = 0; n < 4; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        sc[n][e] = exp2f(sc[n][e] - m[e >> 1]);
        l[e >> 1] += sc[n][e];
      }
#pragma unroll
    for (int n = 0; n < DV8 / 8; ++n) {
      o[n][0] *= corr[0]; o[n][1] *= corr[0];
      o[n][2] *= corr[1]; o[n][3] *= corr[1];
    }
    // P (16 x 32) as A fragments of two 16-key steps, then O += P V.
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      const unsigned int pa[4] = {kiln_pack(sc[2 * kk][0], sc[2 * kk][1]), kiln_pack(sc[2 * kk][2], sc[2 * kk][3]),
                                  kiln_pack(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                                  kiln_pack(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
      for (int n = 0; n < DV8 / 8; ++n) {
        const T* vr = vt + (n * 8 + g) * VP + kk * 16 + t * 2;
        kiln_mma(o[n], pa, *(const unsigned int*)vr, *(const unsigned int*)(vr + 8));
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const long long i = row0 + w * 16 + g + 8 * r;
    if (i >= a.seq_q) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // no keys: zeros, the empty sum
#pragma unroll
    for (int n = 0; n < DV8 / 8; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int dd = n * 8 + 2 * t + e;
        if (dd < DV) ob[i * a.st[3][2] + dd * a.st[3][3]] = )" + store_expr(d, "o[n][2 * r + e] * inv") + R"(;
      }
  }
}
)";
  return KernelSource{name, src};
}

}  // namespace

Result<KernelSource> attention_source(const AttentionSpec& s) {
  if (s.dtype != DType::kF32 && s.dtype != DType::kF16 && s.dtype != DType::kBF16)
    return unsupported("attention kernel: dtype " + tag(s.dtype) + " is not supported");
  if (s.dim < 1 || s.dim > ir::kMaxAttentionHeadDim || s.dim_v < 1 || s.dim_v > ir::kMaxAttentionHeadDim)
    return unsupported("attention kernel: head dims " + std::to_string(s.dim) + "/" + std::to_string(s.dim_v) +
                       " outside 1.." + std::to_string(ir::kMaxAttentionHeadDim));
  if (s.rows_per_warp != 1 && s.rows_per_warp != 2 && s.rows_per_warp != 4)
    return unsupported("attention kernel: rows per warp must be 1, 2 or 4");
  const int vw = attention_vector_width(s.dtype);
  if (s.vector && (s.dim % vw != 0 || s.dim_v % vw != 0))
    return unsupported("attention kernel: vector loads need head dims that are multiples of " + std::to_string(vw));
  if (s.mma) {
    if (s.dtype == DType::kF32) return unsupported("attention kernel: the tensor-core form takes f16 or bf16");
    return attention_mma_source(s);
  }
  const std::string name = "kiln_attention_" + tag(s.dtype) + "_d" + std::to_string(s.dim) + "_dv" +
                           std::to_string(s.dim_v) + "_rw" + std::to_string(s.rows_per_warp) + (s.vector ? "_v" : "");
  const DType d = s.dtype;
  std::string src(prelude());
  src += "typedef " + std::string(storage_type(d)) + " T;\n";
  src += "#define DQ " + std::to_string(s.dim) + "\n#define DV " + std::to_string(s.dim_v) + "\n#define RW " +
         std::to_string(s.rows_per_warp) + "\n#define VEC " + (s.vector ? "1" : "0") + "\n#define VW " +
         std::to_string(vw) + "\n";
  // kiln_unpack: one 16-byte vector of VW stored elements -> VW floats.
  if (d == DType::kF32) {
    src += "__device__ __forceinline__ void kiln_unpack(uint4 u, float* f) {\n"
           "  f[0] = __uint_as_float(u.x); f[1] = __uint_as_float(u.y);\n"
           "  f[2] = __uint_as_float(u.z); f[3] = __uint_as_float(u.w);\n}\n";
  } else {
    const std::string cvt = d == DType::kF16 ? "kiln_f16_to_f32" : "kiln_bf16_to_f32";
    src += "__device__ __forceinline__ void kiln_unpack(uint4 u, float* f) {\n"
           "  const unsigned int w[4] = {u.x, u.y, u.z, u.w};\n"
           "#pragma unroll\n  for (int i = 0; i < 4; ++i) {\n"
           "    f[2 * i] = " + cvt + "((unsigned short)(w[i] & 0xffffu));\n"
           "    f[2 * i + 1] = " + cvt + "((unsigned short)(w[i] >> 16));\n  }\n}\n";
  }
  src += "#define LOAD(x) " + load_expr(d, "(x)") + "\n";
  src += R"(#define DQ4 ((DQ + 3) / 4)
// K row pitch in float4s: odd, so the 8 lanes of a quarter-warp read 8 different bank groups.
#define KP4 ((DQ4 & 1) ? DQ4 : DQ4 + 1)
#define NV ((DV + 31) / 32)
#define ROWS (4 * RW)
// Per thread: the Q elements (QS) or 16-byte vectors (QU) it stages.
#define QS ((ROWS * DQ + 127) / 128)
#define QU ((ROWS * (DQ / VW) + 127) / 128)
)";
  src += kArgsAndCounts;
  src += "extern \"C\" __global__ void __launch_bounds__(128) " + name +
         "(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,"
         " KilnAttention a) {\n";
  src += R"(  __shared__ float4 ks[32 * KP4];
  __shared__ __align__(16) float vs[32 * DV];
  __shared__ float4 qs[ROWS * DQ4];
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const long long tile = blockIdx.x % a.tiles, bh = blockIdx.x / a.tiles;
  const long long b = bh / a.heads, h = bh - b * a.heads;
  const long long row0 = tile * ROWS;
  const T* qb = q + a.off[0] + b * a.st[0][0] + h * a.st[0][1];
  const T* kb = k + a.off[1] + b * a.st[1][0] + h * a.st[1][1];
  const T* vb = v + a.off[2] + b * a.st[2][0] + h * a.st[2][1];
  T* ob = out + a.off[3] + b * a.st[3][0] + h * a.st[3][1];
  float* qf = (float*)qs;
  float* kf = (float*)ks;
  const bool vec = VEC && a.aligned;
  // Every load of a stage is issued before its first use (fixed trip counts, unrolled), and the
  // next key tile's loads are in flight while the block computes on the current one.
  if ((DQ & 3) != 0)  // the K and Q pitch pads each row to DQ4 float4s: zero the padding once
    for (int e = tid; e < 32 * KP4 * 4 + ROWS * DQ4 * 4; e += 128) {
      if (e < 32 * KP4 * 4) kf[e] = 0.0f; else qf[e - 32 * KP4 * 4] = 0.0f;
    }
  __syncthreads();
#if VEC
  if (vec) {
    uint4 r[QU];
#pragma unroll
    for (int i = 0; i < QU; ++i) {
      const int u = i * 128 + tid, row = u / (DQ / VW), c = u - row * (DQ / VW);
      const long long ii = row0 + row;
      r[i] = (u < ROWS * (DQ / VW) && ii < a.seq_q) ? *(const uint4*)(qb + ii * a.st[0][2] + c * VW)
                                                     : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int i = 0; i < QU; ++i) {
      const int u = i * 128 + tid, row = u / (DQ / VW), c = u - row * (DQ / VW);
      if (u < ROWS * (DQ / VW)) kiln_unpack(r[i], qf + row * DQ4 * 4 + c * VW);
    }
  } else
#endif
  {
    T r[QS];
#pragma unroll
    for (int i = 0; i < QS; ++i) {
      const int e = i * 128 + tid, row = e / DQ, c = e - row * DQ;
      const long long ii = row0 + row;
      r[i] = (e < ROWS * DQ && ii < a.seq_q) ? qb[ii * a.st[0][2] + c * a.st[0][3]] : (T)0;
    }
#pragma unroll
    for (int i = 0; i < QS; ++i) {
      const int e = i * 128 + tid, row = e / DQ, c = e - row * DQ;
      if (e < ROWS * DQ) qf[row * DQ4 * 4 + c] = LOAD(r[i]);
    }
  }
)";
  src += kTileLoads;
  src += R"(  auto store_tile = [&]() {
#if VEC
    if (vec) {
#pragma unroll
      for (int i = 0; i < KU; ++i) {
        const int u = i * 128 + tid, j = u / (DQ / VW), c = u - j * (DQ / VW);
        if (u < 32 * (DQ / VW)) kiln_unpack(kr4[i], kf + j * KP4 * 4 + c * VW);
      }
#pragma unroll
      for (int i = 0; i < VU; ++i) {
        const int u = i * 128 + tid;
        if (u < 32 * (DV / VW)) kiln_unpack(vr4[i], vs + u * VW);
      }
      return;
    }
#endif
#pragma unroll
    for (int i = 0; i < KS; ++i) {
      const int e = i * 128 + tid, j = e / DQ, c = e - j * DQ;
      if (e < 32 * DQ) kf[j * KP4 * 4 + c] = LOAD(krs[i]);
    }
#pragma unroll
    for (int i = 0; i < VS; ++i) {
      const int e = i * 128 + tid;
      if (e < 32 * DV) vs[e] = LOAD(vrs[i]);
    }
  };
  float m[RW], l[RW], acc[RW][NV];
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    m[r] = -__int_as_float(0x7f800000);
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < NV; ++c) acc[r][c] = 0.0f;
  }
  load_tile(0);
  for (long long j0 = 0; j0 < a.seq_k; j0 += 32) {
    __syncthreads();  // the previous tile is read (and, the first time, Q is staged)
    store_tile();
    __syncthreads();
    if (j0 + 32 < a.seq_k) load_tile(j0 + 32);
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
#pragma unroll 8
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
