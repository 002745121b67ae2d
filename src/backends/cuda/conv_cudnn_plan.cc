// cuDNN descriptors, the handle pool and algorithm choices (conv_cudnn_plan.h).
#include "backends/cuda/conv_cudnn_plan.h"

#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kiln::cuda {
namespace {

std::atomic<uint64_t> g_choices{0}, g_measured{0}, g_fused{0};

}  // namespace

ConvStats plan_stats() {
  ConvStats s;
  s.algo_choices = g_choices.load(std::memory_order_relaxed);
  s.measured = g_measured.load(std::memory_order_relaxed);
  s.fused_epilogues = g_fused.load(std::memory_order_relaxed);
  return s;
}

#ifdef KILN_HAVE_CUDNN

namespace {

// Bounds on what dynamic shapes can make the caches hold; past them a cache starts over.
constexpr size_t kMaxChoices = 4096, kMaxDescsPerHandle = 512;

cudnnDataType_t data_type(DType d) {
  switch (d) {
    case DType::kF16: return CUDNN_DATA_HALF;
    case DType::kBF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
  }
}

Status set_tensor(const CudnnApi& api, cudnnTensorDescriptor_t* t, cudnnDataType_t type, int nb, const int* dims,
                  std::string_view where) {
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnCreateTensorDescriptor(t), "cudnnCreateTensorDescriptor", where,
                                    StatusCode::kResourceExhausted));
  int strides[5];
  strides[nb - 1] = 1;
  for (int i = nb - 1; i > 0; --i) strides[i - 1] = strides[i] * dims[i];
  return cudnn_status(api.cudnnSetTensorNdDescriptor(*t, type, nb, dims, strides), "cudnnSetTensorNdDescriptor",
                      where, StatusCode::kInvalidArgument);
}

std::mutex g_choice_mu;
std::unordered_map<std::string, Choice>& choices() {
  static auto* m = new std::unordered_map<std::string, Choice>();
  return *m;
}

}  // namespace

Descs::~Descs() {
  if (x) api.cudnnDestroyTensorDescriptor(x);
  if (y) api.cudnnDestroyTensorDescriptor(y);
  if (b) api.cudnnDestroyTensorDescriptor(b);
  if (w) api.cudnnDestroyFilterDescriptor(w);
  if (conv) api.cudnnDestroyConvolutionDescriptor(conv);
  if (act) api.cudnnDestroyActivationDescriptor(act);
}

Result<std::unique_ptr<Descs>> make_descriptors(const CudnnApi& api, const CudnnConvParams& p,
                                                std::string_view where) {
  auto d = std::make_unique<Descs>(api);
  const cudnnDataType_t type = data_type(p.dtype);
  const int nb = p.nb_dims, spatial = nb - 2;
  KILN_RETURN_IF_ERROR(set_tensor(api, &d->x, type, nb, p.x, where));
  KILN_RETURN_IF_ERROR(set_tensor(api, &d->y, type, nb, p.y, where));
  int bias_dims[5] = {1, p.y[1], 1, 1, 1};
  KILN_RETURN_IF_ERROR(set_tensor(api, &d->b, type, nb, bias_dims, where));
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnCreateFilterDescriptor(&d->w), "cudnnCreateFilterDescriptor", where,
                                    StatusCode::kResourceExhausted));
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnSetFilterNdDescriptor(d->w, type, CUDNN_TENSOR_NCHW, nb, p.w),
                                    "cudnnSetFilterNdDescriptor", where, StatusCode::kInvalidArgument));
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnCreateConvolutionDescriptor(&d->conv),
                                    "cudnnCreateConvolutionDescriptor", where, StatusCode::kResourceExhausted));
  // Accumulation in f32 for every data type (PSEUDO_HALF / PSEUDO_BFLOAT16 configurations).
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnSetConvolutionNdDescriptor(d->conv, spatial, p.pad, p.stride, p.dilation,
                                                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                                    "cudnnSetConvolutionNdDescriptor", where, StatusCode::kInvalidArgument));
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnSetConvolutionGroupCount(d->conv, p.groups),
                                    "cudnnSetConvolutionGroupCount", where, StatusCode::kInvalidArgument));
  int out[5] = {};
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnGetConvolutionNdForwardOutputDim(d->conv, d->x, d->w, nb, out),
                                    "cudnnGetConvolutionNdForwardOutputDim", where, StatusCode::kInvalidArgument));
  for (int i = 0; i < nb; ++i)
    if (out[i] != p.y[i])
      return internal_error(std::string(where) + ": cuDNN computes output dim " + std::to_string(i) + " = " +
                            std::to_string(out[i]) + ", kiln " + std::to_string(p.y[i]));
  if (p.relu) {
    KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnCreateActivationDescriptor(&d->act),
                                      "cudnnCreateActivationDescriptor", where, StatusCode::kResourceExhausted));
    KILN_RETURN_IF_ERROR(cudnn_status(
        api.cudnnSetActivationDescriptor(d->act, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0),
        "cudnnSetActivationDescriptor", where, StatusCode::kInvalidArgument));
  }
  return d;
}

