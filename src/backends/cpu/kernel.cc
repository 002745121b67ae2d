#include "backends/cpu/kernel.h"

namespace kiln::cpu {

void KernelRegistry::add(std::string op, KernelFn fn, bool native_half) {
  kernels_[std::move(op)] = KernelInfo{fn, native_half};
}

const KernelInfo* KernelRegistry::find(std::string_view op) const {
  auto it = kernels_.find(op);
  return it == kernels_.end() ? nullptr : &it->second;
}

std::vector<std::string> KernelRegistry::ops() const {
  std::vector<std::string> out;
  for (const auto& [name, info] : kernels_) out.push_back(name);
  return out;
}

const KernelRegistry& kernel_registry() {
  static const KernelRegistry* registry = [] {
    auto* r = new KernelRegistry();
    register_elementwise_ops(*r);
    register_reduction_ops(*r);
    register_nn_ops(*r);
    register_tensor_ops(*r);
    return r;
  }();
  return *registry;
}

std::string node_context(const ir::Node& node) {
  return "node '" + node.name + "' (" + node.op + ")";
}

Result<std::vector<int64_t>> read_int_list(const ir::Node& node, const Tensor& t, std::string_view what) {
  if (!t.defined()) return invalid_argument(node_context(node) + ": " + std::string(what) + " is missing");
  if (t.rank() > 1)
    return invalid_argument(node_context(node) + ": " + std::string(what) + " must be 1-D, got shape " +
                            dims_to_string(t.dims()));
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kI64) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = t.data_as<const int64_t>()[i];
  } else if (t.dtype() == DType::kI32) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = t.data_as<const int32_t>()[i];
  } else {
    return invalid_argument(node_context(node) + ": " + std::string(what) + " must be i64 or i32, got " +
                            std::string(dtype_name(t.dtype())));
  }
  return out;
}

Result<int64_t> normalize_axis(const ir::Node& node, int64_t axis, int64_t rank) {
  int64_t lo = -std::max<int64_t>(rank, 1), hi = std::max<int64_t>(rank, 1) - 1;
  if (axis < lo || axis > hi)
    return invalid_argument(node_context(node) + ": axis " + std::to_string(axis) +
                            " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + std::max<int64_t>(rank, 1) : axis;
}

}  // namespace kiln::cpu
