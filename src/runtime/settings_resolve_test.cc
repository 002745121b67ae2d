// Resolution order, sources, scopes and threads.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kiln/runtime.h"
#include "runtime/settings_test_util.h"

namespace kiln {
namespace {

using testing_util::RuntimeSettingsTest;
using RuntimeResolveTest = RuntimeSettingsTest;
using RuntimeScopeTest = RuntimeSettingsTest;
using RuntimeThreadTest = RuntimeSettingsTest;

RuntimeSettings cache_only(const char* path) {
  RuntimeSettings s;
  s.runtime_cache = RuntimeCacheSetting::path(path);
  return s;
}

RuntimeSettings full(CudaGraphStrategy g, KernelSpecializationStrategy k, const char* path,
                     bool multi) {
  RuntimeSettings s;
  s.cuda_graph_strategy = g;
  s.kernel_specialization = k;
  s.runtime_cache = RuntimeCacheSetting::path(path);
  s.multi_device_safe_mode = multi;
  return s;
}

TEST_F(RuntimeResolveTest, NothingSetGivesTheBuiltinDefaults) {
  ResolvedSettings r = current_runtime_settings();
  EXPECT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kDisabled);
  EXPECT_EQ(r.kernel_specialization, KernelSpecializationStrategy::kLazy);
  EXPECT_EQ(r.runtime_cache.kind(), RuntimeCacheSetting::Kind::kPath);
  EXPECT_EQ(r.runtime_cache.path(), kBuiltinCache);
  EXPECT_FALSE(r.multi_device_safe_mode);
  EXPECT_EQ(r.sources, ResolvedSettings::Sources{});
  EXPECT_EQ(r.sources.cuda_graph_strategy, SettingSource::kBuiltin);
  EXPECT_EQ(r, resolve_runtime_settings(nullptr, nullptr));
}

// Each layer names its own cache path, so the winner is visible in the value and the source.
TEST_F(RuntimeResolveTest, CallBeatsEngineBeatsScopeBeatsDefaultBeatsEnvironmentBeatsBuiltin) {
  set_env(kRuntimeCacheEnv, "/env");
  reload();
  set_default_runtime_settings(cache_only("/default"));
  ScopedRuntimeSettings scope(cache_only("/scope"));
  RuntimeSettings engine = cache_only("/engine");
  RuntimeSettings call = cache_only("/call");

  struct Case {
    const RuntimeSettings* call;
    const RuntimeSettings* engine;
    const char* path;
    SettingSource source;
  };
  for (const Case& c : {Case{&call, &engine, "/call", SettingSource::kCall},
                        Case{nullptr, &engine, "/engine", SettingSource::kEngine},
                        Case{&call, nullptr, "/call", SettingSource::kCall},
                        Case{nullptr, nullptr, "/scope", SettingSource::kScope}}) {
    ResolvedSettings r = resolve_runtime_settings(c.call, c.engine);
    EXPECT_EQ(r.runtime_cache.path(), c.path);
    EXPECT_EQ(r.sources.runtime_cache, c.source);
  }
  // An empty layer defers everything.
  RuntimeSettings empty;
  EXPECT_EQ(resolve_runtime_settings(&empty, &empty).sources.runtime_cache, SettingSource::kScope);
}

TEST_F(RuntimeResolveTest, LowerLayersShowWhenHigherOnesAreUnset) {
  set_env(kRuntimeCacheEnv, "/env");
  reload();
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/env");
  EXPECT_EQ(current_runtime_settings().sources.runtime_cache, SettingSource::kEnvironment);
  set_default_runtime_settings(cache_only("/default"));
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/default");
  EXPECT_EQ(current_runtime_settings().sources.runtime_cache, SettingSource::kProcessDefault);
  set_default_runtime_settings(RuntimeSettings{});
  unsetenv(kRuntimeCacheEnv);
  reload();
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), kBuiltinCache);
  EXPECT_EQ(current_runtime_settings().sources.runtime_cache, SettingSource::kBuiltin);
}

