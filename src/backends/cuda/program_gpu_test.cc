// The CUDA program as a whole (label gpu): host and device I/O, host-side shape arithmetic,
// concurrent runs, and errors found on the GPU.
#include <thread>

#include "backends/cuda/op_test_util.h"
#include "backends/cuda/kernel_table.h"

namespace kiln::cuda::testing {
namespace {

// x [B, 8] -> Shape -> Gather(0) -> Unsqueeze -> Concat([b, 2, 4]) -> Reshape(x) -> Relu -> Softmax
std::shared_ptr<ir::Graph> shape_graph() {
  auto g = std::make_shared<ir::Graph>();
  int x = g->add_value("x", DType::kF32);
  g->inputs.push_back(x);
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
  int shape = node("Shape", {x}, "shape");
  int zero = g->add_constant("zero", Tensor::from_vector(DType::kI64, {}, std::vector<int64_t>{0}));
  int b = node("Gather", {shape, zero}, "b");
  int axes = g->add_constant("axes", ints({0}));
  int b1 = node("Unsqueeze", {b, axes}, "b1");
  int rest = g->add_constant("rest", ints({2, 4}));
  int cat_out = g->add_value("target");
  ir::Node cat;
  cat.name = "target";
  cat.op = "Concat";
  cat.attrs.set_int("axis", 0);
  cat.inputs = {b1, rest};
  cat.outputs = {cat_out};
  g->add_node(std::move(cat));
  int r = node("Reshape", {x, cat_out}, "r");
  int relu = node("Relu", {r}, "relu");
  int sm = node("Softmax", {relu}, "y");
  g->outputs.push_back(sm);
  return g;
}

TEST(CudaProgramTest, HostInputsGiveHostOutputsAndShapeMathStaysOnHost) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  std::shared_ptr<const ir::Graph> g = shape_graph();
  auto cpu = cpu::create_cpu_backend();
  auto ref = cpu->prepare(g, {});
  auto prog = gpu->prepare(g, {});
  ASSERT_TRUE(ref.ok() && prog.ok()) << prog.status().to_string();
  for (int64_t batch : {600, 1000, 2048}) {  // more than 4096 elements: x goes to the GPU
    std::vector<Tensor> in = {random_tensor(DType::kF32, {batch, 8}, -3, 3, static_cast<uint32_t>(batch))}, want, got;
    ASSERT_TRUE((*ref)->run(in, &want).ok());
    Status s = (*prog)->run(in, &got);
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_EQ(got[0].device().type, DeviceType::kCpu);
    expect_close(got[0], want[0], 1e-5, 1e-6, "batch " + std::to_string(batch));
  }
  CudaProgramStats st = program_stats(**prog).value();
  EXPECT_EQ(st.fallback_nodes, 0u);
  EXPECT_GE(st.host_nodes, 6u);  // Gather, Unsqueeze, Concat of the shape, per run
  EXPECT_EQ(st.downloads, 3u);   // one result per run; the shape never leaves the host
}

TEST(CudaProgramTest, ConcurrentRunsAreIndependent) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  OpCase c{"MatMul", {}, {random_tensor(DType::kF32, {64, 256}), random_tensor(DType::kF32, {256, 128}, -1, 1, 9)},
           {false, true}};
  std::shared_ptr<const ir::Graph> g = one_node_graph(c);
  auto cpu = cpu::create_cpu_backend();
  auto ref = cpu->prepare(g, {});
  auto prog = gpu->prepare(g, {});
  ASSERT_TRUE(ref.ok() && prog.ok());
  constexpr int kThreads = 8, kRuns = 20;
  std::vector<std::vector<Tensor>> inputs(kThreads), wants(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    inputs[t] = {random_tensor(DType::kF32, {64, 256}, -1, 1, 100 + t)};
    ASSERT_TRUE((*ref)->run(inputs[t], &wants[t]).ok());
  }
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r) {
        std::vector<Tensor> got;
        Status s = (*prog)->run(inputs[t], &got);
        if (!s.ok()) { errors[t] = s.to_string(); return; }
        Tensor h = to_host(got[0]);
        for (int64_t i = 0; i < h.numel(); ++i)
          if (std::fabs(element(h, i) - element(wants[t][0], i)) > 1e-3) { errors[t] = "wrong result"; return; }
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  EXPECT_EQ((*prog)->runs(), static_cast<uint64_t>(kThreads * kRuns));
}

TEST(CudaProgramTest, GatherIndexOutOfRangeIsAnErrorNamingTheNode) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  OpCase c{"Gather", {}, {random_tensor(DType::kF32, {10, 8}), ints({0, 10})}, {true, false}};
  auto prog = gpu->prepare(one_node_graph(c), {});
  ASSERT_TRUE(prog.ok());
  std::vector<Tensor> out;
  Status s = (*prog)->run(std::vector<Tensor>{to_device(ints({0, 10}))}, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("n0"), std::string::npos) << s.message();
  // The program stays usable after the error.
  s = (*prog)->run(std::vector<Tensor>{to_device(ints({0, 9}))}, &out);
  EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(CudaProgramTest, KernelsCompileOncePerProcess) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  OpCase c{"Tanh", {}, {random_tensor(DType::kF64, {1000})}};
  check_op(c, "first");
  const uint64_t compiles = KernelTable::global().stats().compiles;
  check_op(c, "second program, same kernel");
  EXPECT_EQ(KernelTable::global().stats().compiles, compiles);
}

TEST(CudaProgramTest, WrongInputCountAndForeignDeviceAreErrors) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  OpCase c{"Relu", {}, {random_tensor(DType::kF32, {4})}};
  auto prog = gpu->prepare(one_node_graph(c), {});
  ASSERT_TRUE(prog.ok());
  std::vector<Tensor> out;
  EXPECT_EQ((*prog)->run({}, &out).code(), StatusCode::kInvalidArgument);
  Tensor dev = to_device(c.inputs[0]);
  Tensor other = Tensor::wrap(dev.dtype(), dev.dims(), dev.data(), dev.storage(), Device{DeviceType::kCuda, 7});
  Status s = (*prog)->run(std::vector<Tensor>{other}, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
}

}  // namespace
}  // namespace kiln::cuda::testing
