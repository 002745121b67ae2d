// The arena, the capture recorder and graph entries (graphs_internal.h).
#include <cstring>
#include <unordered_map>

#include "backends/cuda/device.h"
#include "backends/cuda/graphs_internal.h"

namespace kiln::cuda {
namespace {

// The device-side parameter layout of a kernel: (offset, size) per parameter. Empty when CUDA
// cannot tell (the launch then cannot be rebound).
struct ParamLayout {
  std::vector<std::pair<size_t, size_t>> params;
  size_t bytes = 0;
};

const ParamLayout& param_layout(cudaKernel_t kernel) {
  static std::mutex mu;
  static auto* layouts = new std::unordered_map<const void*, ParamLayout>();  // kernels live forever
  std::lock_guard<std::mutex> lock(mu);
  const void* key = reinterpret_cast<const void*>(kernel);
  auto it = layouts->find(key);
  if (it != layouts->end()) return it->second;
  ParamLayout layout;
  for (size_t i = 0; i < 4096; ++i) {
    size_t offset = 0, size = 0;
    if (cudaFuncGetParamInfo(key, i, &offset, &size) != cudaSuccess) break;
    layout.params.emplace_back(offset, size);
    layout.bytes = std::max(layout.bytes, offset + size);
  }
  cudaGetLastError();  // the query past the last parameter fails by design
  return layouts->emplace(key, std::move(layout)).first->second;
}

}  // namespace

Result<Tensor> Arena::alloc(DType dtype, const Dims& dims, bool persistent) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 50) / d))
      return resource_exhausted("device tensor of shape " + dims_to_string(dims) + " is too large");
    n *= d;
  }
  const size_t bytes = std::max<size_t>(256, (static_cast<size_t>(n) * dtype_size(dtype) + 255) / 256 * 256);
  void* p = nullptr;
  if (!persistent) {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->free.find(bytes);
    if (it != state_->free.end()) {
      p = it->second;
      state_->free.erase(it);
    }
  }
  if (!p) {
    RelaxedCaptureMode relaxed;  // the side stream is not capturing; this thread may be
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> block, pool_->alloc_bytes(bytes, side_));
    p = block.get();
    blocks_.push_back(std::move(block));
    bytes_ += bytes;
  }
  std::shared_ptr<void> owner;
  if (persistent) {
    owner = std::shared_ptr<void>(p, [](void*) {});
  } else {
    owner = std::shared_ptr<void>(p, [state = state_, bytes](void* q) {
      std::lock_guard<std::mutex> lock(state->mu);
      if (!state->frozen) state->free.emplace(bytes, q);
    });
  }
  return Tensor::wrap(dtype, dims, p, std::move(owner), Device{DeviceType::kCuda, device_});
}

void Arena::freeze() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->frozen = true;
  state_->free.clear();
}

Result<Tensor> Recorder::alloc(DType dtype, Dims dims) { return slot_.arena->alloc(dtype, dims, false); }

Result<Tensor> Recorder::upload_constant(const Tensor& host) {
  KILN_ASSIGN_OR_RETURN(Tensor dev, slot_.arena->alloc(host.dtype(), host.dims(), true));
  if (host.nbytes() > 0) {
    RelaxedCaptureMode relaxed;
    KILN_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(dev.data(), host.data(), host.nbytes(), cudaMemcpyHostToDevice, slot_.arena->side()),
        "cudaMemcpyAsync (constant of a captured graph)");
  }
  return dev;
}

void Recorder::pin_pointer(const void* p) {
  if (!p) return;
  const auto v = reinterpret_cast<uintptr_t>(p);
  for (size_t b = 0; b < bindings_.size(); ++b)
    if (bindings_[b].contains(v)) pinned_[b] = true;
}

void Recorder::on_library(const void* a, const void* b, const void* c, const void* d) {
  pin_pointer(a);
  pin_pointer(b);
  pin_pointer(c);
  pin_pointer(d);
}

