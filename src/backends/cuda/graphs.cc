// GraphExecutor: see graphs.h. The arena, recorder and entries are in graphs_capture.cc.
#include "backends/cuda/graphs.h"

#include <cstring>

#include "backends/cpu/kernel.h"
#include "backends/cuda/device.h"
#include "backends/cuda/graphs_internal.h"
#include "core/logging.h"

namespace kiln::cuda {
namespace {

// Slots of caller-side captures whose graphs CUDA destroyed; freed by collect_garbage(). Never
// destroyed itself: CUDA may call bury() late in process exit.
std::mutex& graveyard_mu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::vector<std::shared_ptr<CaptureSlot>*>& graveyard() {
  static auto* v = new std::vector<std::shared_ptr<CaptureSlot>*>;
  return *v;
}
void CUDART_CB bury(void* holder) {  // no CUDA calls allowed here
  std::lock_guard<std::mutex> lock(graveyard_mu());
  graveyard().push_back(static_cast<std::shared_ptr<CaptureSlot>*>(holder));
}

bool on_device(const Tensor& t) { return t.device().type == DeviceType::kCuda; }

}  // namespace

struct GraphExecutor::Captured {
  std::shared_ptr<CaptureSlot> slot;
  cudaGraph_t graph = nullptr;  // owned by whoever takes it
  std::vector<LaunchRecord> records;
  std::vector<cudaGraphNode_t> kernel_nodes;
  std::vector<bool> pinned;
  bool unanalysed = false;
  uint64_t copies = 0;
  std::vector<Tensor> outputs;
};

Result<std::unique_ptr<GraphExecutor>> GraphExecutor::create(GraphOptions options,
                                                              std::shared_ptr<const ir::Graph> graph,
                                                              std::shared_ptr<DevicePool> pool,
                                                              const GraphTarget* target) {
  std::unique_ptr<GraphExecutor> ex(new GraphExecutor());
  KILN_ASSIGN_OR_RETURN(ex->side_, Stream::create(options.device, cudaStreamNonBlocking));
  ex->options_ = std::move(options);
  ex->graph_ = std::move(graph);
  ex->pool_ = std::move(pool);
  ex->target_ = target;
  return ex;
}

GraphExecutor::~GraphExecutor() {
  std::lock_guard<std::mutex> lock(mu_);
  graphs_.clear();
}

void GraphExecutor::collect_garbage() {
  std::vector<std::shared_ptr<CaptureSlot>*> dead;
  {
    std::lock_guard<std::mutex> lock(graveyard_mu());
    dead.swap(graveyard());
  }
  for (auto* holder : dead) delete holder;
}

std::vector<int64_t> GraphExecutor::signature(std::span<const Tensor> inputs) const {
  std::vector<int64_t> sig;
  for (const Tensor& t : inputs) {
    sig.push_back(static_cast<int64_t>(t.dtype()));
    sig.push_back(static_cast<int64_t>(t.dims().size()));
    sig.insert(sig.end(), t.dims().begin(), t.dims().end());
  }
  return sig;
}

std::vector<int64_t> GraphExecutor::signature(std::span<const Dims> shapes) const {
  std::vector<int64_t> sig;
  for (size_t i = 0; i < shapes.size(); ++i) {
    sig.push_back(static_cast<int64_t>(graph_->values[static_cast<size_t>(graph_->inputs[i])].dtype));
    sig.push_back(static_cast<int64_t>(shapes[i].size()));
    sig.insert(sig.end(), shapes[i].begin(), shapes[i].end());
  }
  return sig;
}

bool GraphExecutor::find_facts(const std::vector<int64_t>& sig, Facts* out) const {
  std::lock_guard<std::mutex> lock(facts_mu_);
  auto it = facts_.find(sig);
  if (it == facts_.end()) return false;
  *out = it->second;
  return true;
}

void GraphExecutor::store_facts(const std::vector<int64_t>& sig, const WalkFacts& wf) {
  Facts f;
  f.capturable = wf.not_capturable.empty();
  f.reason = wf.not_capturable;
  f.outputs = wf.outputs;
  std::lock_guard<std::mutex> lock(facts_mu_);
  if (facts_.size() >= 1024) facts_.clear();
  facts_.emplace(sig, std::move(f));  // the first walk decides; a failed capture overrides
}

void GraphExecutor::learn(std::span<const Tensor> inputs, const WalkFacts& facts) {
  for (const Tensor& t : inputs)
    if (!on_device(t)) return;  // host inputs walk differently
  store_facts(signature(inputs), facts);
}

Status GraphExecutor::check_output_buffers(std::span<const Tensor> buffers, const Facts& facts) const {
  if (buffers.empty()) return Status();
  if (buffers.size() != facts.outputs.size())
    return invalid_argument("engine '" + options_.engine_name + "' has " + std::to_string(facts.outputs.size()) +
                            " outputs, got " + std::to_string(buffers.size()) + " output buffers");
  for (size_t j = 0; j < buffers.size(); ++j) {
    const Tensor& b = buffers[j];
    const auto& [dtype, dims] = facts.outputs[j];
    if (!b.defined() || !on_device(b) || b.device().index != options_.device || b.dtype() != dtype || b.dims() != dims)
      return invalid_argument("output buffer " + std::to_string(j) + " ('" +
                              graph_->values[static_cast<size_t>(graph_->outputs[j])].name + "') must be a " +
                              std::string(dtype_name(dtype)) + dims_to_string(dims) + " tensor on cuda:" +
                              std::to_string(options_.device));
  }
  return Status();
}

Status GraphExecutor::check_flag(int* flag, cudaStream_t stream) const {
  if (!target_->uses_error_flag())
    return cuda_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize (end of run)");
  int failed = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(&failed, flag, sizeof(int), cudaMemcpyDeviceToHost, stream),
                            "cudaMemcpyAsync (error flag)");
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream), "cudaStreamSynchronize (end of run)");
  if (failed > 0 && static_cast<size_t>(failed) <= graph_->nodes.size())
    return invalid_argument(cpu::node_context(graph_->nodes[static_cast<size_t>(failed - 1)]) +
                            ": an index is out of range (checked on the GPU)");
  return Status();
}

