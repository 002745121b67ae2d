// Networks of convolutions on cuDNN (label gpu): a small residual network (ResNet's basic blocks)
// against the CPU at f32 and f16 and against the JIT path, its latency on both paths (printed,
// not asserted), and cuDNN convolutions inside a whole_graph_capture CUDA graph.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/op_test_util.h"

namespace kiln::cuda::testing {
namespace {

// Builds graphs node by node.
struct NetBuilder {
  std::shared_ptr<ir::Graph> g = std::make_shared<ir::Graph>();
  DType dt;
  uint32_t seed = 10;
  explicit NetBuilder(DType d) : dt(d) {}
  int node(const std::string& op, std::vector<int> in, ir::Attributes attrs = {}) {
    const int out = g->add_value(op + std::to_string(g->nodes.size()));
    ir::Node n;
    n.name = "n" + std::to_string(g->nodes.size()) + "_" + op;
    n.op = op;
    n.inputs = std::move(in);
    n.outputs = {out};
    n.attrs = std::move(attrs);
    g->add_node(std::move(n));
    return out;
  }
  // Conv k x k with `pad`, `stride`, bias; `relu`: the kiln_activation epilogue (a Relu node on
  // the CPU reference graph, built with relu_nodes).
  int conv(int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad, bool relu, bool relu_nodes) {
    ir::Attributes a;
    a.set_ints("strides", {stride, stride});
    a.set_ints("pads", {pad, pad, pad, pad});
    const double bound = 1.5 / std::sqrt(static_cast<double>(cin * k * k));
    const int w = g->add_constant("w" + std::to_string(seed), random_tensor(dt, {cout, cin, k, k}, -bound, bound, seed));
    const int b = g->add_constant("b" + std::to_string(seed), random_tensor(dt, {cout}, -0.1, 0.1, seed + 1));
    seed += 2;
    if (relu && !relu_nodes) a.set_string("kiln_activation", "Relu");
    int y = node("Conv", {x, w, b}, std::move(a));
    if (relu && relu_nodes) y = node("Relu", {y});
    return y;
  }
};

// Stem (7x7 stride 2) -> max pool -> two basic blocks (the second downsampling with a 1x1
// projection) -> global average pool. `relu_nodes`: plain Relu nodes instead of conv epilogues.
std::shared_ptr<ir::Graph> resnet_like(DType dt, bool relu_nodes) {
  NetBuilder nb(dt);
  const int x = nb.g->add_value("x", dt);
  nb.g->inputs.push_back(x);
  int h = nb.conv(x, 3, 32, 7, 2, 3, true, relu_nodes);
  ir::Attributes pool;
  pool.set_ints("kernel_shape", {3, 3});
  pool.set_ints("strides", {2, 2});
  pool.set_ints("pads", {1, 1, 1, 1});
  h = nb.node("MaxPool", {h}, pool);
  int r = nb.conv(h, 32, 32, 3, 1, 1, true, relu_nodes);
  r = nb.conv(r, 32, 32, 3, 1, 1, false, relu_nodes);
  h = nb.node("Relu", {nb.node("Add", {r, h})});
  int d = nb.conv(h, 32, 64, 3, 2, 1, true, relu_nodes);
  d = nb.conv(d, 64, 64, 3, 1, 1, false, relu_nodes);
  const int proj = nb.conv(h, 32, 64, 1, 2, 0, false, relu_nodes);
  h = nb.node("Relu", {nb.node("Add", {d, proj})});
  const int y = nb.node("GlobalAveragePool", {h});
  nb.g->outputs.push_back(y);
  return nb.g;
}

Tensor run_one(const BackendProgram& p, const Tensor& x) {
  std::vector<Tensor> out;
  Status s = p.run(std::vector<Tensor>{x}, &out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out.empty() ? Tensor() : out[0];
}

TEST(CudnnNetGpuTest, ResidualNetworkMatchesTheCpuAndTheJitPath) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  auto cpu = cpu::create_cpu_backend();
  for (DType dt : {DType::kF32, DType::kF16}) {
    const std::string what = "resnet-like " + std::string(dtype_name(dt));
    const Tensor x = random_tensor(dt, {4, 3, 64, 64}, -1, 1, 3);
    Result<std::unique_ptr<BackendProgram>> ref = cpu->prepare(resnet_like(dt, true), {});
    ASSERT_TRUE(ref.ok()) << ref.status().to_string();
    const Tensor want = run_one(**ref, x);
    for (ConvPath path : {ConvPath::kCudnn, ConvPath::kJit}) {
      ConvPathScope scope(path);
      Result<std::unique_ptr<BackendProgram>> prog = gpu->prepare(resnet_like(dt, false), {});
      ASSERT_TRUE(prog.ok()) << prog.status().to_string();
      const ConvStats before = conv_stats();
      Tensor got = run_one(**prog, to_device(x));
      const ConvStats after = conv_stats();
      const bool cudnn = path == ConvPath::kCudnn;
      EXPECT_EQ(after.cudnn_convs - before.cudnn_convs, cudnn ? 6u : 0u) << what;
      const double tol = dt == DType::kF32 ? 1e-4 : 2e-2;
      expect_close(got, want, tol, tol, what + " on " + std::string(conv_path_name(path)));
      Result<CudaProgramStats> st = program_stats(**prog);
      ASSERT_TRUE(st.ok());
      EXPECT_EQ(st->fallback_nodes, 0u);
    }
  }
}

// Median milliseconds of one synchronous run with device input `x`.
double median_ms(const BackendProgram& p, const Tensor& x, int runs) {
  std::vector<double> ms;
  for (int i = 0; i < runs + 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor y = run_one(p, x);
    if (i >= 3) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

TEST(CudnnNetGpuTest, PrintLatencyOnBothPaths) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  for (DType dt : {DType::kF32, DType::kF16}) {
    const Tensor x = to_device(random_tensor(dt, {32, 3, 224, 224}, -1, 1, 4));
    // cuDNN heuristic, cuDNN measured, JIT; each plain and replayed from a CUDA graph.
    double ms[3][2] = {};
    for (int variant = 0; variant < 3; ++variant) {
      ConvPathScope scope(variant == 2 ? ConvPath::kJit : ConvPath::kCudnn);
      const ConvAlgoSearch before_search = conv_algo_search();
      set_conv_algo_search(variant == 1 ? ConvAlgoSearch::kMeasured : ConvAlgoSearch::kHeuristic);
      for (int graphs = 0; graphs < 2; ++graphs) {
        PrepareOptions o;
        o.allow_tf32 = true;
        o.static_shapes = true;
        o.settings.kernel_specialization = KernelSpecializationStrategy::kNone;
        if (graphs) o.settings.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
        Result<std::unique_ptr<BackendProgram>> prog = gpu->prepare(resnet_like(dt, false), o);
        ASSERT_TRUE(prog.ok()) << prog.status().to_string();
        ms[variant][graphs] = median_ms(**prog, x, 20);
      }
      set_conv_algo_search(before_search);
    }
    std::printf("[ latency  ] resnet-like [32, 3, 224, 224] %s (TF32 allowed), plain / whole_graph_capture: "
                "cuDNN heuristic %.3f / %.3f ms, cuDNN measured %.3f / %.3f ms, JIT %.3f / %.3f ms; "
                "fused bias+ReLU calls so far %llu\n",
                std::string(dtype_name(dt)).c_str(), ms[0][0], ms[0][1], ms[1][0], ms[1][1], ms[2][0], ms[2][1],
                (unsigned long long)conv_stats().fused_epilogues);
  }
}

uint64_t counter(const BackendProgram& p, const char* name) {
  auto c = p.counters();
  auto it = c.find(name);
  return it == c.end() ? 0 : it->second;
}

TEST(CudnnNetGpuTest, CudnnConvolutionsReplayInsideACapturedGraph) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  ConvPathScope scope(ConvPath::kCudnn);
  for (ConvAlgoSearch search : {ConvAlgoSearch::kHeuristic, ConvAlgoSearch::kMeasured}) {
    const ConvAlgoSearch before_search = conv_algo_search();
    set_conv_algo_search(search);
    const std::string what = search == ConvAlgoSearch::kMeasured ? "measured" : "heuristic";
    PrepareOptions plain_opts, graph_opts;
    plain_opts.settings.kernel_specialization = graph_opts.settings.kernel_specialization =
        KernelSpecializationStrategy::kNone;
    graph_opts.settings.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
    plain_opts.static_shapes = graph_opts.static_shapes = true;
    graph_opts.engine_name = "resnet-like";
    // Another batch size for each search: new problems, so the measured run really measures.
    const int64_t batch = search == ConvAlgoSearch::kMeasured ? 3 : 2;
    auto plain = gpu->prepare(resnet_like(DType::kF32, false), plain_opts);
    auto graphs = gpu->prepare(resnet_like(DType::kF32, false), graph_opts);
    ASSERT_TRUE(plain.ok() && graphs.ok()) << plain.status().to_string() << graphs.status().to_string();
    const Tensor x = to_device(random_tensor(DType::kF32, {batch, 3, 64, 64}, -1, 1, 9));
    const ConvStats before = conv_stats();
    const Tensor want = to_host(run_one(**plain, x));
    for (int call = 0; call < 6; ++call) {  // plain (learns the shapes), capture, then replays
      Tensor got = run_one(**graphs, x);
      expect_close(got, want, 1e-6, 1e-6, what + " call " + std::to_string(call));
    }
    const ConvStats after = conv_stats();
    EXPECT_EQ(counter(**graphs, "graph_fallbacks"), 0u) << what;
    EXPECT_EQ(counter(**graphs, "graphs_captured"), 1u) << what;
    EXPECT_GE(counter(**graphs, "graph_replays"), 4u) << what;
    // 6 convolutions per walk: the plain program's, the graph program's plain first call and its
    // capture; replays enqueue nothing.
    const uint64_t convs = after.cudnn_convs - before.cudnn_convs;
    EXPECT_TRUE(convs >= 12 && convs <= 18 && convs % 6 == 0) << what << ": " << convs;
    if (search == ConvAlgoSearch::kMeasured) {
      EXPECT_GE(after.measured - before.measured, 1u);
    }
    set_conv_algo_search(before_search);
  }
}

}  // namespace
}  // namespace kiln::cuda::testing
