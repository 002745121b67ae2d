// How the CUDA program runs one node: an OpHandler per op, and the RunContext it runs in.
//
// A handler receives its inputs as device tensors, except those it reads on the host
// (host_input(): shapes, axes, pads, scalars), which arrive as host tensors; omitted optional
// inputs are undefined tensors. It allocates its outputs with ctx.alloc() (or returns views of
// its inputs), enqueues its work on ctx.stream() and returns without waiting.
// A handler that cannot run a particular case (a dtype, an attribute value, a rank it has no
// kernel for) returns kUnsupported: the program then runs that node on the CPU instead (logged
// once per op and reason, and counted), discarding the node's outputs; handlers never write
// into their inputs, so work already enqueued for the node is harmless. Any other error fails
// the run. Handlers are stateless singletons: thread-safe.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda/allocator.h"
#include "backends/cuda/capture_hooks.h"
#include "backends/cuda/device.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernel_table.h"
#include "backends/cuda/ops/node_memo.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

// One launch's kernel: the generic variant and, when the kernel gains from specialisation, the
// specialised variant for this launch's exact arguments (kernels/bake.h). Both take the same
// arguments, grid and block.
struct KernelVariant {
  std::string key;  // generic variant key (kernel_table.h)
  KernelTable::Builder build;
  std::string spec_key;  // empty: not specialisable
  KernelTable::Builder spec_build;
};

// Where a RunContext gets its kernels: the program's specializer for this call (specializer.h),
// or a recorder that plans launches without a GPU (kernel_plan.h). Without one, generic kernels
// come straight from the kernel table.
class KernelProvider {
 public:
  virtual ~KernelProvider() = default;
  // The kernel to launch for `v`. A null kernel with an ok status means "record only, launch
  // nothing" (host-only planning).
  virtual Result<cudaKernel_t> kernel_for(const KernelVariant& v) = 0;
  // The GEMM bridge (gemm.h): false when no GEMM of this call runs on kiln's own kernel (then
  // gemm_bridge is not asked: steady-state calls pay nothing for it).
  virtual bool gemm_may_bridge() const { return false; }
  // The loaded kernel `kernel_key` to compute this problem with now (cuBLASLt is not ready for
  // it), or null: cuBLASLt computes it. Never null for want of NVRTC: a call never compiles to bridge.
  virtual cudaKernel_t gemm_bridge(const GemmDesc& desc, const GemmProblem& problem, const std::string& kernel_key) {
    return nullptr;
  }
};

class RunContext {
 public:
  RunContext(const DeviceInfo& device, std::shared_ptr<DevicePool> pool, std::shared_ptr<Stream> stream,
             GemmRunner* gemm, int* error_flag, bool allow_tf32)
      : device_(device), pool_(std::move(pool)), stream_(std::move(stream)), gemm_(gemm),
        error_flag_(error_flag), allow_tf32_(allow_tf32) {}

  void set_node(const ir::Node* node, int index, NodeMemo* memo = nullptr) {
    node_ = node;
    node_index_ = index;
    memo_ = memo;
    memo_ordinal_ = 0;
  }
  // The node's memo (node_memo.h) kept by the program across runs; null when there is none.
  NodeMemo* memo() const { return memo_; }
  // 0, 1, 2, ... for successive calls within one node's run: tells a node's launches apart in
  // its memo.
  uint32_t next_memo_ordinal() { return memo_ordinal_++; }
  const ir::Node& node() const { return *node_; }
  // The code kernels report for this node in the error flag (node index + 1).
  int error_code() const { return node_index_ + 1; }
  int* error_flag() const { return error_flag_; }
  const DeviceInfo& device() const { return device_; }
  cudaStream_t stream() const { return stream_->get(); }
  GemmRunner& gemm() const { return *gemm_; }
  bool allow_tf32() const { return allow_tf32_; }
  // "node 'name' (Op)", for messages.
  std::string where() const;

  // Kernels come from `provider` (not owned; null: the kernel table, generic only). Planning
  // contexts (set_planning) run handlers without a GPU: alloc() gives zero-filled host tensors
  // and nothing is launched or enqueued.
  void set_kernel_provider(KernelProvider* provider) { provider_ = provider; }
  void set_planning(bool planning) { planning_ = planning; }
  bool planning() const { return planning_; }
  // While capturing a CUDA graph (graphs.h): memory comes from the graph's arena and every launch,
  // GEMM and memset is reported to `hooks` (not owned; null: not capturing).
  void set_capture_hooks(CaptureHooks* hooks) { hooks_ = hooks; }
  CaptureHooks* capture_hooks() const { return hooks_; }
  // Buffers alloc() returns, each once, instead of new memory when dtype and dims match: the
  // caller's output buffers for the node about to run. Replaces any earlier offer.
  void offer(std::vector<Tensor> buffers) { offered_ = std::move(buffers); }