Result<GraphExecutor::Captured> GraphExecutor::capture(std::span<const Tensor> inputs,
                                                       std::span<const Tensor> output_buffers) {
  Captured c;
  c.slot = std::make_shared<CaptureSlot>();
  {
    RelaxedCaptureMode relaxed;  // the caller's stream may be capturing
    KILN_ASSIGN_OR_RETURN(c.slot->stream, Stream::create(options_.device, cudaStreamNonBlocking));
    c.slot->gemm = target_->make_gemm(c.slot->stream);
    KILN_RETURN_IF_ERROR(c.slot->gemm->init());
    // The workspace was allocated in this stream's order; the graph will run on other streams.
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(c.slot->stream->get()), "cudaStreamSynchronize (gemm init)");
  }
  c.slot->arena = std::make_unique<Arena>(pool_, side_, options_.device);
  KILN_ASSIGN_OR_RETURN(Tensor flag, c.slot->arena->alloc(DType::kI32, {1}, true));
  c.slot->flag = static_cast<int*>(flag.data());
  Recorder rec(*c.slot, bindings_of(inputs, output_buffers));
  WalkEnv env;
  env.stream = c.slot->stream;
  env.gemm = c.slot->gemm.get();
  env.error_flag = c.slot->flag;
  env.hooks = &rec;
  env.output_buffers = output_buffers;
  env.device_outputs = true;
  const cudaStream_t s = c.slot->stream->get();
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  WalkFacts wf;
  Status st = target_->walk(env, inputs, &c.outputs, &wf);
  cudaGraph_t g = nullptr;
  cudaError_t err = cudaStreamEndCapture(s, &g);
  if (st.ok() && err != cudaSuccess) st = cuda_status(err, "cudaStreamEndCapture");
  if (st.ok() && !g) st = internal_error("cudaStreamEndCapture gave no graph");
  if (st.ok()) {
    c.slot->arena->freeze();
    RelaxedCaptureMode relaxed;
    st = cuda_status(cudaStreamSynchronize(side_->get()), "cudaStreamSynchronize (graph arena)");
  }
  if (!st.ok()) {
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();
    return st;
  }
  rec.finish(g);
  if (no_rebind_.load()) rec.pin_all();
  c.graph = g;
  c.records = std::move(rec.records);
  c.kernel_nodes = std::move(rec.kernel_nodes);
  c.pinned = rec.pinned();
  c.unanalysed = rec.unanalysed();
  c.copies = wf.output_copies;
  if (c.unanalysed) {
    unanalysed_.fetch_add(1, std::memory_order_relaxed);
    log_once(LogLevel::kInfo, "cuda-graph-unanalysed:" + options_.engine_name,
             "engine '" + options_.engine_name + "': a CUDA graph capture could not be analysed for buffer "
             "rebinding (" + rec.unanalysed_reason() + "); its I/O buffers are pinned: one graph per buffer set");
  }
  for (bool p : c.pinned) pinned_.fetch_add(p ? 1 : 0, std::memory_order_relaxed);
  return c;
}

