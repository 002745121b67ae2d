// kiln_host_bench: host time per Engine::run call on CUDA with device-resident inputs and
// caller-owned output buffers (no host copies), under each cuda_graph_strategy, beside the cost
// of launching empty kernels and synchronising on the same machine. With
// KILN_CUDA_HOST_PROFILE=1 the CUDA backend also reports where the host time goes (host_ns.*).
//
//   kiln_host_bench ENGINE [--iterations N] [--shape NAME:AxBxC ...]
//
// Inputs are zeros at each input's profile opt shape unless --shape says otherwise (integer
// inputs stay valid ids). Prints one line per strategy: median and p90 microseconds per call.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "host_baselines.h"
#include "kiln/engine.h"
#include "kiln/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

kiln::Tensor device_zeros(kiln::DType dtype, const kiln::Dims& dims) {
  const size_t bytes = std::max<size_t>(kiln::dims_numel(dims) * kiln::dtype_size(dtype), 1);
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess || cudaMemset(p, 0, bytes) != cudaSuccess) {
    std::fprintf(stderr, "cudaMalloc of %zu bytes failed\n", bytes);
    std::exit(1);
  }
  return kiln::Tensor::wrap(dtype, dims, p, std::shared_ptr<void>(p, [](void* q) { cudaFree(q); }),
                            kiln::Device{kiln::DeviceType::kCuda, 0});
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::fprintf(stderr, "usage: kiln_host_bench ENGINE [--iterations N] [--shape NAME:AxBxC ...]\n");
    return 2;
  }
  int iterations = 2000;
  std::map<std::string, kiln::Dims> shapes;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--iterations") {
      iterations = std::max(1, std::atoi(value.c_str()));
    } else if (flag == "--shape") {
      const size_t colon = value.rfind(':');
      kiln::Dims d;
      for (size_t p = colon + 1; p < value.size();) {
        size_t x = value.find('x', p);
        d.push_back(std::atoll(value.substr(p, x - p).c_str()));
        p = x == std::string::npos ? value.size() : x + 1;
      }
      shapes[value.substr(0, colon)] = d;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  kiln::Result<std::shared_ptr<kiln::Engine>> loaded = kiln::Engine::load(argv[1]);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().to_string().c_str());
    return 2;
  }
  const std::shared_ptr<kiln::Engine> engine = *loaded;
  std::vector<kiln::Tensor> inputs;
  for (const auto& b : engine->inputs()) {
    kiln::Dims d = shapes.count(b.name) ? shapes[b.name] : b.opt;
    inputs.push_back(device_zeros(b.dtype, d));
  }
  kiln::bench::print_host_baselines();
  // The floor any runtime pays per synchronisation.
  {
    cudaStream_t s;
    cudaStreamCreate(&s);
    void* p = nullptr;
    cudaMalloc(&p, 256);
    std::vector<double> t;
    for (int i = 0; i < 200; ++i) {
      auto t0 = Clock::now();
      cudaMemsetAsync(p, 0, 4, s);
      cudaStreamSynchronize(s);
      t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::printf("baseline: one async memset + stream sync: median %.1f us\n", percentile(t, 0.5));
    cudaFree(p);
    cudaStreamDestroy(s);
  }
  for (const char* strategy : {"disabled", "whole_graph_capture"}) {
    kiln::RuntimeSettings rs;
    rs.cuda_graph_strategy = *kiln::parse_cuda_graph_strategy(strategy);
    kiln::RunOptions options;
    options.backend = "cuda";
    options.settings = &rs;
    kiln::Result<std::vector<kiln::Tensor>> first = engine->run(inputs, options);
    if (!first.ok()) {
      std::fprintf(stderr, "%s: %s\n", strategy, first.status().to_string().c_str());
      return 1;
    }
    std::vector<kiln::Tensor> outs;
    for (const kiln::Tensor& t : *first) outs.push_back(device_zeros(t.dtype(), t.dims()));
    options.output_buffers = outs;
    for (int i = 0; i < 20; ++i) (void)engine->run(inputs, options);
    std::vector<double> t;
    for (int i = 0; i < iterations; ++i) {
      auto t0 = Clock::now();
      kiln::Result<std::vector<kiln::Tensor>> r = engine->run(inputs, options);
      t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      if (!r.ok()) {
        std::fprintf(stderr, "%s\n", r.status().to_string().c_str());
        return 1;
      }
    }
    std::printf("%-20s median %8.1f us  p90 %8.1f us per call (device I/O, run waits for the GPU)\n", strategy,
                percentile(t, 0.5), percentile(t, 0.9));
  }
  const kiln::EngineStats stats = engine->stats();
  for (const auto& [k, v] : stats.backend_counters)
    if (v != 0) std::printf("  %s = %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  return 0;
}
