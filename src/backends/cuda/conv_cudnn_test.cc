// cuDNN convolution pieces that need no GPU (label nogpu): what the build found, the path
// settings, the mapping of a Conv to cuDNN's parameters (checked against cuDNN's own output-size
// arithmetic where the library loads), and which path the Conv handler takes, seen through the
// host-only kernel planner.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/kernel_plan.h"
#include "ir/graph.h"

namespace kiln::cuda {
namespace {

struct Geom {
  Dims x;                   // [N, C, spatial...]
  Dims k;                   // kernel
  std::vector<int64_t> s, pb, pe, d;
  int64_t m = 4, groups = 1;
};

// The window kernels' 3-dim form (spatial dims right-aligned), as nn_ops.cc builds it.
kernels::WindowArgs window(const Geom& g) {
  kernels::WindowArgs a{};
  for (int j = 0; j < 3; ++j) a.in[j] = a.out[j] = a.k[j] = a.s[j] = a.d[j] = 1, a.pb[j] = a.pe[j] = 0;
  const size_t r = g.x.size() - 2;
  for (size_t i = 0; i < r; ++i) {
    const size_t j = 3 - r + i;
    a.in[j] = g.x[2 + i];
    a.k[j] = g.k[i];
    a.s[j] = g.s[i];
    a.d[j] = g.d[i];
    a.pb[j] = g.pb[i];
    a.pe[j] = g.pe[i];
    a.out[j] = (a.in[j] + a.pb[j] + a.pe[j] - a.d[j] * (a.k[j] - 1) - 1) / a.s[j] + 1;
  }
  a.n = g.x[0];
  a.c = g.x[1];
  a.m = g.m;
  a.groups = g.groups;
  a.rank = static_cast<int32_t>(r);
  return a;
}

bool cudnn_loads() { return cudnn_runtime_version().ok(); }

TEST(CudnnBuildTest, BuildFlagAgreesWithTheLibraryAtRunTime) {
  const CudnnBuildInfo info = cudnn_build_info();
  Result<int> v = cudnn_runtime_version();
  std::printf("[ cudnn ] compiled: %s %s, library %s; at run time: %s\n", info.compiled ? "yes" : "no",
              info.version.c_str(), info.library.c_str(),
              v.ok() ? std::to_string(*v).c_str() : v.status().to_string().c_str());
  if (!info.compiled) {
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(v.status().message().find("built without cuDNN"), std::string::npos) << v.status().to_string();
    return;
  }
  EXPECT_EQ(info.version.rfind("9.", 0), 0u) << info.version;
  // Where the file configure found is here (the build machine), it loads, with a major version of
  // 9. Binaries moved to another machine may find another libcudnn.so.9 (or none) instead.
  if (std::filesystem::exists(info.library)) {
    ASSERT_TRUE(v.ok()) << v.status().to_string();
  }
  if (v.ok()) {
    EXPECT_EQ(*v / 10000, 9);
  }
}

TEST(ConvPathTest, NamesParseAndUnknownNamesListTheValidOnes) {
  for (ConvPath p : {ConvPath::kAuto, ConvPath::kCudnn, ConvPath::kJit}) {
    Result<ConvPath> back = parse_conv_path(conv_path_name(p));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, p);
  }
  Result<ConvPath> bad = parse_conv_path("cuDNN");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("auto|cudnn|jit"), std::string::npos);
  EXPECT_TRUE(parse_conv_algo_search("measured").ok());
  EXPECT_FALSE(parse_conv_algo_search("fastest").ok());
}

TEST(ConvPathTest, SetterOverridesTheProcessSetting) {
  const ConvPath before = conv_path();
  set_conv_path(ConvPath::kJit);
  EXPECT_EQ(conv_path(), ConvPath::kJit);
  set_conv_path(ConvPath::kCudnn);
  EXPECT_EQ(conv_path(), ConvPath::kCudnn);
  set_conv_path(before);
}

TEST(CudnnParamsTest, TwoDimensionalConvMapsToNchwDescriptors) {
  std::string why;
  auto p = cudnn_conv_params(window({{2, 3, 9, 11}, {3, 5}, {2, 1}, {1, 2}, {1, 2}, {1, 1}, 4, 1}), DType::kF16,
                             true, false, &why);
  ASSERT_TRUE(p) << why;
  EXPECT_EQ(p->nb_dims, 4);
  EXPECT_EQ(std::vector<int>(p->x, p->x + 4), (std::vector<int>{2, 3, 9, 11}));
  EXPECT_EQ(std::vector<int>(p->w, p->w + 4), (std::vector<int>{4, 3, 3, 5}));
  EXPECT_EQ(std::vector<int>(p->y, p->y + 4), (std::vector<int>{2, 4, 5, 11}));
  EXPECT_EQ(std::vector<int>(p->pad, p->pad + 2), (std::vector<int>{1, 2}));
  EXPECT_EQ(std::vector<int>(p->stride, p->stride + 2), (std::vector<int>{2, 1}));
  EXPECT_EQ(std::vector<int>(p->dilation, p->dilation + 2), (std::vector<int>{1, 1}));
  EXPECT_EQ(p->groups, 1);
  EXPECT_TRUE(p->bias);
  EXPECT_FALSE(p->relu);
  EXPECT_EQ(p->dtype, DType::kF16);
}