Status GraphExecutor::update(GraphEntry& e, std::span<const Tensor> inputs, std::span<const Tensor> output_buffers) {
  std::lock_guard<std::mutex> lock(e.mu);
  KILN_ASSIGN_OR_RETURN(Captured c, capture(inputs, output_buffers));
  Status s;
  if (c.kernel_nodes.size() != e.kernel_nodes.size()) {
    s = unsupported("the re-captured graph has another shape");
  } else {
    cudaGraphExecUpdateResultInfo info{};
    cudaError_t err = cudaGraphExecUpdate(e.exec, c.graph, &info);
    if (err != cudaSuccess) s = cuda_status(err, "cudaGraphExecUpdate");
  }
  cudaGraphDestroy(c.graph);
  if (!s.ok()) return s;
  // The executable now runs the new capture's work: the old slot may go after its last launch.
  if (e.done) cudaEventSynchronize(e.done);
  e.slot = c.slot;
  e.pinned = c.pinned;
  // Node handles stay those of the graph `exec` was instantiated from (same launch order).
  for (LaunchRecord& r : c.records) {
    r.node = e.kernel_nodes[r.index];
    if (!r.node) e.pinned.assign(e.pinned.size(), true);
  }
  e.records = std::move(c.records);
  e.bindings = bindings_of(inputs, output_buffers);
  e.copies = c.copies;
  updates_.fetch_add(1, std::memory_order_relaxed);
  return Status();
}

Result<std::shared_ptr<GraphEntry>> GraphExecutor::entry_for(const std::vector<int64_t>& sig,
                                                             std::span<const Tensor> inputs,
                                                             std::span<const Tensor> output_buffers) {
  const std::vector<Binding> binds = bindings_of(inputs, output_buffers);
  auto find = [&](size_t* same, std::shared_ptr<GraphEntry>* oldest) -> std::shared_ptr<GraphEntry> {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = graphs_.begin(); it != graphs_.end(); ++it) {
      GraphEntry& e = **it;
      if (e.sig != sig) continue;
      ++*same;
      *oldest = *it;
      bool match = e.bindings.size() == binds.size();
      for (size_t b = 0; match && b < binds.size(); ++b)
        if (e.pinned[b] && !(e.bindings[b] == binds[b])) match = false;
      if (!match) continue;
      std::shared_ptr<GraphEntry> hit = *it;
      graphs_.splice(graphs_.begin(), graphs_, it);
      return hit;
    }
    return nullptr;
  };
  size_t same = 0;
  std::shared_ptr<GraphEntry> oldest;
  if (auto hit = find(&same, &oldest)) return hit;
  std::lock_guard<std::mutex> capture_lock(capture_mu_);
  same = 0;
  oldest.reset();
  if (auto hit = find(&same, &oldest)) return hit;  // another thread captured it meanwhile
  if (same >= options_.sets_per_signature && oldest) {
    Status s = update(*oldest, inputs, output_buffers);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = graphs_.begin(); it != graphs_.end(); ++it)
        if (*it == oldest) {
          graphs_.splice(graphs_.begin(), graphs_, it);
          break;
        }
      return oldest;
    }
    log_once(LogLevel::kInfo, "cuda-graph-update:" + options_.engine_name,
             "engine '" + options_.engine_name + "': cudaGraphExecUpdate was refused (" + s.to_string() +
                 "); capturing a new graph instead");
  }
  KILN_ASSIGN_OR_RETURN(Captured c, capture(inputs, output_buffers));
  auto e = std::make_shared<GraphEntry>();
  e->sig = sig;
  e->slot = std::move(c.slot);
  e->graph = c.graph;
  e->records = std::move(c.records);
  e->kernel_nodes = std::move(c.kernel_nodes);
  e->pinned = std::move(c.pinned);
  e->bindings = binds;
  e->copies = c.copies;
  KILN_CUDA_RETURN_IF_ERROR(cudaGraphInstantiate(&e->exec, e->graph, 0), "cudaGraphInstantiate");
  KILN_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e->done, cudaEventDisableTiming), "cudaEventCreate");
  captured_.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::shared_ptr<GraphEntry>> evicted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    graphs_.push_front(e);
    while (graphs_.size() > std::max<size_t>(options_.max_graphs, 1)) {
      evicted.push_back(std::move(graphs_.back()));
      graphs_.pop_back();
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  evicted.clear();  // outside the lock: waits for their last launches
  return e;
}

