// Resolution of runtime settings: process defaults, per-thread scopes, per-call layering.
//
// Layers 4-6 (defaults, environment, built-ins) change rarely, so they are pre-resolved into an
// immutable Snapshot published under a mutex with a version counter. Each thread keeps a
// reference to the snapshot it last saw plus its version: the common path is one acquire load
// and a compare, and the mutex is taken only by writers and by a thread's first resolution after
// a change. Holding a reference per thread (rather than taking one per call) keeps resolution
// free of shared reference-count traffic between threads.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "runtime/settings_internal.h"

namespace kiln {
namespace {

struct Snapshot {
  RuntimeSettings defaults;  // layer 4 as set
  ResolvedSettings base;     // layers 4-6 resolved
};

struct GlobalState {
  std::mutex mu;
  internal::EnvironmentSnapshot env;         // guarded by mu
  std::shared_ptr<const Snapshot> snapshot;  // guarded by mu
  std::atomic<uint64_t> version{0};          // bumped under mu after each new snapshot
  std::atomic<int> env_reads{0};

  GlobalState() {
    std::lock_guard<std::mutex> lock(mu);
    read_environment_locked();
    publish_locked(RuntimeSettings{});
  }

  void read_environment_locked() {
    env = internal::read_runtime_environment();
    env_reads.fetch_add(1, std::memory_order_relaxed);
  }

  void publish_locked(RuntimeSettings defaults) {
    ResolvedSettings base = internal::resolve_base_settings(defaults, env);
    snapshot = std::make_shared<const Snapshot>(Snapshot{std::move(defaults), std::move(base)});
    version.fetch_add(1, std::memory_order_release);
  }
};

// Built (and the environment read) at first use; never destroyed, so that threads still running
// during static destruction can resolve.
GlobalState& global() {
  static GlobalState* state = new GlobalState();
  return *state;
}

struct ThreadState {
  const ScopedRuntimeSettings* innermost = nullptr;
  uint64_t version = 0;  // of `snapshot`; 0 before the first resolution
  std::shared_ptr<const Snapshot> snapshot;
};

thread_local ThreadState t_state;

[[gnu::noinline]] void refresh_snapshot(ThreadState& ts, GlobalState& g) {
  std::lock_guard<std::mutex> lock(g.mu);
  ts.snapshot = g.snapshot;
  ts.version = g.version.load(std::memory_order_relaxed);
}

// The snapshot this thread resolves against; valid until this thread's next call here.
const Snapshot& thread_snapshot(ThreadState& ts) {
  GlobalState& g = global();
  if (g.version.load(std::memory_order_acquire) != ts.version) [[unlikely]] {
    refresh_snapshot(ts, g);
  }
  return *ts.snapshot;
}

template <typename T>
void overlay(const std::optional<T>& layer, SettingSource source, T& value, SettingSource& from) {
  if (layer) {
    value = *layer;
    from = source;
  }
}

}  // namespace

ResolvedSettings resolve_runtime_settings(const RuntimeSettings* call,
                                          const RuntimeSettings* engine) {
  ThreadState& ts = t_state;
  const ResolvedSettings& base = thread_snapshot(ts).base;
  const RuntimeSettings* scope = ts.innermost != nullptr ? &ts.innermost->effective() : nullptr;

  // Lowest layer first, so each higher one overwrites.
  const RuntimeSettings* layers[] = {scope, engine, call};
  constexpr SettingSource kSources[] = {SettingSource::kScope, SettingSource::kEngine,
                                        SettingSource::kCall};
  ResolvedSettings r;
  r.cuda_graph_strategy = base.cuda_graph_strategy;
  r.kernel_specialization = base.kernel_specialization;
  r.multi_device_safe_mode = base.multi_device_safe_mode;
  r.sources = base.sources;
  const RuntimeCacheSetting* cache = &base.runtime_cache;
  for (int i = 0; i < 3; ++i) {
    const RuntimeSettings* layer = layers[i];
    if (layer == nullptr) continue;
    overlay(layer->cuda_graph_strategy, kSources[i], r.cuda_graph_strategy,
            r.sources.cuda_graph_strategy);
    overlay(layer->kernel_specialization, kSources[i], r.kernel_specialization,
            r.sources.kernel_specialization);
    overlay(layer->multi_device_safe_mode, kSources[i], r.multi_device_safe_mode,
            r.sources.multi_device_safe_mode);
    if (layer->runtime_cache.is_set()) {
      cache = &layer->runtime_cache;
      r.sources.runtime_cache = kSources[i];
    }
  }
  // Copied once, from the winning layer: no reference-count traffic unless a handle wins.
  r.runtime_cache = *cache;
  return r;
}

ResolvedSettings current_runtime_settings() { return resolve_runtime_settings(nullptr, nullptr); }

void set_default_runtime_settings(RuntimeSettings defaults) {
  GlobalState& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  g.publish_locked(std::move(defaults));
}

void update_default_runtime_settings(const RuntimeSettings& overrides) {
  GlobalState& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  RuntimeSettings merged = g.snapshot->defaults;
  merged.merge(overrides);
  g.publish_locked(std::move(merged));
}

RuntimeSettings default_runtime_settings() { return thread_snapshot(t_state).defaults; }

ScopedRuntimeSettings::ScopedRuntimeSettings(const RuntimeSettings& overrides) noexcept
    : enclosing_(t_state.innermost),
      effective_(enclosing_ != nullptr ? enclosing_->effective_ : RuntimeSettings{}) {
  effective_.merge(overrides);
  t_state.innermost = this;
}

ScopedRuntimeSettings::~ScopedRuntimeSettings() {
  ThreadState& ts = t_state;
  if (ts.innermost != this) {
    // Popping anything but the innermost scope would corrupt this thread's stack (or another
    // thread's); there is no Status to return from a destructor.
    std::fprintf(stderr,
                 "kiln: ScopedRuntimeSettings destroyed out of order or on another thread; scopes "
                 "must be local variables, destroyed innermost first on the thread that made "
                 "them\n");
    std::abort();
  }
  ts.innermost = enclosing_;
}

namespace internal {

void reload_runtime_environment_for_testing() {
  GlobalState& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  g.read_environment_locked();
  g.publish_locked(g.snapshot->defaults);
}

int runtime_environment_read_count() { return global().env_reads.load(std::memory_order_relaxed); }

}  // namespace internal
}  // namespace kiln
