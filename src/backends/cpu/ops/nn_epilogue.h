// The fused epilogue of Gemm, MatMul and Conv (set by the compiler's fuse_epilogues pass): the
// string attribute kiln_activation names an activation applied to the node's result, after
// MatMul's optional bias input. Values: "Relu" (Gemm, MatMul, Conv) and "Gelu:tanh" (Gemm, MatMul;
// the tanh approximation of Gelu). Shared by the CPU kernels and the CUDA handlers.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "backends/cpu/kernel.h"

namespace kiln::cpu::nn {

enum class Activation : uint8_t { kNone, kRelu, kGeluTanh };

// The node's epilogue activation (kNone without the attribute). Errors: kInvalidArgument naming
// the node and the value for a value that is not a string, unknown, or not allowed on the op
// (Gelu:tanh on Conv; any value on other ops).
Result<Activation> epilogue_activation(const ir::Node& node);

// "Relu", "Gelu:tanh" or "" for kNone.
const char* activation_name(Activation a);

template <typename T>
inline T activate(Activation a, T x) {
  if (a == Activation::kRelu) return x < T(0) ? T(0) : x;  // NaN stays NaN, like Relu
  if constexpr (std::is_floating_point_v<T>) {
    if (a == Activation::kGeluTanh) {
      const T k = T(0.7978845608028654);  // sqrt(2 / pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    }
  }
  return x;
}

// y[i] = activate(a, y[i]) for i < count, on the thread pool when large. Integer T takes Relu
// only (callers reject Gelu:tanh on integers).
template <typename T>
void apply_activation(Activation a, T* y, int64_t count);

}  // namespace kiln::cpu::nn