Status GraphExecutor::replay(GraphEntry& e, std::span<const Tensor> inputs, std::span<const Tensor> output_buffers,
                             cudaStream_t stream, bool sync, bool* rebind_refused) {
  std::lock_guard<std::mutex> lock(e.mu);
  const std::vector<Binding> binds = bindings_of(inputs, output_buffers);
  std::vector<bool> changed(binds.size(), false);
  bool any = false;
  for (size_t b = 0; b < binds.size(); ++b) any |= changed[b] = !(binds[b] == e.bindings[b]);
  if (any) {
    std::vector<void*> params;
    for (LaunchRecord& r : e.records) {
      bool touched = false;
      for (const LaunchRecord::Patch& p : r.patches) {
        if (!changed[p.binding]) continue;
        const uintptr_t v = binds[p.binding].base + p.delta;
        std::memcpy(r.bytes.data() + p.at, &v, sizeof v);
        touched = true;
      }
      if (!touched) continue;
      params.clear();
      for (size_t off : r.offsets) params.push_back(r.bytes.data() + off);
      cudaKernelNodeParams kp = r.base;
      kp.kernelParams = params.data();
      kp.extra = nullptr;
      const cudaError_t err = cudaGraphExecKernelNodeSetParams(e.exec, r.node, &kp);
      if (err != cudaSuccess) {
        cudaGetLastError();
        *rebind_refused = true;
        return cuda_status(err, "cudaGraphExecKernelNodeSetParams (rebinding an I/O buffer)");
      }
      rebinds_.fetch_add(1, std::memory_order_relaxed);
    }
    e.bindings = binds;
  }
  KILN_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(e.exec, stream), "cudaGraphLaunch");
  KILN_CUDA_RETURN_IF_ERROR(cudaEventRecord(e.done, stream), "cudaEventRecord (graph launched)");
  replays_.fetch_add(1, std::memory_order_relaxed);
  copies_.fetch_add(e.copies, std::memory_order_relaxed);
  return sync ? check_flag(e.slot->flag, stream) : Status();
}

Status GraphExecutor::plain(const std::shared_ptr<Stream>& stream, GemmRunner* gemm, int* flag,
                            std::span<const Tensor> inputs, std::span<const Tensor> output_buffers, bool sync,
                            std::vector<Tensor>* outputs) {
  WalkEnv env;
  env.stream = stream;
  env.gemm = gemm;
  env.error_flag = flag;
  env.output_buffers = output_buffers;
  env.device_outputs = true;
  WalkFacts wf;
  KILN_RETURN_IF_ERROR(target_->walk(env, inputs, outputs, &wf));
  store_facts(signature(inputs), wf);
  return sync ? check_flag(flag, stream->get()) : Status();
}

