#include "backends/cuda/kernels/reduce.h"

#include <vector>

#include "backends/cuda/kernels/common.h"

namespace kiln::cuda::kernels {
namespace {

// Block-wide reduction helpers; the result is broadcast to every thread.
const char* kBlockReduce = R"(
template <typename T> struct KilnSum { __device__ T operator()(T a, T b) const { return a + b; } };
template <typename T> struct KilnProd { __device__ T operator()(T a, T b) const { return a * b; } };
template <typename T> struct KilnMax { __device__ T operator()(T a, T b) const { return (a > b || a != a) ? a : b; } };
template <typename T> struct KilnMin { __device__ T operator()(T a, T b) const { return (a < b || a != a) ? a : b; } };
template <typename T, typename F>
__device__ __forceinline__ T kiln_block_reduce(T v, F f, T init) {
  // sh[0..31]: one partial per warp; sh[32]: the result. The result has a slot of its own so that
  // warp 0 never writes a slot its lanes read (no hazard, whatever the warp's scheduling), and
  // the leading barrier orders this call's writes after the previous call's reads of sh[32].
  __shared__ T sh[33];
  for (int o = 16; o > 0; o >>= 1) v = f(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < nw ? sh[lane] : init;
    for (int o = 16; o > 0; o >>= 1) v = f(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) sh[32] = v;
  }
  __syncthreads();
  return sh[32];
}
)";

bool is_signed_int(DType d) {
  return d == DType::kI8 || d == DType::kI16 || d == DType::kI32 || d == DType::kI64;
}

std::string acc_type(DType d) {
  if (d == DType::kF64) return "double";
  if (is_float_compute(d)) return "float";
  if (is_signed_int(d)) return "long long";
  return "unsigned long long";
}

std::string fsuf(DType d) { return d == DType::kF64 ? "" : "f"; }

std::string lowest(DType d) {
  if (d == DType::kF64) return "(-__longlong_as_double(0x7ff0000000000000LL))";
  if (is_float_compute(d)) return "(-__int_as_float(0x7f800000))";
  if (is_signed_int(d)) return "(-9223372036854775807LL - 1)";
  return "0ULL";
}
std::string highest(DType d) {
  if (d == DType::kF64) return "__longlong_as_double(0x7ff0000000000000LL)";
  if (is_float_compute(d)) return "__int_as_float(0x7f800000)";
  if (is_signed_int(d)) return "9223372036854775807LL";
  return "18446744073709551615ULL";
}

struct ReduceParts {
  std::string init, combine, map, final;  // map/final use `x`, `acc`, `R`, `mx`
  bool needs_max = false;
};

Result<ReduceParts> reduce_parts(const std::string& op, DType in) {
  const bool fl = is_float_compute(in);
  const std::string f = fsuf(in);
  ReduceParts p{"(ACC)0", "KilnSum<ACC>()", "x", "acc", false};
  if (op == "ReduceSum") return p;
  if (op == "ReduceMean") { p.final = "acc / (ACC)R"; return p; }
  if (op == "ReduceMax") { p.init = lowest(in); p.combine = "KilnMax<ACC>()"; return p; }
  if (op == "ReduceMin") { p.init = highest(in); p.combine = "KilnMin<ACC>()"; return p; }
  if (op == "ReduceProd") { p.init = "(ACC)1"; p.combine = "KilnProd<ACC>()"; return p; }
  if (op == "ReduceSumSquare") { p.map = "x * x"; return p; }
  if (op == "ReduceL1") { p.map = fl ? "fabs" + f + "(x)" : "(x < 0 ? (ACC)0 - x : x)"; return p; }
  if (!fl) return unsupported("reduce kernel " + op + ": dtype " + tag(in) + " is not supported");
  if (op == "ReduceL2") { p.map = "x * x"; p.final = "sqrt" + f + "(acc)"; return p; }
  if (op == "ReduceLogSum") { p.final = "log" + f + "(acc)"; return p; }
  if (op == "ReduceLogSumExp") {
    p.needs_max = true;
    p.map = "exp" + f + "(x - mx)";
    p.final = "(mx == " + lowest(in) + " || mx == " + highest(in) + ") ? (R == 0 ? " + lowest(in) + " : mx) : log" + f + "(acc) + mx";
    return p;
  }
  return unsupported("reduce kernel: unknown op " + op);
}

std::string header(const ReduceSpec& s, const std::string& name) {
  std::string src(prelude());
  src += kBlockReduce;
  src += "typedef " + std::string(storage_type(s.input)) + " IN;\n";
  src += "typedef " + std::string(storage_type(s.output)) + " OUT;\n";
  src += "typedef " + acc_type(s.input) + " ACC;\n";
  return src;
}

std::string load(DType d, const std::string& e) { return "(ACC)(" + load_expr(d, e) + ")"; }

Result<KernelSource> reduce_kernel(const ReduceSpec& s, const std::string& name) {
  KILN_ASSIGN_OR_RETURN(ReduceParts p, reduce_parts(s.op, s.input));
  std::string src = header(s, name);
  src += "extern \"C\" __global__ void " + name +
         "(OUT* __restrict__ out, const IN* __restrict__ in, long long outer, long long R, long long inner) {\n";
  if (s.layout == ReduceLayout::kRows) {
    src += "  for (long long row = blockIdx.x; row < outer; row += gridDim.x) {\n"
           "    const IN* p = in + row * R;\n    ACC mx = (ACC)0;\n";
    if (p.needs_max) {
      src += "    ACC m = " + lowest(s.input) + ";\n"
             "    for (long long j = threadIdx.x; j < R; j += blockDim.x) { ACC x = " + load(s.input, "p[j]") +
             "; m = KilnMax<ACC>()(m, x); }\n"
             "    mx = kiln_block_reduce(m, KilnMax<ACC>(), " + lowest(s.input) + ");\n";
    }
    src += "    ACC acc = " + p.init + ";\n"
           "    for (long long j = threadIdx.x; j < R; j += blockDim.x) { ACC x = " + load(s.input, "p[j]") +
           "; acc = " + p.combine + "(acc, " + p.map + "); }\n"
           "    acc = kiln_block_reduce(acc, " + p.combine + ", " + p.init + ");\n"
           "    if (threadIdx.x == 0) out[row] = " + store_expr(s.output, p.final) + ";\n  }\n}\n";
  } else {
    src += "  long long n = outer * inner;\n"
           "  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (long long)gridDim.x * blockDim.x) {\n"
           "    long long o = t / inner, i = t - o * inner;\n    const IN* p = in + o * R * inner + i;\n    ACC mx = (ACC)0;\n";
    if (p.needs_max) {
      src += "    mx = " + lowest(s.input) + ";\n"
             "    for (long long j = 0; j < R; ++j) { ACC x = " + load(s.input, "p[j * inner]") + "; mx = KilnMax<ACC>()(mx, x); }\n";
    }
    src += "    ACC acc = " + p.init + ";\n"
           "    for (long long j = 0; j < R; ++j) { ACC x = " + load(s.input, "p[j * inner]") +
           "; acc = " + p.combine + "(acc, " + p.map + "); }\n"
           "    out[t] = " + store_expr(s.output, p.final) + ";\n  }\n}\n";
  }
  return KernelSource{name, src};
}

Result<KernelSource> softmax_kernel(const ReduceSpec& s, const std::string& name) {
  if (!is_float_compute(s.input) || s.output != s.input)
    return unsupported("kernel " + s.op + ": dtype " + tag(s.input) + " is not supported");
  const bool log = s.op == "LogSoftmax";
  const std::string f = fsuf(s.input), lo = lowest(s.input);
  std::string src = header(s, name);
  src += "extern \"C\" __global__ void " + name +
         "(OUT* __restrict__ out, const IN* __restrict__ in, long long outer, long long R, long long inner) {\n";
  std::string result = log ? "x - mx - lsum" : "exp" + f + "(x - mx) / sum";
  if (s.layout == ReduceLayout::kRows) {
    src += "  for (long long row = blockIdx.x; row < outer; row += gridDim.x) {\n"
           "    const IN* p = in + row * R;\n    OUT* q = out + row * R;\n"
           "    ACC m = " + lo + ";\n"
           "    for (long long j = threadIdx.x; j < R; j += blockDim.x) { ACC x = " + load(s.input, "p[j]") + "; m = KilnMax<ACC>()(m, x); }\n"
           "    const ACC mx = kiln_block_reduce(m, KilnMax<ACC>(), " + lo + ");\n"
           "    ACC a = 0;\n"
           "    for (long long j = threadIdx.x; j < R; j += blockDim.x) { ACC x = " + load(s.input, "p[j]") + "; a += exp" + f + "(x - mx); }\n"
           "    const ACC sum = kiln_block_reduce(a, KilnSum<ACC>(), (ACC)0);\n"
           "    const ACC lsum = log" + f + "(sum);\n"
           "    for (long long j = threadIdx.x; j < R; j += blockDim.x) { ACC x = " + load(s.input, "p[j]") +
           "; q[j] = " + store_expr(s.output, result) + "; }\n  }\n}\n";
  } else {
    src += "  long long n = outer * inner;\n"
           "  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (long long)gridDim.x * blockDim.x) {\n"
           "    long long o = t / inner, i = t - o * inner;\n"
           "    const IN* p = in + o * R * inner + i;\n    OUT* q = out + o * R * inner + i;\n"
           "    ACC mx = " + lo + ";\n"
           "    for (long long j = 0; j < R; ++j) { ACC x = " + load(s.input, "p[j * inner]") + "; mx = KilnMax<ACC>()(mx, x); }\n"
           "    ACC sum = 0;\n"
           "    for (long long j = 0; j < R; ++j) { ACC x = " + load(s.input, "p[j * inner]") + "; sum += exp" + f + "(x - mx); }\n"
           "    const ACC lsum = log" + f + "(sum);\n"
           "    for (long long j = 0; j < R; ++j) { ACC x = " + load(s.input, "p[j * inner]") +
           "; q[j * inner] = " + store_expr(s.output, result) + "; }\n  }\n}\n";
  }
  return KernelSource{name, src};
}

Result<KernelSource> layer_norm_kernel(const ReduceSpec& s, const std::string& name) {
  if (!is_float_compute(s.input) || s.output != s.input || !is_float_compute(s.param))
    return unsupported("kernel LayerNormalization: dtypes " + tag(s.input) + "/" + tag(s.param) + " are not supported");
  if (s.layout != ReduceLayout::kRows) return unsupported("kernel LayerNormalization: rows layout only");
  const std::string f = fsuf(s.input);
  std::string src = header(s, name);
  src += "typedef " + std::string(storage_type(s.param)) + " PAR;\n";
  src += "extern \"C\" __global__ void " + name +
         "(OUT* __restrict__ y, const IN* __restrict__ x, const PAR* __restrict__ scale, const PAR* __restrict__ bias,"
         " float* __restrict__ mean_out, float* __restrict__ inv_out, long long rows, long long R, double epsilon) {\n"
         "  for (long long row = blockIdx.x; row < rows; row += gridDim.x) {\n"
         "    const IN* p = x + row * R;\n    OUT* q = y + row * R;\n"
         "    ACC a = 0;\n"
         "    for (long long j = threadIdx.x; j < R; j += blockDim.x) a += " + load(s.input, "p[j]") + ";\n"
         "    const ACC mean = kiln_block_reduce(a, KilnSum<ACC>(), (ACC)0) / (ACC)R;\n"
         "    ACC v = 0;\n"
         "    for (long long j = threadIdx.x; j < R; j += blockDim.x) { ACC d = " + load(s.input, "p[j]") + " - mean; v += d * d; }\n"
         "    const ACC var = kiln_block_reduce(v, KilnSum<ACC>(), (ACC)0) / (ACC)R;\n"
         "    const ACC inv = (ACC)1 / sqrt" + f + "(var + (ACC)epsilon);\n"
         "    if (threadIdx.x == 0) { if (mean_out) mean_out[row] = (float)mean; if (inv_out) inv_out[row] = (float)inv; }\n"
         "    for (long long j = threadIdx.x; j < R; j += blockDim.x) {\n"
         "      ACC w = (ACC)(" + load_expr(s.param, s.scale_scalar ? "scale[0]" : "scale[j]") + ");\n"
         "      ACC b = bias ? (ACC)(" + load_expr(s.param, s.bias_scalar ? "bias[0]" : "bias[j]") + ") : (ACC)0;\n"
         "      q[j] = " + store_expr(s.output, "(" + load(s.input, "p[j]") + " - mean) * inv * w + b") + ";\n"
         "    }\n  }\n}\n";
  return KernelSource{name, src};
}

}  // namespace