// Partial layers compose field by field, each with its own source.
TEST_F(RuntimeResolveTest, EachFieldResolvesOnItsOwn) {
  set_env(kMultiDeviceSafeModeEnv, "true");
  reload();
  RuntimeSettings defaults;
  defaults.runtime_cache = RuntimeCacheSetting::none();
  set_default_runtime_settings(defaults);
  RuntimeSettings scoped;
  scoped.kernel_specialization = KernelSpecializationStrategy::kEager;
  ScopedRuntimeSettings scope(scoped);
  RuntimeSettings engine;
  engine.kernel_specialization = KernelSpecializationStrategy::kNone;
  RuntimeSettings call;
  call.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;

  ResolvedSettings r = resolve_runtime_settings(&call, &engine);
  EXPECT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
  EXPECT_EQ(r.sources.cuda_graph_strategy, SettingSource::kCall);
  EXPECT_EQ(r.kernel_specialization, KernelSpecializationStrategy::kNone);
  EXPECT_EQ(r.sources.kernel_specialization, SettingSource::kEngine);
  EXPECT_EQ(r.runtime_cache, RuntimeCacheSetting::none());
  EXPECT_EQ(r.sources.runtime_cache, SettingSource::kProcessDefault);
  EXPECT_TRUE(r.multi_device_safe_mode);
  EXPECT_EQ(r.sources.multi_device_safe_mode, SettingSource::kEnvironment);

  ResolvedSettings s = resolve_runtime_settings(nullptr, nullptr);
  EXPECT_EQ(s.cuda_graph_strategy, CudaGraphStrategy::kDisabled);
  EXPECT_EQ(s.sources.cuda_graph_strategy, SettingSource::kBuiltin);
  EXPECT_EQ(s.kernel_specialization, KernelSpecializationStrategy::kEager);
  EXPECT_EQ(s.sources.kernel_specialization, SettingSource::kScope);
}

