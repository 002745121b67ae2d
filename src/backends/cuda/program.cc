// CudaProgram (the per-graph interpreter) and CudaBackend. See cuda_backend.h for the contract.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel.h"
#include "backends/cuda/allocator.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/graphs.h"
#include "backends/cuda/ops/handler.h"
#include "backends/cuda/ops/launch.h"
#include "backends/cuda/shape_memo.h"
#include "backends/cuda/specializer.h"
#include "core/logging.h"
#include "kiln/runtime_cache.h"

namespace kiln {
namespace cuda {
namespace {

// Nodes whose inputs all live on the host with at most this many elements each run there.
std::atomic<int64_t> g_host_limit{4096};

// KILN_CUDA_HOST_PROFILE=1 (read once): every run adds the host time it spends per op type and
// per phase to the backend counters (host_ns.*), to find where a call's host overhead goes.
// =sync: the same, and a plain run waits for the GPU after every node, so op.* counts each node's
// GPU time too (the run itself gets slower: a diagnosis, never a mode).
enum class HostProfile { kOff, kOn, kSync };
HostProfile host_profile() {
  static const HostProfile mode = [] {
    const char* v = std::getenv("KILN_CUDA_HOST_PROFILE");
    if (!v || !*v || std::string(v) == "0") return HostProfile::kOff;
    return std::string(v) == "sync" ? HostProfile::kSync : HostProfile::kOn;
  }();
  return mode;
}
bool host_profile_enabled() { return host_profile() != HostProfile::kOff; }

// Restores the calling thread's current device when it goes out of scope: creating a backend
// or an execution context for cuda:N must not leave cuda:N current for the caller.
class RestoreDevice {
 public:
  RestoreDevice() {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      cudaGetLastError();
      previous_ = -1;
    }
  }
  ~RestoreDevice() {
    int current = -1;
    if (previous_ >= 0 && cudaGetDevice(&current) == cudaSuccess && current != previous_) cudaSetDevice(previous_);
  }
  RestoreDevice(const RestoreDevice&) = delete;
  RestoreDevice& operator=(const RestoreDevice&) = delete;

 private:
  int previous_ = -1;
};

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

struct RunSlot {
  ~RunSlot() {
    if (fork) cudaEventDestroy(fork);
    if (join) cudaEventDestroy(join);
  }
  std::shared_ptr<Stream> stream;
  std::unique_ptr<GemmRunner> gemm;
  std::shared_ptr<void> error_flag;  // one device int
  cudaEvent_t fork = nullptr, join = nullptr;  // ordering with a caller's stream
};

// Where a value lives during a run: on the host, the device, or both (copies are cached).
struct Value {
  Tensor host, dev;
};

class CudaProgram final : public BackendProgram, public GraphTarget {
 public:
  CudaProgram(std::shared_ptr<const ir::Graph> graph, DeviceInfo info, std::shared_ptr<DevicePool> pool,
              std::vector<const OpHandler*> handlers, std::vector<std::vector<int>> frees,
              std::vector<Tensor> const_dev, bool allow_tf32)
      : graph_(std::move(graph)), info_(std::move(info)), pool_(std::move(pool)), handlers_(std::move(handlers)),
        frees_(std::move(frees)), const_dev_(std::move(const_dev)), allow_tf32_(allow_tf32),
        memos_(std::make_unique<NodeMemo[]>(graph_->nodes.size())),
        shape_only_(ShapeMemo::shape_only_nodes(*graph_)) {
    for (const OpHandler* h : handlers_) uses_flag_ = uses_flag_ || (h && h->writes_error_flag());
    for (bool b : shape_only_) any_shape_only_ = any_shape_only_ || b;
  }

  // When GEMM problems time cuBLASLt's candidates (GemmRunner::set_autotune): on their first call
  // for static-shape engines and the eager strategy (a first call may wait there), on their second
  // under lazy (a first call at a new shape never waits), never under none. Set once, before the
  // first run.
  void set_gemm_autotune(GemmRunner::Autotune mode) { autotune_gemm_ = mode; }

