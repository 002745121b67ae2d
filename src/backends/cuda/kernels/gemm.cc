#include "backends/cuda/kernels/gemm.h"

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

std::string gemm_kernel_key(const GemmKernelSpec& s) {
  std::string key = std::string(kGemmKernelKeyPrefix) + tag(s.dtype) + "|" + (s.trans_a ? "T" : "N") + (s.trans_b ? "T" : "N");
  if (s.bias) key += "|bias";
  if (s.act != GemmEpilogue::kNone) key += std::string("|") + act_tag(s.act);
  if (s.beta) key += "|beta";
  return key;
}

Result<KernelSource> gemm_kernel_source(const GemmKernelSpec& s) {
  if (!supported(s.dtype)) return unsupported("GEMM kernel: dtype " + tag(s.dtype) + " is not supported");
  std::string name = "kiln_gemm_" + tag(s.dtype) + "_" + (s.trans_a ? "t" : "n") + (s.trans_b ? "t" : "n");
  if (s.bias) name += "_bias";
  if (s.act != GemmEpilogue::kNone) name += std::string("_") + act_tag(s.act);
  if (s.beta) name += "_beta";
  const DType d = s.dtype;
  std::string src(prelude());
  src += "typedef " + std::string(storage_type(d)) + " T;\n";
  // A tile: 64 rows x 16 of K, stored As[kk][row]; B tile: 16 of K x 64 columns, Bs[kk][col].
  // Consecutive threads load consecutive addresses of whichever operand layout this is.
  const std::string a_load = s.trans_a ? "const int r = i % 64, kk = i / 64;\n      const long long off = (k0 + kk) * lda + (row0 + r);\n"
                                       : "const int r = i / 16, kk = i % 16;\n      const long long off = (row0 + r) * lda + (k0 + kk);\n";
  const std::string b_load = s.trans_b ? "const int c = i / 16, kk = i % 16;\n      const long long off = (col0 + c) * ldb + (k0 + kk);\n"
                                       : "const int c = i % 64, kk = i / 64;\n      const long long off = (k0 + kk) * ldb + (col0 + c);\n";
  std::string epilogue = "float v = alpha * acc[i][j];\n";
  if (s.beta) epilogue += "        v += beta * " + load_expr(d, "C[off]") + ";\n";
  if (s.bias) epilogue += "        v += " + load_expr(d, "bias[col]") + ";\n";
  if (s.act == GemmEpilogue::kRelu) epilogue += "        v = v > 0.0f ? v : 0.0f;\n";
  if (s.act == GemmEpilogue::kGeluTanh)
    epilogue += "        v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));\n";
  src += "extern \"C\" __global__ void __launch_bounds__(256) " + name +
         "(const T* __restrict__ A, const T* __restrict__ B, T* D, const T* __restrict__ bias, const T* C,\n"
         "    long long m, long long n, long long k, long long lda, long long ldb, long long ldd,\n"
         "    long long stride_a, long long stride_b, long long stride_d, float alpha, float beta) {\n"
         "  __shared__ float As[16][68];\n"
         "  __shared__ float Bs[16][68];\n"
         "  const long long z = blockIdx.z;\n"
         "  A += z * stride_a; B += z * stride_b; D += z * stride_d;\n"
         "  if (C) C += z * stride_d;\n"
         "  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;\n"
         "  const long long row0 = (long long)blockIdx.y * 64, col0 = (long long)blockIdx.x * 64;\n"
         "  float acc[4][4];\n"
         "  for (int i = 0; i < 4; ++i) for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;\n"
         "  for (long long k0 = 0; k0 < k; k0 += 16) {\n"
         "    for (int i = threadIdx.x; i < 1024; i += 256) {\n"
         "      " + a_load +
         "      As[kk][r] = (row0 + r < m && k0 + kk < k) ? " + load_expr(d, "A[off]") + " : 0.0f;\n"
         "    }\n"
         "    for (int i = threadIdx.x; i < 1024; i += 256) {\n"
         "      " + b_load +
         "      Bs[kk][c] = (col0 + c < n && k0 + kk < k) ? " + load_expr(d, "B[off]") + " : 0.0f;\n"
         "    }\n"
         "    __syncthreads();\n"
         "#pragma unroll\n"
         "    for (int kk = 0; kk < 16; ++kk) {\n"
         "      float a[4], b[4];\n"
         "      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];\n"
         "      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];\n"
         "      for (int i = 0; i < 4; ++i) for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);\n"
         "    }\n"
         "    __syncthreads();\n"
         "  }\n"
         "  for (int i = 0; i < 4; ++i) {\n"
         "    const long long row = row0 + ty + 16 * i;\n"
         "    if (row >= m) continue;\n"
         "    for (int j = 0; j < 4; ++j) {\n"
         "      const long long col = col0 + tx + 16 * j;\n"
         "      if (col >= n) continue;\n"
         "      const long long off = row * ldd + col;\n"
         "      " + epilogue +
         "      D[off] = " + store_expr(d, "v") + ";\n"
         "    }\n"
         "  }\n"
         "}\n";
  return KernelSource{name, std::move(src)};
}

}  // namespace kiln::cuda::kernels
