#include "backends/cuda/kernels/nn.h"

#include "backends/cuda/kernels/common.h"

namespace kiln::cuda::kernels {
namespace {

const char* kWindowStruct = R"(
struct KilnWindow {
  long long in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  long long n, c, m, groups;
  int rank;
};
__device__ __forceinline__ long long kiln_ceil_div_pos(long long a, long long b) { return a <= 0 ? 0 : (a + b - 1) / b; }
// Output position o along dim j: first input position p0 and valid tap range [lo, hi).
struct KilnTaps { long long p0, lo, hi, padded; };
__device__ __forceinline__ KilnTaps kiln_taps(const KilnWindow& w, int j, long long o) {
  KilnTaps t;
  t.p0 = o * w.s[j] - w.pb[j];
  t.lo = min(w.k[j], kiln_ceil_div_pos(-t.p0, w.d[j]));
  t.hi = min(w.k[j], kiln_ceil_div_pos(w.in[j] - t.p0, w.d[j]));
  t.padded = min(w.k[j], kiln_ceil_div_pos(w.in[j] + w.pe[j] - t.p0, w.d[j]));
  return t;
}
)";

// Decomposes t into spatial output coordinates o0..o2 and the leading index `lead`.
const char* kDecompose =
    "    long long rem = t;\n"
    "    const long long o2 = rem % w.out[2]; rem /= w.out[2];\n"
    "    const long long o1 = rem % w.out[1]; rem /= w.out[1];\n"
    "    const long long o0 = rem % w.out[0]; rem /= w.out[0];\n"
    "    const long long lead = rem;\n"
    "    const KilnTaps t0 = kiln_taps(w, 0, o0), t1 = kiln_taps(w, 1, o1), t2 = kiln_taps(w, 2, o2);\n";

std::string loop_begin() {
  return "    for (long long k0 = t0.lo; k0 < t0.hi; ++k0)\n"
         "    for (long long k1 = t1.lo; k1 < t1.hi; ++k1)\n"
         "    for (long long k2 = t2.lo; k2 < t2.hi; ++k2) {\n"
         "      const long long off = ((t0.p0 + k0 * w.d[0]) * w.in[1] + (t1.p0 + k1 * w.d[1])) * w.in[2] + "
         "(t2.p0 + k2 * w.d[2]);\n";
}

}  // namespace

std::string word_type(size_t element_size) {
  switch (element_size) {
    case 1: return "unsigned char";
    case 2: return "unsigned short";
    case 4: return "unsigned int";
    case 8: return "unsigned long long";
    default: return "";
  }
}

std::string window_key(const WindowSpec& s) {
  return "win:" + std::to_string(static_cast<int>(s.op)) + ":" + tag(s.dtype) +
         (s.op == WindowOp::kConv && s.relu ? ":relu" : "") + (s.op == WindowOp::kIm2col && s.bias ? ":bias" : "");
}

