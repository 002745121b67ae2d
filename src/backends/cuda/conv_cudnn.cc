// cudnn_conv(): the dispatch decision, and the cuDNN calls (conv_cudnn_plan.h: descriptors,
// handles, algorithm choices).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>

#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/conv_cudnn_plan.h"
#include "backends/cuda/device.h"
#include "backends/cuda/ops/handler.h"
#include "core/logging.h"

namespace kiln::cuda {
namespace {

std::atomic<uint64_t> g_cudnn_convs{0}, g_jit_convs{0}, g_graph_convs{0};

// Leaves the convolution to the JIT kernels (counted for real runs, not for host-only planning).
bool decline(RunContext& ctx) {
  if (!ctx.planning()) {
    g_jit_convs.fetch_add(1, std::memory_order_relaxed);
    ctx.count_conv(false);
  }
  return false;
}

#ifdef KILN_HAVE_CUDNN

constexpr float kOne = 1.0f, kZero = 0.0f;

// Enqueues the convolution with `choice` on the lease's handle (its stream already set).
Status enqueue(const CudnnApi& api, HandleLease& lease, const Descs& d, const Choice& choice, const std::string& key,
               const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, void* ws, const std::string& where) {
  cudnnHandle_t h = lease.handle();
  if (choice.fused) {  // y = relu(conv(x) + bias) in one call; z = y with weight 0 is not read
    cudnnStatus_t s = api.cudnnConvolutionBiasActivationForward(
        h, &kOne, d.x, x.data(), d.w, w.data(), d.conv, choice.algo, ws, choice.workspace, &kZero, d.y, y.data(),
        d.b, bias.data(), d.act, d.y, y.data());
    if (s == CUDNN_STATUS_SUCCESS) {
      count_fused();
      return Status();
    }
    if (s != CUDNN_STATUS_NOT_SUPPORTED)
      return cudnn_status(s, "cudnnConvolutionBiasActivationForward", where);
    forget_fusion(key);  // this engine has no fused kernel for the problem: separate calls from now on
    log_once(LogLevel::kInfo, "cudnn-unfused", "cuDNN: no fused bias+ReLU kernel for " + key +
                                                   "; using separate cuDNN calls");
  }
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnConvolutionForward(h, &kOne, d.x, x.data(), d.w, w.data(), d.conv,
                                                                 choice.algo, ws, choice.workspace, &kZero, d.y,
                                                                 y.data()),
                                    "cudnnConvolutionForward", where));
  if (bias.defined())
    KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnAddTensor(h, &kOne, d.b, bias.data(), &kOne, d.y, y.data()),
                                      "cudnnAddTensor (bias)", where));
  if (d.act)
    KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnActivationForward(h, d.act, &kOne, d.y, y.data(), &kZero, d.y,
                                                                 y.data()),
                                      "cudnnActivationForward (ReLU)", where));
  return Status();
}

Result<bool> run(RunContext& ctx, const CudnnApi& api, const CudnnConvParams& p, const Tensor& x, const Tensor& w,
                 const Tensor& bias, Tensor& y) {
  const std::string where = ctx.where();
  const bool capturing = ctx.capture_hooks() != nullptr;
  // While capturing, cuDNN's first use of a handle or an engine may allocate or load modules,
  // which CUDA forbids in the capturing thread's default mode; nothing here synchronises.
  std::optional<RelaxedCaptureMode> relaxed;
  if (capturing) relaxed.emplace();
  KILN_ASSIGN_OR_RETURN(HandleLease lease, HandleLease::take(api, ctx.device().index, where));
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnSetStream(lease.handle(), ctx.stream()), "cudnnSetStream", where));
  const std::string key = cudnn_conv_key(p, ctx.allow_tf32(), ctx.device().index);
  // f16 only: on the H200 machine (cuDNN 9.19) the plans cuDNN picked for bf16 gave wrong results
  // on a 64-channel 3x3 problem and its f32 engines computed in reduced precision (errors ~1e-2).
  if (graph_api_enabled() && p.dtype == DType::kF16 && GraphPlan::aligned(x.data(), w.data(), bias.data(), y.data())) {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const GraphPlan> plan,
                          graph_plan(api, lease.handle(), p, ctx.allow_tf32(), key, where));
    if (plan) {
      Tensor ws;
      if (plan->workspace() > 0) {
        KILN_ASSIGN_OR_RETURN(ws, ctx.alloc(DType::kU8, {static_cast<int64_t>(plan->workspace())}));
      }
      if (CaptureHooks* hooks = ctx.capture_hooks()) hooks->on_library(x.data(), w.data(), y.data(), bias.data());
      const bool profiling = ctx.profiling();
      const auto t0 = profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      Status s = plan->execute(lease.handle(), x.data(), w.data(), bias.data(), y.data(),
                               ws.defined() ? ws.data() : nullptr, where);
      if (profiling)
        ctx.add_library_ns(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count()));
      KILN_RETURN_IF_ERROR(s);
      g_cudnn_convs.fetch_add(1, std::memory_order_relaxed);
      g_graph_convs.fetch_add(1, std::memory_order_relaxed);
      ctx.count_conv(true);
      return true;
    }
  }
  KILN_ASSIGN_OR_RETURN(Descs * d, lease.descriptors(key, p, where));
  std::optional<Choice> choice = cached_choice(key);
  if (!choice) {
    // Measuring runs the candidates and waits for them: never inside a capture.
    const bool measure = conv_algo_search() == ConvAlgoSearch::kMeasured && !capturing && !ctx.planning();
    Tensor find_ws;
    void* find_ptr = nullptr;
    if (measure) {
      KILN_ASSIGN_OR_RETURN(find_ws, ctx.alloc(DType::kU8, {static_cast<int64_t>(kMaxWorkspace)}));
      find_ptr = find_ws.data();
    }
    KILN_ASSIGN_OR_RETURN(Choice c, choose(api, lease.handle(), *d, p, ctx.allow_tf32(), measure, x.data(),
                                           w.data(), y.data(), find_ptr, where));
    // A heuristic stand-in for a measurement (during a capture) is not kept: a later call measures.
    if (measure || conv_algo_search() == ConvAlgoSearch::kHeuristic) remember_choice(key, c);
    choice = c;
  }
  if (!choice->usable) {
    log_once(LogLevel::kInfo, "cudnn-noalgo:" + key,
             "cuDNN: no algorithm for " + key + " (" + choice->why + "); the JIT kernels run it");
    return decline(ctx);
  }
  KILN_RETURN_IF_ERROR(apply_math(api, *d, *choice, where));
  Tensor ws;
  if (choice->workspace > 0) {
    KILN_ASSIGN_OR_RETURN(ws, ctx.alloc(DType::kU8, {static_cast<int64_t>(choice->workspace)}));
  }
  if (CaptureHooks* hooks = ctx.capture_hooks()) hooks->on_library(x.data(), w.data(), y.data(), bias.data());
  const bool profiling = ctx.profiling();
  const auto t0 = profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  Status s = enqueue(api, lease, *d, *choice, key, x, w, bias, y, ws.defined() ? ws.data() : nullptr, where);
  if (profiling)
    ctx.add_library_ns(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count()));
  KILN_RETURN_IF_ERROR(s);
  g_cudnn_convs.fetch_add(1, std::memory_order_relaxed);
  ctx.count_conv(true);
  return true;
}