const std::vector<std::string>& reduce_ops() {
  // Never destroyed: background compiles may still read it while statics are torn down at exit.
  static const std::vector<std::string>& ops = *new std::vector<std::string>{
      "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
      "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "Softmax", "LogSoftmax", "LayerNormalization"};
  return ops;
}

std::string reduce_key(const ReduceSpec& s) {
  return "red:" + s.op + ":" + tag(s.input) + "->" + tag(s.output) + ":" + tag(s.param) +
         (s.scale_scalar ? "s" : "v") + (s.bias_scalar ? "s" : "v") +
         (s.layout == ReduceLayout::kRows ? ":rows" : ":cols");
}

Result<KernelSource> reduce_source(const ReduceSpec& s) {
  if (!dtype_supported(s.input) || s.input == DType::kBool || !dtype_supported(s.output))
    return unsupported("reduce kernel " + s.op + ": dtype " + tag(s.input) + " is not supported");
  std::string name = "kiln_" + s.op + "_" + tag(s.input) + (s.layout == ReduceLayout::kRows ? "_rows" : "_cols");
  if (s.op == "Softmax" || s.op == "LogSoftmax") return softmax_kernel(s, name);
  if (s.op == "LayerNormalization") return layer_norm_kernel(s, name);
  return reduce_kernel(s, name);
}

}  // namespace kiln::cuda::kernels
