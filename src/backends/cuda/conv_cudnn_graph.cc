// Convolutions through cuDNN's backend (graph) API: conv [+ bias] [+ ReLU] as one operation graph,
// an execution plan per problem built once, and per call a variant pack and cudnnBackendExecute.
// Why: cuDNN 9's legacy cudnnConvolutionForward spent 150-200 us of host time per call on the
// H200 machine (KILN_CUDA_HOST_PROFILE, resnet18 at batch 32, fp16), which made whole networks
// host-bound without CUDA graphs (1.42 ms per call instead of 4.1-4.5 with this path, same card).
// Engines are taken in cuDNN's heuristic order (mode A), skipping those that compile at run time
// (seconds on a first call), that convert f32 inputs to TF32 when the engine was not built with
// TF32, or that reduce in half precision (kiln accumulates in f32). conv_cudnn.cc sends only f16
// problems here (see there why).
#ifdef KILN_HAVE_CUDNN

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/cuda/conv_cudnn_plan.h"
#include "core/logging.h"

namespace kiln::cuda {
namespace {

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  Desc(const CudnnApi& api, cudnnBackendDescriptorType_t type) : api_(&api) {
    status_ = api.cudnnBackendCreateDescriptor(type, &d_);
  }
  Desc(Desc&& o) noexcept : api_(o.api_), d_(o.d_), status_(o.status_) { o.d_ = nullptr; }
  Desc& operator=(Desc&&) = delete;
  ~Desc() {
    if (d_) api_->cudnnBackendDestroyDescriptor(d_);
  }
  cudnnBackendDescriptor_t get() const { return d_; }
  cudnnBackendDescriptor_t release() {
    cudnnBackendDescriptor_t d = d_;
    d_ = nullptr;
    return d;
  }
  cudnnStatus_t status() const { return status_; }

 private:
  const CudnnApi* api_;
  cudnnBackendDescriptor_t d_ = nullptr;
  cudnnStatus_t status_ = CUDNN_STATUS_SUCCESS;
};

// Builds one graph's descriptors; the first failing call is kept (later calls do nothing), so
// the building code reads straight through and checks once.
class Builder {
 public:
  Builder(const CudnnApi& api, std::string_view where) : api_(api), where_(where) {}

  Desc make(cudnnBackendDescriptorType_t type) {
    Desc d(api_, type);
    note(d.status(), "cudnnBackendCreateDescriptor");
    return d;
  }
  template <typename T>
  void set(const Desc& d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
           const T* values) {
    if (!failed() && d.get()) note(api_.cudnnBackendSetAttribute(d.get(), name, type, count, values), "cudnnBackendSetAttribute");
  }
  void finalize(const Desc& d) {
    if (!failed() && d.get()) note(api_.cudnnBackendFinalize(d.get()), "cudnnBackendFinalize");
  }
  bool failed() const { return status_ != CUDNN_STATUS_SUCCESS; }
  cudnnStatus_t status() const { return status_; }
  Status error() const { return cudnn_status(status_, call_, where_); }

 private:
  void note(cudnnStatus_t s, const char* call) {
    if (s != CUDNN_STATUS_SUCCESS && status_ == CUDNN_STATUS_SUCCESS) {
      status_ = s;
      call_ = call;
    }
  }
  const CudnnApi& api_;
  std::string where_;
  cudnnStatus_t status_ = CUDNN_STATUS_SUCCESS;
  const char* call_ = "";
};

cudnnDataType_t data_type(DType d) {
  switch (d) {
    case DType::kF16: return CUDNN_DATA_HALF;
    case DType::kBF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
  }
}

constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3, kUidB = 4, kUidConv = 5, kUidAdd = 6;
constexpr int64_t kAlignment = 16;  // bytes; execute() checks the pointers

Desc tensor(Builder& b, int64_t uid, cudnnDataType_t type, const int* dims, int nb, bool is_virtual) {
  std::vector<int64_t> d(dims, dims + nb), s(static_cast<size_t>(nb), 1);
  for (int i = nb - 2; i >= 0; --i) s[static_cast<size_t>(i)] = s[static_cast<size_t>(i) + 1] * d[static_cast<size_t>(i) + 1];
  Desc t = b.make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  b.set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  b.set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nb, d.data());
  b.set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nb, s.data());
  b.set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  b.set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &kAlignment);
  if (is_virtual) {
    const bool v = true;
    b.set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v);
  }
  b.finalize(t);
  return t;
}

