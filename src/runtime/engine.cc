#include "kiln/engine.h"

#include <list>
#include <mutex>

#include "core/logging.h"
#include "format/engine_file.h"
#include "runtime/backend_registry.h"
#include "runtime/engine_impl.h"

namespace kiln {

namespace {

BindingInfo to_binding_info(const format::Binding& b) {
  BindingInfo info;
  info.name = b.name;
  info.dtype = b.dtype;
  info.rank_known = b.shape.rank_known;
  for (const ir::Dim& d : b.shape.dims) info.dims.push_back(d.to_string());
  info.min = b.min;
  info.opt = b.opt;
  info.max = b.max;
  return info;
}

EngineInfo make_info(const format::EngineModel& m) {
  EngineInfo info;
  info.name = m.header.name;
  info.format_major = format::kFormatMajor;
  info.format_minor = format::kFormatMinor;
  info.kiln_version = m.header.kiln_version;
  info.target_platform = m.header.target_platform;
  info.min_compute_capability = m.header.min_compute_capability;
  info.hardware_compatibility = m.header.hardware_compatibility;
  info.precision = m.header.precision;
  info.allow_tf32 = m.header.allow_tf32;
  for (const ir::Node& n : m.graph.nodes) ++info.op_histogram[n.op];
  for (const Tensor& t : m.graph.constants) info.weight_bytes += t.defined() ? t.nbytes() : 0;
  info.node_count = m.graph.nodes.size();
  info.metadata = m.metadata;
  return info;
}

}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::shared_ptr<Engine>> Engine::Impl::create(format::EngineModel model) {
  auto impl = std::make_unique<Impl>();
  auto shared = std::make_shared<const format::EngineModel>(std::move(model));
  impl->model = shared;
  impl->graph = std::shared_ptr<const ir::Graph>(shared, &shared->graph);
  impl->info = make_info(*shared);
  for (const auto& b : shared->inputs) impl->inputs.push_back(to_binding_info(b));
  for (const auto& b : shared->outputs) impl->outputs.push_back(to_binding_info(b));
  if (shared->inputs.size() != shared->graph.inputs.size() ||
      shared->outputs.size() != shared->graph.outputs.size())
    return invalid_data("engine bindings do not match its graph's inputs and outputs");
  return std::shared_ptr<Engine>(new Engine(std::move(impl)));
}

Status prepare_backend(const std::string& backend, int device) {
  return backend_get(backend, device).status();
}

Result<std::shared_ptr<Engine>> Engine::load(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(format::EngineModel model, format::engine_load_file(path));
  Result<std::shared_ptr<Engine>> e = Impl::create(std::move(model));
  if (!e.ok()) return e.status().with_context(path);
  return e;
}

Result<std::shared_ptr<Engine>> Engine::load_from_memory(std::vector<uint8_t> bytes) {
  auto owner = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  KILN_ASSIGN_OR_RETURN(format::EngineModel model, format::engine_parse(*owner, owner));
  return Impl::create(std::move(model));
}

const EngineInfo& Engine::info() const { return impl_->info; }
const std::vector<BindingInfo>& Engine::inputs() const { return impl_->inputs; }
const std::vector<BindingInfo>& Engine::outputs() const { return impl_->outputs; }

Status Engine::check_inputs(std::span<const Tensor> inputs) const {
  const auto& bindings = impl_->inputs;
  if (inputs.size() != bindings.size())
    return invalid_argument("engine '" + impl_->info.name + "' takes " + std::to_string(bindings.size()) +
                            " inputs, got " + std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const BindingInfo& b = bindings[i];
    const Tensor& t = inputs[i];
    std::string where = "input '" + b.name + "'";
    if (!t.defined()) return invalid_argument(where + " is missing");
    if (t.dtype() != b.dtype)
      return invalid_argument(where + " has dtype " + std::string(dtype_name(t.dtype())) + "; the engine expects " +
                              std::string(dtype_name(b.dtype)));
    if (b.min.empty()) continue;  // rank unknown at build time: nothing more to check
    if (t.dims().size() != b.min.size())
      return invalid_argument(where + " has shape " + dims_to_string(t.dims()) + " (rank " +
                              std::to_string(t.rank()) + "); the engine expects rank " +
                              std::to_string(b.min.size()) + ", shapes " + dims_to_string(b.min) +
                              " to " + dims_to_string(b.max));
    for (size_t d = 0; d < b.min.size(); ++d) {
      if (t.dims()[d] < b.min[d] || t.dims()[d] > b.max[d])
        return invalid_argument(where + " has shape " + dims_to_string(t.dims()) + ", outside the engine's profile " +
                                dims_to_string(b.min) + " to " + dims_to_string(b.max) + " (dim " +
                                std::to_string(d) + " = " + std::to_string(t.dims()[d]) +
                                "); rebuild with kiln build --shape " + b.name + ":MIN:OPT:MAX");
    }
  }
  return Status();
}

ResolvedSettings Engine::resolve_settings(const RunOptions& options) const {
  if (options.engine_settings) return resolve_runtime_settings(options.settings, options.engine_settings);
  std::shared_ptr<const RuntimeSettings> overrides = impl_->overrides.load();
  return resolve_runtime_settings(options.settings, overrides.get());
}

void Engine::set_runtime_overrides(const RuntimeSettings& overrides) {
  impl_->overrides.store(std::make_shared<const RuntimeSettings>(overrides));
}

void Engine::clear_runtime_overrides() { impl_->overrides.store(nullptr); }

RuntimeSettings Engine::runtime_overrides() const {
  std::shared_ptr<const RuntimeSettings> o = impl_->overrides.load();
  return o ? *o : RuntimeSettings{};
}

Result<std::vector<Tensor>> Engine::run(std::span<const Tensor> inputs, const RunOptions& options) const {
  // One snapshot at entry: later changes on any thread never affect this call.
  const ResolvedSettings settings = resolve_settings(options);
  KILN_RETURN_IF_ERROR(check_inputs(inputs));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ExecutionContext> ctx, impl_->context_for(options, settings));
  std::vector<Tensor> outputs;
  RunRequest request;
  request.stream = options.stream;
  request.output_buffers = options.output_buffers;
  KILN_RETURN_IF_ERROR(ctx->program->run(inputs, &outputs, request));
  return outputs;
}