TEST(CudnnParamsTest, OneDimensionalConvGetsHeightOne) {
  std::string why;
  auto p = cudnn_conv_params(window({{2, 3, 20}, {5}, {2}, {2}, {2}, {3}, 6, 3}), DType::kF32, false, true, &why);
  ASSERT_TRUE(p) << why;
  EXPECT_EQ(p->nb_dims, 4);
  EXPECT_EQ(std::vector<int>(p->x, p->x + 4), (std::vector<int>{2, 3, 1, 20}));
  EXPECT_EQ(std::vector<int>(p->w, p->w + 4), (std::vector<int>{6, 1, 1, 5}));
  EXPECT_EQ(std::vector<int>(p->y, p->y + 4), (std::vector<int>{2, 6, 1, 6}));  // (20 + 4 - 12 - 1) / 2 + 1
  EXPECT_EQ(std::vector<int>(p->pad, p->pad + 2), (std::vector<int>{0, 2}));
  EXPECT_EQ(std::vector<int>(p->stride, p->stride + 2), (std::vector<int>{1, 2}));
  EXPECT_EQ(std::vector<int>(p->dilation, p->dilation + 2), (std::vector<int>{1, 3}));
  EXPECT_EQ(p->groups, 3);
  EXPECT_TRUE(p->relu);
}

TEST(CudnnParamsTest, ThreeDimensionalAndDepthwiseConvs) {
  std::string why;
  auto p3 = cudnn_conv_params(window({{1, 2, 4, 6, 8}, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 2}, 5, 1}),
                              DType::kBF16, false, false, &why);
  ASSERT_TRUE(p3) << why;
  EXPECT_EQ(p3->nb_dims, 5);
  EXPECT_EQ(std::vector<int>(p3->x, p3->x + 5), (std::vector<int>{1, 2, 4, 6, 8}));
  EXPECT_EQ(std::vector<int>(p3->y, p3->y + 5), (std::vector<int>{1, 5, 4, 3, 6}));
  EXPECT_EQ(std::vector<int>(p3->dilation, p3->dilation + 3), (std::vector<int>{1, 1, 2}));
  auto dw = cudnn_conv_params(window({{2, 8, 7, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 16, 8}), DType::kF32,
                              true, true, &why);
  ASSERT_TRUE(dw) << why;
  EXPECT_EQ(dw->groups, 8);
  EXPECT_EQ(std::vector<int>(dw->w, dw->w + 4), (std::vector<int>{16, 1, 3, 3}));
}

