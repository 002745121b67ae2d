// Pieces of conv_cudnn.cc: cuDNN descriptors, handles and algorithm choices.
//
// Handles: one per concurrent user and device, from a process-wide pool; a HandleLease owns one
// for the length of a call (cuDNN handles must not be used by two threads at once), and the
// caller points it at its stream with cudnnSetStream. Each pooled handle keeps the descriptors of
// the problems it ran (descriptors are never shared between threads). Algorithm choices are
// shared by every handle, keyed by cudnn_conv_key().
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/cudnn_api.h"

namespace kiln::cuda {

// algo_choices, measured and fused_epilogues of conv_stats().
ConvStats plan_stats();

#ifdef KILN_HAVE_CUDNN

// The largest workspace an algorithm may ask for (also what a measured search gets).
inline constexpr size_t kMaxWorkspace = size_t{256} << 20;

// The descriptors of one problem. `b` (bias [1, M, 1...]) is set for every problem; `act` only
// when the problem has the ReLU epilogue.
struct Descs {
  explicit Descs(const CudnnApi& a) : api(a) {}
  ~Descs();
  Descs(const Descs&) = delete;
  Descs& operator=(const Descs&) = delete;
  const CudnnApi& api;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
};

// Builds and checks the descriptors (cuDNN's output dims must equal p.y); errors name the call.
Result<std::unique_ptr<Descs>> make_descriptors(const CudnnApi& api, const CudnnConvParams& p,
                                                std::string_view where);

// release_cudnn_handles() (conv_cudnn.h).
size_t release_pooled_handles();

class HandleLease {
 public:
  // A handle for `device` (the current device), created when the pool has none free.
  static Result<HandleLease> take(const CudnnApi& api, int device, std::string_view where);
  HandleLease(HandleLease&& other) noexcept;
  HandleLease& operator=(HandleLease&&) = delete;
  ~HandleLease();
  cudnnHandle_t handle() const;
  // This handle's descriptors for the problem `key`, built on first use.
  Result<Descs*> descriptors(const std::string& key, const CudnnConvParams& p, std::string_view where);

  struct Entry;

 private:
  explicit HandleLease(std::unique_ptr<Entry> e);
  std::unique_ptr<Entry> entry_;
};

struct Choice {
  bool usable = false;  // false: cuDNN has no algorithm for the problem (`why`)
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  bool fused = false;   // bias + ReLU through cudnnConvolutionBiasActivationForward
  std::string why;
};

std::optional<Choice> cached_choice(const std::string& key);
void remember_choice(const std::string& key, const Choice& c);
// The fused call is not supported for `key`: later calls use separate ones.
void forget_fusion(const std::string& key);
void count_fused();

// Picks the algorithm: cuDNN's heuristic ranking, or, when `measure`, the fastest that
// cudnnFindConvolutionForwardAlgorithmEx times on x, w and y with `workspace` (kMaxWorkspace
// bytes; waits for the handle's stream). f32 uses TF32 tensor cores only when `allow_tf32`.
Result<Choice> choose(const CudnnApi& api, cudnnHandle_t h, const Descs& d, const CudnnConvParams& p,
                      bool allow_tf32, bool measure, const void* x, const void* w, void* y, void* workspace,
                      std::string_view where);
// Sets the choice's math type on the convolution descriptor.
Status apply_math(const CudnnApi& api, const Descs& d, const Choice& c, std::string_view where);

// cuDNN's backend (graph) API for one problem (conv_cudnn_graph.cc): an execution plan for the
// convolution with its bias and ReLU fused in, built once per process and shared by every handle
// of the device; a call then costs one variant pack and cudnnBackendExecute. conv_cudnn.cc uses
// it for f16 problems only.
class GraphPlan {
 public:
  ~GraphPlan();
  GraphPlan(const GraphPlan&) = delete;
  GraphPlan& operator=(const GraphPlan&) = delete;
  size_t workspace() const { return workspace_; }
  // Whether the pointers meet the plan's alignment (16 bytes; null counts as aligned).
  static bool aligned(const void* x, const void* w, const void* bias, const void* y);
  // Enqueues the plan on `h` (its stream set); `bias` is read only by plans with a bias.
  Status execute(cudnnHandle_t h, const void* x, const void* w, const void* bias, void* y, void* ws,
                 std::string_view where) const;

 private:
  friend Result<std::shared_ptr<const GraphPlan>> graph_plan(const CudnnApi&, cudnnHandle_t, const CudnnConvParams&,
                                                            bool, const std::string&, std::string_view);
  explicit GraphPlan(const CudnnApi& api) : api_(api) {}
  const CudnnApi& api_;
  cudnnBackendDescriptor_t plan_ = nullptr;
  size_t workspace_ = 0;
  bool bias_ = false;
};

// The plan for `key` (cudnn_conv_key), built on first use with handle `h`; null when no engine
// of cuDNN takes the fused problem without compiling at run time (remembered: later calls use
// the legacy API at once). Errors: a cuDNN call that failed other than by declining.
Result<std::shared_ptr<const GraphPlan>> graph_plan(const CudnnApi& api, cudnnHandle_t h, const CudnnConvParams& p,
                                                   bool allow_tf32, const std::string& key, std::string_view where);
// Drops every cached plan (they name the handle they were built with): release_cudnn_handles()
// calls it first. Returns how many there were.
size_t release_graph_plans();

#endif  // KILN_HAVE_CUDNN

}  // namespace kiln::cuda
