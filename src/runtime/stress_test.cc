// Stress: many threads calling one engine while another thread keeps changing the process
// defaults and its own scopes. Every call must give the reference result, resolve its settings
// from the right layer, and the engine's counters must add up afterwards.
// Runs in CI plainly, under ASan+UBSan and under TSan (tools/test.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "kiln/runtime.h"

namespace kiln {
namespace {

const char* kExample = KILN_SOURCE_DIR "/examples/tiny_classifier/model.onnx";

constexpr int kThreads = 8;
constexpr int kCallsPerThread = 10000;

Tensor input(int64_t batch, float seed) {
  Tensor t = Tensor::zeros(DType::kF32, {batch, 16});
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = seed + 0.013f * float(i % 89);
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.dims() == b.dims() &&
         std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

RuntimeSettings graphs(CudaGraphStrategy s) {
  RuntimeSettings r;
  r.cuda_graph_strategy = s;
  return r;
}

RuntimeSettings specialization(KernelSpecializationStrategy s) {
  RuntimeSettings r;
  r.kernel_specialization = s;
  return r;
}

// Restores the process defaults the test changes.
class EngineStressTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = default_runtime_settings(); }
  void TearDown() override { set_default_runtime_settings(saved_); }

 private:
  RuntimeSettings saved_;
};

// 8 threads x 10,000 calls on one engine. Each worker mixes plain calls, per-call settings and
// scopes of its own; a ninth thread flips the process defaults (both GPU strategies, so contexts
// keyed by them are created and reused) and opens and closes scopes on itself. The runtime cache
// stays "none" so that the set of context keys is bounded (2 graph strategies x 3 specialisation
// strategies = 6 <= the engine's LRU of 8: nothing is evicted, so the counters are exact).
TEST_F(EngineStressTest, EightThreadsTenThousandCallsWhileDefaultsAndScopesFlip) {
  RuntimeSettings base;
  base.runtime_cache = RuntimeCacheSetting::none();
  set_default_runtime_settings(base);

  BuildOptions o;
  o.shapes.push_back(ShapeProfile{"x", {1, 16}, {4, 16}, {64, 16}});
  Result<std::vector<uint8_t>> bytes = build_engine(kExample, o);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  Result<std::shared_ptr<Engine>> loaded = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  std::shared_ptr<Engine> engine = *loaded;

  constexpr int kBatches = 5;
  const int64_t batch_sizes[kBatches] = {1, 2, 7, 16, 64};
  std::vector<std::vector<Tensor>> inputs;
  std::vector<Tensor> expected;
  for (int b = 0; b < kBatches; ++b) {
    inputs.push_back({input(batch_sizes[b], 0.2f * float(b) - 0.3f)});
    auto out = engine->run(inputs.back());
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    ASSERT_EQ(out->size(), 1u);
    expected.push_back((*out)[0]);
  }
  uint64_t calls = kBatches;

  std::atomic<int> wrong_result{0}, failed{0}, wrong_source{0};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> flips{0}, flipper_calls{0};

  std::thread flipper([&] {
    const CudaGraphStrategy g[] = {CudaGraphStrategy::kDisabled,
                                   CudaGraphStrategy::kWholeGraphCapture};
    const KernelSpecializationStrategy k[] = {KernelSpecializationStrategy::kLazy,
                                              KernelSpecializationStrategy::kEager,
                                              KernelSpecializationStrategy::kNone};
    for (uint64_t i = 0; !done.load(std::memory_order_relaxed); ++i) {
      RuntimeSettings d = base;
      d.cuda_graph_strategy = g[i % 2];
      d.kernel_specialization = k[(i / 2) % 3];
      set_default_runtime_settings(d);
      ++flips;
      ScopedRuntimeSettings outer(graphs(g[(i + 1) % 2]));
      ScopedRuntimeSettings inner(specialization(k[(i + 1) % 3]));
      ResolvedSettings r = current_runtime_settings();
      if (r.cuda_graph_strategy != g[(i + 1) % 2] || r.kernel_specialization != k[(i + 1) % 3] ||
          r.sources.cuda_graph_strategy != SettingSource::kScope)
        ++wrong_source;
      if (i % 16 == 0) {
        auto out = engine->run(inputs[i % kBatches]);
        ++flipper_calls;
        if (!out.ok()) {
          ++failed;
        } else if (!same((*out)[0], expected[i % kBatches])) {
          ++wrong_result;
        }
      }
      std::this_thread::yield();
    }
  });

  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      const RuntimeSettings call_eager = specialization(KernelSpecializationStrategy::kEager);
      const RuntimeSettings scope_graphs = graphs(CudaGraphStrategy::kWholeGraphCapture);
      for (int i = 0; i < kCallsPerThread; ++i) {
        const int b = (t + i) % kBatches;
        RunOptions opt;
        Result<std::vector<Tensor>> out = Status();
        switch (i % 4) {
          case 0:  // whatever the process defaults are right now
            out = engine->run(inputs[b], opt);
            break;
          case 1: {  // per-call settings win over everything
            opt.settings = &call_eager;
            ResolvedSettings r = engine->resolve_settings(opt);
            if (r.kernel_specialization != KernelSpecializationStrategy::kEager ||
                r.sources.kernel_specialization != SettingSource::kCall)
              ++wrong_source;
            out = engine->run(inputs[b], opt);
            break;
          }
          default: {  // a scope of this thread's own, invisible to every other thread
            ScopedRuntimeSettings scope(scope_graphs);
            ResolvedSettings r = engine->resolve_settings(opt);
            if (r.cuda_graph_strategy != CudaGraphStrategy::kWholeGraphCapture ||
                r.sources.cuda_graph_strategy != SettingSource::kScope)
              ++wrong_source;
            out = engine->run(inputs[b], opt);
            break;
          }
        }
        if (!out.ok()) {
          ++failed;
        } else if (out->size() != 1 || !same((*out)[0], expected[b])) {
          ++wrong_result;
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  done = true;
  flipper.join();
  calls += uint64_t{kThreads} * kCallsPerThread + flipper_calls.load();

  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong_result.load(), 0);
  EXPECT_EQ(wrong_source.load(), 0);
  EXPECT_GT(flips.load(), 0u);

  EngineStats s = engine->stats();
  EXPECT_EQ(s.calls, calls);
  EXPECT_EQ(s.contexts_created + s.contexts_reused, s.calls);
  EXPECT_EQ(s.contexts_evicted, 0u);
  EXPECT_GE(s.contexts_created, 2u);  // workers' per-call eager and scoped graphs keys differ
  EXPECT_LE(s.contexts_created, 6u);
  EXPECT_EQ(s.calls_per_context.size(), s.contexts_created);
  uint64_t per_context = 0;
  for (const auto& [key, n] : s.calls_per_context) per_context += n;
  EXPECT_EQ(per_context, s.calls);
}

// Contexts are evicted beyond the LRU bound while threads keep calling: calls in flight keep
// their context alive, and the counters still add up (created = reused + evicted + live).
TEST_F(EngineStressTest, ContextEvictionUnderConcurrentCallsKeepsCountersConsistent) {
  RuntimeSettings base;
  base.runtime_cache = RuntimeCacheSetting::none();
  set_default_runtime_settings(base);
  BuildOptions o;
  o.shapes.push_back(ShapeProfile{"x", {1, 16}, {4, 16}, {64, 16}});
  Result<std::vector<uint8_t>> bytes = build_engine(kExample, o);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  auto engine = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(engine.ok());
  std::vector<Tensor> in{input(3, 0.7f)};
  auto ref = (*engine)->run(in);
  ASSERT_TRUE(ref.ok());

  // 12 distinct keys (2 x 3 x 2) > the LRU's 8, so contexts are created and evicted all along.
  std::vector<RuntimeSettings> keys;
  for (auto g : {CudaGraphStrategy::kDisabled, CudaGraphStrategy::kWholeGraphCapture})
    for (auto k : {KernelSpecializationStrategy::kLazy, KernelSpecializationStrategy::kEager,
                   KernelSpecializationStrategy::kNone})
      for (bool m : {false, true}) {
        RuntimeSettings r;
        r.cuda_graph_strategy = g;
        r.kernel_specialization = k;
        r.multi_device_safe_mode = m;
        keys.push_back(r);
      }
  constexpr int kCalls = 1000;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        RunOptions opt;
        opt.settings = &keys[(i * 5 + t) % keys.size()];
        auto out = (*engine)->run(in, opt);
        if (!out.ok() || !same((*out)[0], (*ref)[0])) ++bad;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EngineStats s = (*engine)->stats();
  EXPECT_EQ(s.calls, 1u + 4u * kCalls);
  EXPECT_EQ(s.contexts_created + s.contexts_reused, s.calls);
  EXPECT_GT(s.contexts_evicted, 0u);
  EXPECT_EQ(s.contexts_created - s.contexts_evicted, s.calls_per_context.size());
  EXPECT_LE(s.calls_per_context.size(), 8u);
}

}  // namespace
}  // namespace kiln
