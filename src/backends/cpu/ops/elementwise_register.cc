#include "backends/cpu/kernel.h"
namespace kiln::cpu {
void register_elementwise_ops(KernelRegistry& r) {}  // filled in by the elementwise ops work
}  // namespace kiln::cpu