TEST(CudnnParamsTest, CasesCudnnCannotTakeAreDeclinedWithAReason) {
  std::string why;
  EXPECT_FALSE(cudnn_conv_params(window({{1, 3, 10, 11}, {3, 3}, {2, 2}, {0, 1}, {1, 0}, {1, 1}}), DType::kF32,
                                 false, false, &why));
  EXPECT_EQ(why, "asymmetric pads");
  EXPECT_FALSE(cudnn_conv_params(window({{1, 3, 8, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}), DType::kF64, false,
                                 false, &why));
  EXPECT_EQ(why, "dtype f64");
  // 2^31 output elements: cuDNN's descriptors take int strides.
  EXPECT_FALSE(cudnn_conv_params(window({{1024, 2, 1024, 1024}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, {1, 1}, 2, 1}),
                                 DType::kF16, false, false, &why));
  EXPECT_EQ(why, "a tensor of 2^31 elements or more");
}

TEST(CudnnParamsTest, KeyNamesEverythingTheChoiceDependsOn) {
  std::string why;
  const Geom g{{2, 3, 9, 9}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 4, 1};
  auto p = cudnn_conv_params(window(g), DType::kF32, false, false, &why);
  ASSERT_TRUE(p);
  const std::string base = cudnn_conv_key(*p, false, 0);
  EXPECT_EQ(base, cudnn_conv_key(*cudnn_conv_params(window(g), DType::kF32, false, false, &why), false, 0));
  EXPECT_NE(base, cudnn_conv_key(*p, true, 0));
  EXPECT_NE(base, cudnn_conv_key(*p, false, 1));
  EXPECT_NE(base, cudnn_conv_key(*cudnn_conv_params(window(g), DType::kF16, false, false, &why), false, 0));
  EXPECT_NE(base, cudnn_conv_key(*cudnn_conv_params(window(g), DType::kF32, true, false, &why), false, 0));
  EXPECT_NE(base, cudnn_conv_key(*cudnn_conv_params(window(g), DType::kF32, false, true, &why), false, 0));
  Geom strided = g;
  strided.s = {2, 2};
  EXPECT_NE(base, cudnn_conv_key(*cudnn_conv_params(window(strided), DType::kF32, false, false, &why), false, 0));
  Geom dilated = g;
  dilated.d = {2, 2};
  EXPECT_NE(base, cudnn_conv_key(*cudnn_conv_params(window(dilated), DType::kF32, false, false, &why), false, 0));
}

TEST(CudnnParamsTest, CudnnComputesTheSameOutputDims) {
  if (!cudnn_loads()) GTEST_SKIP() << "no cuDNN here: " << cudnn_runtime_version().status().to_string();
  const Geom cases[] = {{{2, 3, 9, 11}, {3, 5}, {2, 1}, {1, 2}, {1, 2}, {1, 1}, 4, 1},
                        {{2, 3, 20}, {5}, {2}, {2}, {2}, {3}, 6, 3},
                        {{1, 2, 4, 6, 8}, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 2}, 5, 1},
                        {{2, 8, 7, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 16, 8},
                        {{1, 4, 12, 12}, {3, 3}, {3, 3}, {2, 2}, {2, 2}, {2, 2}, 6, 2},
                        {{4, 64, 56, 56}, {1, 1}, {2, 2}, {0, 0}, {0, 0}, {1, 1}, 128, 1}};
  for (const Geom& g : cases)
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
      for (bool relu : {false, true}) {
        std::string why;
        auto p = cudnn_conv_params(window(g), dt, true, relu, &why);
        ASSERT_TRUE(p) << why;
        Status s = cudnn_check_descriptors(*p);
        EXPECT_TRUE(s.ok()) << cudnn_conv_key(*p, false, 0) << ": " << s.to_string();
      }
  // A wrong output size is caught before any launch.
  std::string why;
  auto p = cudnn_conv_params(window(cases[0]), DType::kF32, false, false, &why);
  ASSERT_TRUE(p);
  p->y[3] += 1;
  Status s = cudnn_check_descriptors(*p);
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.to_string();
}

// One Conv node: X a runtime input, W and B constants.
ir::Graph conv_graph(const Geom& g, bool bias, const std::string& activation) {
  ir::Graph graph;
  ir::Node n;
  n.name = "conv0";
  n.op = "Conv";
  n.attrs.set_int("group", g.groups);
  n.attrs.set_ints("strides", g.s);
  n.attrs.set_ints("dilations", g.d);
  std::vector<int64_t> pads = g.pb;
  pads.insert(pads.end(), g.pe.begin(), g.pe.end());
  n.attrs.set_ints("pads", pads);
  if (!activation.empty()) n.attrs.set_string("kiln_activation", activation);
  const int x = graph.add_value("x", DType::kF32, ir::Shape::of(g.x));
  graph.inputs.push_back(x);
  Dims wd = {g.m, g.x[1] / g.groups};
  wd.insert(wd.end(), g.k.begin(), g.k.end());
  n.inputs = {x, graph.add_constant("w", Tensor::zeros(DType::kF32, wd))};
  if (bias) n.inputs.push_back(graph.add_constant("b", Tensor::zeros(DType::kF32, {g.m})));
  const int y = graph.add_value("y");
  n.outputs = {y};
  graph.outputs.push_back(y);
  graph.add_node(std::move(n));
  return graph;
}

// The planned run of the one-Conv graph under `path` (cuDNN calls launch no kiln kernel).
Result<KernelPlan> plan_conv(ConvPath path, const Geom& g, bool bias, const std::string& activation = "") {
  const ConvPath before = conv_path();
  set_conv_path(path);
  ir::Graph graph = conv_graph(g, bias, activation);
  const Dims shapes[] = {g.x};
  Result<KernelPlan> plan = plan_kernels(graph, shapes, -1);
  set_conv_path(before);
  return plan;
}

// Kernel launches of that run; the Conv must run on the GPU.
Result<uint64_t> planned_launches(ConvPath path, const Geom& g, bool bias, const std::string& activation = "") {
  KILN_ASSIGN_OR_RETURN(KernelPlan plan, plan_conv(path, g, bias, activation));
  EXPECT_EQ(plan.gpu_nodes, 1u);
  return plan.launches;
}

kernels::WindowArgs conv_args(int64_t n, int64_t c, int64_t m, int64_t hw_out, int64_t k, int64_t groups) {
  kernels::WindowArgs g{};
  g.rank = 2;
  g.n = n;
  g.c = c;
  g.m = m;
  g.groups = groups;
  for (int j = 0; j < 3; ++j) {
    g.in[j] = g.out[j] = j == 0 ? 1 : hw_out;
    g.k[j] = j == 0 ? 1 : k;
    g.s[j] = g.d[j] = 1;
  }
  return g;
}

TEST(CudnnDispatchTest, AutoOffersCudnnOnlyLargeUngroupedConvolutions) {
  // resnet18 3x3 64->64 at 56x56: 115M multiply-adds at batch 1 (JIT), 3.7G at batch 32 (cuDNN).
  EXPECT_FALSE(auto_prefers_cudnn(conv_args(1, 64, 64, 56, 3, 1)));
  EXPECT_TRUE(auto_prefers_cudnn(conv_args(32, 64, 64, 56, 3, 1)));
  EXPECT_TRUE(auto_prefers_cudnn(conv_args(5, 64, 64, 56, 3, 1)));
  EXPECT_FALSE(auto_prefers_cudnn(conv_args(4, 64, 64, 56, 3, 1)));
  // Depthwise and grouped convolutions stay on the JIT kernels at any size.
  EXPECT_FALSE(auto_prefers_cudnn(conv_args(256, 64, 64, 112, 3, 64)));
  EXPECT_FALSE(auto_prefers_cudnn(conv_args(256, 64, 64, 112, 3, 2)));
  // Huge dims do not overflow the estimate.
  EXPECT_TRUE(auto_prefers_cudnn(conv_args(int64_t{1} << 40, 1 << 20, 1 << 20, 1 << 20, 7, 1)));
}

TEST(CudnnDispatchTest, ConvRunsOnCudnnOrTheJitKernelsAsThePathSays) {
  const Geom sym{{2, 3, 9, 9}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 4, 1};
  const Geom asym{{1, 3, 10, 11}, {3, 3}, {2, 2}, {0, 1}, {1, 0}, {1, 1}, 5, 1};
  Result<uint64_t> jit = planned_launches(ConvPath::kJit, sym, true);
  ASSERT_TRUE(jit.ok()) << jit.status().to_string();
  EXPECT_GE(*jit, 1u) << "im2col (and the bias) are kiln kernels";
  Result<uint64_t> jit_asym = planned_launches(ConvPath::kCudnn, asym, false);
  ASSERT_TRUE(jit_asym.ok()) << jit_asym.status().to_string();
  EXPECT_GE(*jit_asym, 1u) << "asymmetric pads stay on the JIT kernels even when cuDNN is asked for";
  // An activation cuDNN is not given never goes to cuDNN: the JIT path runs or declines the node.
  Result<KernelPlan> unknown_act = plan_conv(ConvPath::kAuto, sym, true, "Gelu:tanh");
  if (unknown_act.ok()) {
    EXPECT_TRUE(unknown_act->launches > 0 || unknown_act->fallback_nodes == 1);
  }
  // Path auto leaves small problems to the JIT kernels, cuDNN or not.
  Result<uint64_t> small = planned_launches(ConvPath::kAuto, sym, true);
  ASSERT_TRUE(small.ok()) << small.status().to_string();
  EXPECT_GE(*small, 1u) << "a 2x3x9x9 conv is below auto's cuDNN threshold";
  if (cudnn_loads()) {
    for (const char* act : {"", "Relu"}) {
      Result<uint64_t> on = planned_launches(ConvPath::kCudnn, sym, true, act);
      ASSERT_TRUE(on.ok()) << on.status().to_string();
      EXPECT_EQ(*on, 0u) << "cuDNN runs the conv, its bias and '" << act << "': no kiln kernel";
    }
    // resnet18's 3x3 64->64 convolution at 56x56, batch 8: past the threshold, cuDNN under auto.
    Result<uint64_t> big =
        planned_launches(ConvPath::kAuto, {{8, 64, 56, 56}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 64, 1}, true);
    ASSERT_TRUE(big.ok()) << big.status().to_string();
    EXPECT_EQ(*big, 0u);
    Result<uint64_t> depthwise =
        planned_launches(ConvPath::kCudnn, {{2, 8, 7, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 8, 8}, true);
    ASSERT_TRUE(depthwise.ok());
    EXPECT_EQ(*depthwise, 0u);
  } else {
    Result<uint64_t> forced = planned_launches(ConvPath::kCudnn, sym, true);
    ASSERT_FALSE(forced.ok()) << "path cudnn without a cuDNN is an error, not a silent fallback";
    EXPECT_EQ(forced.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(forced.status().message().find("conv0"), std::string::npos) << forced.status().to_string();
    Result<uint64_t> fallback = planned_launches(ConvPath::kAuto, sym, true);
    ASSERT_TRUE(fallback.ok());
    EXPECT_GE(*fallback, 1u);
  }
}

}  // namespace
}  // namespace kiln::cuda
