// CudaProgram (the per-graph interpreter) and CudaBackend. See cuda_backend.h for the contract.
#include <atomic>
#include <mutex>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel.h"
#include "backends/cuda/allocator.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/ops/handler.h"
#include "backends/cuda/specializer.h"
#include "core/logging.h"

namespace kiln {
namespace cuda {
namespace {

// Nodes whose inputs all live on the host with at most this many elements each run there.
std::atomic<int64_t> g_host_limit{4096};

struct RunSlot {
  std::shared_ptr<Stream> stream;
  std::unique_ptr<GemmRunner> gemm;
  std::shared_ptr<void> error_flag;  // one device int
};

// Where a value lives during a run: on the host, the device, or both (copies are cached).
struct Value {
  Tensor host, dev;
};

class CudaProgram final : public BackendProgram {
 public:
  CudaProgram(std::shared_ptr<const ir::Graph> graph, DeviceInfo info, std::shared_ptr<DevicePool> pool,
              std::vector<const OpHandler*> handlers, std::vector<std::vector<int>> frees,
              std::vector<Tensor> const_dev, bool allow_tf32)
      : graph_(std::move(graph)), info_(std::move(info)), pool_(std::move(pool)), handlers_(std::move(handlers)),
        frees_(std::move(frees)), const_dev_(std::move(const_dev)), allow_tf32_(allow_tf32) {}

  // Kernel variants and JIT (specializer.h); set once, before the first run.
  void set_specializer(std::shared_ptr<Specializer> spec) { spec_ = std::move(spec); }

  std::map<std::string, uint64_t> counters() const override {
    std::map<std::string, uint64_t> c;
    if (spec_) spec_->add_counters(c);
    c["gemm_tuning_hits"] += tuning_.hits.load(std::memory_order_relaxed);
    c["gemm_tuning_misses"] += tuning_.misses.load(std::memory_order_relaxed);
    return c;
  }

  CudaProgramStats stats() const {
    CudaProgramStats s;
    s.runs = runs();
    s.gpu_nodes = gpu_nodes_.load();
    s.host_nodes = host_nodes_.load();
    s.fallback_nodes = fallback_nodes_.load();
    s.uploads = uploads_.load();
    s.downloads = downloads_.load();
    s.kernel_launches = launches_.load();
    std::lock_guard<std::mutex> lock(mu_);
    s.fallbacks_by_op = fallbacks_by_op_;
    return s;
  }

 protected:
  Status do_run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) const override {
    KILN_RETURN_IF_ERROR(device_set(info_.index));
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<RunSlot> slot, acquire());
    Status s = run_on(*slot, inputs, outputs);
    // The slot's stream must be idle before another run takes it, whatever happened.
    Status sync = cuda_status(cudaStreamSynchronize(slot->stream->get()), "cudaStreamSynchronize (end of run)");
    release(std::move(slot));
    if (!s.ok()) return s;
    return sync;
  }

