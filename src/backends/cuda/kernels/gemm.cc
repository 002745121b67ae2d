#include "backends/cuda/kernels/gemm.h"

#include <algorithm>

#include "backends/cuda/kernels/common.h"

namespace kiln::cuda::kernels {
namespace {

const char* act_tag(GemmEpilogue a) {
  switch (a) {
    case GemmEpilogue::kRelu: return "relu";
    case GemmEpilogue::kGeluTanh: return "gelu";
    case GemmEpilogue::kNone: break;
  }
  return "";
}

bool supported(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; }

}  // namespace

GemmSplit gemm_split(long long tiles, long long k, int multiprocessors) {
  GemmSplit out;
  out.kc = k;
  const long long sms = multiprocessors > 0 ? multiprocessors : 1;
  if (multiprocessors <= 0 || tiles <= 0 || k < 4 * kGemmTileK || tiles >= sms) return out;
  long long splits = std::min<long long>({(2 * sms + tiles - 1) / tiles, k / (2 * kGemmTileK), 16,
                                          kGemmSplitScratchTiles / tiles});
  if (splits < 2) return out;
  const long long per = (k + splits - 1) / splits;
  out.kc = (per + kGemmTileK - 1) / kGemmTileK * kGemmTileK;
  out.splits = static_cast<int>((k + out.kc - 1) / out.kc);
  if (out.splits < 2) out = GemmSplit{1, k};
  return out;
}

std::string gemm_kernel_key(const GemmKernelSpec& s) {
  std::string key = std::string(kGemmKernelKeyPrefix) + tag(s.dtype) + "|" + (s.trans_a ? "T" : "N") + (s.trans_b ? "T" : "N");
  if (s.bias) key += "|bias";
  if (s.act != GemmEpilogue::kNone) key += std::string("|") + act_tag(s.act);
  if (s.beta) key += "|beta";
  return key;
}

// The kernel text below is written for this geometry (tile, threads, partial tile size).
static_assert(kGemmTileM == 32 && kGemmTileN == 32 && kGemmTileK == 32 && kGemmThreads == 128 &&
              kGemmPartialFloats == 1024);

Result<KernelSource> gemm_kernel_source(const GemmKernelSpec& s) {
  if (!supported(s.dtype)) return unsupported("GEMM kernel: dtype " + tag(s.dtype) + " is not supported");
  std::string name = "kiln_gemm_" + tag(s.dtype) + "_" + (s.trans_a ? "t" : "n") + (s.trans_b ? "t" : "n");
  if (s.bias) name += "_bias";
  if (s.act != GemmEpilogue::kNone) name += std::string("_") + act_tag(s.act);
  if (s.beta) name += "_beta";
  const DType d = s.dtype;
  std::string src(prelude());
  src += "typedef " + std::string(storage_type(d)) + " T;\n";
  // Tiles: A 32 rows x 32 of K, stored As[kk][row]; B 32 of K x 32 columns, Bs[kk][col]. Each
  // thread loads 8 of A and 8 of B per step, consecutive threads consecutive addresses of whichever
  // operand layout this is; the next step's loads are in flight while this step computes. Thread
  // (tx, ty) = (tid % 8, tid / 8) owns rows ty + 16 i (i < 2) and columns tx + 8 j (j < 4).
  const std::string a_pos = s.trans_a ? "const int r = i % 32, kk = i / 32;" : "const int r = i / 32, kk = i % 32;";
  const std::string a_off = s.trans_a ? "(k0 + kk) * lda + (row0 + r)" : "(row0 + r) * lda + (k0 + kk)";
  const std::string b_pos = s.trans_b ? "const int c = i / 32, kk = i % 32;" : "const int c = i % 32, kk = i / 32;";
  const std::string b_off = s.trans_b ? "(col0 + c) * ldb + (k0 + kk)" : "(k0 + kk) * ldb + (col0 + c)";
  std::string epilogue = "float v = alpha * acc[i][j];\n";
  if (s.beta) epilogue += "        v += beta * " + load_expr(d, "C[off]") + ";\n";
  if (s.bias) epilogue += "        v += " + load_expr(d, "bias[col]") + ";\n";
  if (s.act == GemmEpilogue::kRelu) epilogue += "        v = v > 0.0f ? v : 0.0f;\n";
  if (s.act == GemmEpilogue::kGeluTanh)
    epilogue += "        v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));\n";
  // The loads are a macro, not a lambda: written out at both places, every loop unrolled, they
  // compile to straight-line code (the lambda form ran about 1.7x slower on the H200, session 13).
  src += "#define KILN_GEMM_LOAD() \\\n"
         "  _Pragma(\"unroll\") for (int q = 0; q < 8; ++q) { \\\n"
         "    const int i = tid + 128 * q; " + a_pos + " \\\n"
         "    ra[q] = (row0 + r < m && k0 + kk < kend) ? " + load_expr(d, "A[" + a_off + "]") + " : 0.0f; \\\n"
         "  } \\\n"
         "  _Pragma(\"unroll\") for (int q = 0; q < 8; ++q) { \\\n"
         "    const int i = tid + 128 * q; " + b_pos + " \\\n"
         "    rb[q] = (col0 + c < n && k0 + kk < kend) ? " + load_expr(d, "B[" + b_off + "]") + " : 0.0f; \\\n"
         "  }\n";
  src += "extern \"C\" __global__ void __launch_bounds__(128) " + name +
         "(const T* __restrict__ A, const T* __restrict__ B, T* D, const T* __restrict__ bias, const T* C,\n"
         "    long long m, long long n, long long k, long long lda, long long ldb, long long ldd,\n"
         "    long long stride_a, long long stride_b, long long stride_d, float alpha, float beta,\n"
         "    float* ws, unsigned* counters, int splits, long long kc) {\n"
         "  __shared__ float As[32][33];\n"
         "  __shared__ float Bs[32][33];\n"
         "  __shared__ unsigned last;\n"
         "  const int tid = threadIdx.x;\n"
         "  const long long z = blockIdx.z / splits;\n"
         "  const int split = (int)(blockIdx.z % splits);\n"
         "  A += z * stride_a; B += z * stride_b; D += z * stride_d;\n"
         "  if (C) C += z * stride_d;\n"
         "  const int tx = tid % 8, ty = tid / 8;\n"
         "  const long long row0 = (long long)blockIdx.y * 32, col0 = (long long)blockIdx.x * 32;\n"
         "  const long long kbeg = split * kc, kend = kbeg + kc < k ? kbeg + kc : k;\n"
         "  float acc[2][4];\n"
         "#pragma unroll\n"
         "  for (int i = 0; i < 2; ++i)\n"
         "#pragma unroll\n"
         "    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;\n"
         "  float ra[8], rb[8];\n"
         "  long long k0 = kbeg;\n"
         "  KILN_GEMM_LOAD();\n"
         "  while (k0 < kend) {\n"
         "#pragma unroll\n"
         "    for (int q = 0; q < 8; ++q) {\n"
         "      const int i = tid + 128 * q; " + a_pos + "\n"
         "      As[kk][r] = ra[q];\n"
         "    }\n"
         "#pragma unroll\n"
         "    for (int q = 0; q < 8; ++q) {\n"
         "      const int i = tid + 128 * q; " + b_pos + "\n"
         "      Bs[kk][c] = rb[q];\n"
         "    }\n"
         "    __syncthreads();\n"
         "    k0 += 32;\n"
         "    if (k0 < kend) { KILN_GEMM_LOAD(); }\n"
         "#pragma unroll\n"
         "    for (int kk = 0; kk < 32; ++kk) {\n"
         "      float a[2], b[4];\n"
         "#pragma unroll\n"
         "      for (int i = 0; i < 2; ++i) a[i] = As[kk][ty + 16 * i];\n"
         "#pragma unroll\n"
         "      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 8 * j];\n"
         "#pragma unroll\n"
         "      for (int i = 0; i < 2; ++i)\n"
         "#pragma unroll\n"
         "        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);\n"
         "    }\n"
         "    __syncthreads();\n"
         "  }\n"
         "  if (splits > 1) {  // split K: the tile's last block to finish sums the partial tiles in order\n"
         "    const unsigned long long tile = ((unsigned long long)z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;\n"
         "    float* part = ws + tile * (unsigned long long)splits * 1024ull;\n"
         "#pragma unroll\n"
         "    for (int i = 0; i < 2; ++i)\n"
         "#pragma unroll\n"
         "      for (int j = 0; j < 4; ++j) part[split * 1024 + (i * 4 + j) * 128 + tid] = acc[i][j];\n"
         "    __threadfence();\n"
         "    __syncthreads();\n"
         "    if (tid == 0) last = atomicAdd(&counters[tile], 1u) == (unsigned)(splits - 1);\n"
         "    __syncthreads();\n"
         "    if (!last) return;\n"
         "    __threadfence();\n"
         "#pragma unroll\n"
         "    for (int i = 0; i < 2; ++i)\n"
         "#pragma unroll\n"
         "      for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;\n"
         "    for (int t = 0; t < splits; ++t) {  // a partial's eight loads issued together; partials in order\n"
         "      float p[2][4];\n"
         "#pragma unroll\n"
         "      for (int i = 0; i < 2; ++i)\n"
         "#pragma unroll\n"
         "        for (int j = 0; j < 4; ++j) p[i][j] = __ldcg(part + t * 1024 + (i * 4 + j) * 128 + tid);\n"
         "#pragma unroll\n"
         "      for (int i = 0; i < 2; ++i)\n"
         "#pragma unroll\n"
         "        for (int j = 0; j < 4; ++j) acc[i][j] += p[i][j];\n"
         "    }\n"
         "    if (tid == 0) counters[tile] = 0u;  // ready for the next GEMM on this stream\n"
         "  }\n"
         "#pragma unroll\n"
         "  for (int i = 0; i < 2; ++i) {\n"
         "    const long long row = row0 + ty + 16 * i;\n"
         "    if (row >= m) continue;\n"
         "#pragma unroll\n"
         "    for (int j = 0; j < 4; ++j) {\n"
         "      const long long col = col0 + tx + 8 * j;\n"
         "      if (col >= n) continue;\n"
         "      const long long off = row * ldd + col;\n"
         "      " + epilogue +
         "      D[off] = " + store_expr(d, "v") + ";\n"
         "    }\n"
         "  }\n"
         "}\n"
         "#undef KILN_GEMM_LOAD\n";
  return KernelSource{name, std::move(src)};
}

std::string gemv_kernel_key(const GemmKernelSpec& s) {
  std::string key = std::string(kGemvKernelKeyPrefix) + tag(s.dtype) + "|" + (s.trans_a ? "T" : "N") + (s.trans_b ? "T" : "N");
  if (s.bias) key += "|bias";
  if (s.act != GemmEpilogue::kNone) key += std::string("|") + act_tag(s.act);
  if (s.beta) key += "|beta";
  return key;
}

int gemv_columns_per_block(DType d) { return d == DType::kF32 ? 8 : 16; }  // one 32-byte sector of a row

GemvGeometry gemv_geometry(const GemmKernelSpec& s, long long n) {
  if (s.trans_b) return {static_cast<unsigned>((n + 7) / 8), 256};  // a warp per column
  const long long cpb = gemv_columns_per_block(s.dtype);
  return {static_cast<unsigned>((n + cpb - 1) / cpb), 1024};
}

Result<KernelSource> gemv_kernel_source(const GemmKernelSpec& s) {
  if (!supported(s.dtype)) return unsupported("GEMV kernel: dtype " + tag(s.dtype) + " is not supported");
  std::string name = "kiln_gemv_" + tag(s.dtype) + "_" + (s.trans_a ? "t" : "n") + (s.trans_b ? "t" : "n");
  if (s.bias) name += "_bias";
  if (s.act != GemmEpilogue::kNone) name += std::string("_") + act_tag(s.act);
  if (s.beta) name += "_beta";
  const DType d = s.dtype;
  const std::string x_at = s.trans_a ? "A[(r) * lda]" : "A[(r)]";
  auto x = [&](const std::string& r) {
    std::string e = x_at;
    e.replace(e.find("(r)"), 3, "(" + r + ")");
    return load_expr(d, e);
  };
  std::string epilogue = "float v = alpha * acc;\n";
  if (s.beta) epilogue += "    v += beta * " + load_expr(d, "C[col]") + ";\n";
  if (s.bias) epilogue += "    v += " + load_expr(d, "bias[col]") + ";\n";
  if (s.act == GemmEpilogue::kRelu) epilogue += "    v = v > 0.0f ? v : 0.0f;\n";
  if (s.act == GemmEpilogue::kGeluTanh)
    epilogue += "    v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));\n";
  std::string src(prelude());
  src += "typedef " + std::string(storage_type(d)) + " T;\n";
  const std::string params =
      "(const T* __restrict__ A, const T* __restrict__ B, T* D, const T* __restrict__ bias, const T* C,\n"
      "    long long n, long long k, long long lda, long long ldb, float alpha, float beta) {\n";
  if (!s.trans_b) {
    const std::string cpb = std::to_string(gemv_columns_per_block(d)), rows = std::to_string(32 / gemv_columns_per_block(d));
    src += "#define CPB " + cpb + "\n#define R " + rows + "\n";
    src += "extern \"C\" __global__ void __launch_bounds__(1024) " + name + params +
           "  __shared__ float part[32][CPB + 1];\n"
           "  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;\n"
           "  const int lc = lane % CPB, lr = lane / CPB;\n"
           "  float acc = 0.0f;\n"
           "  {\n"
           "    const long long col = (long long)blockIdx.x * CPB + lc;\n"
           "    if (col < n) {\n"
           "      const long long step = 32 * R;\n"
           "      long long r = (long long)w * R + lr;\n"
           "      for (; r + 7 * step < k; r += 8 * step) {\n"
           "        float b[8], a[8];\n"
           "#pragma unroll\n"
           "        for (int u = 0; u < 8; ++u) { b[u] = " + load_expr(d, "B[(r + step * u) * ldb + col]") + "; a[u] = " +
           x("r + step * u") + "; }\n"
           "#pragma unroll\n"
           "        for (int u = 0; u < 8; ++u) acc = fmaf(a[u], b[u], acc);\n"
           "      }\n"
           "      for (; r < k; r += step) acc = fmaf(" + x("r") + ", " + load_expr(d, "B[r * ldb + col]") + ", acc);\n"
           "    }\n"
           "  }\n"
           "  // The lanes of one column in a warp (lc, lc + CPB, ...), then the warps, by fixed trees.\n"
           "#pragma unroll\n"
           "  for (int off = CPB; off < 32; off <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);\n"
           "  if (lr == 0) part[w][lc] = acc;\n"
           "  __syncthreads();\n"
           "  if (w != 0) return;\n"
           "  for (int c = 0; c < CPB; ++c) {\n"
           "    float v = part[lane][c];\n"
           "#pragma unroll\n"
           "    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);\n"
           "    if (lane == c) acc = v;\n"
           "  }\n"
           "  const long long col = (long long)blockIdx.x * CPB + lane;\n"
           "  if (lane >= CPB || col >= n) return;\n"
           "  {\n"
           "    " + epilogue +
           "    D[col] = " + store_expr(d, "v") + ";\n"
           "  }\n"
           "}\n";
  } else {
    src += "extern \"C\" __global__ void __launch_bounds__(256) " + name + params +
           "  const int lane = threadIdx.x & 31;\n"
           "  const long long col = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);\n"
           "  if (col >= n) return;\n"
           "  const T* row = B + col * ldb;\n"
           "  float acc = 0.0f;\n"
           "  long long r = lane;\n"
           "  for (; r + 7 * 32 < k; r += 8 * 32) {\n"
           "    float b[8], a[8];\n"
           "#pragma unroll\n"
           "    for (int u = 0; u < 8; ++u) { b[u] = " + load_expr(d, "row[r + 32 * u]") + "; a[u] = " + x("r + 32 * u") +
           "; }\n"
           "#pragma unroll\n"
           "    for (int u = 0; u < 8; ++u) acc = fmaf(a[u], b[u], acc);\n"
           "  }\n"
           "  for (; r < k; r += 32) acc = fmaf(" + x("r") + ", " + load_expr(d, "row[r]") + ", acc);\n"
           "#pragma unroll\n"
           "  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);\n"
           "  if (lane != 0) return;\n"
           "  {\n"
           "    " + epilogue +
           "    D[col] = " + store_expr(d, "v") + ";\n"
           "  }\n"
           "}\n";
  }
  return KernelSource{name, std::move(src)};
}

}  // namespace kiln::cuda::kernels