Status GraphExecutor::run(const std::shared_ptr<Stream>& stream, GemmRunner* gemm, int* flag,
                          std::span<const Tensor> inputs, std::span<const Tensor> output_buffers, bool sync,
                          std::vector<Tensor>* outputs) {
  bool device_io = !output_buffers.empty();
  std::vector<Tensor> dev_in(inputs.begin(), inputs.end());
  for (Tensor& t : dev_in) {
    if (on_device(t)) {
      device_io = true;
    } else {
      KILN_ASSIGN_OR_RETURN(t, copy_to_device(t, *pool_, stream));
    }
  }
  const std::vector<int64_t> sig = signature(dev_in);
  Facts facts;
  if (find_facts(sig, &facts) && facts.capturable && target_->kernels_final(dev_in)) {
    KILN_RETURN_IF_ERROR(check_output_buffers(output_buffers, facts));
    std::vector<Tensor> bufs(output_buffers.begin(), output_buffers.end());
    if (bufs.empty())
      for (const auto& [dtype, dims] : facts.outputs) {
        KILN_ASSIGN_OR_RETURN(Tensor t, pool_->alloc(dtype, dims, stream));
        bufs.push_back(std::move(t));
      }
    Result<std::shared_ptr<GraphEntry>> e = entry_for(sig, dev_in, bufs);
    bool refused = false;
    Status s = e.ok() ? replay(**e, dev_in, bufs, stream->get(), sync, &refused) : Status();
    if (refused) {
      // Rebinding does not work here: drop the half-rebound graph, pin every buffer from now on
      // (one graph per buffer set, cudaGraphExecUpdate past sets_per_signature) and try again.
      log_once(LogLevel::kWarning, "cuda-graph-rebind-refused:" + options_.engine_name,
               "engine '" + options_.engine_name + "': " + s.to_string() +
                   "; graphs of this engine are re-captured per buffer set instead");
      no_rebind_.store(true);
      {
        std::lock_guard<std::mutex> lock(mu_);
        graphs_.clear();
      }
      e = entry_for(sig, dev_in, bufs);
      refused = false;
      if (e.ok()) s = replay(**e, dev_in, bufs, stream->get(), sync, &refused);
    }
    if (e.ok()) {
      if (!s.ok() && s.code() != StatusCode::kInvalidArgument) {  // a broken graph: never use it again
        std::lock_guard<std::mutex> lock(mu_);
        graphs_.remove(*e);
      }
      KILN_RETURN_IF_ERROR(s);
      outputs->clear();
      for (Tensor& t : bufs) {
        if (device_io) {
          outputs->push_back(std::move(t));
        } else {
          KILN_ASSIGN_OR_RETURN(Tensor h, copy_to_host(t, stream->get()));
          outputs->push_back(std::move(h));
        }
      }
      return Status();
    }
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    log_once(LogLevel::kWarning, "cuda-graph-fallback:" + options_.engine_name,
             "engine '" + options_.engine_name + "': CUDA graph capture failed (" + e.status().to_string() +
                 "); calls with these input shapes run as plain launches");
    std::lock_guard<std::mutex> lock(facts_mu_);
    Facts& f = facts_[sig];
    f.capturable = false;
    f.reason = "failed to capture (" + e.status().to_string() + ")";
  }
  KILN_RETURN_IF_ERROR(plain(stream, gemm, flag, dev_in, output_buffers, sync, outputs));
  if (!device_io)
    for (Tensor& t : *outputs) {
      KILN_ASSIGN_OR_RETURN(t, copy_to_host(t, stream->get()));
    }
  return Status();
}

Status GraphExecutor::run_in_capture(cudaStream_t caller, std::span<const Tensor> inputs,
                                     std::span<const Tensor> output_buffers, std::vector<Tensor>* outputs) {
  const std::string prefix = "engine '" + options_.engine_name + "' cannot be added to the CUDA graph being "
                             "captured on the caller's stream: ";
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!on_device(inputs[i]))
      return invalid_argument(prefix + "input " + std::to_string(i) + " is a host tensor (pass device tensors)");
  std::string reason;
  std::vector<Dims> shapes;
  for (const Tensor& t : inputs) shapes.push_back(t.dims());
  if (!capturable(shapes, &reason)) return invalid_argument(prefix + reason);
  Facts facts;
  find_facts(signature(inputs), &facts);
  KILN_RETURN_IF_ERROR(check_output_buffers(output_buffers, facts));
  Captured c;
  {
    std::lock_guard<std::mutex> lock(capture_mu_);
    Result<Captured> r = capture(inputs, output_buffers);
    if (!r.ok()) return r.status().with_context(prefix.substr(0, prefix.size() - 2));
    c = std::move(r).value();
  }
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaGraph_t caller_graph = nullptr;
  const cudaGraphNode_t* deps = nullptr;
  size_t ndeps = 0;
  Status s = cuda_status(cudaStreamGetCaptureInfo(caller, &status, nullptr, &caller_graph, &deps, nullptr, &ndeps),
                         "cudaStreamGetCaptureInfo");
  if (s.ok() && status != cudaStreamCaptureStatusActive)
    s = invalid_argument(prefix + "the caller's capture is no longer active");
  // Ownership first: once the caller's graph holds the slot, adding the node cannot leak it.
  if (s.ok()) {
    auto* holder = new std::shared_ptr<CaptureSlot>(c.slot);
    cudaUserObject_t obj = nullptr;
    s = cuda_status(cudaUserObjectCreate(&obj, holder, bury, 1, cudaUserObjectNoDestructorSync),
                    "cudaUserObjectCreate");
    if (!s.ok()) {
      delete holder;
    } else {
      s = cuda_status(cudaGraphRetainUserObject(caller_graph, obj, 1, cudaGraphUserObjectMove),
                      "cudaGraphRetainUserObject");
      if (!s.ok()) cudaUserObjectRelease(obj, 1);
    }
  }
  cudaGraphNode_t node = nullptr;
  if (s.ok())
    s = cuda_status(cudaGraphAddChildGraphNode(&node, caller_graph, deps, ndeps, c.graph),
                    "cudaGraphAddChildGraphNode");
  if (s.ok()) {
    s = cuda_status(cudaStreamUpdateCaptureDependencies(caller, &node, nullptr, 1, cudaStreamSetCaptureDependencies),
                    "cudaStreamUpdateCaptureDependencies");
    if (!s.ok()) cudaGraphDestroyNode(node);
  }
  cudaGraphDestroy(c.graph);
  if (!s.ok()) return s;
  outputs->clear();
  if (!output_buffers.empty()) {
    outputs->assign(output_buffers.begin(), output_buffers.end());
  } else {
    for (const Tensor& t : c.outputs)  // static outputs: they keep the capture's memory alive
      outputs->push_back(Tensor::wrap(t.dtype(), t.dims(), t.data(), std::shared_ptr<void>(c.slot, t.data()),
                                      t.device()));
  }
  caller_captures_.fetch_add(1, std::memory_order_relaxed);
  return Status();
}