 private:
  Result<std::unique_ptr<RunSlot>> acquire() const {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_slots_.empty()) {
        std::unique_ptr<RunSlot> s = std::move(free_slots_.back());
        free_slots_.pop_back();
        return s;
      }
    }
    auto slot = std::make_unique<RunSlot>();
    KILN_ASSIGN_OR_RETURN(slot->stream, Stream::create(info_.index));
    slot->gemm = std::make_unique<GemmRunner>(pool_, slot->stream);
    if (spec_) slot->gemm->set_tuning_cache(spec_->options().cache, info_.sm, &tuning_);
    KILN_ASSIGN_OR_RETURN(slot->error_flag, pool_->alloc_bytes(sizeof(int), slot->stream));
    return slot;
  }

  void release(std::unique_ptr<RunSlot> slot) const {
    std::lock_guard<std::mutex> lock(mu_);
    free_slots_.push_back(std::move(slot));
  }

  Result<Tensor> host_of(Value& v, cudaStream_t stream) const {
    if (!v.host.defined()) {
      KILN_ASSIGN_OR_RETURN(v.host, copy_to_host(v.dev, stream));
      downloads_.fetch_add(1, std::memory_order_relaxed);
    }
    return v.host;
  }

  Result<Tensor> dev_of(Value& v, const std::shared_ptr<Stream>& stream) const {
    if (!v.dev.defined()) {
      KILN_ASSIGN_OR_RETURN(v.dev, copy_to_device(v.host, *pool_, stream));
      uploads_.fetch_add(1, std::memory_order_relaxed);
    }
    return v.dev;
  }

  Status run_on(RunSlot& slot, std::span<const Tensor> inputs, std::vector<Tensor>* outputs) const {
    const ir::Graph& g = *graph_;
    if (inputs.size() != g.inputs.size())
      return invalid_argument("expected " + std::to_string(g.inputs.size()) + " inputs, got " +
                              std::to_string(inputs.size()));
    const cudaStream_t stream = slot.stream->get();
    std::vector<Value> vals(g.values.size());
    for (size_t i = 0; i < g.values.size(); ++i) {
      if (g.values[i].constant < 0) continue;
      vals[i].host = g.constants[static_cast<size_t>(g.values[i].constant)];
      vals[i].dev = const_dev_[i];
    }
    bool device_io = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Tensor& t = inputs[i];
      Value& v = vals[static_cast<size_t>(g.inputs[i])];
      if (t.device().type != DeviceType::kCuda) {
        v.host = t;
        continue;
      }
      if (t.device().index != info_.index)
        return invalid_argument("input " + std::to_string(i) + " ('" + g.values[g.inputs[i]].name + "') is on " +
                                t.device().to_string() + " but this program runs on cuda:" + std::to_string(info_.index));
      device_io = true;
      // Views of a borrowed device buffer must not be copied as host memory: give it an owner.
      v.dev = t.storage() ? t : Tensor::wrap(t.dtype(), t.dims(), t.data(), std::shared_ptr<void>(t.data(), [](void*) {}),
                                             t.device());
    }
    int* flag = static_cast<int*>(slot.error_flag.get());
    KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(flag, 0, sizeof(int), stream), "cudaMemsetAsync (error flag)");
    RunContext ctx(info_, pool_, slot.stream, slot.gemm.get(), flag, allow_tf32_);
    Specializer::Scope kernels(spec_.get(), inputs);
    ctx.set_kernel_provider(kernels.provider());

    std::vector<Tensor> in, out;
    const int64_t host_limit = g_host_limit.load(std::memory_order_relaxed);
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      const ir::Node& node = g.nodes[n];
      const OpHandler* handler = handlers_[n];
      bool any_input = false, all_host_small = true;
      for (int id : node.inputs) {
        if (id < 0) continue;
        any_input = true;
        const Tensor& h = vals[static_cast<size_t>(id)].host;
        if (!h.defined() || h.numel() > host_limit) all_host_small = false;
      }
      bool on_host = (any_input && all_host_small) || !handler;
      bool fallback = !handler && !(any_input && all_host_small);
      out.assign(node.outputs.size(), Tensor());
      if (!on_host) {
        in.assign(node.inputs.size(), Tensor());
        for (size_t k = 0; k < node.inputs.size(); ++k) {
          const int id = node.inputs[k];
          if (id < 0) continue;
          Value& v = vals[static_cast<size_t>(id)];
          if (handler->host_input(node, k)) {
            KILN_ASSIGN_OR_RETURN(in[k], host_of(v, stream));
          } else {
            KILN_ASSIGN_OR_RETURN(in[k], dev_of(v, slot.stream));
          }
        }
        ctx.set_node(&node, static_cast<int>(n));
        const uint64_t before = ctx.launches();
        Status s = handler->run(ctx, in, out);
        launches_.fetch_add(ctx.launches() - before, std::memory_order_relaxed);
        if (s.code() == StatusCode::kUnsupported) {
          log_once(LogLevel::kWarning, "cuda-declined:" + node.op,
                   "CUDA backend: running " + node.op + " nodes on the CPU where the CUDA kernel does not cover the case "
                   "(first: " + s.message() + ")");
          on_host = fallback = true;
          out.assign(node.outputs.size(), Tensor());
        } else if (!s.ok()) {
          return s;
        } else {
          gpu_nodes_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (on_host) {
        if (fallback && !handler)
          log_once(LogLevel::kWarning, "cuda-fallback:" + node.op,
                   "CUDA backend: op " + node.op + " has no CUDA kernel yet; its nodes run on the CPU "
                   "(their inputs are copied to the host)");
        in.assign(node.inputs.size(), Tensor());
        for (size_t k = 0; k < node.inputs.size(); ++k)
          if (node.inputs[k] >= 0) {
      KILN_ASSIGN_OR_RETURN(in[k], host_of(vals[static_cast<size_t>(node.inputs[k])], stream));
    }
        Status s = cpu::run_node(node, in, out);
        if (!s.ok()) return s;
        if (fallback) {
          fallback_nodes_.fetch_add(1, std::memory_order_relaxed);
          std::lock_guard<std::mutex> lock(mu_);
          ++fallbacks_by_op_[node.op];
        } else {
          host_nodes_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      for (size_t k = 0; k < node.outputs.size(); ++k) {
        const int id = node.outputs[k];
        if (id < 0) continue;
        if (!out[k].defined())
          return internal_error(cpu::node_context(node) + ": kernel produced no output " + std::to_string(k));
        Value& v = vals[static_cast<size_t>(id)];
        v = Value();
        (out[k].device().type == DeviceType::kCuda ? v.dev : v.host) = std::move(out[k]);
      }
      for (int id : frees_[n]) vals[static_cast<size_t>(id)] = Value();
    }

    outputs->clear();
    for (int id : g.outputs) {
      Value& v = vals[static_cast<size_t>(id)];
      if (device_io) {
        KILN_ASSIGN_OR_RETURN(Tensor t, dev_of(v, slot.stream));
        outputs->push_back(std::move(t));
      } else {
        KILN_ASSIGN_OR_RETURN(Tensor t, host_of(v, stream));
        outputs->push_back(std::move(t));
      }
    }
    int failed = 0;
    KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(&failed, flag, sizeof(int), cudaMemcpyDeviceToHost, stream),
                              "cudaMemcpyAsync (error flag)");
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream), "cudaStreamSynchronize (end of run)");
    if (failed > 0 && static_cast<size_t>(failed) <= g.nodes.size()) {
      outputs->clear();
      return invalid_argument(cpu::node_context(g.nodes[static_cast<size_t>(failed - 1)]) +
                              ": an index is out of range (checked on the GPU)");
    }
    return Status();
  }

  std::shared_ptr<const ir::Graph> graph_;
  DeviceInfo info_;
  std::shared_ptr<DevicePool> pool_;
  std::vector<const OpHandler*> handlers_;  // per node; null: no CUDA handler
  std::vector<std::vector<int>> frees_;     // per node: values dead after it runs
  std::vector<Tensor> const_dev_;           // per value id: the constant's device copy
  bool allow_tf32_;
  std::shared_ptr<Specializer> spec_;
  mutable GemmTuningCounters tuning_;

  mutable std::mutex mu_;  // guards free_slots_ and fallbacks_by_op_
  mutable std::vector<std::unique_ptr<RunSlot>> free_slots_;
  mutable std::map<std::string, uint64_t> fallbacks_by_op_;
  mutable std::atomic<uint64_t> gpu_nodes_{0}, host_nodes_{0}, fallback_nodes_{0}, uploads_{0}, downloads_{0},
      launches_{0};
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(DeviceInfo info, std::shared_ptr<DevicePool> pool) : info_(std::move(info)), pool_(std::move(pool)) {}
  std::string name() const override { return "cuda"; }
  Device device() const override { return Device{DeviceType::kCuda, info_.index}; }

 protected:
  bool do_supports(Feature f) const override { return f == Feature::kDeviceMemory || f == Feature::kHalfCompute; }

  Result<std::unique_ptr<BackendProgram>> do_prepare(std::shared_ptr<const ir::Graph> graph,
                                                     const PrepareOptions& options) const override {
    const ir::Graph& g = *graph;
    KILN_RETURN_IF_ERROR(g.validate());
    KILN_RETURN_IF_ERROR(device_set(info_.index));
    const cpu::KernelRegistry& cpu_kernels = cpu::kernel_registry();
    std::vector<const OpHandler*> handlers;
    for (const ir::Node& node : g.nodes) {
      const OpHandler* h = handler_for(node.op);
      if (!h && !cpu_kernels.find(node.op))
        return unsupported(cpu::node_context(node) + ": op " + node.op + " has neither a CUDA nor a CPU kernel");
      handlers.push_back(h);
    }
    std::vector<int> last_use(g.values.size(), -1);
    for (size_t n = 0; n < g.nodes.size(); ++n)
      for (int id : g.nodes[n].inputs)
        if (id >= 0) last_use[static_cast<size_t>(id)] = static_cast<int>(n);
    for (int id : g.outputs) last_use[static_cast<size_t>(id)] = static_cast<int>(g.nodes.size());
    std::vector<std::vector<int>> frees(g.nodes.size());
    for (size_t id = 0; id < g.values.size(); ++id) {
      if (g.values[id].constant >= 0) continue;
      const int lu = last_use[id];
      if (lu >= 0 && lu < static_cast<int>(g.nodes.size())) frees[static_cast<size_t>(lu)].push_back(static_cast<int>(id));
    }
    // Weights go to the device once, here; every run shares them.
    std::vector<Tensor> const_dev(g.values.size());
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, Stream::create(info_.index));
    for (size_t id = 0; id < g.values.size(); ++id) {
      const int c = g.values[id].constant;
      if (c < 0) continue;
      const Tensor& t = g.constants[static_cast<size_t>(c)];
      if (!t.defined()) continue;
      Result<Tensor> dev = copy_to_device(t, *pool_, stream);
      if (!dev.ok()) return dev.status().with_context("uploading constant '" + g.values[id].name + "'");
      const_dev[id] = *dev;
    }
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream->get()), "cudaStreamSynchronize (constant upload)");
    auto program = std::make_unique<CudaProgram>(graph, info_, pool_, std::move(handlers), std::move(frees),
                                                 std::move(const_dev), options.allow_tf32);
    program->set_specializer(make_specializer(*graph, info_, options, g_host_limit.load()));
    return std::unique_ptr<BackendProgram>(std::move(program));
  }

 private:
  DeviceInfo info_;
  std::shared_ptr<DevicePool> pool_;
};

}  // namespace

Result<CudaProgramStats> program_stats(const BackendProgram& program) {
  const auto* p = dynamic_cast<const CudaProgram*>(&program);
  if (!p) return invalid_argument("program_stats: not a CUDA backend program");
  return p->stats();
}

std::vector<std::string> supported_ops() { return cuda_ops(); }

void set_host_execution_limit(int64_t elements) { g_host_limit.store(elements); }

}  // namespace cuda

Result<std::unique_ptr<Backend>> create_cuda_backend(int device) {
  KILN_ASSIGN_OR_RETURN(cuda::DeviceInfo info, cuda::device_open(device));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<cuda::DevicePool> pool, cuda::DevicePool::create(device, UINT64_MAX));
  return std::unique_ptr<Backend>(new cuda::CudaBackend(std::move(info), std::move(pool)));
}

}  // namespace kiln
