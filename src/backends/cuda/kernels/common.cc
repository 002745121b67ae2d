#include "backends/cuda/kernels/common.h"

#include <algorithm>
#include <cstdio>

namespace kiln::cuda::kernels {

bool dtype_supported(DType d) {
  switch (d) {
    case DType::kF32: case DType::kF64: case DType::kF16: case DType::kBF16:
    case DType::kI8: case DType::kI16: case DType::kI32: case DType::kI64:
    case DType::kU8: case DType::kU16: case DType::kU32: case DType::kU64: case DType::kBool:
      return true;
    default:
      return false;
  }
}

std::string_view storage_type(DType d) {
  switch (d) {
    case DType::kF32: return "float";
    case DType::kF64: return "double";
    case DType::kF16: case DType::kBF16: return "unsigned short";
    case DType::kI8: return "signed char";
    case DType::kI16: return "short";
    case DType::kI32: return "int";
    case DType::kI64: return "long long";
    case DType::kU8: return "unsigned char";
    case DType::kU16: return "unsigned short";
    case DType::kU32: return "unsigned int";
    case DType::kU64: return "unsigned long long";
    case DType::kBool: return "bool";
    default: return "void";
  }
}

std::string_view compute_type(DType d) {
  if (d == DType::kF16 || d == DType::kBF16) return "float";
  return storage_type(d);
}

bool is_float_compute(DType d) {
  return d == DType::kF32 || d == DType::kF64 || d == DType::kF16 || d == DType::kBF16;
}

std::string load_expr(DType d, const std::string& expr) {
  if (d == DType::kF16) return "kiln_f16_to_f32(" + expr + ")";
  if (d == DType::kBF16) return "kiln_bf16_to_f32(" + expr + ")";
  return expr;
}

std::string store_expr(DType d, const std::string& expr) {
  if (d == DType::kF16) return "kiln_f32_to_f16(" + expr + ")";
  if (d == DType::kBF16) return "kiln_f32_to_bf16(" + expr + ")";
  return "(" + std::string(storage_type(d)) + ")(" + expr + ")";
}

std::string literal(DType d, double v) {
  char buf[64];
  if (d == DType::kF64) {
    std::snprintf(buf, sizeof buf, "%.17e", v);
  } else if (is_float_compute(d)) {
    std::snprintf(buf, sizeof buf, "%.9ef", static_cast<double>(static_cast<float>(v)));
  } else if (d == DType::kBool) {
    return v != 0 ? "true" : "false";
  } else {
    std::snprintf(buf, sizeof buf, "((%s)%lldLL)", std::string(storage_type(d)).c_str(),
                  static_cast<long long>(v));
  }
  std::string s = buf;
  if (s.find("inf") != std::string::npos || s.find("nan") != std::string::npos) {
    bool neg = v < 0;
    if (s.find("nan") != std::string::npos) return d == DType::kF64 ? "__longlong_as_double(0x7ff8000000000000LL)" : "__int_as_float(0x7fc00000)";
    if (d == DType::kF64) return neg ? "__longlong_as_double(0xfff0000000000000LL)" : "__longlong_as_double(0x7ff0000000000000LL)";
    return neg ? "__int_as_float(0xff800000)" : "__int_as_float(0x7f800000)";
  }
  return s;
}

std::string tag(DType d) { return std::string(dtype_name(d)); }

std::string_view prelude() {
  static const char* const kPrelude = R"(// kiln generated kernel
__device__ __forceinline__ float kiln_f16_to_f32(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short kiln_f32_to_f16(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ float kiln_bf16_to_f32(unsigned short h) {
  return __uint_as_float(((unsigned int)h) << 16);
}
__device__ __forceinline__ unsigned short kiln_f32_to_bf16(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
template <typename T> __device__ __forceinline__ T kiln_ipow(T base, T e) {
  if (e < 0) return base == 1 ? (T)1 : (base == (T)-1 ? ((e & 1) ? (T)-1 : (T)1) : (T)0);
  T r = 1;
  while (e) { if (e & 1) r *= base; base *= base; e >>= 1; }
  return r;
}
template <typename T> __device__ __forceinline__ T kiln_pymod(T a, T b) {
  if (b == 0) return 0;
  T r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
template <typename T> __device__ __forceinline__ T kiln_cmod(T a, T b) { return b == 0 ? (T)0 : a % b; }
template <typename T> __device__ __forceinline__ T kiln_idiv(T a, T b) { return b == 0 ? (T)0 : a / b; }
struct KilnStrided {
  long long dims[8];
  long long strides[7][8];
  int rank;
};
// Records the first failure of a run (code = node index + 1); the host reads it after the run.
__device__ __forceinline__ void kiln_report(int* flag, int code) { atomicCAS(flag, 0, code); }
)";
  return kPrelude;
}

unsigned grid_for(int64_t n, int block, int multiprocessors) {
  int64_t blocks = (n + block - 1) / block;
  int64_t cap = static_cast<int64_t>(std::max(multiprocessors, 1)) * 32;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(blocks, cap)));
}

}  // namespace kiln::cuda::kernels