bool GraphExecutor::capturable(std::span<const Dims> shapes, std::string* reason) {
  auto fail = [&](std::string why) {
    if (reason) *reason = std::move(why);
    return false;
  };
  if (!options_.static_shapes && options_.settings.kernel_specialization == KernelSpecializationStrategy::kLazy)
    return fail("dynamic_shapes_kernel_specialization_strategy is lazy and the engine has dynamic inputs, so "
                "specialised kernels may still be swapped in; set it to eager or none, or build the engine with "
                "static shapes");
  if (shapes.size() != graph_->inputs.size())
    return fail("the engine takes " + std::to_string(graph_->inputs.size()) + " inputs, got " +
                std::to_string(shapes.size()) + " shapes");
  const std::vector<int64_t> sig = signature(shapes);
  Facts facts;
  if (!find_facts(sig, &facts)) {
    // Find out by running once on zero-filled inputs, on kiln's own stream.
    RelaxedCaptureMode relaxed;
    Result<std::shared_ptr<Stream>> stream = Stream::create(options_.device, cudaStreamNonBlocking);
    if (!stream.ok()) return fail(stream.status().to_string());
    std::vector<Tensor> zeros;
    for (size_t i = 0; i < shapes.size(); ++i) {
      Result<Tensor> t = pool_->alloc(graph_->values[static_cast<size_t>(graph_->inputs[i])].dtype, shapes[i], *stream);
      if (!t.ok()) return fail(t.status().to_string());
      if (t->nbytes() > 0) cudaMemsetAsync(t->data(), 0, t->nbytes(), (*stream)->get());
      zeros.push_back(*t);
    }
    Status s = cuda_status(cudaStreamSynchronize((*stream)->get()), "cudaStreamSynchronize (probe inputs)");
    WalkFacts wf;
    if (s.ok()) s = target_->probe(zeros, &wf);
    if (!s.ok()) return fail("running it on zero-filled inputs failed: " + s.to_string());
    store_facts(sig, wf);
    if (!find_facts(sig, &facts)) return fail("internal: no facts stored");
  }
  if (!facts.capturable)
    return fail("for input shapes " + [&] {
      std::string t;
      for (const Dims& d : shapes) t += (t.empty() ? "" : ", ") + dims_to_string(d);
      return t;
    }() + " it " + facts.reason + "; such calls can only run outside a capture (cuda_graph_strategy has no effect)");
  if (reason) reason->clear();
  return true;
}

void GraphExecutor::add_counters(std::map<std::string, uint64_t>& out) const {
  out["graphs_captured"] += captured_.load(std::memory_order_relaxed);
  out["graph_replays"] += replays_.load(std::memory_order_relaxed);
  out["graph_rebinds"] += rebinds_.load(std::memory_order_relaxed);
  out["graph_updates"] += updates_.load(std::memory_order_relaxed);
  out["graph_copies"] += copies_.load(std::memory_order_relaxed);
  out["graph_fallbacks"] += fallbacks_.load(std::memory_order_relaxed);
  out["graph_evictions"] += evictions_.load(std::memory_order_relaxed);
  out["caller_captures"] += caller_captures_.load(std::memory_order_relaxed);
  out["graph_pinned_buffers"] += pinned_.load(std::memory_order_relaxed);
  out["graph_unanalysed"] += unanalysed_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  out["graphs_live"] += graphs_.size();
}

}  // namespace kiln::cuda