  // An uninitialised device tensor, stream-ordered on this run's stream.
  Result<Tensor> alloc(DType dtype, Dims dims);
  // Launches a generated kernel (compiled on first use; see kernel_table.h) on this run's stream.
  Status launch(const std::string& key, const KernelTable::Builder& build, unsigned grid, unsigned block,
                void** args, size_t shared_bytes = 0);
  // Launches the variant of `kernel` the provider picks (generic or specialised).
  Status launch(const KernelVariant& kernel, unsigned grid, unsigned block, void** args,
                size_t shared_bytes = 0);
  // ctx.gemm().run(...), or nothing when planning.
  Status gemm_run(const GemmDesc& desc, const void* a, const void* b, void* d, const void* bias,
                  const void* c = nullptr);
  // Whether gemm_run(desc, ...) will run kiln's GEMV kernel (gemv_applies, and its kernel is
  // loaded; always when planning): what a caller asks before using GemmDesc::bias_rows.
  bool gemv_ready(const GemmDesc& desc) const;
  // cudaMemsetAsync on this run's stream, or nothing when planning.
  Status memset(void* ptr, size_t bytes);

  uint64_t launches() const { return launches_; }
  // GEMMs this context computed with kiln's own kernel (the GEMM bridge).
  uint64_t bridged_gemms() const { return bridged_gemms_; }
  // GEMMs of one row computed by kiln's GEMV kernel (gemv_applies) this run.
  uint64_t gemv_gemms() const { return gemv_gemms_; }
  // Convolutions this context ran on cuDNN and on the JIT kernels (conv_cudnn.cc counts them;
  // planning runs count too: callers take differences around real runs only).
  void count_conv(bool on_cudnn) { ++(on_cudnn ? cudnn_convs_ : jit_convs_); }
  uint64_t cudnn_convs() const { return cudnn_convs_; }
  uint64_t jit_convs() const { return jit_convs_; }

  // Host nanoseconds spent in alloc(), kernel lookup, cudaLaunchKernel, GEMM and cuDNN calls, counted
  // only after enable_profile() (KILN_CUDA_HOST_PROFILE; see program.cc).
  struct HostProfile {
    uint64_t alloc_ns = 0, lookup_ns = 0, launch_ns = 0, gemm_ns = 0;
    uint64_t library_ns = 0;  // cuDNN calls
    uint64_t plan_ns = 0;     // node memo misses: launches planned afresh (a new shape's first call)
    uint64_t bridge_ns = 0;   // the GEMM bridge's bookkeeping before its launch (problem key, states)
  };
  // A timestamp for add_plan_ns (0 when not profiling), and plan_ns's share of the time since it.
  uint64_t profile_start() const;
  void add_plan_ns(uint64_t t0);
  void enable_profile() { profile_on_ = true; }
  bool profiling() const { return profile_on_; }
  void add_library_ns(uint64_t ns) { profile_.library_ns += ns; }
  const HostProfile& profile() const { return profile_; }

 private:
  // Computes `desc` with `kernel`, kiln's GEMM kernel for it (kernels/gemm.h), on this run's stream.
  Status launch_gemm_bridge(cudaKernel_t kernel, const GemmDesc& desc, const void* a, const void* b, void* d,
                            const void* bias, const void* c);

  const DeviceInfo& device_;
  std::shared_ptr<DevicePool> pool_;
  std::shared_ptr<Stream> stream_;
  GemmRunner* gemm_;
  int* error_flag_;
  bool allow_tf32_;
  const ir::Node* node_ = nullptr;
  int node_index_ = 0;
  NodeMemo* memo_ = nullptr;
  uint32_t memo_ordinal_ = 0;
  uint64_t launches_ = 0;
  uint64_t bridged_gemms_ = 0;
  uint64_t gemv_gemms_ = 0;
  uint64_t cudnn_convs_ = 0, jit_convs_ = 0;
  KernelProvider* provider_ = nullptr;
  bool planning_ = false;
  CaptureHooks* hooks_ = nullptr;
  std::vector<Tensor> offered_;
  bool profile_on_ = false;
  HostProfile profile_;
};

class OpHandler {
 public:
  virtual ~OpHandler() = default;
  // True when input `i` is read on the host.
  virtual bool host_input(const ir::Node& node, size_t i) const { return false; }
  // True when the handler's kernels may write the run's error flag (RunContext::error_flag):
  // programs without such a node neither reset nor read the flag.
  virtual bool writes_error_flag() const { return false; }
  virtual Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const = 0;
};

// The handler for `op`, or null when the CUDA backend has none (the node runs on the CPU).
const OpHandler* handler_for(std::string_view op);
// Every op with a handler, sorted.
std::vector<std::string> cuda_ops();

// Registration, one function per family (ops/*.cc).
struct HandlerTable;
void register_elementwise_handlers(HandlerTable& t);
void register_movement_handlers(HandlerTable& t);
void register_reduce_handlers(HandlerTable& t);
void register_nn_handlers(HandlerTable& t);
void register_attention_handlers(HandlerTable& t);  // attention_ops.cc: kiln.Attention

struct HandlerTable {
  std::vector<std::pair<std::string, std::unique_ptr<OpHandler>>> entries;
  void add(std::string op, std::unique_ptr<OpHandler> h) { entries.emplace_back(std::move(op), std::move(h)); }
};

}  // namespace kiln::cuda