Desc pointwise_op(Builder& b, cudnnPointwiseMode_t mode, const Desc& x, const Desc* bias, const Desc& y) {
  Desc pw = b.make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  b.set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
  b.set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
  b.finalize(pw);
  Desc op = b.make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  cudnnBackendDescriptor_t pwd = pw.get(), xd = x.get(), yd = y.get();
  b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pwd);
  b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
  if (bias) {
    cudnnBackendDescriptor_t bd = bias->get();
    b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bd);
  }
  b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
  b.finalize(op);
  return op;
}

// Whether an engine configuration may be used: no run-time compilation, no TF32 conversion of f32
// inputs unless allowed, no half-precision reduction.
bool acceptable(const CudnnApi& api, cudnnBackendDescriptor_t cfg, bool allow_tf32) {
  Desc engine(api, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  if (engine.status() != CUDNN_STATUS_SUCCESS) return false;
  cudnnBackendDescriptor_t ed = engine.get();
  int64_t n = 0;
  if (api.cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &ed) !=
      CUDNN_STATUS_SUCCESS)
    return false;
  cudnnBackendBehaviorNote_t behavior[16];
  n = 0;
  if (api.cudnnBackendGetAttribute(ed, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE, 16, &n, behavior) ==
      CUDNN_STATUS_SUCCESS)
    for (int64_t i = 0; i < n && i < 16; ++i)
      if (behavior[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) return false;
  cudnnBackendNumericalNote_t numerical[16];
  n = 0;
  if (api.cudnnBackendGetAttribute(ed, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE, 16, &n,
                                   numerical) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int64_t i = 0; i < n && i < 16; ++i) {
    if (numerical[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION) return false;
    if (numerical[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS && !allow_tf32) return false;
  }
  return true;
}

struct PlanCache {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<const GraphPlan>> plans;  // null: no usable engine
};

PlanCache& plan_cache() {
  static PlanCache* cache = new PlanCache();  // lives as long as the process, like the library
  return *cache;
}

}  // namespace

size_t release_graph_plans() {
  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  const size_t n = cache.plans.size();
  cache.plans.clear();  // a plan a call still holds goes when that call drops it
  return n;
}

GraphPlan::~GraphPlan() {
  if (plan_) api_.cudnnBackendDestroyDescriptor(plan_);
}

Status GraphPlan::execute(cudnnHandle_t h, const void* x, const void* w, const void* bias, void* y, void* ws,
                          std::string_view where) const {
  void* ptrs[4] = {const_cast<void*>(x), const_cast<void*>(w), y, const_cast<void*>(bias)};
  const int64_t uids[4] = {kUidX, kUidW, kUidY, kUidB};
  const int64_t n = bias_ ? 4 : 3;
  Builder b(api_, where);
  Desc pack = b.make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  b.set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
  b.set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
  b.set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  b.finalize(pack);
  if (b.failed()) return b.error();
  return cudnn_status(api_.cudnnBackendExecute(h, plan_, pack.get()), "cudnnBackendExecute", where);
}

bool GraphPlan::aligned(const void* x, const void* w, const void* bias, const void* y) {
  for (const void* q : {x, w, bias, y})
    if (reinterpret_cast<uintptr_t>(q) % kAlignment != 0) return false;
  return true;
}

Result<std::shared_ptr<const GraphPlan>> graph_plan(const CudnnApi& api, cudnnHandle_t h, const CudnnConvParams& p,
                                                   bool allow_tf32, const std::string& key, std::string_view where) {
  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);  // building is rare; concurrent first calls build once
  if (auto it = cache.plans.find(key); it != cache.plans.end()) return it->second;

  const int nb = p.nb_dims;
  const cudnnDataType_t io = data_type(p.dtype), f32 = CUDNN_DATA_FLOAT;
  Builder b(api, where);
  Desc x = tensor(b, kUidX, io, p.x, nb, false);
  Desc w = tensor(b, kUidW, io, p.w, nb, false);
  Desc y = tensor(b, kUidY, io, p.y, nb, false);
  // Intermediates stay f32 between the fused steps.
  const bool fused = p.bias || p.relu;
  std::vector<int> bias_dims(static_cast<size_t>(nb), 1);
  bias_dims[1] = p.y[1];
  std::optional<Desc> conv_out, bias_t, add_out;
  if (fused) conv_out.emplace(tensor(b, kUidConv, f32, p.y, nb, true));
  if (p.bias) bias_t.emplace(tensor(b, kUidB, io, bias_dims.data(), nb, false));
  if (p.bias && p.relu) add_out.emplace(tensor(b, kUidAdd, f32, p.y, nb, true));

  Desc conv = b.make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const int64_t spatial = nb - 2;
  std::vector<int64_t> pad(p.pad, p.pad + spatial), stride(p.stride, p.stride + spatial),
      dilation(p.dilation, p.dilation + spatial);
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  b.set(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
  b.set(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, spatial, dilation.data());
  b.set(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, spatial, stride.data());
  b.set(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, spatial, pad.data());
  b.set(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, spatial, pad.data());
  b.finalize(conv);

  Desc conv_op = b.make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  {
    cudnnBackendDescriptor_t xd = x.get(), wd = w.get(), yd = fused ? conv_out->get() : y.get(), cd = conv.get();
    const float alpha = 1.0f, beta = 0.0f;
    b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
    b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &wd);
    b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &yd);
    b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd);
    b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
    b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
    b.finalize(conv_op);
  }
  std::vector<Desc> ops;
  ops.push_back(std::move(conv_op));
  if (p.bias) ops.push_back(pointwise_op(b, CUDNN_POINTWISE_ADD, *conv_out, &*bias_t, p.relu ? *add_out : y));
  if (p.relu) ops.push_back(pointwise_op(b, CUDNN_POINTWISE_RELU_FWD, p.bias ? *add_out : *conv_out, nullptr, y));

  Desc graph = b.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  std::vector<cudnnBackendDescriptor_t> op_ptrs;
  for (const Desc& d : ops) op_ptrs.push_back(d.get());
  // The handle attributes are deprecated in cuDNN 9 in favour of device-property descriptors, but
  // are what every cuDNN 9 release accepts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  b.set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  b.set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(op_ptrs.size()),
        op_ptrs.data());
  b.finalize(graph);

  Desc heur = b.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  {
    cudnnBackendDescriptor_t gd = graph.get();
    const cudnnBackendHeurMode_t heur_mode = CUDNN_HEUR_MODE_A;
    b.set(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &gd);
    b.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode);
    b.finalize(heur);
  }
  if (b.failed()) {
    // The status categories (cuDNN 9 adds sub-codes): 2000s bad parameter, 3000s not supported.
    const int category = static_cast<int>(b.status()) / 1000;
    if (category == 2 || category == 3) {
      log_once(LogLevel::kInfo, "cudnn-graph-declined:" + key,
               "cuDNN graph API: the problem " + key + " is not supported (" + b.error().message() +
                   "); the legacy API runs it");
      cache.plans[key] = nullptr;
      return std::shared_ptr<const GraphPlan>();
    }
    return b.error();
  }
  int64_t count = 0;
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
                                    "cudnnBackendGetAttribute (heuristic results)", where));
  count = std::min<int64_t>(count, 16);
  std::vector<Desc> cfgs;
  std::vector<cudnnBackendDescriptor_t> cfg_ptrs;
  for (int64_t i = 0; i < count; ++i) {
    cfgs.emplace_back(api, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    if (cfgs.back().status() != CUDNN_STATUS_SUCCESS)
      return cudnn_status(cfgs.back().status(), "cudnnBackendCreateDescriptor (engine config)", where);
    cfg_ptrs.push_back(cfgs.back().get());
  }
  int64_t got = 0;
  if (count > 0)
    KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                                                                   cfg_ptrs.data()),
                                      "cudnnBackendGetAttribute (heuristic results)", where));
  std::shared_ptr<GraphPlan> result;
  for (int64_t i = 0; i < got && !result; ++i) {
    if (!acceptable(api, cfg_ptrs[static_cast<size_t>(i)], allow_tf32)) continue;
    Desc plan(api, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    if (plan.status() != CUDNN_STATUS_SUCCESS) continue;
    cudnnBackendDescriptor_t cd = cfg_ptrs[static_cast<size_t>(i)];
    if (api.cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) !=
            CUDNN_STATUS_SUCCESS ||
        api.cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cd) != CUDNN_STATUS_SUCCESS ||
        api.cudnnBackendFinalize(plan.get()) != CUDNN_STATUS_SUCCESS)
      continue;  // this engine declines the problem: try the next
    int64_t ws = 0, n = 0;
    if (api.cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                     &ws) != CUDNN_STATUS_SUCCESS ||
        ws < 0 || static_cast<size_t>(ws) > kMaxWorkspace)
      continue;
    result.reset(new GraphPlan(api));
    result->plan_ = plan.release();
    result->workspace_ = static_cast<size_t>(ws);
    result->bias_ = p.bias;
  }
#pragma GCC diagnostic pop
  if (!result)
    log_once(LogLevel::kInfo, "cudnn-graph-noengine:" + key,
             "cuDNN graph API: no engine without run-time compilation for " + key + " (" +
                 std::to_string(got) + " candidates); the legacy API runs it");
  cache.plans[key] = result;
  return std::shared_ptr<const GraphPlan>(std::move(result));
}

}  // namespace kiln::cuda

#endif  // KILN_HAVE_CUDNN
