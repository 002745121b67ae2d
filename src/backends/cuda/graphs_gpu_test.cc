// CUDA graphs at the program level (label gpu): the graph LRU under shape changes, enqueueing into
// a caller's stream capture (capturable and not), the capturability check, and
// multi_device_safe_mode's per-call device check.
#include <cuda_runtime_api.h>

#include <algorithm>

#include "backends/cuda/op_test_util.h"
#include "core/logging.h"

namespace kiln::cuda::testing {
namespace {

PrepareOptions graph_options(CudaGraphStrategy strategy, bool static_shapes, const char* name) {
  PrepareOptions o;
  o.settings.cuda_graph_strategy = strategy;
  o.settings.kernel_specialization = KernelSpecializationStrategy::kNone;
  o.engine_name = name;
  o.static_shapes = static_shapes;
  return o;
}

// x [B, 8] -> MatMul(W [8, 16]) -> Relu -> Softmax: a GEMM and kiln kernels.
std::shared_ptr<ir::Graph> mlp_graph() {
  auto g = std::make_shared<ir::Graph>();
  int x = g->add_value("x", DType::kF32);
  g->inputs.push_back(x);
  int w = g->add_constant("w", random_tensor(DType::kF32, {8, 16}, -1, 1, 5));
  auto node = [&](const char* op, std::vector<int> in, const char* out_name) {
    int out = g->add_value(out_name);
    ir::Node n;
    n.name = out_name;
    n.op = op;
    n.inputs = std::move(in);
    n.outputs = {out};
    g->add_node(std::move(n));
    return out;
  };
  int y = node("MatMul", {x, w}, "mm");
  y = node("Relu", {y}, "relu");
  y = node("Softmax", {y}, "y");
  g->outputs.push_back(y);
  return g;
}

uint64_t counter(const BackendProgram& p, const char* name) {
  auto c = p.counters();
  auto it = c.find(name);
  return it == c.end() ? 0 : it->second;
}

TEST(CudaGraphProgramTest, MoreShapesThanTheLruBoundEvictAndRecapture) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  std::shared_ptr<const ir::Graph> g = mlp_graph();
  auto cpu = cpu::create_cpu_backend();
  auto ref = cpu->prepare(g, {});
  auto prog = gpu->prepare(g, graph_options(CudaGraphStrategy::kWholeGraphCapture, false, "lru"));
  ASSERT_TRUE(ref.ok() && prog.ok()) << prog.status().to_string();
  constexpr int kShapes = 20;  // the bound is 16
  for (int round = 0; round < 2; ++round)
    for (int k = 0; k < kShapes; ++k) {
      const int64_t batch = 520 + 7 * k;  // more than 4096 elements: x stays on the GPU
      Tensor x = random_tensor(DType::kF32, {batch, 8}, -3, 3, static_cast<uint32_t>(batch + round));
      std::vector<Tensor> want;
      ASSERT_TRUE((*ref)->run(std::vector<Tensor>{x}, &want).ok());
      Tensor dx = to_device(x);
      for (int call = 0; call < 3; ++call) {  // plain (learns), capture, replay
        std::vector<Tensor> got;
        Status s = (*prog)->run(std::vector<Tensor>{dx}, &got);
        ASSERT_TRUE(s.ok()) << s.to_string();
        expect_close(got[0], want[0], 1e-5, 1e-6, "batch " + std::to_string(batch) + " call " + std::to_string(call));
      }
    }
  const auto c = (*prog)->counters();
  std::printf("[ graphs   ] lru: captured %llu, replays %llu, evictions %llu, live %llu, fallbacks %llu\n",
              (unsigned long long)c.at("graphs_captured"), (unsigned long long)c.at("graph_replays"),
              (unsigned long long)c.at("graph_evictions"), (unsigned long long)c.at("graphs_live"),
              (unsigned long long)c.at("graph_fallbacks"));
  EXPECT_EQ(c.at("graph_fallbacks"), 0u);
  EXPECT_EQ(c.at("graphs_live"), 16u);
  // Cycling 20 shapes through 16 places evicts each before it comes round again: every shape is
  // captured once per round (round 2 captures on its first call: the shape is known by then).
  EXPECT_EQ(c.at("graphs_captured"), 2u * kShapes);
  EXPECT_EQ(c.at("graph_evictions"), 2u * kShapes - 16);
  EXPECT_EQ(c.at("graph_replays"), 5u * kShapes);  // round 1: 2 per shape, round 2: 3
}

// x [B, 8] -> Relu -> Softmax: only kiln kernels touch the I/O buffers, so moving buffers are
// rebound in one graph, never re-captured.
TEST(CudaGraphProgramTest, BuffersTouchedOnlyByKilnKernelsAreRebound) {
  set_log_level(LogLevel::kInfo);  // an unanalysed capture logs why (graphs.cc)
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  auto g = std::make_shared<ir::Graph>();
  int x = g->add_value("x", DType::kF32);
  g->inputs.push_back(x);
  int r = g->add_value("r"), y = g->add_value("y");
  ir::Node relu, sm;
  relu.name = "relu";
  relu.op = "Relu";
  relu.inputs = {x};
  relu.outputs = {r};
  g->add_node(std::move(relu));
  sm.name = "softmax";
  sm.op = "Softmax";
  sm.inputs = {r};
  sm.outputs = {y};
  g->add_node(std::move(sm));
  g->outputs.push_back(y);
  auto cpu = cpu::create_cpu_backend();
  auto ref = cpu->prepare(g, {});
  auto prog = gpu->prepare(g, graph_options(CudaGraphStrategy::kWholeGraphCapture, true, "rebind"));
  ASSERT_TRUE(ref.ok() && prog.ok()) << prog.status().to_string();
  constexpr int kSets = 3;
  std::vector<Tensor> xs, dxs, dys, wants;
  for (int k = 0; k < kSets; ++k) {
    xs.push_back(random_tensor(DType::kF32, {600, 8}, -3, 3, 70 + k));
    dxs.push_back(to_device(xs.back()));
    dys.push_back(to_device(Tensor::zeros(DType::kF32, {600, 8})));
    std::vector<Tensor> want;
    ASSERT_TRUE((*ref)->run(std::vector<Tensor>{xs.back()}, &want).ok());
    wants.push_back(want[0]);
  }
  for (int call = 0; call < 30; ++call) {
    const int k = call % kSets;
    std::vector<Tensor> bufs = {dys[k]}, got;
    RunRequest req;
    req.output_buffers = bufs;
    Status s = (*prog)->run(std::vector<Tensor>{dxs[k]}, &got, req);
    ASSERT_TRUE(s.ok()) << s.to_string();
    expect_close(dys[k], wants[k], 1e-5, 1e-6, "set " + std::to_string(k) + " call " + std::to_string(call));
  }
  set_log_level(LogLevel::kWarning);
  const auto c = (*prog)->counters();
  EXPECT_EQ(c.at("graph_unanalysed"), 0u) << "the reason is in the log line 'could not be analysed for buffer rebinding'";
  EXPECT_EQ(c.at("graph_pinned_buffers"), 0u);
  EXPECT_EQ(c.at("graphs_captured"), 1u);
  EXPECT_GE(c.at("graph_rebinds"), 28u);  // every call after the capture moves both buffers
  EXPECT_EQ(c.at("graph_copies"), 0u);
}

// Runs `prog` inside a capture on `stream` begun in global mode (what PyTorch uses).
struct OuterCapture {
  cudaStream_t stream = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  OuterCapture() { EXPECT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess); }
  ~OuterCapture() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
  }
  size_t nodes_so_far() const {
    cudaStreamCaptureStatus st;
    cudaGraph_t g = nullptr;
    EXPECT_EQ(cudaStreamGetCaptureInfo(stream, &st, nullptr, &g, nullptr, nullptr, nullptr), cudaSuccess);
    size_t n = 0;
    EXPECT_EQ(cudaGraphGetNodes(g, nullptr, &n), cudaSuccess);
    return n;
  }
};