TEST_F(RuntimeResolveTest, DefaultsUpdateMergesAndDefaultsReadBackAsSet) {
  EXPECT_TRUE(default_runtime_settings().empty());
  RuntimeSettings first;
  first.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
  set_default_runtime_settings(first);
  EXPECT_EQ(default_runtime_settings(), first);
  update_default_runtime_settings(cache_only("/upd"));
  RuntimeSettings expected = first;
  expected.runtime_cache = RuntimeCacheSetting::path("/upd");
  EXPECT_EQ(default_runtime_settings(), expected);
  EXPECT_EQ(current_runtime_settings().cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/upd");
}

TEST_F(RuntimeResolveTest, AResolvedSnapshotIgnoresLaterChanges) {
  set_default_runtime_settings(cache_only("/before"));
  ResolvedSettings in_flight = current_runtime_settings();
  set_default_runtime_settings(full(CudaGraphStrategy::kWholeGraphCapture,
                                    KernelSpecializationStrategy::kNone, "/after", true));
  EXPECT_EQ(in_flight.runtime_cache.path(), "/before");
  EXPECT_EQ(in_flight.cuda_graph_strategy, CudaGraphStrategy::kDisabled);
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/after");
}

TEST_F(RuntimeResolveTest, AResolvedHandleStaysAliveAfterItsLayerIsGone) {
  auto owner = std::make_shared<int>(7);
  std::weak_ptr<int> watch = owner;
  ResolvedSettings r;
  {
    RuntimeSettings engine;
    engine.runtime_cache = RuntimeCacheSetting::handle(
        std::shared_ptr<RuntimeCache>(owner, reinterpret_cast<RuntimeCache*>(owner.get())));
    owner.reset();
    r = resolve_runtime_settings(nullptr, &engine);
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(r.runtime_cache.kind(), RuntimeCacheSetting::Kind::kHandle);
  EXPECT_EQ(r.sources.runtime_cache, SettingSource::kEngine);
  r = ResolvedSettings{};
  EXPECT_TRUE(watch.expired());
}

TEST_F(RuntimeScopeTest, NestedScopesRestoreInOrder) {
  {
    ScopedRuntimeSettings outer(full(CudaGraphStrategy::kWholeGraphCapture,
                                     KernelSpecializationStrategy::kEager, "/outer", true));
    EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/outer");
    {
      RuntimeSettings inner_settings;
      inner_settings.kernel_specialization = KernelSpecializationStrategy::kNone;
      ScopedRuntimeSettings inner(inner_settings);
      ResolvedSettings r = current_runtime_settings();
      EXPECT_EQ(r.kernel_specialization, KernelSpecializationStrategy::kNone);
      // Unset in the inner scope: the outer scope still shows through.
      EXPECT_EQ(r.runtime_cache.path(), "/outer");
      EXPECT_EQ(r.sources.runtime_cache, SettingSource::kScope);
      EXPECT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
      {
        ScopedRuntimeSettings innermost(cache_only("/innermost"));
        EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/innermost");
        EXPECT_EQ(current_runtime_settings().kernel_specialization,
                  KernelSpecializationStrategy::kNone);
      }
      EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/outer");
    }
    ResolvedSettings r = current_runtime_settings();
    EXPECT_EQ(r.kernel_specialization, KernelSpecializationStrategy::kEager);
    EXPECT_EQ(r.runtime_cache.path(), "/outer");
  }
  ResolvedSettings r = current_runtime_settings();
  EXPECT_EQ(r.runtime_cache.path(), kBuiltinCache);
  EXPECT_EQ(r.sources, ResolvedSettings::Sources{});
}

TEST_F(RuntimeScopeTest, NestedScopesRestoreOnThrow) {
  ScopedRuntimeSettings base(cache_only("/base"));
  try {
    ScopedRuntimeSettings a(cache_only("/a"));
    try {
      ScopedRuntimeSettings b(cache_only("/b"));
      ScopedRuntimeSettings c(cache_only("/c"));
      EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/c");
      throw std::runtime_error("unwind");
    } catch (const std::runtime_error&) {
      EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/a");
      throw;
    }
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/base");
  EXPECT_EQ(current_runtime_settings().sources.runtime_cache, SettingSource::kScope);
}

TEST_F(RuntimeScopeTest, AScopeAboveTheDefaultsHidesTheirChanges) {
  ScopedRuntimeSettings scope(cache_only("/scope"));
  set_default_runtime_settings(cache_only("/default"));
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/scope");
}

TEST_F(RuntimeScopeTest, OutOfOrderDestructionAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto* outer = new ScopedRuntimeSettings(cache_only("/o"));
        auto* inner = new ScopedRuntimeSettings(cache_only("/i"));
        (void)inner;
        delete outer;
      },
      "destroyed out of order");
}

TEST_F(RuntimeThreadTest, AFreshThreadStartsFromTheProcessDefaults) {
  set_default_runtime_settings(cache_only("/default"));
  ScopedRuntimeSettings scope(full(CudaGraphStrategy::kWholeGraphCapture,
                                   KernelSpecializationStrategy::kNone, "/main-scope", true));
  ResolvedSettings seen;
  std::thread([&seen] { seen = current_runtime_settings(); }).join();
  EXPECT_EQ(seen.runtime_cache.path(), "/default");
  EXPECT_EQ(seen.sources.runtime_cache, SettingSource::kProcessDefault);
  EXPECT_EQ(seen.cuda_graph_strategy, CudaGraphStrategy::kDisabled);
  EXPECT_EQ(seen.sources.cuda_graph_strategy, SettingSource::kBuiltin);
  EXPECT_EQ(current_runtime_settings().runtime_cache.path(), "/main-scope");
}

// Two threads hold different scopes at once, while a third keeps replacing the process
// defaults: each scoped thread sees only its own scope, and a thread with no scope always sees
// one whole set of defaults, never a mix of two.
TEST_F(RuntimeThreadTest, ConcurrentScopesAreIsolatedPerThread) {
  constexpr int kIterations = 10000;
  const RuntimeSettings a = full(CudaGraphStrategy::kWholeGraphCapture,
                                 KernelSpecializationStrategy::kEager, "/thread-a", true);
  const RuntimeSettings b =
      full(CudaGraphStrategy::kDisabled, KernelSpecializationStrategy::kNone, "/thread-b", false);
  const RuntimeSettings d1 =
      full(CudaGraphStrategy::kWholeGraphCapture, KernelSpecializationStrategy::kNone, "/d1", true);
  const RuntimeSettings d2 =
      full(CudaGraphStrategy::kDisabled, KernelSpecializationStrategy::kEager, "/d2", false);
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};

  auto scoped_worker = [&](const RuntimeSettings& mine) {
    ScopedRuntimeSettings scope(mine);
    ready.fetch_add(1);
    while (ready.load() < 3) std::this_thread::yield();
    for (int i = 0; i < kIterations; ++i) {
      ResolvedSettings r = current_runtime_settings();
      if (r.cuda_graph_strategy != *mine.cuda_graph_strategy ||
          r.kernel_specialization != *mine.kernel_specialization ||
          r.runtime_cache != mine.runtime_cache ||
          r.multi_device_safe_mode != *mine.multi_device_safe_mode ||
          r.sources.runtime_cache != SettingSource::kScope) {
        failures.fetch_add(1);
      }
    }
  };
  auto unscoped_worker = [&] {
    ready.fetch_add(1);
    while (ready.load() < 3) std::this_thread::yield();
    for (int i = 0; i < kIterations; ++i) {
      ResolvedSettings r = current_runtime_settings();
      const RuntimeSettings& d = r.runtime_cache.path() == "/d1" ? d1 : d2;
      bool whole = r.cuda_graph_strategy == *d.cuda_graph_strategy &&
                   r.kernel_specialization == *d.kernel_specialization &&
                   r.runtime_cache == d.runtime_cache &&
                   r.multi_device_safe_mode == *d.multi_device_safe_mode &&
                   r.sources.cuda_graph_strategy == SettingSource::kProcessDefault;
      if (!whole) failures.fetch_add(1);
    }
  };

  set_default_runtime_settings(d1);
  std::thread ta(scoped_worker, std::cref(a));
  std::thread tb(scoped_worker, std::cref(b));
  std::thread tu(unscoped_worker);
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) set_default_runtime_settings(i % 2 ? d1 : d2);
  });
  ta.join();
  tb.join();
  tu.join();
  stop.store(true);
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  // The scopes died with their threads; this thread never saw them.
  EXPECT_NE(current_runtime_settings().sources.runtime_cache, SettingSource::kScope);
}

}  // namespace
}  // namespace kiln
