// Engine: execution contexts per resolved settings, concurrency, per-call snapshots.
#include "kiln/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "kiln/builder.h"
#include "kiln/runtime.h"

namespace kiln {
namespace {

const char* kExample = KILN_SOURCE_DIR "/examples/tiny_classifier/model.onnx";

std::shared_ptr<Engine> example_engine() {
  BuildOptions o;
  o.shapes.push_back(ShapeProfile{"x", {1, 16}, {4, 16}, {64, 16}});
  Result<std::vector<uint8_t>> bytes = build_engine(kExample, o);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  Result<std::shared_ptr<Engine>> e = Engine::load_from_memory(std::move(bytes).value());
  EXPECT_TRUE(e.ok()) << e.status().to_string();
  return *e;
}

Tensor input(int64_t batch, float seed) {
  Tensor t = Tensor::zeros(DType::kF32, {batch, 16});
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = seed + 0.01f * static_cast<float>(i % 97);
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.dims() == b.dims() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

RuntimeSettings graphs(CudaGraphStrategy s) {
  RuntimeSettings r;
  r.cuda_graph_strategy = s;
  return r;
}

TEST(EngineContextTest, FlippingASettingPerCallBuildsExactlyTwoContexts) {
  auto engine = example_engine();
  std::vector<Tensor> in{input(3, 0.5f)};
  RuntimeSettings a = graphs(CudaGraphStrategy::kDisabled), b = graphs(CudaGraphStrategy::kWholeGraphCapture);
  auto first = engine->run(in);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  for (int i = 0; i < 100; ++i) {
    RunOptions opt;
    opt.settings = i % 2 ? &b : &a;
    auto out = engine->run(in, opt);
    ASSERT_TRUE(out.ok());
    EXPECT_TRUE(same((*out)[0], (*first)[0]));
  }
  EngineStats s = engine->stats();
  EXPECT_EQ(s.contexts_created, 2u);
  EXPECT_EQ(s.contexts_reused, 99u);
  EXPECT_EQ(s.calls, 101u);
  EXPECT_EQ(s.calls_per_context.size(), 2u);
}

TEST(EngineContextTest, ScopesOnTwoThreadsStayIsolatedOnOneEngine) {
  auto engine = example_engine();
  std::vector<Tensor> in{input(2, -0.25f)};
  auto ref = engine->run(in);
  ASSERT_TRUE(ref.ok());
  constexpr int kCalls = 2000;
  std::atomic<int> wrong{0};
  auto worker = [&](CudaGraphStrategy mine) {
    ScopedRuntimeSettings scope(graphs(mine));
    for (int i = 0; i < kCalls; ++i) {
      RunOptions opt;
      if (engine->resolve_settings(opt).cuda_graph_strategy != mine) ++wrong;
      auto out = engine->run(in, opt);
      if (!out.ok() || !same((*out)[0], (*ref)[0])) ++wrong;
    }
  };
  std::thread t1(worker, CudaGraphStrategy::kDisabled), t2(worker, CudaGraphStrategy::kWholeGraphCapture);
  t1.join();
  t2.join();
  EXPECT_EQ(wrong.load(), 0);
  EngineStats s = engine->stats();
  // The reference call ran under the process default (disabled) before the threads started.
  EXPECT_EQ(s.contexts_created, 2u);
  uint64_t total = 0;
  for (const auto& [key, calls] : s.calls_per_context) {
    EXPECT_TRUE(calls == kCalls || calls == kCalls + 1) << key << ": " << calls;
    total += calls;
  }
  EXPECT_EQ(total, 2u * kCalls + 1);
}

TEST(EngineContextTest, PrecedenceCallOverEngineOverScope) {
  auto engine = example_engine();
  ScopedRuntimeSettings scope(graphs(CudaGraphStrategy::kWholeGraphCapture));
  RunOptions opt;
  EXPECT_EQ(engine->resolve_settings(opt).sources.cuda_graph_strategy, SettingSource::kScope);
  engine->set_runtime_overrides(graphs(CudaGraphStrategy::kDisabled));
  ResolvedSettings r = engine->resolve_settings(opt);
  EXPECT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kDisabled);
  EXPECT_EQ(r.sources.cuda_graph_strategy, SettingSource::kEngine);
  RuntimeSettings call = graphs(CudaGraphStrategy::kWholeGraphCapture);
  opt.settings = &call;
  r = engine->resolve_settings(opt);
  EXPECT_EQ(r.cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
  EXPECT_EQ(r.sources.cuda_graph_strategy, SettingSource::kCall);
  engine->clear_runtime_overrides();
  opt.settings = nullptr;
  EXPECT_EQ(engine->resolve_settings(opt).sources.cuda_graph_strategy, SettingSource::kScope);
}

TEST(EngineContextTest, ManyThreadsManyCallsOneEngine) {
  auto engine = example_engine();
  std::vector<std::vector<Tensor>> inputs;
  std::vector<Tensor> expected;
  for (int b = 1; b <= 8; ++b) {
    inputs.push_back({input(b, 0.1f * static_cast<float>(b))});
    auto out = engine->run(inputs.back());
    ASSERT_TRUE(out.ok());
    expected.push_back((*out)[0]);
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        int k = (t + i) % 8;
        auto out = engine->run(inputs[k]);
        if (!out.ok() || !same((*out)[0], expected[k])) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(engine->stats().contexts_created, 1u);
}

TEST(EngineInputTest, BadInputsNameTheBindingAndTheProfile) {
  auto engine = example_engine();
  std::vector<Tensor> wrong_dtype{Tensor::zeros(DType::kF64, {2, 16})};
  Status s = engine->run(wrong_dtype).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("input 'x' has dtype f64; the engine expects f32"), std::string::npos) << s.message();
  std::vector<Tensor> too_big{Tensor::zeros(DType::kF32, {65, 16})};
  s = engine->run(too_big).status();
  EXPECT_NE(s.message().find("outside the engine's profile [1, 16] to [64, 16]"), std::string::npos) << s.message();
  std::vector<Tensor> none;
  EXPECT_EQ(engine->run(none).status().code(), StatusCode::kInvalidArgument);
  RunOptions bad_backend;
  bad_backend.backend = "tpu";
  std::vector<Tensor> ok{input(1, 0)};
  s = engine->run(ok, bad_backend).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("invalid backend 'tpu'; expected cpu"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln
