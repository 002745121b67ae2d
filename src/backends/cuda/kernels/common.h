// Shared pieces of the generated CUDA C++ sources: dtype spellings, load/store conversions, the
// device prelude every kernel starts with, and the argument structs that host code mirrors.
//
// Generated kernels are self-contained (no #include, so NVRTC needs no toolkit headers at run
// time). Half types are stored as 16-bit integers and computed in float; f64 computes in double;
// integer and bool types compute in their own type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda::kernels {

inline constexpr int kMaxRank = 8;      // dims of a strided kernel after coalescing
inline constexpr int kMaxOperands = 7;  // the output plus up to 6 inputs

// Mirrors `struct KilnStrided` in the prelude: per merged dim its size, and per operand
// (0 = output, 1.. = inputs) its element stride along that dim (0 = broadcast; may be negative).
struct StridedArgs {
  int64_t dims[kMaxRank];
  int64_t strides[kMaxOperands][kMaxRank];
  int32_t rank;
};

// True for dtypes kernels can load and store.
bool dtype_supported(DType d);
// "float", "double", "unsigned short" (f16, bf16), "long long", "bool", ...
std::string_view storage_type(DType d);
// "float" for f16/bf16/f32, "double" for f64, else the storage type.
std::string_view compute_type(DType d);
bool is_float_compute(DType d);  // f16, bf16, f32, f64
// Converts `expr` (an lvalue of storage type) to compute type, and a compute-type expression
// back to storage type.
std::string load_expr(DType d, const std::string& expr);
std::string store_expr(DType d, const std::string& expr);
// A literal of compute type for `d` that reproduces `v` exactly ("1.66666672e-01f", "2.0", "3").
std::string literal(DType d, double v);
// Short tag used in kernel names and keys: dtype_name() ("f32", "i64", "bool").
std::string tag(DType d);

// The device helpers every generated kernel starts with.
std::string_view prelude();

// Launch geometry for a grid-stride loop over n items with `block` threads per block.
unsigned grid_for(int64_t n, int block, int multiprocessors);

}  // namespace kiln::cuda::kernels