// ---- handles -------------------------------------------------------------------------------

struct HandleLease::Entry {
  explicit Entry(const CudnnApi& a) : api(a) {}
  ~Entry() {
    descs.clear();
    if (handle) api.cudnnDestroy(handle);
  }
  const CudnnApi& api;
  cudnnHandle_t handle = nullptr;
  int device = 0;
  std::unordered_map<std::string, std::unique_ptr<Descs>> descs;
};

namespace {

struct HandlePool {
  std::mutex mu;
  std::map<int, std::vector<std::unique_ptr<HandleLease::Entry>>> free;
};

HandlePool& handle_pool() {
  static auto* p = new HandlePool();  // never destroyed: no cuDNN calls during static destruction
  return *p;
}

}  // namespace

size_t release_pooled_handles() {
  std::map<int, std::vector<std::unique_ptr<HandleLease::Entry>>> dead;
  {
    HandlePool& pool = handle_pool();
    std::lock_guard<std::mutex> lock(pool.mu);
    dead.swap(pool.free);
  }
  size_t n = 0;
  for (const auto& [device, entries] : dead) n += entries.size();
  return n;  // the entries' destructors destroy descriptors and handles, outside the lock
}

HandleLease::HandleLease(std::unique_ptr<Entry> e) : entry_(std::move(e)) {}
HandleLease::HandleLease(HandleLease&& other) noexcept : entry_(std::move(other.entry_)) {}

HandleLease::~HandleLease() {
  if (!entry_) return;
  HandlePool& pool = handle_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  pool.free[entry_->device].push_back(std::move(entry_));
}

Result<HandleLease> HandleLease::take(const CudnnApi& api, int device, std::string_view where) {
  {
    HandlePool& pool = handle_pool();
    std::lock_guard<std::mutex> lock(pool.mu);
    auto& v = pool.free[device];
    if (!v.empty()) {
      std::unique_ptr<Entry> e = std::move(v.back());
      v.pop_back();
      return HandleLease(std::move(e));
    }
  }
  auto e = std::make_unique<Entry>(api);
  e->device = device;
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnCreate(&e->handle), "cudnnCreate", where, StatusCode::kUnavailable));
  return HandleLease(std::move(e));
}

cudnnHandle_t HandleLease::handle() const { return entry_->handle; }

Result<Descs*> HandleLease::descriptors(const std::string& key, const CudnnConvParams& p, std::string_view where) {
  auto it = entry_->descs.find(key);
  if (it != entry_->descs.end()) return it->second.get();
  if (entry_->descs.size() >= kMaxDescsPerHandle) entry_->descs.clear();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Descs> d, make_descriptors(entry_->api, p, where));
  Descs* raw = d.get();
  entry_->descs.emplace(key, std::move(d));
  return raw;
}