Result<KernelSource> window_source(const WindowSpec& s) {
  const bool fl = is_float_compute(s.dtype);
  if (!dtype_supported(s.dtype) || s.dtype == DType::kBool || (!fl && s.op != WindowOp::kMaxPool && s.op != WindowOp::kIm2col))
    return unsupported("window kernel: dtype " + tag(s.dtype) + " is not supported");
  const std::string T(storage_type(s.dtype));
  const std::string acc = s.dtype == DType::kF64 ? "double" : fl ? "float" : std::string(compute_type(s.dtype));
  std::string src(prelude());
  src += kWindowStruct;
  src += "typedef " + T + " T;\ntypedef " + acc + " ACC;\n";
  std::string name;
  const std::string loop = "  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; "
                           "t += (long long)gridDim.x * blockDim.x) {\n";
  const std::string out_total = "w.out[0] * w.out[1] * w.out[2]";
  const std::string in_total = "w.in[0] * w.in[1] * w.in[2]";
  switch (s.op) {
    case WindowOp::kMaxPool:
    case WindowOp::kAvgPool:
    case WindowOp::kAvgPoolIncludePad: {
      const bool is_max = s.op == WindowOp::kMaxPool;
      name = std::string(is_max ? "kiln_maxpool_" : "kiln_avgpool_") + tag(s.dtype);
      src += "extern \"C\" __global__ void " + name + "(T* __restrict__ y, const T* __restrict__ x, KilnWindow w) {\n"
             "  const long long total = w.n * w.c * " + out_total + ";\n" + loop + kDecompose +
             "    const T* xp = x + lead * " + in_total + ";\n";
      if (is_max) {
        src += "    bool found = false; ACC best = 0;\n" + loop_begin() +
               "      const ACC v = " + load_expr(s.dtype, "xp[off]") + ";\n"
               "      if (!found || v > best) { best = v; found = true; }\n    }\n"
               "    y[t] = " + store_expr(s.dtype, "found ? best : (ACC)0") + ";\n  }\n}\n";
      } else {
        const std::string count = s.op == WindowOp::kAvgPoolIncludePad
                                      ? "t0.padded * t1.padded * t2.padded"
                                      : "max(0LL, t0.hi - t0.lo) * max(0LL, t1.hi - t1.lo) * max(0LL, t2.hi - t2.lo)";
        src += "    ACC sum = 0;\n" + loop_begin() + "      sum += " + load_expr(s.dtype, "xp[off]") + ";\n    }\n"
               "    const long long count = " + count + ";\n"
               "    y[t] = " + store_expr(s.dtype, "count == 0 ? (ACC)__int_as_float(0x7fc00000) : sum / (ACC)count") + ";\n  }\n}\n";
      }
      break;
    }
    case WindowOp::kConv:
      name = "kiln_conv_direct_" + tag(s.dtype) + (s.relu ? "_relu" : "");
      src += "extern \"C\" __global__ void " + name +
             "(T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias, KilnWindow w) {\n"
             "  const long long total = w.n * w.m * " + out_total + ";\n"
             "  const long long cpg = w.c / w.groups, mpg = w.m / w.groups, ksize = w.k[0] * w.k[1] * w.k[2];\n" + loop +
             kDecompose +
             "    const long long m = lead % w.m, n = lead / w.m, g = m / mpg;\n"
             "    ACC acc = bias ? (ACC)" + load_expr(s.dtype, "bias[m]") + " : (ACC)0;\n"
             "    for (long long c = 0; c < cpg; ++c) {\n"
             "      const T* xp = x + (n * w.c + g * cpg + c) * " + in_total + ";\n"
             "      const T* wp = wt + (m * cpg + c) * ksize;\n" + loop_begin() +
             "      acc += (ACC)" + load_expr(s.dtype, "xp[off]") + " * (ACC)" +
             load_expr(s.dtype, "wp[(k0 * w.k[1] + k1) * w.k[2] + k2]") + ";\n    }\n    }\n" +
             (s.relu ? "    if (acc < (ACC)0) acc = (ACC)0;  // Relu epilogue; NaN stays NaN\n" : "") +
             "    y[t] = " + store_expr(s.dtype, "acc") + ";\n  }\n}\n";
      break;
    case WindowOp::kIm2col:
      name = "kiln_im2col_" + tag(s.dtype) + (s.bias ? "_bias" : "");
      src += "extern \"C\" __global__ void " + name + "(T* __restrict__ col, const T* __restrict__ x, KilnWindow w" +
             (s.bias ? ", T* __restrict__ y, const T* __restrict__ bias" : "") + ") {\n"
             "  const long long ksize = w.k[0] * w.k[1] * w.k[2], osize = " + out_total + ";\n"
             "  const long long total = w.n * w.c * ksize * osize;\n" + loop +
             "    long long rem = t;\n"
             "    const long long op = rem % osize; rem /= osize;\n"
             "    const long long kk = rem % ksize; rem /= ksize;\n"
             "    const long long nc = rem;\n"
             "    const long long o2 = op % w.out[2], o1 = (op / w.out[2]) % w.out[1], o0 = op / (w.out[2] * w.out[1]);\n"
             "    const long long k2 = kk % w.k[2], k1 = (kk / w.k[2]) % w.k[1], k0 = kk / (w.k[2] * w.k[1]);\n"
             "    const long long p0 = o0 * w.s[0] - w.pb[0] + k0 * w.d[0];\n"
             "    const long long p1 = o1 * w.s[1] - w.pb[1] + k1 * w.d[1];\n"
             "    const long long p2 = o2 * w.s[2] - w.pb[2] + k2 * w.d[2];\n"
             "    T v = (T)0;\n"
             "    if (p0 >= 0 && p0 < w.in[0] && p1 >= 0 && p1 < w.in[1] && p2 >= 0 && p2 < w.in[2])\n"
             "      v = x[nc * " + in_total + " + (p0 * w.in[1] + p1) * w.in[2] + p2];\n"
             "    col[t] = v;\n  }\n" +
             (s.bias ? "  const long long ytotal = w.n * w.m * osize;  // y = bias broadcast, for the GEMM to accumulate into\n"
                       "  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < ytotal; "
                       "t += (long long)gridDim.x * blockDim.x)\n"
                       "    y[t] = bias[(t / osize) % w.m];\n"
                     : "") +
             "}\n";
      break;
  }
  return KernelSource{name, src};
}

std::string gather_key(const GatherSpec& s) {
  return "gather:" + std::to_string(s.element_size) + ":" + tag(s.index);
}

Result<KernelSource> gather_source(const GatherSpec& s) {
  const std::string E = word_type(s.element_size);
  if (E.empty()) return unsupported("gather kernel: element size " + std::to_string(s.element_size));
  if (s.index != DType::kI32 && s.index != DType::kI64)
    return unsupported("gather kernel: index dtype " + tag(s.index) + " (expected i32 or i64)");
  const std::string I(storage_type(s.index));
  const std::string name = "kiln_gather_" + std::to_string(s.element_size * 8) + "_" + tag(s.index);
  std::string src(prelude());
  src += "extern \"C\" __global__ void " + name + "(" + E + "* __restrict__ out, const " + E +
         "* __restrict__ data, const " + I +
         "* __restrict__ idx, long long outer, long long axis_n, long long nidx, long long inner, int* err, int code) {\n"
         "  const long long total = outer * nidx * inner;\n"
         "  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (long long)gridDim.x * blockDim.x) {\n"
         "    const long long i = t % inner, r = t / inner, j = r % nidx, o = r / nidx;\n"
         "    long long k = (long long)idx[j];\n"
         "    if (k < 0) k += axis_n;\n"
         "    if (k < 0 || k >= axis_n) { kiln_report(err, code); out[t] = 0; continue; }\n"
         "    out[t] = data[(o * axis_n + k) * inner + i];\n  }\n}\n";
  return KernelSource{name, src};
}

}  // namespace kiln::cuda::kernels
