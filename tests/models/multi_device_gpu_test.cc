// One engine serving calls on two GPUs (issue #7, label gpu): contexts are per device, and
// multi_device_safe_mode switches to the context's device and back for each call. Needs two
// CUDA devices; on a one-GPU machine every test skips and says so.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "tests/util/cuda_testing.h"
#include "tests/util/testdata.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// How far `got` (host or device) is out of rtol 1e-3, atol 1e-4 of the reference `want`: <= 0
// passes (test::Closeness::violation).
double violation(const Tensor& got, const Tensor& want) {
  return test::closeness(test::to_host(got), want, 1e-3, 1e-4).violation;
}

uint64_t counter(const Engine& e, const char* name) {
  auto c = e.stats().backend_counters;
  auto it = c.find(name);
  return it == c.end() ? 0 : it->second;
}

class MultiDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::cuda_device_count() < 2)
      GTEST_SKIP() << "needs two CUDA devices, found " << test::cuda_device_count()
                   << " (run on nvidia-h100-x2; the per-call device logic is also covered on one GPU "
                      "by graphs_gpu_test)";
    fs::path dir = test::model_dir("tiny_cnn");
    ASSERT_TRUE(fs::exists(dir)) << dir;
    test::DataSet set = test::read_data_set(test::data_set_dir(dir, 0));
    inputs_ = std::move(set.inputs);
    want_ = std::move(set.outputs);
    ASSERT_FALSE(inputs_.empty());
    Result<std::vector<uint8_t>> bytes = test::build_static_engine(dir, inputs_);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    engine_ = Engine::load_from_memory(std::move(bytes).value()).value();
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  }

  RunOptions options(int device, bool safe, CudaGraphStrategy graphs = CudaGraphStrategy::kDisabled) {
    settings_.push_back(std::make_unique<RuntimeSettings>());
    settings_.back()->multi_device_safe_mode = safe;
    settings_.back()->cuda_graph_strategy = graphs;
    RunOptions o;
    o.backend = "cuda";
    o.device = device;
    o.settings = settings_.back().get();
    return o;
  }

  void expect_correct(const Result<std::vector<Tensor>>& r) {
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_EQ(r->size(), want_.size());
    for (size_t i = 0; i < want_.size(); ++i) EXPECT_LE(violation((*r)[i], want_[i]), 0.0) << "output " << i;
  }

  std::shared_ptr<Engine> engine_;
  std::vector<Tensor> inputs_, want_;
  std::vector<std::unique_ptr<RuntimeSettings>> settings_;
};

TEST_F(MultiDeviceTest, SafeModeRunsOnTheContextsDeviceAndRestoresTheCallers) {
  for (int device : {1, 0, 1}) {
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    expect_correct(engine_->run(inputs_, options(device, true)));
    int current = -1;
    ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
    EXPECT_EQ(current, 0) << "the caller's current device must be restored after a call on cuda:" << device;
  }
  EngineStats s = engine_->stats();
  EXPECT_EQ(s.contexts_created, 2u) << "one context per device";
  EXPECT_GE(counter(*engine_, "device_switches"), 2u) << "two calls ran on cuda:1 from cuda:0";
  bool saw0 = false, saw1 = false;
  for (const auto& [key, calls] : s.calls_per_context) {
    saw0 = saw0 || key.find("cuda:0") != std::string::npos;
    saw1 = saw1 || key.find("cuda:1") != std::string::npos;
  }
  EXPECT_TRUE(saw0 && saw1);
}

TEST_F(MultiDeviceTest, DeviceResidentInputsOnTheSecondGpu) {
  std::vector<Tensor> on1;
  for (const Tensor& t : inputs_) on1.push_back(test::to_device(t, 1));
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  Result<std::vector<Tensor>> r = engine_->run(on1, options(1, true));
  expect_correct(r);
  if (r.ok()) {
    for (const Tensor& t : *r) EXPECT_EQ(t.device(), (Device{DeviceType::kCuda, 1}));
  }
  // Device-1 inputs to a call on device 0 are refused with a message, not used across devices.
  Result<std::vector<Tensor>> wrong = engine_->run(on1, options(0, true));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("cuda:1"), std::string::npos) << wrong.status().message();
}

TEST_F(MultiDeviceTest, OneThreadPerGpuWithoutSafeModeAndWithGraphs) {
  // Without safe mode each thread makes its device current itself (the documented contract).
  std::atomic<int> bad{0};
  auto worker = [&](RunOptions o) {
    if (cudaSetDevice(o.device) != cudaSuccess) {
      ++bad;
      return;
    }
    for (int i = 0; i < 200; ++i) {
      Result<std::vector<Tensor>> r = engine_->run(inputs_, o);
      if (!r.ok() || violation((*r)[0], want_[0]) > 0) ++bad;
    }
  };
  std::vector<std::thread> threads;
  for (CudaGraphStrategy g : {CudaGraphStrategy::kDisabled, CudaGraphStrategy::kWholeGraphCapture}) {
    threads.emplace_back(worker, options(0, false, g));  // options() is not thread-safe: built here
    threads.emplace_back(worker, options(1, false, g));
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(engine_->stats().contexts_created, 4u) << "(device, graph strategy): four contexts";
  EXPECT_GE(counter(*engine_, "graph_replays"), 300u);
}

}  // namespace
}  // namespace kiln
