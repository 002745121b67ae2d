// test-backend-ops for the CUDA backend (ggml's pattern): one-node graphs run on the CPU backend
// (the reference) and on the CUDA backend, outputs compared with a stated tolerance. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/cuda_backend.h"
#include "core/half.h"
#include "ir/graph.h"
#include "tests/util/cuda_testing.h"

namespace kiln::cuda::testing {

// The shared CUDA backend of the test process, or null (the test then fails: gpu tests need a GPU).
inline const Backend* cuda_backend() {
  static std::unique_ptr<Backend> b = [] {
    Result<std::unique_ptr<Backend>> r = create_cuda_backend(0);
    if (!r.ok()) ADD_FAILURE() << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }();
  return b.get();
}

inline Tensor random_tensor(DType dtype, Dims dims, double lo = -2, double hi = 2, uint32_t seed = 1) {
  Tensor t = Tensor::zeros(dtype, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = u(rng);
    switch (dtype) {
      case DType::kF32: t.data_as<float>()[i] = static_cast<float>(v); break;
      case DType::kF64: t.data_as<double>()[i] = v; break;
      case DType::kF16: t.data_as<uint16_t>()[i] = f32_to_f16(static_cast<float>(v)); break;
      case DType::kBF16: t.data_as<uint16_t>()[i] = f32_to_bf16(static_cast<float>(v)); break;
      case DType::kI32: t.data_as<int32_t>()[i] = static_cast<int32_t>(std::floor(v)); break;
      case DType::kI64: t.data_as<int64_t>()[i] = static_cast<int64_t>(std::floor(v)); break;
      case DType::kI8: t.data_as<int8_t>()[i] = static_cast<int8_t>(std::floor(v)); break;
      case DType::kU8: t.data_as<uint8_t>()[i] = static_cast<uint8_t>(std::fabs(std::floor(v))); break;
      case DType::kBool: t.data_as<uint8_t>()[i] = v > (lo + hi) / 2; break;
      default: ADD_FAILURE() << "random_tensor: dtype " << dtype_name(dtype);
    }
  }
  return t;
}

inline Tensor ints(std::vector<int64_t> v) {
  return Tensor::from_vector(DType::kI64, {static_cast<int64_t>(v.size())}, v);
}
inline Tensor scalar_f32(float v) { return Tensor::from_vector(DType::kF32, {}, std::vector<float>{v}); }

// Device copies (tests/util/cuda_testing.h): to_device(host, device = 0), to_host(any).
using kiln::test::to_device;
using kiln::test::to_host;

inline double element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kF32: return t.data_as<const float>()[i];
    case DType::kF64: return t.data_as<const double>()[i];
    case DType::kF16: return f16_to_f32(t.data_as<const uint16_t>()[i]);
    case DType::kBF16: return bf16_to_f32(t.data_as<const uint16_t>()[i]);
    case DType::kI32: return t.data_as<const int32_t>()[i];
    case DType::kI64: return static_cast<double>(t.data_as<const int64_t>()[i]);
    case DType::kI8: return t.data_as<const int8_t>()[i];
    case DType::kU8: case DType::kBool: return t.data_as<const uint8_t>()[i];
    default: return NAN;
  }
}

// Expects `got` to match `want` within atol + rtol * |want| per element (NaN matches NaN).
inline void expect_close(const Tensor& got_any, const Tensor& want, double rtol, double atol, const std::string& what) {
  Tensor got = to_host(got_any);
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.dims(), want.dims()) << what;
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    double a = element(got, i), b = element(want, i);
    if (std::isnan(a) && std::isnan(b)) continue;
    if (std::isinf(a) && a == b) continue;
    double err = std::fabs(a - b);
    if (!(err <= atol + rtol * std::fabs(b))) {
      if (first < 0) first = i;
      ++bad;
      worst = std::max(worst, err);
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.numel() << " elements differ; first at " << first
                    << " got " << (first >= 0 ? element(got, first) : 0) << " want "
                    << (first >= 0 ? element(want, first) : 0) << " (max abs err " << worst << ")";
}

// Sets the process's convolution path for its lifetime and restores the previous one after,
// whatever happens in between.
class ConvPathScope {
 public:
  explicit ConvPathScope(ConvPath p) : before_(conv_path()) { set_conv_path(p); }
  ~ConvPathScope() { set_conv_path(before_); }
  ConvPathScope(const ConvPathScope&) = delete;
  ConvPathScope& operator=(const ConvPathScope&) = delete;