// ---- algorithm choices ---------------------------------------------------------------------

std::optional<Choice> cached_choice(const std::string& key) {
  std::lock_guard<std::mutex> lock(g_choice_mu);
  auto it = choices().find(key);
  if (it == choices().end()) return std::nullopt;
  return it->second;
}

void remember_choice(const std::string& key, const Choice& c) {
  std::lock_guard<std::mutex> lock(g_choice_mu);
  if (choices().size() >= kMaxChoices) choices().clear();
  choices()[key] = c;
}

void forget_fusion(const std::string& key) {
  std::lock_guard<std::mutex> lock(g_choice_mu);
  auto it = choices().find(key);
  if (it != choices().end()) it->second.fused = false;
}

void count_fused() { g_fused.fetch_add(1, std::memory_order_relaxed); }

Status apply_math(const CudnnApi& api, const Descs& d, const Choice& c, std::string_view where) {
  return cudnn_status(api.cudnnSetConvolutionMathType(d.conv, c.math), "cudnnSetConvolutionMathType", where);
}

Result<Choice> choose(const CudnnApi& api, cudnnHandle_t h, const Descs& d, const CudnnConvParams& p,
                      bool allow_tf32, bool measure, const void* x, const void* w, void* y, void* workspace,
                      std::string_view where) {
  const bool f32 = p.dtype == DType::kF32;
  // f32 without TF32: FMA kernels only. Otherwise tensor cores are fine (f16/bf16 accumulate in f32).
  const cudnnMathType_t base = f32 ? (allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH) : CUDNN_TENSOR_OP_MATH;
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnSetConvolutionMathType(d.conv, base), "cudnnSetConvolutionMathType",
                                    where));
  int max_count = 0;
  KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count),
                                    "cudnnGetConvolutionForwardAlgorithmMaxCount", where));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(max_count, 1)));
  int n = 0;
  if (measure) {
    KILN_RETURN_IF_ERROR(cudnn_status(
        api.cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.conv, d.y, y, static_cast<int>(perf.size()),
                                                   &n, perf.data(), workspace, kMaxWorkspace),
        "cudnnFindConvolutionForwardAlgorithmEx", where));
    g_measured.fetch_add(1, std::memory_order_relaxed);
  } else {
    KILN_RETURN_IF_ERROR(cudnn_status(
        api.cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, static_cast<int>(perf.size()), &n,
                                                   perf.data()),
        "cudnnGetConvolutionForwardAlgorithm_v7", where));
  }
  g_choices.fetch_add(1, std::memory_order_relaxed);
  Choice c;
  c.why = "no candidate succeeded within a " + std::to_string(kMaxWorkspace >> 20) + " MiB workspace";
  for (int i = 0; i < n; ++i) {
    const cudnnConvolutionFwdAlgoPerf_t& r = perf[static_cast<size_t>(i)];
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > kMaxWorkspace) continue;
    if (r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;  // would round f32 data to f16
    cudnnMathType_t math = f32 && !allow_tf32 ? CUDNN_FMA_MATH : r.mathType;
    if (f32 && !allow_tf32 && r.mathType == CUDNN_TENSOR_OP_MATH) continue;
    KILN_RETURN_IF_ERROR(cudnn_status(api.cudnnSetConvolutionMathType(d.conv, math), "cudnnSetConvolutionMathType",
                                      where));
    size_t bytes = 0;
    cudnnStatus_t s = api.cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, r.algo, &bytes);
    if (s != CUDNN_STATUS_SUCCESS || bytes > kMaxWorkspace) continue;
    c.usable = true;
    c.algo = r.algo;
    c.math = math;
    c.workspace = bytes;
    c.fused = p.bias && p.relu;
    c.why.clear();
    break;
  }
  return c;
}

#endif  // KILN_HAVE_CUDNN

}  // namespace kiln::cuda