bool Engine::is_stream_capturable(const RunOptions& options, std::span<const Dims> shapes,
                                  std::string* reason) const {
  const ResolvedSettings settings = resolve_settings(options);
  std::string why;
  bool ok = false;
  if (shapes.size() != impl_->inputs.size()) {
    why = "engine '" + impl_->info.name + "' takes " + std::to_string(impl_->inputs.size()) + " inputs, got " +
          std::to_string(shapes.size()) + " shapes";
  } else {
    Result<std::shared_ptr<const ExecutionContext>> ctx = impl_->context_for(options, settings);
    if (!ctx.ok()) {
      why = ctx.status().to_string();
    } else {
      ok = (*ctx)->program->is_stream_capturable(shapes, &why);
    }
  }
  if (reason) *reason = ok ? std::string() : why;
  return ok;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  EngineStats s = impl_->stats;
  for (const auto& c : impl_->contexts) {
    s.calls_per_context[c->key_text] = c->calls.load();
    for (const auto& [name, value] : c->program->counters()) s.backend_counters[name] += value;
  }
  return s;
}

Result<std::shared_ptr<const ExecutionContext>> Engine::Impl::context_for(const RunOptions& options,
                                                                          const ResolvedSettings& settings) {
  ContextKey key{options.backend, options.device, settings.context_key()};
  {
    std::lock_guard<std::mutex> lock(mu);
    ++stats.calls;
    for (auto it = contexts.begin(); it != contexts.end(); ++it) {
      if ((*it)->key != key) continue;
      std::shared_ptr<ExecutionContext> ctx = *it;
      contexts.splice(contexts.begin(), contexts, it);
      ++stats.contexts_reused;
      ctx->calls.fetch_add(1, std::memory_order_relaxed);
      return std::shared_ptr<const ExecutionContext>(ctx);
    }
  }
  // Build outside the lock: preparing a program can take long (JIT) and other keys must not wait.
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Backend> backend, backend_get(options.backend, options.device));
  PrepareOptions prep;
  prep.precision = info.precision;
  prep.allow_tf32 = info.allow_tf32;
  prep.settings = settings;
  prep.engine_name = info.name;
  prep.static_shapes = true;
  for (const BindingInfo& b : inputs)
    if (b.min.empty() || b.min != b.max) prep.static_shapes = false;
  for (const BindingInfo& b : inputs) prep.opt_shapes.push_back(b.opt);
  for (const BindingInfo& b : inputs) prep.min_shapes.push_back(b.min);
  if (!backend->supports(Feature::kGraphCapture) &&
      (settings.cuda_graph_strategy != CudaGraphStrategy::kDisabled ||
       settings.kernel_specialization != KernelSpecializationStrategy::kLazy || settings.multi_device_safe_mode))
    log_once(LogLevel::kInfo, "gpu-settings-on-" + backend->name(),
             "the " + backend->name() + " backend accepts the GPU runtime settings (" + settings.to_string() +
                 ") but they have no effect on it");
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<BackendProgram> program, backend->prepare(graph, prep));
  auto ctx = std::make_shared<ExecutionContext>();
  ctx->key = key;
  ctx->settings = settings;
  ctx->key_text = options.backend + ":" + std::to_string(options.device) +
                  " cuda_graph_strategy=" + std::string(to_string(settings.cuda_graph_strategy)) +
                  " kernel_specialization=" + std::string(to_string(settings.kernel_specialization)) +
                  " runtime_cache=" + settings.runtime_cache.to_string() +
                  " multi_device_safe_mode=" + (settings.multi_device_safe_mode ? "true" : "false");
  ctx->program = std::move(program);
  ctx->calls.store(1);
  std::lock_guard<std::mutex> lock(mu);
  for (auto& existing : contexts) {
    if (existing->key == key) {  // another thread built it first: use theirs
      ++stats.contexts_reused;
      existing->calls.fetch_add(1, std::memory_order_relaxed);
      return std::shared_ptr<const ExecutionContext>(existing);
    }
  }
  contexts.push_front(ctx);
  ++stats.contexts_created;
  while (contexts.size() > kMaxContexts) {
    contexts.pop_back();
    ++stats.contexts_evicted;
  }
  return std::shared_ptr<const ExecutionContext>(ctx);
}

}  // namespace kiln