 private:
  ConvPath before_;
};

struct OpCase {
  std::string op;
  ir::Attributes attrs;
  std::vector<Tensor> inputs;      // undefined: an omitted optional input
  std::vector<bool> constant = {};  // per input: a graph constant (weights, shapes) or a runtime input
  int outputs = 1;
  double rtol = 1e-5, atol = 1e-6;
  bool expect_fallback = false;    // the op is expected to run on the CPU
};

inline std::shared_ptr<ir::Graph> one_node_graph(const OpCase& c) {
  auto g = std::make_shared<ir::Graph>();
  ir::Node node;
  node.name = "n0";
  node.op = c.op;
  node.attrs = c.attrs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& t = c.inputs[i];
    if (!t.defined()) {
      node.inputs.push_back(ir::kNoValue);
      continue;
    }
    const std::string name = "in" + std::to_string(i);
    if (i < c.constant.size() && c.constant[i]) {
      node.inputs.push_back(g->add_constant(name, t));
    } else {
      int id = g->add_value(name, t.dtype(), ir::Shape::of(t.dims()));
      g->inputs.push_back(id);
      node.inputs.push_back(id);
    }
  }
  for (int o = 0; o < c.outputs; ++o) {
    int id = g->add_value("out" + std::to_string(o));
    node.outputs.push_back(id);
    g->outputs.push_back(id);
  }
  g->add_node(std::move(node));
  return g;
}

inline std::vector<Tensor> runtime_inputs(const OpCase& c) {
  std::vector<Tensor> v;
  for (size_t i = 0; i < c.inputs.size(); ++i)
    if (c.inputs[i].defined() && !(i < c.constant.size() && c.constant[i])) v.push_back(c.inputs[i]);
  return v;
}

// Runs `c` on both backends (CUDA with device-resident inputs) and compares every output.
inline void check_op(const OpCase& c, const std::string& label) {
  SCOPED_TRACE(label);
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  std::shared_ptr<const ir::Graph> g = one_node_graph(c);
  auto cpu = cpu::create_cpu_backend();
  Result<std::unique_ptr<BackendProgram>> ref = cpu->prepare(g, {});
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  std::vector<Tensor> in = runtime_inputs(c), want;
  Status rs = (*ref)->run(in, &want);
  ASSERT_TRUE(rs.ok()) << "CPU reference: " << rs.to_string();
  Result<std::unique_ptr<BackendProgram>> prog = gpu->prepare(g, {});
  ASSERT_TRUE(prog.ok()) << prog.status().to_string();
  std::vector<Tensor> dev_in, got;
  for (const Tensor& t : in) dev_in.push_back(to_device(t));
  Status s = (*prog)->run(dev_in, &got);
  ASSERT_TRUE(s.ok()) << s.to_string();
  ASSERT_EQ(got.size(), want.size());
  for (size_t o = 0; o < got.size(); ++o) {
    EXPECT_EQ(got[o].device().type, DeviceType::kCuda) << "device inputs give device outputs";
    expect_close(got[o], want[o], c.rtol, c.atol, label + " output " + std::to_string(o));
  }
  Result<CudaProgramStats> st = program_stats(**prog);
  ASSERT_TRUE(st.ok());
  if (c.expect_fallback) {
    EXPECT_EQ(st->fallback_nodes, 1u) << label;
  } else {
    EXPECT_EQ(st->fallback_nodes, 0u) << label << " fell back to the CPU";
    EXPECT_EQ(st->gpu_nodes, 1u) << label;
  }
  // Under lazy (the default) a GEMM cuBLASLt was not ready for ran on kiln's own kernel (the
  // GEMM bridge, gemm.h); once the background job is done the same call runs on cuBLASLt, and
  // must match as well.
  if ((*prog)->counters()["gemm_bridged"] > 0) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((*prog)->counters()["specialize_pending"] > 0 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const uint64_t bridged = (*prog)->counters()["gemm_bridged"];
    got.clear();
    Status again = (*prog)->run(dev_in, &got);
    ASSERT_TRUE(again.ok()) << again.to_string();
    EXPECT_EQ((*prog)->counters()["gemm_bridged"], bridged) << label << ": cuBLASLt was not ready after the job";
    ASSERT_EQ(got.size(), want.size());
    for (size_t o = 0; o < got.size(); ++o)
      expect_close(got[o], want[o], c.rtol, c.atol, label + " output " + std::to_string(o) + " (cuBLASLt)");
  }
}

}  // namespace kiln::cuda::testing
