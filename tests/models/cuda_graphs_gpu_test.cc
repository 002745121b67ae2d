// cuda_graph_strategy=whole_graph_capture on the four shared models (label gpu), through the
// public Engine API: results bitwise equal to plain launches, buffer rebinding (double-buffered
// and fresh buffers), and, printed for the record, host overhead per replayed call and latency
// with and without graphs.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "tests/util/cuda_testing.h"
#include "tests/util/testdata.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using test::device_empty;
using test::to_device;
using test::to_host;

bool same_bits(const Tensor& a_any, const Tensor& b_any) {
  Tensor a = to_host(a_any), b = to_host(b_any);
  return a.dtype() == b.dtype() && a.dims() == b.dims() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

// A second input set with other values (floats halved, integers reversed: still valid ids).
Tensor other_values(const Tensor& t) {
  Tensor o = Tensor::zeros(t.dtype(), t.dims());
  std::memcpy(o.data(), t.data(), t.nbytes());
  if (t.dtype() == DType::kF32) {
    for (int64_t i = 0; i < t.numel(); ++i) o.data_as<float>()[i] *= 0.5f;
  } else if (t.dtype() == DType::kI64) {
    std::reverse(o.data_as<int64_t>(), o.data_as<int64_t>() + t.numel());
  }
  return o;
}

struct Model {
  std::shared_ptr<Engine> engine;
  std::vector<Tensor> inputs;  // host, data set 1
};

// The model built with data set 1's shapes as its only shapes (static).
Model load(const std::string& name) {
  Model m;
  fs::path dir = test::model_dir(name);
  EXPECT_TRUE(fs::exists(dir)) << dir;
  m.inputs = test::read_tensors(test::data_set_dir(dir, 1), "input");
  Result<std::vector<uint8_t>> bytes = test::build_static_engine(dir, m.inputs);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  if (!bytes.ok()) return m;
  m.engine = Engine::load_from_memory(std::move(bytes).value()).value();
  return m;
}

RuntimeSettings settings(CudaGraphStrategy strategy) {
  RuntimeSettings s;
  s.cuda_graph_strategy = strategy;
  s.kernel_specialization = KernelSpecializationStrategy::kNone;  // the same kernels both ways
  return s;
}

uint64_t counter(const Engine& e, const char* name) {
  auto c = e.stats().backend_counters;
  auto it = c.find(name);
  return it == c.end() ? 0 : it->second;
}

class CudaGraphModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    m_ = load(GetParam());
    ASSERT_NE(m_.engine, nullptr);
    plain_.backend = graphs_.backend = "cuda";
    plain_.settings = &plain_settings_;
    graphs_.settings = &graph_settings_;
  }
  std::vector<Tensor> run(const std::vector<Tensor>& in, const RunOptions& o) {
    Result<std::vector<Tensor>> r = m_.engine->run(in, o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : std::vector<Tensor>();
  }
  Model m_;
  RuntimeSettings plain_settings_ = settings(CudaGraphStrategy::kDisabled);
  RuntimeSettings graph_settings_ = settings(CudaGraphStrategy::kWholeGraphCapture);
  RunOptions plain_, graphs_;
};

TEST_P(CudaGraphModelTest, GraphResultsAreBitwiseEqualToPlainLaunches) {
  std::vector<Tensor> in;
  for (const Tensor& t : m_.inputs) in.push_back(to_device(t));
  std::vector<Tensor> want = run(in, plain_);
  ASSERT_FALSE(want.empty());
  for (int call = 0; call < 5; ++call) {  // plain (learns the shapes), capture, then replays
    std::vector<Tensor> got = run(in, graphs_);
    ASSERT_EQ(got.size(), want.size());
    for (size_t o = 0; o < got.size(); ++o)
      EXPECT_TRUE(same_bits(got[o], want[o])) << GetParam() << " call " << call << " output " << o;
  }
  EXPECT_EQ(counter(*m_.engine, "graph_fallbacks"), 0u);
  // Outputs are new pool tensors per call: usually the same address again, but not always.
  EXPECT_GE(counter(*m_.engine, "graphs_captured"), 1u);
  EXPECT_EQ(counter(*m_.engine, "graph_replays"), 4u);
}

