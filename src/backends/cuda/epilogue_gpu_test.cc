// Fused epilogues on the GPU (label gpu): every cuBLASLt epilogue (bias, Relu, Gelu:tanh, and the
// combinations) and the Relu of the direct conv kernel against the CPU backend at f32, f16 and
// bf16 with awkward shapes; and, on the shared models, the kernel launches the fuse_epilogues
// pass saves per run with results still matching the references.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/op_test_util.h"
#include "compiler/passes.h"
#include "onnx/importer.h"
#include "tests/util/testdata.h"

namespace kiln::cuda::testing {
namespace {

namespace fs = std::filesystem;

const DType kTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

void set_tolerance(OpCase& c, DType dt) {
  c.rtol = c.atol = dt == DType::kF32 ? 1e-4 : dt == DType::kF16 ? 1e-2 : 4e-2;
}

std::string label(const std::string& what, DType dt, const std::string& act) {
  return what + " " + std::string(dtype_name(dt)) + (act.empty() ? "" : " " + act);
}

// MatMul(A, B, bias?) with kiln_activation: B a constant weight or a runtime batched operand.
TEST(CudaEpilogueGpuTest, MatMulBiasAndActivations) {
  struct Shape {
    Dims a, b;
    bool b_constant;
    const char* what;
  };
  const Shape shapes[] = {
      {{3, 5, 17}, {17, 13}, true, "[3,5,17]x[17,13] folded batch"},
      {{2, 3, 9, 17}, {3, 17, 13}, false, "[2,3,9,17]x[3,17,13] broadcast batch"},
      {{4, 7, 16}, {4, 16, 33}, false, "[4,7,16]x[4,16,33] batched"},
      {{1, 31}, {31, 1}, true, "[1,31]x[31,1] N=1"},
  };
  for (DType dt : kTypes) {
    for (const Shape& s : shapes) {
      for (const std::string act : {"", "Relu", "Gelu:tanh"}) {
        for (bool bias : {false, true}) {
          if (!bias && act.empty()) continue;
          OpCase c{"MatMul", {}, {random_tensor(dt, s.a, -1, 1, 3), random_tensor(dt, s.b, -1, 1, 4)}, {false, s.b_constant}};
          if (bias) {
            c.inputs.push_back(random_tensor(dt, {s.b.back()}, -1, 1, 5));
            c.constant.push_back(true);
          }
          if (!act.empty()) c.attrs.set_string("kiln_activation", act);
          set_tolerance(c, dt);
          check_op(c, label(std::string("MatMul ") + s.what + (bias ? " +bias" : ""), dt, act));
        }
      }
    }
  }
}

// MatMul with fuse_epilogues' other extensions against the CPU backend: kiln_trans_a /
// kiln_trans_b (operands stored with their last two axes swapped; batched, broadcast and folded
// batches), kiln_alpha, and the residual 4th input (with and without a bias, then an activation).
TEST(CudaEpilogueGpuTest, MatMulTransposedOperandsAlphaAndResidual) {
  struct Shape {
    Dims a, b;  // as stored
    bool ta, tb, b_constant;
    const char* what;
  };
  const Shape shapes[] = {
      {{2, 4, 6, 8}, {2, 4, 6, 8}, false, true, false, "q@k^T [2,4,6,8]"},
      {{3, 17, 5}, {17, 13}, true, false, true, "A^T [3,17,5]x[17,13]"},
      {{2, 3, 9, 17}, {3, 13, 17}, false, true, false, "[2,3,9,17]x[3,13,17]^T broadcast"},
      {{4, 16, 7}, {4, 33, 16}, true, true, false, "A^T B^T batched"},
      {{5, 31}, {1, 31}, false, true, true, "[5,31]x[1,31]^T N=1"},
  };
  for (DType dt : kTypes) {
    for (const Shape& s : shapes) {
      const int64_t m = s.ta ? s.a.back() : s.a[s.a.size() - 2];
      const int64_t n = s.tb ? s.b[s.b.size() - 2] : s.b.back();
      Dims od;  // the product's dims: broadcast batch, m, n
      {
        const size_t br = std::max(s.a.size(), s.b.size()) - 2;
        od.assign(br, 1);
        for (size_t d = 0; d < br; ++d) {
          const int64_t x = d + s.a.size() - 2 >= br ? s.a[d + s.a.size() - 2 - br] : 1;
          const int64_t y = d + s.b.size() - 2 >= br ? s.b[d + s.b.size() - 2 - br] : 1;
          od[d] = std::max(x, y);
        }
        od.push_back(m);
        od.push_back(n);
      }
      for (int variant = 0; variant < 4; ++variant) {
        const bool alpha = variant & 1, residual = variant & 2;
        for (bool bias : {false, true}) {
          if (!alpha && !residual && bias) continue;
          OpCase c{"MatMul", {}, {random_tensor(dt, s.a, -1, 1, 13), random_tensor(dt, s.b, -1, 1, 14)}, {false, s.b_constant}};
          if (s.ta) c.attrs.set_int("kiln_trans_a", 1);
          if (s.tb) c.attrs.set_int("kiln_trans_b", 1);
          if (alpha) c.attrs.set_float("kiln_alpha", 0.125);
          c.inputs.push_back(bias ? random_tensor(dt, {n}, -1, 1, 15) : Tensor());
          c.constant.push_back(bias);
          if (residual) {
            c.inputs.push_back(random_tensor(dt, od, -1, 1, 16));
            c.constant.push_back(false);
            c.attrs.set_string("kiln_activation", "Relu");
          }
          set_tolerance(c, dt);
          check_op(c, label(std::string("MatMul ") + s.what + (alpha ? " alpha" : "") + (bias ? " +bias" : "") +
                                (residual ? " +residual relu" : ""),
                            dt, ""));
        }
      }
    }
  }
}

// GEMM autotuning (GemmRunner::set_autotune): a dynamic program under none times nothing; a
// static-shape program times cuBLASLt's candidates for a problem on its first call, once per
// process (a second program reuses the choice); results match the CPU throughout. (Under lazy the
// second call of a problem times: the dynamic scenario of bench/compare.py measures that.)
TEST(CudaEpilogueGpuTest, StaticProgramsTimeGemmCandidatesOnce) {
  if (std::getenv("KILN_GEMM_AUTOTUNE")) GTEST_SKIP() << "KILN_GEMM_AUTOTUNE overrides the policy";
  // A problem no other test uses, so that this process has not timed it yet.
  OpCase c{"MatMul", {}, {random_tensor(DType::kF32, {37, 96}, -1, 1, 21), random_tensor(DType::kF32, {96, 200}, -1, 1, 22)}, {false, true}};
  c.rtol = c.atol = 1e-4;
  std::shared_ptr<const ir::Graph> g = one_node_graph(c);
  auto cpu = cpu::create_cpu_backend();
  auto ref = cpu->prepare(g, {});
  ASSERT_TRUE(ref.ok());
  std::vector<Tensor> want;
  ASSERT_TRUE((*ref)->run(runtime_inputs(c), &want).ok());
  auto timed = [](const BackendProgram& p) { return p.counters().at("gemm_tuning_timed"); };
  PrepareOptions dynamic_opts;
  dynamic_opts.settings.runtime_cache = RuntimeCacheSetting::none();
  dynamic_opts.settings.kernel_specialization = KernelSpecializationStrategy::kNone;
  PrepareOptions static_opts = dynamic_opts;
  static_opts.static_shapes = true;
  const Tensor x = to_device(c.inputs[0]);
  const PrepareOptions* order[] = {&dynamic_opts, &static_opts, &static_opts};
  const uint64_t expected_timed[] = {0, 1, 0};  // the second static program takes the first's choice
  for (int i = 0; i < 3; ++i) {
    auto prog = cuda_backend()->prepare(g, *order[i]);
    ASSERT_TRUE(prog.ok()) << prog.status().to_string();
    for (int call = 0; call < 3; ++call) {
      std::vector<Tensor> got;
      const std::vector<Tensor> in = {x};
      ASSERT_TRUE((*prog)->run(in, &got).ok());
      expect_close(got[0], want[0], c.rtol, c.atol, "MatMul call " + std::to_string(call));
    }
    EXPECT_EQ(timed(**prog), expected_timed[i]) << "program " << i;
  }
}

// Gemm: C as a [N] row (bias epilogue), as a [M, 1] column (prefilled, beta), none; alpha != 1.
TEST(CudaEpilogueGpuTest, GemmActivations) {
  for (DType dt : kTypes) {
    for (const std::string act : {"Relu", "Gelu:tanh"}) {
      for (int c_kind = 0; c_kind < 3; ++c_kind) {
        OpCase c{"Gemm", {}, {random_tensor(dt, {7, 19}, -1, 1, 6), random_tensor(dt, {11, 19}, -1, 1, 7)}, {false, true}};
        c.attrs.set_int("transB", 1);
        c.attrs.set_float("alpha", 0.75);
        if (c_kind == 1) {
          c.inputs.push_back(random_tensor(dt, {11}, -1, 1, 8));
          c.constant.push_back(true);
        } else if (c_kind == 2) {
          c.inputs.push_back(random_tensor(dt, {7, 1}, -1, 1, 9));
          c.constant.push_back(true);
          c.attrs.set_float("beta", 0.5);
        }
        c.attrs.set_string("kiln_activation", act);
        set_tolerance(c, dt);
        check_op(c, label("Gemm C kind " + std::to_string(c_kind), dt, act));
      }
    }
  }
}

// Conv with and without bias, Relu, on the JIT kernels (im2col + cuBLASLt; 1x1 direct; grouped
// direct kernel) and on the default path (cuDNN where it loads).
// Runs `c` on the CPU and on CUDA (device inputs): the results match, the product ran on the
// GEMV kernel when `want_gemv`, the run made `want_launches` kernel launches besides GEMMs (when
// not negative), and a second run is bitwise equal to the first.
void check_gemv_case(const OpCase& c, const std::string& what, bool want_gemv, int want_launches = -1) {
  SCOPED_TRACE(what);
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  auto cpu = cpu::create_cpu_backend();
  std::shared_ptr<const ir::Graph> g = one_node_graph(c);
  Result<std::unique_ptr<BackendProgram>> ref = cpu->prepare(g, {});
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  std::vector<Tensor> in = runtime_inputs(c), want;
  ASSERT_TRUE((*ref)->run(in, &want).ok());
  Result<std::unique_ptr<BackendProgram>> prog = gpu->prepare(g, {});
  ASSERT_TRUE(prog.ok()) << prog.status().to_string();
  std::vector<Tensor> dev_in, got, again;
  for (const Tensor& t : in) dev_in.push_back(to_device(t));
  Status s = (*prog)->run(dev_in, &got);
  ASSERT_TRUE(s.ok()) << s.to_string();
  ASSERT_EQ(got.size(), 1u);
  expect_close(got[0], want[0], c.rtol, c.atol, what);
  if (want_gemv) EXPECT_EQ((*prog)->counters()["gemm_gemv"], 1u) << "the product ran on cuBLASLt, not the GEMV kernel";
  if (want_launches >= 0) {
    Result<CudaProgramStats> st = program_stats(**prog);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->kernel_launches, static_cast<uint64_t>(want_launches));
  }
  ASSERT_TRUE((*prog)->run(dev_in, &again).ok());
  const Tensor x = to_host(got[0]), y = to_host(again[0]);
  EXPECT_EQ(std::memcmp(x.data(), y.data(), x.nbytes()), 0) << "two runs differ";
}

// One row of D (m == 1) and one column (n == 1): kiln's GEMV kernel (kernels/gemm.h) instead of
// cuBLASLt, counted in gemm_gemv, for B as stored [k, n] and [n, k] (kiln_trans_b), A stored
// transposed (kiln_trans_a), with alpha, bias, activations and a residual, K and N not multiples
// of the kernel's 8, 16 or 32, and K below one unrolled step; results match the CPU backend and
// are bitwise equal from one run to the next (no atomics, a fixed order of additions).
TEST(CudaEpilogueGpuTest, OneRowAndOneColumnProductsRunOnTheGemvKernel) {
  if (const char* e = std::getenv("KILN_GEMV"); e && std::string(e) == "0") GTEST_SKIP() << "KILN_GEMV=0";
  struct Shape {
    int64_t m, k, n;
  };
  // Every case has an operand of more than 4096 elements: a node whose inputs are all smaller is
  // planned on the host (cuda_backend.h), so its GEMV kernel would not be loaded at creation and a
  // run would take cuBLASLt unless an earlier case had loaded the kernel.
  const Shape shapes[] = {{1, 1024, 1024}, {1, 1031, 1000}, {1, 7, 600}, {1, 4100, 1}, {1000, 1024, 1}, {600, 7, 1}};
  for (DType dt : kTypes) {
    for (const Shape& sh : shapes) {
      for (int layout = 0; layout < 3; ++layout) {  // plain, B^T, A^T
        for (int variant = 0; variant < 3; ++variant) {  // nothing; bias + Gelu:tanh; alpha + residual + Relu (+ bias for rows)
          const bool ta = layout == 2, tb = layout == 1, row = sh.m == 1;
          if (!row && variant == 1) continue;  // a bias along a column is not the GEMV kernel's (gemv_applies)
          const Dims a_dims = ta ? Dims{sh.k, sh.m} : Dims{sh.m, sh.k};
          const Dims b_dims = tb ? Dims{sh.n, sh.k} : Dims{sh.k, sh.n};
          OpCase c{"MatMul", {}, {random_tensor(dt, a_dims, -1, 1, 21), random_tensor(dt, b_dims, -1, 1, 22)}, {false, true}};
          if (ta) c.attrs.set_int("kiln_trans_a", 1);
          if (tb) c.attrs.set_int("kiln_trans_b", 1);
          if (variant >= 1) c.attrs.set_string("kiln_activation", variant == 1 ? "Gelu:tanh" : "Relu");
          const bool bias = variant == 1 || (variant == 2 && row);
          if (bias || variant == 2) {
            c.inputs.push_back(bias ? random_tensor(dt, {sh.n}, -1, 1, 23) : Tensor());
            c.constant.push_back(bias);
          }
          if (variant == 2) {
            c.attrs.set_float("kiln_alpha", 0.5);
            c.inputs.push_back(random_tensor(dt, {sh.m, sh.n}, -1, 1, 24));
            c.constant.push_back(false);
          }
          set_tolerance(c, dt);
          check_gemv_case(c,
                          label("GEMV [" + std::to_string(sh.m) + "," + std::to_string(sh.k) + "]x[" +
                                    std::to_string(sh.k) + "," + std::to_string(sh.n) + "]" + (ta ? " A^T" : "") +
                                    (tb ? " B^T" : "") + " variant " + std::to_string(variant),
                                dt, ""),
                          true);
        }
      }
    }
  }
}

// A 1x1 convolution of a 1x1 image (mobilenet's squeeze-and-excitation blocks at batch 1) is an
// n == 1 product: the GEMV kernel computes it, a bias in its epilogue (no prefill launch), with
// and without a Relu, matching the CPU backend. (4104 channels: an input of at most 4096
// elements would be planned on the host, and the kernel not loaded at creation.)
TEST(CudaEpilogueGpuTest, PointwiseConvOfOnePixelMatchesCpu) {
  for (DType dt : kTypes) {
    for (int variant = 0; variant < 3; ++variant) {  // plain, bias, bias + Relu
      const bool bias = variant >= 1;
      OpCase c{"Conv", {}, {random_tensor(dt, {1, 4104, 1, 1}, -1, 1, 31), random_tensor(dt, {24, 4104, 1, 1}, -1, 1, 32)},
               {false, true}};
      if (bias) {
        c.inputs.push_back(random_tensor(dt, {24}, -1, 1, 33));
        c.constant.push_back(true);
      }
      if (variant == 2) c.attrs.set_string("kiln_activation", "Relu");
      set_tolerance(c, dt);
      check_gemv_case(c, label(std::string("Conv 1x1 of [1,4104,1,1]") + (bias ? " +bias" : "") + (variant == 2 ? " relu" : ""), dt, ""),
                      true, 0);
    }
  }
}

TEST(CudaEpilogueGpuTest, ConvRelu) {
  struct Geom {
    Dims x, w;
    int64_t group;
    std::vector<int64_t> pads;
    const char* what;
  };
  const Geom geoms[] = {
      {{2, 3, 11, 9}, {5, 3, 3, 3}, 1, {1, 1, 1, 1}, "3x3 im2col M=5"},
      {{3, 6, 7, 5}, {7, 6, 1, 1}, 1, {0, 0, 0, 0}, "1x1 direct GEMM"},
      {{2, 6, 9, 9}, {6, 1, 3, 3}, 6, {1, 1, 1, 1}, "depthwise"},
      {{1, 4, 13}, {8, 2, 3}, 2, {1, 0}, "1-D grouped"},
      {{1, 3, 5, 6, 7}, {4, 3, 2, 2, 2}, 1, {0, 1, 0, 1, 0, 1}, "3-D"},
  };
  const ConvPath before = conv_path();
  std::vector<ConvPath> paths = {ConvPath::kJit, ConvPath::kAuto};
  if (cudnn_runtime_version().ok()) paths.push_back(ConvPath::kCudnn);  // auto sends these small convs to JIT
  for (ConvPath path : paths) {
    set_conv_path(path);
    for (DType dt : kTypes) {
      for (const Geom& g : geoms) {
        for (bool bias : {false, true}) {
          OpCase c{"Conv", {}, {random_tensor(dt, g.x, -1, 1, 10), random_tensor(dt, g.w, -1, 1, 11)}, {false, true}};
          c.attrs.set_int("group", g.group);
          c.attrs.set_ints("pads", g.pads);
          if (bias) {
            c.inputs.push_back(random_tensor(dt, {g.w[0]}, -1, 1, 12));
            c.constant.push_back(true);
          }
          c.attrs.set_string("kiln_activation", "Relu");
          set_tolerance(c, dt);
          check_op(c, label(std::string("Conv ") + g.what + (bias ? " +bias" : "") + " path " +
                                std::string(conv_path_name(path)), dt, "Relu"));
        }
      }
    }
  }
  set_conv_path(before);
}

// The conv bias costs no launch of its own on the im2col path: one run of a biased 3x3 conv
// launches only im2col (which also prefills y with the bias); a 1x1 conv launches the bias
// broadcast only (cuBLASLt has no per-row bias epilogue). The Relu is in cuBLASLt's epilogue.
TEST(CudaEpilogueGpuTest, ConvBiasCostsNoExtraLaunch) {
  const ConvPath before = conv_path();
  set_conv_path(ConvPath::kJit);
  for (DType dt : kTypes) {
    for (int64_t k : {3, 1}) {
     for (int64_t batch : {1, 4}) {
      OpCase c{"Conv", {}, {random_tensor(dt, {batch, 8, 10, 10}, -1, 1, 13), random_tensor(dt, {16, 8, k, k}, -1, 1, 14),
                            random_tensor(dt, {16}, -1, 1, 15)}, {false, true, true}};
      c.attrs.set_string("kiln_activation", "Relu");
      set_tolerance(c, dt);
      check_op(c, label("Conv bias " + std::to_string(k) + "x" + std::to_string(k), dt, "Relu"));
      std::shared_ptr<const ir::Graph> g = one_node_graph(c);
      Result<std::unique_ptr<BackendProgram>> prog = cuda_backend()->prepare(g, {});
      ASSERT_TRUE(prog.ok()) << prog.status().to_string();
      std::vector<Tensor> got, dev_in;
      for (const Tensor& t : runtime_inputs(c)) dev_in.push_back(to_device(t));  // small host inputs run on the host
      ASSERT_TRUE((*prog)->run(dev_in, &got).ok());
      Result<CudaProgramStats> st = program_stats(**prog);
      ASSERT_TRUE(st.ok());
      EXPECT_EQ(st->gpu_nodes, 1u);
      EXPECT_EQ(st->kernel_launches, 1u) << dtype_name(dt) << " " << k << "x" << k << " batch " << batch;
     }
    }
  }
  set_conv_path(before);
}

// Launches of one run of `g` on data set `set`, after checking its outputs against the reference.
uint64_t launches_of(std::shared_ptr<const ir::Graph> g, const fs::path& set, const std::string& what) {
  const std::vector<Tensor> in = kiln::test::read_tensors(set, "input");
  const std::vector<Tensor> want = kiln::test::read_tensors(set, "output");
  Result<std::unique_ptr<BackendProgram>> prog = cuda_backend()->prepare(g, {});
  EXPECT_TRUE(prog.ok()) << prog.status().to_string();
  if (!prog.ok()) return 0;
  std::vector<Tensor> got;
  Status s = (*prog)->run(in, &got);
  EXPECT_TRUE(s.ok()) << what << ": " << s.to_string();
  EXPECT_EQ(got.size(), want.size());
  for (size_t o = 0; o < got.size() && o < want.size(); ++o)
    expect_close(got[o], want[o], 1e-3, 1e-3, what + " output " + std::to_string(o));
  Result<CudaProgramStats> st = program_stats(**prog);
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(st->fallback_nodes, 0u) << what;
  return st->kernel_launches;
}

// Per shared model: launches per run without and with fuse_epilogues (JIT conv path, so the
// count does not depend on whether cuDNN loads). The saving is one launch per fused node: the
// encoder's 12 bias Adds and 4 residual Adds.
TEST(CudaEpilogueGpuTest, SharedModelsLaunchFewerKernels) {
  struct Expected {
    const char* model;
    uint64_t saved;
  };
  const ConvPath before = conv_path();
  set_conv_path(ConvPath::kJit);
  for (const Expected& e : {Expected{"mlp", 0}, Expected{"tiny_cnn", 3}, Expected{"encoder_L4_d256", 16},
                            Expected{"mobilenet_v3_small", 14}}) {
    const fs::path dir = kiln::test::model_dir(e.model);
    Result<ir::Graph> g = onnx::import_file((dir / "model.onnx").string());
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    ASSERT_TRUE(compiler::fold_constants(*g, size_t{64} << 20, nullptr).ok());
    g->prune();
    auto plain = std::make_shared<ir::Graph>(*g);
    compiler::EpilogueStats st;
    ASSERT_TRUE(compiler::fuse_epilogues(*g, &st).ok());
    g->prune();
    auto fused = std::make_shared<ir::Graph>(std::move(*g));
    for (int k = 0; fs::exists(kiln::test::data_set_dir(dir, k)); ++k) {
      const fs::path set = kiln::test::data_set_dir(dir, k);
      const uint64_t a = launches_of(plain, set, std::string(e.model) + " unfused");
      const uint64_t b = launches_of(fused, set, std::string(e.model) + " fused");
      std::printf("[ epilogue ] %-20s set %d: %llu -> %llu kernel launches per run (%zu nodes fused away)\n", e.model,
                  k, static_cast<unsigned long long>(a), static_cast<unsigned long long>(b), st.nodes_removed);
      EXPECT_EQ(a - b, e.saved) << e.model;
    }
  }
  set_conv_path(before);
}

}  // namespace
}  // namespace kiln::cuda::testing
