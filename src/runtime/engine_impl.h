// Engine internals shared by the runtime's translation units.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "backends/backend.h"
#include "format/engine_model.h"
#include "kiln/engine.h"

namespace kiln {

// What an execution context is keyed by: the backend, the device and the execution-relevant
// fields of the resolved runtime settings.
struct ContextKey {
  std::string backend;
  int device = 0;
  RuntimeSettingsKey settings;
  bool operator==(const ContextKey&) const = default;
};

// One execution context: a backend program prepared for one ContextKey. Shared by every call
// with that key; in-flight calls keep it alive past eviction.
struct ExecutionContext {
  ContextKey key;
  ResolvedSettings settings;  // holds the runtime-cache handle the key refers to
  std::string key_text;
  std::unique_ptr<BackendProgram> program;
  mutable std::atomic<uint64_t> calls{0};
};

struct Engine::Impl {
  static constexpr size_t kMaxContexts = 8;

  static Result<std::shared_ptr<Engine>> create(format::EngineModel model);
  Result<std::shared_ptr<const ExecutionContext>> context_for(const RunOptions& options,
                                                              const ResolvedSettings& settings);

  std::shared_ptr<const format::EngineModel> model;
  std::shared_ptr<const ir::Graph> graph;  // aliases model->graph
  EngineInfo info;
  std::vector<BindingInfo> inputs, outputs;

  std::atomic<std::shared_ptr<const RuntimeSettings>> overrides;  // null: none

  std::mutex mu;  // guards contexts and stats
  std::list<std::shared_ptr<ExecutionContext>> contexts;  // most recently used first
  EngineStats stats;
};

}  // namespace kiln
