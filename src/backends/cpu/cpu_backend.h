// The CPU backend: a graph interpreter over the kernels in kernel.h.
#pragma once

#include <memory>

#include "backends/backend.h"
#include "backends/cpu/kernel.h"

namespace kiln::cpu {

std::unique_ptr<Backend> create_cpu_backend();

// Runs one node's kernel, converting half-precision inputs for kernels that are not
// native_half. Used by the interpreter and by the compiler's constant folding.
Status run_node(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

}  // namespace kiln::cpu