#endif  // KILN_HAVE_CUDNN

}  // namespace

bool graph_api_enabled() {
#ifdef KILN_HAVE_CUDNN
  static const bool on = env_switch("KILN_CUDNN_GRAPH").value_or(true);
  return on;
#else
  return false;
#endif
}

bool auto_prefers_cudnn(const kernels::WindowArgs& g) {
  if (g.groups != 1) return false;
  double macs = static_cast<double>(g.n) * static_cast<double>(g.m) * static_cast<double>(g.c);
  for (int j = 0; j < 3; ++j) macs *= static_cast<double>(std::max<int64_t>(g.out[j], 1)) *
                                      static_cast<double>(std::max<int64_t>(g.k[j], 1));
  return macs >= kAutoCudnnMinMacs;
}

Result<bool> cudnn_conv(RunContext& ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                        const kernels::WindowArgs& geom, Tensor& y) {
  const ConvPath path = conv_path();
  if (path == ConvPath::kJit) return decline(ctx);
  if (path == ConvPath::kAuto && !auto_prefers_cudnn(geom)) return decline(ctx);
  const ir::Node& node = ctx.node();
  bool relu = false;
  if (node.attrs.has("kiln_activation")) {
    const std::string act = node.attrs.get_string("kiln_activation", "");
    if (act != "Relu") return decline(ctx);  // the JIT path applies it or declines the node
    relu = true;
  }
  std::string why;
  std::optional<CudnnConvParams> p = cudnn_conv_params(geom, x.dtype(), bias.defined(), relu, &why);
  if (!p) {
    log_once(LogLevel::kInfo, "cudnn-declined:" + why,
             "CUDA Conv: cuDNN does not take " + why + " (first: " + ctx.where() + "); the JIT kernels run it");
    return decline(ctx);
  }
  Result<int> version = cudnn_runtime_version();
  if (!version.ok()) {
    if (path == ConvPath::kCudnn)
      return version.status().with_context(ctx.where() + " (KILN_CUDA_CONV=cudnn)");
    log_once(LogLevel::kWarning, "cudnn-unavailable",
             "CUDA Conv: " + version.status().message() + "; convolutions run on the JIT kernels");
    return decline(ctx);
  }
  if (ctx.planning()) return true;  // cuDNN launches nothing kiln compiles
#ifdef KILN_HAVE_CUDNN
  KILN_ASSIGN_OR_RETURN(const CudnnApi* api, cudnn_api());
  return run(ctx, *api, *p, x, w, bias, y);
#else
  return decline(ctx);  // unreachable: cudnn_runtime_version() fails without cuDNN
#endif
}

Status cudnn_check_descriptors(const CudnnConvParams& p) {
#ifdef KILN_HAVE_CUDNN
  KILN_ASSIGN_OR_RETURN(const CudnnApi* api, cudnn_api());
  Result<std::unique_ptr<Descs>> d = make_descriptors(*api, p, "cudnn_check_descriptors");
  return d.status();
#else
  return unavailable("cuDNN: this kiln was built without cuDNN");
#endif
}

size_t release_cudnn_handles() {
#ifdef KILN_HAVE_CUDNN
  release_graph_plans();
  return release_pooled_handles();
#else
  return 0;
#endif
}

ConvStats conv_stats() {
  ConvStats s = plan_stats();
  s.cudnn_convs = g_cudnn_convs.load(std::memory_order_relaxed);
  s.graph_convs = g_graph_convs.load(std::memory_order_relaxed);
  s.jit_convs = g_jit_convs.load(std::memory_order_relaxed);
  return s;
}

}  // namespace kiln::cuda
