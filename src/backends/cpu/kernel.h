// The CPU backend's kernel table: one function per canonical op (see src/ir/graph.h for what
// "canonical" means: newest ONNX semantics, parameters as inputs).
//
// A kernel reads `in` (an omitted optional input is an undefined Tensor: !t.defined()), computes
// output shapes from the concrete inputs, allocates each output it produces (Tensor::empty) and
// stores it in `out` (sized to node.outputs.size(); slots for omitted outputs may be left
// undefined). Kernels are pure: no state, safe to call from many threads at once. Bad attribute
// values or incompatible shapes give a Status naming the node and op, never an abort.
// Parallel loops use kiln::parallel_for (src/platform/thread_pool.h).
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cpu {

using KernelFn = Status (*)(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out);

struct KernelInfo {
  KernelFn fn = nullptr;
  // False: the runtime converts f16/bf16 inputs to f32 before the call and f32 outputs back to
  // that half type after it, so the kernel only sees f32. True: the kernel handles half types
  // itself (Cast, data movement ops that only copy bytes).
  bool native_half = false;
};

class KernelRegistry {
 public:
  void add(std::string op, KernelFn fn, bool native_half = false);
  const KernelInfo* find(std::string_view op) const;
  std::vector<std::string> ops() const;

 private:
  std::map<std::string, KernelInfo, std::less<>> kernels_;
};

// Every CPU kernel, registered once on first use. Thread-safe.
const KernelRegistry& kernel_registry();

// One registration function per op family (ops/<family>*.cc).
void register_elementwise_ops(KernelRegistry& r);  // unary, binary, variadic, compare, logic, Cast, Where
void register_reduction_ops(KernelRegistry& r);    // Reduce*, ArgMax, Softmax, LogSoftmax, CumSum, TopK
void register_nn_ops(KernelRegistry& r);           // MatMul, Gemm, Conv, pools, norms, Resize, Einsum
void register_tensor_ops(KernelRegistry& r);       // shape and data movement ops

// Helpers for kernels.
// "node 'name' (Op): " prefix for messages.
std::string node_context(const ir::Node& node);
// Reads a 1-D (or scalar) integer tensor (i32 or i64) as int64 values.
Result<std::vector<int64_t>> read_int_list(const ir::Node& node, const Tensor& t, std::string_view what);
// Normalises a possibly negative axis against rank; error names the node.
Result<int64_t> normalize_axis(const ir::Node& node, int64_t axis, int64_t rank);

}  // namespace kiln::cpu