  // Kernel variants and JIT (specializer.h); set once, before the first run.
  void set_specializer(std::shared_ptr<Specializer> spec) { spec_ = std::move(spec); }
  // CUDA graphs and caller streams (graphs.h); set once, before the first run.
  void set_graphs(std::unique_ptr<GraphExecutor> graphs, const ResolvedSettings& settings) {
    graphs_ = std::move(graphs);
    whole_graph_ = settings.cuda_graph_strategy == CudaGraphStrategy::kWholeGraphCapture;
    safe_mode_ = settings.multi_device_safe_mode;
  }

  std::map<std::string, uint64_t> counters() const override {
    std::map<std::string, uint64_t> c;
    if (spec_) spec_->add_counters(c);
    c["gemm_tuning_hits"] += tuning_.hits.load(std::memory_order_relaxed);
    c["gemm_tuning_misses"] += tuning_.misses.load(std::memory_order_relaxed);
    c["gemm_tuning_timed"] += tuning_.timed.load(std::memory_order_relaxed);
    c["gemm_family_starts"] += tuning_.family_starts.load(std::memory_order_relaxed);
    if (graphs_) graphs_->add_counters(c);
    c["conv_cudnn"] += cudnn_convs_.load(std::memory_order_relaxed);
    c["conv_jit"] += jit_convs_.load(std::memory_order_relaxed);
    c["gemm_gemv"] += gemv_gemms_.load(std::memory_order_relaxed);
    c["device_checks"] += device_checks_.load(std::memory_order_relaxed);
    c["shape_memo_hits"] += shape_memo_hits_.load(std::memory_order_relaxed);
    c["shape_memo_signatures"] += shape_memo_.size();
    c["device_switches"] += device_switches_.load(std::memory_order_relaxed);
    if (host_profile_enabled()) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [k, v] : host_ns_) c["host_ns." + k] += v;
      const KernelTableStats kt = KernelTable::global().stats();  // the process's, not this program's
      c["host_ns.process.kernel_source"] = kt.source_ns;
      c["host_ns.process.kernel_image"] = kt.image_ns;
      c["host_ns.process.kernel_load"] = kt.load_ns;
    }
    return c;
  }

  bool is_stream_capturable(std::span<const Dims> shapes, std::string* reason) const override {
    return graphs_->capturable(shapes, reason);
  }

