// The host-only half of conv_cudnn.h: path settings, parameter mapping, build facts.
#include <atomic>
#include <climits>
#include <cstdlib>

#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/cudnn_api.h"
#include "core/logging.h"

namespace kiln::cuda {
namespace {

constexpr int kUnset = -1;
std::atomic<int> g_path{kUnset}, g_search{kUnset};

// The environment's value of `var` parsed by `parse`, or `fallback` (an invalid value is logged).
template <typename T, typename Parse>
T from_env(const char* var, Parse parse, T fallback) {
  const char* v = std::getenv(var);
  if (!v || !*v) return fallback;
  Result<T> r = parse(v);
  if (r.ok()) return *r;
  log_warning(std::string(var) + ": " + r.status().message() + "; using the default");
  return fallback;
}

}  // namespace

Result<ConvPath> parse_conv_path(std::string_view name) {
  if (name == "auto") return ConvPath::kAuto;
  if (name == "cudnn") return ConvPath::kCudnn;
  if (name == "jit") return ConvPath::kJit;
  return invalid_argument("invalid CUDA convolution path '" + std::string(name) + "'; expected auto|cudnn|jit");
}

std::string_view conv_path_name(ConvPath path) {
  switch (path) {
    case ConvPath::kCudnn: return "cudnn";
    case ConvPath::kJit: return "jit";
    default: return "auto";
  }
}

Result<ConvAlgoSearch> parse_conv_algo_search(std::string_view name) {
  if (name == "heuristic") return ConvAlgoSearch::kHeuristic;
  if (name == "measured") return ConvAlgoSearch::kMeasured;
  return invalid_argument("invalid cuDNN algorithm search '" + std::string(name) + "'; expected heuristic|measured");
}

ConvPath conv_path() {
  int v = g_path.load(std::memory_order_relaxed);
  if (v == kUnset) {
    int env = static_cast<int>(from_env<ConvPath>("KILN_CUDA_CONV", parse_conv_path, ConvPath::kAuto));
    g_path.compare_exchange_strong(v, env);  // a concurrent set_conv_path wins
    v = g_path.load(std::memory_order_relaxed);
  }
  return static_cast<ConvPath>(v);
}

void set_conv_path(ConvPath path) { g_path.store(static_cast<int>(path)); }

ConvAlgoSearch conv_algo_search() {
  int v = g_search.load(std::memory_order_relaxed);
  if (v == kUnset) {
    int env = static_cast<int>(
        from_env<ConvAlgoSearch>("KILN_CUDA_CONV_ALGO", parse_conv_algo_search, ConvAlgoSearch::kHeuristic));
    g_search.compare_exchange_strong(v, env);
    v = g_search.load(std::memory_order_relaxed);
  }
  return static_cast<ConvAlgoSearch>(v);
}

void set_conv_algo_search(ConvAlgoSearch search) { g_search.store(static_cast<int>(search)); }

CudnnBuildInfo cudnn_build_info() {
  CudnnBuildInfo info;
#ifdef KILN_HAVE_CUDNN
  info.compiled = true;
  info.version = KILN_CUDNN_BUILD_VERSION;
  info.library = KILN_CUDNN_LIBRARY;
#endif
  return info;
}

Result<int> cudnn_runtime_version() {
#ifdef KILN_HAVE_CUDNN
  KILN_ASSIGN_OR_RETURN(const CudnnApi* api, cudnn_api());
  return api->version;
#else
  return unavailable("cuDNN: this kiln was built without cuDNN (cmake/cudnn.cmake found none)");
#endif
}

std::optional<CudnnConvParams> cudnn_conv_params(const kernels::WindowArgs& g, DType dtype, bool bias, bool relu,
                                                 std::string* why) {
  auto no = [&](std::string reason) -> std::optional<CudnnConvParams> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return no("dtype " + std::string(dtype_name(dtype)));
  if (g.rank < 1 || g.rank > 3) return no(std::to_string(g.rank) + " spatial dims");
  for (int j = 0; j < 3; ++j)
    if (g.pb[j] != g.pe[j]) return no("asymmetric pads");
  CudnnConvParams p;
  p.nb_dims = g.rank == 3 ? 5 : 4;
  p.dtype = dtype;
  p.bias = bias;
  p.relu = relu;
  const int first = 5 - p.nb_dims;  // where the used spatial dims start in the 3-dim form
  int64_t xs[5] = {g.n, g.c}, ws[5] = {g.m, g.groups > 0 ? g.c / g.groups : 0}, ys[5] = {g.n, g.m};
  int64_t x_numel = g.n * g.c, w_numel = ws[0] * ws[1], y_numel = g.n * g.m;
  for (int i = 0; i + 2 < p.nb_dims; ++i) {
    const int j = first + i;
    xs[2 + i] = g.in[j];
    ws[2 + i] = g.k[j];
    ys[2 + i] = g.out[j];
    x_numel *= g.in[j];
    w_numel *= g.k[j];
    y_numel *= g.out[j];
    for (int64_t v : {g.pb[j], g.s[j], g.d[j]})
      if (v > INT_MAX) return no("a pad, stride or dilation past 32 bits");
    p.pad[i] = static_cast<int>(g.pb[j]);
    p.stride[i] = static_cast<int>(g.s[j]);
    p.dilation[i] = static_cast<int>(g.d[j]);
  }
  // cuDNN's descriptors take int dims and strides.
  if (x_numel > INT_MAX || w_numel > INT_MAX || y_numel > INT_MAX) return no("a tensor of 2^31 elements or more");
  if (g.groups < 1 || g.groups > INT_MAX) return no("group count " + std::to_string(g.groups));
  p.groups = static_cast<int>(g.groups);
  for (int d = 0; d < p.nb_dims; ++d) {
    p.x[d] = static_cast<int>(xs[d]);
    p.w[d] = static_cast<int>(ws[d]);
    p.y[d] = static_cast<int>(ys[d]);
  }
  return p;
}

std::string cudnn_conv_key(const CudnnConvParams& p, bool allow_tf32, int device) {
  std::string k = "dev" + std::to_string(device) + " " + std::string(dtype_name(p.dtype)) + (allow_tf32 ? " tf32" : "") +
                  " g" + std::to_string(p.groups) + (p.bias ? " bias" : "") + (p.relu ? " relu" : "");
  auto add = [&](const char* what, const int* v, int n) {
    k += std::string(" ") + what;
    for (int i = 0; i < n; ++i) {
      if (i) k += ',';
      k += std::to_string(v[i]);
    }
  };
  add("x", p.x, p.nb_dims);
  add("w", p.w, p.nb_dims);
  add("p", p.pad, p.nb_dims - 2);
  add("s", p.stride, p.nb_dims - 2);
  add("d", p.dilation, p.nb_dims - 2);
  return k;
}

}  // namespace kiln::cuda
