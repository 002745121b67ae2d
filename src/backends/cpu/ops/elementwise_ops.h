// Registration entry points of the CPU elementwise kernel files, called from
// elementwise_register.cc. Each adds its ops (canonical names = ONNX names) to the registry.
#pragma once

#include "backends/cpu/kernel.h"

namespace kiln::cpu {

void register_unary_ops(KernelRegistry& r);       // elementwise_unary.cc: math, IsNaN, Not
void register_activation_ops(KernelRegistry& r);  // elementwise_activation.cc: Relu..Gelu
void register_arith_ops(KernelRegistry& r);       // elementwise_arith.cc: Add..Mod, Pow, PRelu
void register_compare_ops(KernelRegistry& r);     // elementwise_compare.cc: comparisons, logic
void register_variadic_ops(KernelRegistry& r);    // elementwise_variadic.cc: Max..Mean, Clip, Where
void register_cast_op(KernelRegistry& r);         // elementwise_cast.cc
void register_fused_elementwise_op(KernelRegistry& r);  // fused_elementwise.cc: kiln.FusedElementwise

}  // namespace kiln::cpu