TEST_P(CudaGraphModelTest, AlternatingBufferSetsAreReboundWithoutCopies) {
  std::vector<Tensor> in[2], want[2], out[2];
  for (int s = 0; s < 2; ++s) {
    for (const Tensor& t : m_.inputs) in[s].push_back(to_device(s == 0 ? t : other_values(t)));
    want[s] = run(in[s], plain_);
    ASSERT_FALSE(want[s].empty());
    for (const Tensor& w : want[s]) out[s].push_back(device_empty(w.dtype(), w.dims()));
  }
  run(in[0], graphs_);  // learn the shapes
  const uint64_t copies = counter(*m_.engine, "graph_copies");
  constexpr int kCalls = 1000;
  double host_us = 0;
  int wrong = 0;
  for (int call = 0; call < kCalls; ++call) {
    const int s = call % 2;
    RunOptions o = graphs_;
    o.output_buffers = out[s];
    auto t0 = Clock::now();
    Result<std::vector<Tensor>> r = m_.engine->run(in[s], o);
    host_us += std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_EQ(r->size(), want[s].size());
    for (size_t k = 0; k < r->size(); ++k) {
      EXPECT_EQ((*r)[k].data(), out[s][k].data());
      if (!same_bits(out[s][k], want[s][k])) ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(counter(*m_.engine, "graph_copies"), copies) << "no output may be copied";
  EXPECT_LE(counter(*m_.engine, "graphs_captured"), 2u) << "a graph per buffer set at most";
  EXPECT_EQ(counter(*m_.engine, "graph_updates"), 0u);
  std::printf("[ graphs   ] %s alternating 2 buffer sets x %d calls: %.1f us per call (synchronous run), "
              "captured %llu, rebinds %llu, copies %llu\n",
              GetParam().c_str(), kCalls, host_us / kCalls,
              (unsigned long long)counter(*m_.engine, "graphs_captured"),
              (unsigned long long)counter(*m_.engine, "graph_rebinds"),
              (unsigned long long)(counter(*m_.engine, "graph_copies") - copies));
}

TEST_P(CudaGraphModelTest, FreshBuffersEveryCallStayCorrect) {
  std::vector<Tensor> host_in = m_.inputs;
  std::vector<Tensor> dev_in;
  for (const Tensor& t : host_in) dev_in.push_back(to_device(t));
  std::vector<Tensor> want = run(dev_in, plain_);
  ASSERT_FALSE(want.empty());
  run(dev_in, graphs_);  // learn
  run(dev_in, graphs_);  // capture
  const auto before = m_.engine->stats().backend_counters;
  constexpr int kCalls = 100;
  double host_us = 0;
  int wrong = 0;
  std::vector<std::vector<Tensor>> keep;  // keep every buffer alive: addresses never repeat
  for (int call = 0; call < kCalls; ++call) {
    std::vector<Tensor> in, out;
    for (const Tensor& t : host_in) in.push_back(to_device(t));
    for (const Tensor& w : want) out.push_back(device_empty(w.dtype(), w.dims()));
    RunOptions o = graphs_;
    o.output_buffers = out;
    auto t0 = Clock::now();
    Result<std::vector<Tensor>> r = m_.engine->run(in, o);
    host_us += std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    for (size_t k = 0; k < out.size(); ++k) wrong += !same_bits(out[k], want[k]);
    keep.push_back(in);
    keep.push_back(out);
  }
  EXPECT_EQ(wrong, 0);
  auto after = m_.engine->stats().backend_counters;
  auto delta = [&](const char* k) { return (unsigned long long)(after[k] - before.at(k)); };
  std::printf("[ graphs   ] %s fresh buffers x %d calls: %.1f us per call (synchronous run), captured %llu, "
              "rebinds %llu, updates %llu, copies %llu\n",
              GetParam().c_str(), kCalls, host_us / kCalls, delta("graphs_captured"), delta("graph_rebinds"),
              delta("graph_updates"), delta("graph_copies"));
  EXPECT_EQ(delta("graph_copies"), 0u);
  EXPECT_LE(delta("graphs_captured"), 4u) << "past 4 buffer sets per shape, graphs are updated, not added";
}

// A caller on the legacy default stream (PyTorch's default; the Python package passes
// cudaStreamLegacy): kiln adds no events there and relies on CUDA ordering its blocking streams
// against that stream. Each call's inputs are written on the legacy stream behind a long copy and
// its outputs read back there at once; with either strategy every result must be the one for its
// own inputs.
TEST_P(CudaGraphModelTest, LegacyDefaultStreamCallersAreOrderedWithoutEvents) {
  std::vector<Tensor> host[2], want[2], dev_in, out;
  for (int s = 0; s < 2; ++s) {
    for (const Tensor& t : m_.inputs) host[s].push_back(s == 0 ? t : other_values(t));
    std::vector<Tensor> d;
    for (const Tensor& t : host[s]) d.push_back(to_device(t));
    want[s] = run(d, plain_);
    ASSERT_FALSE(want[s].empty());
  }
  for (const Tensor& t : m_.inputs) dev_in.push_back(device_empty(t.dtype(), t.dims()));
  for (const Tensor& w : want[0]) out.push_back(device_empty(w.dtype(), w.dims()));
  // A long copy on the legacy stream ahead of each input write: kiln must not read early. The
  // inputs come from pinned memory, so their copies are asynchronous too.
  constexpr size_t kSlow = size_t{256} << 20;
  void *slow_src = nullptr, *slow_dst = nullptr;
  ASSERT_EQ(cudaMalloc(&slow_src, kSlow), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&slow_dst, kSlow), cudaSuccess);
  std::vector<void*> pinned[2];
  for (int s = 0; s < 2; ++s)
    for (const Tensor& t : host[s]) {
      void* p = nullptr;
      ASSERT_EQ(cudaMallocHost(&p, t.nbytes()), cudaSuccess);
      std::memcpy(p, t.data(), t.nbytes());
      pinned[s].push_back(p);
    }
  int wrong = 0;
  for (RunOptions o : {plain_, graphs_}) {
    o.stream = cudaStreamLegacy;
    o.output_buffers = out;
    for (int call = 0; call < 40; ++call) {
      const int s = call % 2;
      ASSERT_EQ(cudaMemcpyAsync(slow_dst, slow_src, kSlow, cudaMemcpyDeviceToDevice, cudaStreamLegacy), cudaSuccess);
      for (size_t i = 0; i < dev_in.size(); ++i)
        ASSERT_EQ(cudaMemcpyAsync(dev_in[i].data(), pinned[s][i], host[s][i].nbytes(), cudaMemcpyHostToDevice,
                                  cudaStreamLegacy),
                  cudaSuccess);
      Result<std::vector<Tensor>> r = m_.engine->run(dev_in, o);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      for (size_t k = 0; k < out.size(); ++k) {
        Tensor got = Tensor::zeros(out[k].dtype(), out[k].dims());
        ASSERT_EQ(cudaMemcpyAsync(got.data(), out[k].data(), got.nbytes(), cudaMemcpyDeviceToHost, cudaStreamLegacy),
                  cudaSuccess);
        ASSERT_EQ(cudaStreamSynchronize(cudaStreamLegacy), cudaSuccess);
        if (!same_bits(got, want[s][k])) ++wrong;
      }
    }
  }
  cudaFree(slow_src);
  cudaFree(slow_dst);
  for (auto& set : pinned)
    for (void* p : set) cudaFreeHost(p);
  EXPECT_EQ(wrong, 0) << GetParam();
}

// Not a timed test: prints host time per call with a replayed graph (enqueue only, on a caller
// stream) and the synchronous latency with and without graphs.
TEST_P(CudaGraphModelTest, PrintHostOverheadAndLatency) {
  std::vector<Tensor> in, out;
  for (const Tensor& t : m_.inputs) in.push_back(to_device(t));
  std::vector<Tensor> want = run(in, plain_);
  ASSERT_FALSE(want.empty());
  for (const Tensor& w : want) out.push_back(device_empty(w.dtype(), w.dims()));
  auto median_us = [&](RunOptions o) {
    o.output_buffers = out;
    std::vector<double> us;
    for (int i = 0; i < 220; ++i) {
      auto t0 = Clock::now();
      Result<std::vector<Tensor>> r = m_.engine->run(in, o);
      auto t1 = Clock::now();
      EXPECT_TRUE(r.ok()) << r.status().to_string();
      if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  };
  const double plain_us = median_us(plain_), graph_us = median_us(graphs_);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  auto enqueue_us = [&](RunOptions o) {
    o.output_buffers = out;
    o.stream = stream;
    constexpr int kCalls = 200;
    std::vector<double> us;
    for (int i = 0; i < kCalls; ++i) {
      auto t0 = Clock::now();
      Result<std::vector<Tensor>> r = m_.engine->run(in, o);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      EXPECT_TRUE(r.ok()) << r.status().to_string();
      if (i % 50 == 49) cudaStreamSynchronize(stream);  // keep the queue short
    }
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  };
  const double plain_host = enqueue_us(plain_), graph_host = enqueue_us(graphs_);
  cudaStreamDestroy(stream);
  for (size_t k = 0; k < out.size(); ++k) EXPECT_TRUE(same_bits(out[k], want[k])) << "output " << k;
  std::printf("[ latency  ] %s: plain %.1f us, whole_graph_capture %.1f us (median synchronous run, device I/O); "
              "host time per enqueued call: plain %.1f us, replayed graph %.1f us\n",
              GetParam().c_str(), plain_us, graph_us, plain_host, graph_host);
}

INSTANTIATE_TEST_SUITE_P(SharedModels, CudaGraphModelTest,
                         ::testing::Values("mlp", "tiny_cnn", "encoder_L4_d256", "mobilenet_v3_small"));

}  // namespace
}  // namespace kiln