  // GraphTarget (walk() is below).
  Status probe(std::span<const Tensor> inputs, WalkFacts* facts) const override {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<RunSlot> slot, acquire());
    WalkEnv env{slot->stream, slot->gemm.get(), static_cast<int*>(slot->error_flag.get()), nullptr, {}, true};
    std::vector<Tensor> outputs;
    Status s = walk(env, inputs, &outputs, facts);
    if (s.ok()) s = finish(*slot);
    Status sync = cuda_status(cudaStreamSynchronize(slot->stream->get()), "cudaStreamSynchronize (end of run)");
    release(std::move(slot));
    return s.ok() ? sync : s;
  }

  std::unique_ptr<GemmRunner> make_gemm(std::shared_ptr<Stream> stream) const override {
    auto gemm = std::make_unique<GemmRunner>(pool_, std::move(stream));
    if (spec_) gemm->set_tuning_cache(spec_->options().cache, info_.sm, &tuning_);
    gemm->set_autotune(autotune_gemm_);
    return gemm;
  }

  bool uses_error_flag() const override { return uses_flag_; }

  // KILN_CUDA_HOST_PROFILE: time spent preparing the program (do_prepare), per phase.
  void add_host_ns(const std::string& phase, uint64_t ns) const {
    std::lock_guard<std::mutex> lock(mu_);
    host_ns_[phase] += ns;
  }

  bool kernels_final(std::span<const Tensor> inputs) const override {
    return !spec_ || spec_->kernels_final(Specializer::signature_of(inputs));
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
    s.cudnn_convs = cudnn_convs_.load();
    s.jit_convs = jit_convs_.load();
    std::lock_guard<std::mutex> lock(mu_);
    s.fallbacks_by_op = fallbacks_by_op_;
    return s;
  }

 protected:
  Status do_run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) const override {
    return do_run_request(inputs, outputs, RunRequest{});
  }

  Status do_run_request(std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                        const RunRequest& request) const override {
    DeviceGuard device;  // multi_device_safe_mode: no device query at all when off
    if (safe_mode_) KILN_RETURN_IF_ERROR(device.enter(info_.index, device_checks_, device_switches_));
    const auto user = static_cast<cudaStream_t>(request.stream);
    if (user) {
      cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
      KILN_CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(user, &capture), "cudaStreamIsCapturing (RunOptions::stream)");
      if (capture == cudaStreamCaptureStatusActive)
        return graphs_->run_in_capture(user, inputs, request.output_buffers, outputs);
      if (capture != cudaStreamCaptureStatusNone)
        return invalid_argument("RunOptions::stream: the CUDA graph capture on this stream was invalidated");
    }
    const uint64_t t_call = host_profile_enabled() ? now_ns() : 0;
    GraphExecutor::collect_garbage();
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<RunSlot> slot, acquire());
    // A slot's stream is a blocking stream: against the legacy default stream (a caller on it,
    // PyTorch's default) CUDA orders both ways by itself, so no event pair is needed.
    const bool legacy = user == cudaStreamLegacy;
    Status s = user && !legacy ? order_after(*slot, user) : Status();
    if (s.ok()) {
      s = whole_graph_ ? graphs_->run(slot->stream, slot->gemm.get(), static_cast<int*>(slot->error_flag.get()),
                                      inputs, request.output_buffers, !user, outputs)
                       : run_on(*slot, inputs, request.output_buffers, !user, outputs);
    }
    Status sync;
    if (user) {  // the caller's stream waits for kiln's work; the host does not
      if (!legacy) {
        sync = cuda_status(cudaEventRecord(slot->join, slot->stream->get()), "cudaEventRecord (end of run)");
        if (sync.ok()) sync = cuda_status(cudaStreamWaitEvent(user, slot->join, 0), "cudaStreamWaitEvent (caller)");
      }
    } else {
      // The slot's stream must be idle before another run takes it, whatever happened.
      sync = cuda_status(cudaStreamSynchronize(slot->stream->get()), "cudaStreamSynchronize (end of run)");
    }
    release(std::move(slot));
    if (t_call) {
      std::lock_guard<std::mutex> lock(mu_);
      host_ns_["call"] += now_ns() - t_call;
      ++host_ns_["calls"];
    }
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
    slot->gemm->set_autotune(autotune_gemm_);
    KILN_ASSIGN_OR_RETURN(slot->error_flag, pool_->alloc_bytes(sizeof(int), slot->stream));
    return slot;
  }

  // Orders the slot's stream after the work the caller queued on `user`.
  Status order_after(RunSlot& slot, cudaStream_t user) const {
    if (!slot.fork) {
      KILN_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&slot.fork, cudaEventDisableTiming), "cudaEventCreate");
      KILN_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&slot.join, cudaEventDisableTiming), "cudaEventCreate");
    }
    KILN_CUDA_RETURN_IF_ERROR(cudaEventRecord(slot.fork, user), "cudaEventRecord (RunOptions::stream)");
    return cuda_status(cudaStreamWaitEvent(slot.stream->get(), slot.fork, 0), "cudaStreamWaitEvent");
  }

  // Reads the slot's error flag, waiting for the stream.
  Status finish(RunSlot& slot) const {
    const cudaStream_t stream = slot.stream->get();
    if (!uses_flag_) return cuda_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize (end of run)");
    int failed = 0;
    KILN_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(&failed, slot.error_flag.get(), sizeof(int), cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync (error flag)");
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream), "cudaStreamSynchronize (end of run)");
    if (failed > 0 && static_cast<size_t>(failed) <= graph_->nodes.size())
      return invalid_argument(cpu::node_context(graph_->nodes[static_cast<size_t>(failed - 1)]) +
                              ": an index is out of range (checked on the GPU)");
    return Status();
  }

  // A plain run (no CUDA graph): walk, then, when `sync`, wait and check the error flag.
  Status run_on(RunSlot& slot, std::span<const Tensor> inputs, std::span<const Tensor> output_buffers, bool sync,
                std::vector<Tensor>* outputs) const {
    WalkEnv env{slot.stream, slot.gemm.get(), static_cast<int*>(slot.error_flag.get()), nullptr, output_buffers,
                !output_buffers.empty()};
    WalkFacts facts;
    KILN_RETURN_IF_ERROR(walk(env, inputs, outputs, &facts));
    const uint64_t t_learn = host_profile_enabled() ? now_ns() : 0;
    graphs_->learn(inputs, facts);
    if (t_learn) {
      std::lock_guard<std::mutex> lock(mu_);
      host_ns_["learn"] += now_ns() - t_learn;
    }
    if (!sync) return Status();
    const uint64_t t0 = host_profile_enabled() ? now_ns() : 0;
    Status s = finish(slot);
    if (t0) {
      std::lock_guard<std::mutex> lock(mu_);
      host_ns_["finish_sync"] += now_ns() - t0;
    }
    if (!s.ok()) outputs->clear();
    return s;
  }

  void release(std::unique_ptr<RunSlot> slot) const {
    std::lock_guard<std::mutex> lock(mu_);
    free_slots_.push_back(std::move(slot));
  }

  Result<Tensor> host_of(Value& v, const WalkEnv& env, WalkFacts* facts, const ir::Node* node) const {
    if (!v.host.defined()) {
      ++facts->host_reads;
      if (facts->not_capturable.empty())
        facts->not_capturable = "reads a device value on the host (a wait for the GPU) at " +
                                (node ? cpu::node_context(*node) : std::string("an output"));
      if (env.hooks) return unsupported("CUDA graph capture: the program " + facts->not_capturable);
      KILN_ASSIGN_OR_RETURN(v.host, copy_to_host(v.dev, env.stream->get()));
      downloads_.fetch_add(1, std::memory_order_relaxed);
    }
    return v.host;
  }

  Result<Tensor> dev_of(Value& v, const WalkEnv& env) const {
    if (!v.dev.defined()) {
      if (env.hooks) {  // a value computed on the host is the same on every replay
        KILN_ASSIGN_OR_RETURN(v.dev, env.hooks->upload_constant(v.host));
      } else {
        KILN_ASSIGN_OR_RETURN(v.dev, copy_to_device(v.host, *pool_, env.stream));
      }
      uploads_.fetch_add(1, std::memory_order_relaxed);
    }
    return v.dev;
  }

  Status walk(const WalkEnv& env, std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
              WalkFacts* facts) const override {
    const ir::Graph& g = *graph_;
    if (inputs.size() != g.inputs.size())
      return invalid_argument("expected " + std::to_string(g.inputs.size()) + " inputs, got " +
                              std::to_string(inputs.size()));
    const cudaStream_t stream = env.stream->get();
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
    device_io = device_io || env.device_outputs;
    int* flag = env.error_flag;
    if (uses_flag_)
      KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(flag, 0, sizeof(int), stream), "cudaMemsetAsync (error flag)");
    if (env.gemm) env.gemm->begin_run();
    RunContext ctx(info_, pool_, env.stream, env.gemm, flag, allow_tf32_);
    ctx.set_capture_hooks(env.hooks);
    if (host_profile_enabled()) ctx.enable_profile();
    // Graph outputs are produced straight into the caller's output buffers where possible.
    std::vector<int> output_of(env.output_buffers.empty() ? 0 : g.values.size(), -1);
    for (size_t j = 0; j < g.outputs.size() && !output_of.empty(); ++j)
      if (output_of[static_cast<size_t>(g.outputs[j])] < 0) output_of[static_cast<size_t>(g.outputs[j])] = static_cast<int>(j);
    std::optional<Specializer::Scope> kernels;  // ended below, inside the walk's profile
    kernels.emplace(spec_.get(), inputs);
    ctx.set_kernel_provider(kernels->provider());

    std::vector<Tensor> in, out;
    const int64_t host_limit = g_host_limit.load(std::memory_order_relaxed);
    const bool profile = host_profile_enabled();
    const uint64_t t_walk = profile ? now_ns() : 0;
    std::map<std::string, uint64_t> node_ns;
    // Values that follow from the input shapes alone (shape_memo.h): taken from the memo at a seen
    // signature, recorded at a new one.
    std::string own_signature;  // without a specializer (else the Scope's)
    const std::string* signature = kernels->signature();
    std::shared_ptr<const ShapeMemo::Entry> memo;
    std::shared_ptr<ShapeMemo::Entry> record;
    size_t memo_pos = 0, record_bytes = 0;
    if (any_shape_only_) {
      if (!signature) signature = &(own_signature = Specializer::signature_of(inputs));
      std::shared_ptr<const ShapeMemo::Entry> found = shape_memo_.find(*signature);
      if (!found) {
        record = std::make_shared<ShapeMemo::Entry>();
      } else if (found->usable) {
        memo = std::move(found);
      }
    }
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      const ir::Node& node = g.nodes[n];
      const OpHandler* handler = handlers_[n];
      if (memo && shape_only_[n]) {
        bool complete = true;
        for (int id : node.outputs) {
          if (id < 0) continue;
          if (memo_pos >= memo->values.size()) {
            complete = false;
            break;
          }
          Value& v = vals[static_cast<size_t>(id)];
          v = Value();
          v.host = memo->values[memo_pos++];
        }
        if (!complete) return internal_error("shape memo: fewer values than the program's shape-only nodes");
        for (int id : frees_[n]) vals[static_cast<size_t>(id)] = Value();
        continue;
      }
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
            KILN_ASSIGN_OR_RETURN(in[k], host_of(v, env, facts, &node));
          } else {
            KILN_ASSIGN_OR_RETURN(in[k], dev_of(v, env));
          }
        }
        ctx.set_node(&node, static_cast<int>(n), &memos_[n]);
        if (!output_of.empty()) {
          std::vector<Tensor> offers;
          for (int id : node.outputs)
            if (id >= 0 && output_of[static_cast<size_t>(id)] >= 0)
              offers.push_back(env.output_buffers[static_cast<size_t>(output_of[static_cast<size_t>(id)])]);
          ctx.offer(std::move(offers));
        }
        const uint64_t before = ctx.launches();
        const uint64_t t_node = profile ? now_ns() : 0;
        Status s = handler->run(ctx, in, out);
        if (profile && !env.hooks && host_profile() == HostProfile::kSync) cudaStreamSynchronize(stream);
        if (profile) node_ns[node.op] += now_ns() - t_node;
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
      KILN_ASSIGN_OR_RETURN(in[k], host_of(vals[static_cast<size_t>(node.inputs[k])], env, facts, &node));
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
        if (record && shape_only_[n]) {
          record_bytes += v.host.defined() ? v.host.nbytes() : 0;
          if (!v.host.defined() || record_bytes > ShapeMemo::kMaxBytes) {
            record->usable = false;
            record->values.clear();
            shape_memo_.put(*signature, std::move(record));  // not memoisable: runs as before
            record = nullptr;
          } else {
            record->values.push_back(v.host);
          }
        }
      }
      for (int id : frees_[n]) vals[static_cast<size_t>(id)] = Value();
    }
    if (record) {
      record->usable = true;
      shape_memo_.put(*signature, std::move(record));
    } else if (memo) {
      shape_memo_hits_.fetch_add(1, std::memory_order_relaxed);
    }

    ctx.offer({});
    ctx.set_node(nullptr, -1);
    outputs->clear();
    for (size_t j = 0; j < g.outputs.size(); ++j) {
      Value& v = vals[static_cast<size_t>(g.outputs[j])];
      Tensor t;
      if (device_io) {
        KILN_ASSIGN_OR_RETURN(t, dev_of(v, env));
      } else {
        KILN_ASSIGN_OR_RETURN(t, host_of(v, env, facts, nullptr));
      }
      facts->outputs.emplace_back(t.dtype(), t.dims());
      if (!env.output_buffers.empty()) {
        const Tensor& buf = env.output_buffers[j];
        if (buf.dtype() != t.dtype() || buf.dims() != t.dims() || buf.device() != t.device())
          return invalid_argument("output buffer " + std::to_string(j) + " ('" + g.values[g.outputs[j]].name +
                                  "') is " + std::string(dtype_name(buf.dtype())) + dims_to_string(buf.dims()) +
                                  " on " + buf.device().to_string() + "; the output is " +
                                  std::string(dtype_name(t.dtype())) + dims_to_string(t.dims()) + " on " +
                                  t.device().to_string());
        if (buf.data() != t.data()) {  // not produced in place (a view, an input, a constant)
          const std::vector<int64_t> strides = contiguous_strides(t.dims());
          KILN_RETURN_IF_ERROR(strided_copy(ctx, buf.data(), strides, t.data(), strides, t.dims(), t.dtype()));
          ++facts->output_copies;
        }
        t = buf;
      }
      outputs->push_back(std::move(t));
    }
    cudnn_convs_.fetch_add(ctx.cudnn_convs(), std::memory_order_relaxed);
    jit_convs_.fetch_add(ctx.jit_convs(), std::memory_order_relaxed);
    gemv_gemms_.fetch_add(ctx.gemv_gemms(), std::memory_order_relaxed);
    // The call's end for its kernels (under lazy: where a first call queues its background job).
    const uint64_t t_end = profile ? now_ns() : 0;
    ctx.set_kernel_provider(nullptr);
    kernels.reset();
    if (profile) {
      const uint64_t t_done = now_ns();
      std::lock_guard<std::mutex> lock(mu_);
      host_ns_["walk"] += t_end - t_walk;
      host_ns_["end_call"] += t_done - t_end;
      host_ns_["ctx.alloc"] += ctx.profile().alloc_ns;
      host_ns_["ctx.kernel_lookup"] += ctx.profile().lookup_ns;
      host_ns_["ctx.cudaLaunchKernel"] += ctx.profile().launch_ns;
      host_ns_["ctx.gemm"] += ctx.profile().gemm_ns;
      host_ns_["ctx.cudnn"] += ctx.profile().library_ns;
      host_ns_["ctx.plan"] += ctx.profile().plan_ns;
      host_ns_["ctx.gemm_bridge_checks"] += ctx.profile().bridge_ns;
      for (const auto& [op, ns] : node_ns) host_ns_["op." + op] += ns;
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
  std::unique_ptr<NodeMemo[]> memos_;       // per node: host work reused across runs (node_memo.h)
  bool uses_flag_ = false;                  // a node may write the error flag (a Gather)
  GemmRunner::Autotune autotune_gemm_ = GemmRunner::Autotune::kOff;
  std::shared_ptr<Specializer> spec_;
  mutable GemmTuningCounters tuning_;
  std::unique_ptr<GraphExecutor> graphs_;
  bool whole_graph_ = false, safe_mode_ = false;
  mutable std::atomic<uint64_t> device_checks_{0}, device_switches_{0};

  mutable std::mutex mu_;  // guards free_slots_, fallbacks_by_op_ and host_ns_
  mutable std::vector<std::unique_ptr<RunSlot>> free_slots_;
  mutable std::map<std::string, uint64_t> fallbacks_by_op_;
  mutable std::map<std::string, uint64_t> host_ns_;  // KILN_CUDA_HOST_PROFILE: host time per phase/op
  const std::vector<bool> shape_only_;  // per node: its outputs follow from the input shapes alone
  bool any_shape_only_ = false;
  mutable ShapeMemo shape_memo_;
  mutable std::atomic<uint64_t> shape_memo_hits_{0};
  mutable std::atomic<uint64_t> gpu_nodes_{0}, host_nodes_{0}, fallback_nodes_{0}, uploads_{0}, downloads_{0},
      launches_{0}, cudnn_convs_{0}, jit_convs_{0}, gemv_gemms_{0};
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
    const bool profile = host_profile_enabled();
    uint64_t t_phase = profile ? now_ns() : 0;
    std::vector<std::pair<const char*, uint64_t>> phases;  // KILN_CUDA_HOST_PROFILE
    auto phase_done = [&](const char* name) {
      if (!profile) return;
      const uint64_t t = now_ns();
      phases.emplace_back(name, t - t_phase);
      t_phase = t;
    };
    RestoreDevice restore;
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
    // Weights go to the device once, here; every run shares them. The copies (and the page faults
    // of a freshly mapped engine file) run on a helper thread while this one plans and loads the
    // kernels: a warm start costs the longer of the two, not their sum.
    std::vector<Tensor> const_dev(g.values.size());
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, Stream::create(info_.index));
    std::vector<Tensor> host_consts;
    std::vector<std::string> const_names;
    std::vector<size_t> const_ids;
    for (size_t id = 0; id < g.values.size(); ++id) {
      const int c = g.values[id].constant;
      if (c < 0 || !g.constants[static_cast<size_t>(c)].defined()) continue;
      host_consts.push_back(g.constants[static_cast<size_t>(c)]);
      const_names.push_back(g.values[id].name);
      const_ids.push_back(id);
    }
    std::optional<Result<std::vector<Tensor>>> uploaded;
    uint64_t upload_ns = 0;
    std::thread uploader([&] {
      prepare_cache_keys();  // the kernels' cache keys need it next; here it overlaps with planning
      const uint64_t t0 = profile ? now_ns() : 0;
      const Status on_device = device_set(info_.index);
      uploaded.emplace(on_device.ok() ? upload_tensors(host_consts, const_names, info_.index, stream)
                                      : Result<std::vector<Tensor>>(on_device));
      if (profile) upload_ns = now_ns() - t0;
    });
    std::shared_ptr<Specializer> spec = make_specializer(*graph, info_, options, g_host_limit.load(), phase_done);
    phase_done("prepare.kernels.load");
    uploader.join();
    phase_done("prepare.upload_wait");
    if (profile) phases.emplace_back("prepare.upload_constants", upload_ns);  // on the helper thread
    if (!uploaded->ok()) return uploaded->status().with_context("uploading the engine's constants");
    for (size_t i = 0; i < const_ids.size(); ++i) const_dev[const_ids[i]] = std::move((**uploaded)[i]);
    auto program = std::make_unique<CudaProgram>(graph, info_, pool_, std::move(handlers), std::move(frees),
                                                 std::move(const_dev), options.allow_tf32);
    program->set_specializer(std::move(spec));
    const KernelSpecializationStrategy strategy = options.settings.kernel_specialization;
    program->set_gemm_autotune(options.static_shapes || strategy == KernelSpecializationStrategy::kEager
                                   ? GemmRunner::Autotune::kFirstCall
                               : strategy == KernelSpecializationStrategy::kLazy ? GemmRunner::Autotune::kSecondCall
                                                                                 : GemmRunner::Autotune::kOff);
    GraphOptions graph_options;
    graph_options.device = info_.index;
    graph_options.engine_name = options.engine_name;
    graph_options.static_shapes = options.static_shapes;
    graph_options.settings = options.settings;
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<GraphExecutor> graphs,
                          GraphExecutor::create(std::move(graph_options), graph, pool_, program.get()));
    program->set_graphs(std::move(graphs), options.settings);
    phase_done("prepare.graphs");
    for (const auto& [name, ns] : phases) program->add_host_ns(name, ns);
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
  cuda::RestoreDevice restore;
  KILN_ASSIGN_OR_RETURN(cuda::DeviceInfo info, cuda::device_open(device));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<cuda::DevicePool> pool,
                        cuda::DevicePool::create(device, cuda::DevicePool::Kind::kCaching));
  return std::unique_ptr<Backend>(new cuda::CudaBackend(std::move(info), std::move(pool)));
}

}  // namespace kiln
