#include <algorithm>
#include <map>

#include "backends/cpu/kernel.h"
#include "backends/cuda/ops/handler.h"

namespace kiln::cuda {
namespace {

const std::map<std::string, const OpHandler*, std::less<>>& table() {
  static const auto* t = [] {
    auto* handlers = new HandlerTable();
    register_elementwise_handlers(*handlers);
    register_movement_handlers(*handlers);
    register_reduce_handlers(*handlers);
    register_nn_handlers(*handlers);
    auto* m = new std::map<std::string, const OpHandler*, std::less<>>();
    for (auto& [op, h] : handlers->entries) (*m)[op] = h.release();
    return m;
  }();
  return *t;
}

}  // namespace

const OpHandler* handler_for(std::string_view op) {
  auto it = table().find(op);
  return it == table().end() ? nullptr : it->second;
}

std::vector<std::string> cuda_ops() {
  std::vector<std::string> ops;
  for (const auto& [op, h] : table()) ops.push_back(op);
  return ops;
}

std::string RunContext::where() const { return node_ ? cpu::node_context(*node_) : std::string("(no node)"); }

Result<Tensor> RunContext::alloc(DType dtype, Dims dims) {
  Result<Tensor> t = pool_->alloc(dtype, std::move(dims), stream_);
  if (!t.ok()) return t.status().with_context(where());
  return t;
}

Status RunContext::launch(const std::string& key, const KernelTable::Builder& build, unsigned grid, unsigned block,
                          void** args, size_t shared_bytes) {
  Result<cudaKernel_t> k = KernelTable::global().get(key, device_.sm, build);
  if (!k.ok()) return k.status().with_context(where());
  ++launches_;
  return cuda_status(cudaLaunchKernel(reinterpret_cast<const void*>(*k), dim3(grid), dim3(block), args,
                                      shared_bytes, stream_->get()),
                     "cudaLaunchKernel (kernel " + key + ", " + where() + ")");
}

}  // namespace kiln::cuda