void Recorder::on_kernel(cudaKernel_t kernel, dim3 grid, dim3 block, size_t shared_bytes, void** args) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaGraphNode_t* deps = nullptr;
  size_t ndeps = 0;
  cudaGraphNode_t node = nullptr;
  if (cudaStreamGetCaptureInfo(slot_.stream->get(), &status, nullptr, nullptr, &deps, nullptr, &ndeps) ==
          cudaSuccess &&
      status == cudaStreamCaptureStatusActive && ndeps == 1)
    node = deps[0];
  cudaGetLastError();
  kernel_nodes.push_back(node);
  const ParamLayout& layout = param_layout(kernel);
  if (layout.params.empty()) {
    const char* name = nullptr;
    give_up(std::string("cudaFuncGetParamInfo gave no parameters for kernel ") +
            (cudaFuncGetName(&name, reinterpret_cast<const void*>(kernel)) == cudaSuccess && name ? name : "?"));
    cudaGetLastError();
    return;
  }
  // The node's grid, block, shared memory and function are the launch's own. (Not asked of the
  // node: cudaGraphKernelNodeGetParams answers "invalid device function" for kernels from
  // cudaLibraryLoadData, which every kiln kernel is.)
  LaunchRecord r;
  r.index = kernel_nodes.size() - 1;
  r.node = node;
  r.base.func = reinterpret_cast<void*>(kernel);
  r.base.gridDim = grid;
  r.base.blockDim = block;
  r.base.sharedMemBytes = static_cast<unsigned>(shared_bytes);
  r.bytes.assign(layout.bytes, 0);
  for (size_t i = 0; i < layout.params.size(); ++i) {
    const auto [offset, size] = layout.params[i];
    r.offsets.push_back(offset);
    std::memcpy(r.bytes.data() + offset, args[i], size);
    for (size_t at = (offset + 7) / 8 * 8; at + 8 <= offset + size; at += 8) {
      uintptr_t v = 0;
      std::memcpy(&v, r.bytes.data() + at, 8);
      for (size_t b = 0; b < bindings_.size(); ++b)
        if (bindings_[b].contains(v)) r.patches.push_back({at, b, v - bindings_[b].base});
    }
  }
  if (r.patches.empty()) return;
  if (!node) {
    give_up("no single capture node after a launch that reads or writes an I/O buffer (" +
            std::to_string(ndeps) + " dependencies, capture status " + std::to_string(static_cast<int>(status)) + ")");
    return;
  }
  records.push_back(std::move(r));
}

void Recorder::finish(cudaGraph_t graph) {
  size_t n = 0;
  std::vector<cudaGraphNode_t> nodes;
  if (cudaGraphGetNodes(graph, nullptr, &n) == cudaSuccess) {
    nodes.resize(n);
    if (cudaGraphGetNodes(graph, nodes.data(), &n) != cudaSuccess) give_up("cudaGraphGetNodes failed");
  } else {
    give_up("cudaGraphGetNodes (count) failed");
  }
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    if (cudaGraphNodeGetType(node, &type) != cudaSuccess) {
      give_up("cudaGraphNodeGetType failed");
      continue;
    }
    if (type == cudaGraphNodeTypeMemset) {
      cudaMemsetParams p{};
      if (cudaGraphMemsetNodeGetParams(node, &p) == cudaSuccess) {
        pin_pointer(p.dst);
      } else {
        give_up("cudaGraphMemsetNodeGetParams failed");
      }
    } else if (type == cudaGraphNodeTypeMemcpy) {
      cudaMemcpy3DParms p{};
      if (cudaGraphMemcpyNodeGetParams(node, &p) == cudaSuccess) {
        pin_pointer(p.srcPtr.ptr);
        pin_pointer(p.dstPtr.ptr);
      } else {
        give_up("cudaGraphMemcpyNodeGetParams failed");
      }
    } else if (type != cudaGraphNodeTypeKernel && type != cudaGraphNodeTypeEmpty) {
      give_up("a graph node of type " + std::to_string(static_cast<int>(type)) +
              " (not a kernel, memset, memcpy or empty node)");
    }
  }
  cudaGetLastError();
  if (unanalysed()) pin_all();
}

GraphEntry::~GraphEntry() {
  if (done) {
    cudaEventSynchronize(done);  // the slot's memory must outlive the last launch
    cudaEventDestroy(done);
  }
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}

std::vector<Binding> bindings_of(std::span<const Tensor> inputs, std::span<const Tensor> outputs) {
  std::vector<Binding> b;
  for (const Tensor& t : inputs) b.push_back({reinterpret_cast<uintptr_t>(t.data()), t.nbytes()});
  for (const Tensor& t : outputs) b.push_back({reinterpret_cast<uintptr_t>(t.data()), t.nbytes()});
  return b;
}

}  // namespace kiln::cuda