TEST(CudaGraphProgramTest, OuterCaptureOfACapturableProgramReplays) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  std::shared_ptr<const ir::Graph> g = mlp_graph();
  auto cpu = cpu::create_cpu_backend();
  auto ref = cpu->prepare(g, {});
  // cuda_graph_strategy does not matter for caller-side capture.
  auto prog = gpu->prepare(g, graph_options(CudaGraphStrategy::kDisabled, true, "outer"));
  ASSERT_TRUE(ref.ok() && prog.ok()) << prog.status().to_string();
  const Dims dims = {600, 8};
  std::string reason;
  EXPECT_TRUE((*prog)->is_stream_capturable(std::vector<Dims>{dims}, &reason)) << reason;
  Tensor dx = to_device(Tensor::zeros(DType::kF32, dims));
  Tensor dy = to_device(Tensor::zeros(DType::kF32, {600, 16}));
  OuterCapture cap;
  ASSERT_EQ(cudaStreamBeginCapture(cap.stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(dy.data(), 0, dy.nbytes(), cap.stream), cudaSuccess);  // caller work before
  std::vector<Tensor> with_buffers, static_outputs;
  RunRequest req;
  req.stream = cap.stream;
  std::vector<Tensor> bufs = {dy};
  req.output_buffers = bufs;
  Status s1 = (*prog)->run(std::vector<Tensor>{dx}, &with_buffers, req);
  RunRequest req2;
  req2.stream = cap.stream;
  Status s2 = (*prog)->run(std::vector<Tensor>{dx}, &static_outputs, req2);
  ASSERT_EQ(cudaStreamEndCapture(cap.stream, &cap.graph), cudaSuccess);
  ASSERT_TRUE(s1.ok()) << s1.to_string();
  ASSERT_TRUE(s2.ok()) << s2.to_string();
  ASSERT_EQ(with_buffers.size(), 1u);
  EXPECT_EQ(with_buffers[0].data(), dy.data());
  ASSERT_EQ(static_outputs.size(), 1u);
  EXPECT_EQ(counter(**prog, "caller_captures"), 2u);
  ASSERT_EQ(cudaGraphInstantiate(&cap.exec, cap.graph, 0), cudaSuccess);
  for (int replay = 0; replay < 3; ++replay) {  // new input contents, same buffers
    Tensor x = random_tensor(DType::kF32, dims, -3, 3, 40 + replay);
    std::vector<Tensor> want;
    ASSERT_TRUE((*ref)->run(std::vector<Tensor>{x}, &want).ok());
    ASSERT_EQ(cudaMemcpy(dx.data(), x.data(), x.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(cap.exec, cap.stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(cap.stream), cudaSuccess);
    expect_close(dy, want[0], 1e-5, 1e-6, "output buffer, replay " + std::to_string(replay));
    expect_close(static_outputs[0], want[0], 1e-5, 1e-6, "static output, replay " + std::to_string(replay));
  }
}

TEST(CudaGraphProgramTest, OuterCaptureOfANonCapturableProgramFailsAndAddsNothing) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  // Relu on the GPU, then an op without a CUDA kernel: its input must be read on the host.
  const std::vector<std::string> ops = supported_ops();
  std::string host_op;
  for (const char* op : {"ArgMax", "CumSum", "TopK", "Einsum"})
    if (std::find(ops.begin(), ops.end(), op) == ops.end()) { host_op = op; break; }
  if (host_op != "ArgMax") GTEST_SKIP() << "ArgMax has a CUDA kernel now; pick another host-only op";
  auto g = std::make_shared<ir::Graph>();
  int x = g->add_value("x", DType::kF32);
  g->inputs.push_back(x);
  int r = g->add_value("r");
  ir::Node relu;
  relu.name = "relu";
  relu.op = "Relu";
  relu.inputs = {x};
  relu.outputs = {r};
  g->add_node(std::move(relu));
  int y = g->add_value("y");
  ir::Node am;
  am.name = "argmax";
  am.op = "ArgMax";
  am.attrs.set_int("axis", 0);
  am.inputs = {r};
  am.outputs = {y};
  g->add_node(std::move(am));
  g->outputs.push_back(y);
  auto prog = gpu->prepare(g, graph_options(CudaGraphStrategy::kWholeGraphCapture, true, "needs_host"));
  ASSERT_TRUE(prog.ok()) << prog.status().to_string();
  const Dims dims = {5000};
  std::string reason;
  EXPECT_FALSE((*prog)->is_stream_capturable(std::vector<Dims>{dims}, &reason));
  EXPECT_NE(reason.find("argmax"), std::string::npos) << reason;
  Tensor dx = to_device(random_tensor(DType::kF32, dims));
  OuterCapture cap;
  ASSERT_EQ(cudaStreamBeginCapture(cap.stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(dx.data(), 0, 4, cap.stream), cudaSuccess);
  const size_t before = cap.nodes_so_far();
  std::vector<Tensor> out;
  RunRequest req;
  req.stream = cap.stream;
  Status s = (*prog)->run(std::vector<Tensor>{dx}, &out, req);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("engine 'needs_host'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("argmax"), std::string::npos) << s.message();
  EXPECT_EQ(cap.nodes_so_far(), before) << "nothing of kiln's may be left in the caller's graph";
  ASSERT_EQ(cudaStreamEndCapture(cap.stream, &cap.graph), cudaSuccess) << "the caller's capture stays valid";
  ASSERT_EQ(cudaGraphInstantiate(&cap.exec, cap.graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(cap.exec, cap.stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(cap.stream), cudaSuccess);
  // whole_graph_capture on kiln's own stream: the probe already knows, so no capture is tried.
  std::vector<Tensor> got;
  Status plain = (*prog)->run(std::vector<Tensor>{dx}, &got);
  EXPECT_TRUE(plain.ok()) << plain.to_string();
  EXPECT_EQ(counter(**prog, "graphs_captured"), 0u);
}

TEST(CudaGraphProgramTest, LazyKernelsWithDynamicShapesAreNotCapturable) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  PrepareOptions o = graph_options(CudaGraphStrategy::kDisabled, false, "lazy");
  o.settings.kernel_specialization = KernelSpecializationStrategy::kLazy;
  auto prog = gpu->prepare(mlp_graph(), o);
  ASSERT_TRUE(prog.ok()) << prog.status().to_string();
  std::string reason;
  EXPECT_FALSE((*prog)->is_stream_capturable(std::vector<Dims>{{600, 8}}, &reason));
  EXPECT_NE(reason.find("dynamic_shapes_kernel_specialization_strategy"), std::string::npos) << reason;
  o.static_shapes = true;  // static engines precompile everything: lazy is fine
  auto fixed = gpu->prepare(mlp_graph(), o);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE((*fixed)->is_stream_capturable(std::vector<Dims>{{600, 8}}, &reason)) << reason;
}

TEST(CudaGraphProgramTest, MultiDeviceSafeModeChecksTheDeviceOnlyWhenOn) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  Tensor dx = to_device(random_tensor(DType::kF32, {600, 8}));
  for (bool safe : {false, true}) {
    PrepareOptions o = graph_options(CudaGraphStrategy::kDisabled, true, "devices");
    o.settings.multi_device_safe_mode = safe;
    auto prog = gpu->prepare(mlp_graph(), o);
    ASSERT_TRUE(prog.ok());
    for (int i = 0; i < 5; ++i) {
      std::vector<Tensor> out;
      ASSERT_TRUE((*prog)->run(std::vector<Tensor>{dx}, &out).ok());
    }
    EXPECT_EQ(counter(**prog, "device_checks"), safe ? 5u : 0u);
    EXPECT_EQ(counter(**prog, "device_switches"), 0u);  // one GPU here: never a switch
  }
}

}  // namespace
}  // namespace kiln::cuda::testing
