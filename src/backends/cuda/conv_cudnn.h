// Convolution through cuDNN 9 (docs/cuda_backend.md, "Convolution").
//
// The Conv handler (ops/nn_ops.cc) first offers each node to cudnn_conv(); when it declines, the
// node runs on the JIT kernels (im2col + cuBLASLt GEMM, or the direct window kernel). cuDNN takes
// f32 / f16 / bf16 NCHW convolutions of 1 to 3 spatial dims with symmetric pads, any strides,
// dilations and groups (depthwise included), computing in f32 (TF32 tensor cores only where the
// engine allows TF32). The bias and the `kiln_activation="Relu"` epilogue run inside cuDNN.
//
// kiln compiles against cuDNN's headers when the build finds them (cmake/cudnn.cmake:
// KILN_HAVE_CUDNN) and loads libcudnn.so.9 at run time, so a binary runs on machines without
// cuDNN: the first convolution then logs once that it uses the JIT kernels.
//
// Which path runs is process state, set once from the environment (KILN_CUDA_CONV, read on first
// use) or by set_conv_path(), for tests and comparisons:
//   auto   cuDNN for the ungrouped convolutions of at least kAutoCudnnMinMacs multiply-adds
//          that it supports, where it loads; else the JIT kernels (default). Measured on an H200
//          (docs/cuda_backend.md): cuDNN's legacy API costs ~100 us of host time per call and its
//          NCHW depthwise and batch-1 kernels were no faster than the JIT ones (mobilenet_v3_small
//          b1 fp32 with graphs disabled: 10.6 ms on cuDNN, 2.8 ms on JIT), while batch-32 resnet18
//          ran faster on cuDNN (whole-graph replay 4.4 vs 5.6 ms fp32, 1.3 vs 3.5 ms fp16);
//   cudnn  as auto, but a cuDNN that fails to load is an error (kUnavailable), not a fallback;
//   jit    the JIT kernels only.
// The algorithm for each concrete problem is cuDNN's heuristic choice (cudnnGetConvolutionForward-
// Algorithm_v7), or, with KILN_CUDA_CONV_ALGO=measured (set_conv_algo_search), the fastest one
// cudnnFindConvolutionForwardAlgorithmEx times on the first call of that problem (which waits for
// the GPU; under CUDA graph capture the heuristic is used instead). Choices are cached in-process.
// Everything here is thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "backends/cuda/kernels/nn.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

class RunContext;

enum class ConvPath : uint8_t { kAuto, kCudnn, kJit };

// Under path auto, cuDNN takes an ungrouped convolution of at least this many multiply-adds
// (N * M * C * prod(out) * prod(kernel); 2^29: batch >= 5 for resnet18's 3x3 convolutions).
inline constexpr double kAutoCudnnMinMacs = 536870912.0;
// Whether path auto would offer this convolution to cuDNN (`g` as for cudnn_conv()).
bool auto_prefers_cudnn(const kernels::WindowArgs& g);
enum class ConvAlgoSearch : uint8_t { kHeuristic, kMeasured };

// "auto" | "cudnn" | "jit"; an unknown name is kInvalidArgument listing the valid ones.
Result<ConvPath> parse_conv_path(std::string_view name);
std::string_view conv_path_name(ConvPath path);
// "heuristic" | "measured".
Result<ConvAlgoSearch> parse_conv_algo_search(std::string_view name);

// Process-wide settings. Their first read takes KILN_CUDA_CONV / KILN_CUDA_CONV_ALGO (an invalid
// value is logged and ignored); a setter overrides them for every later call.
ConvPath conv_path();
void set_conv_path(ConvPath path);
ConvAlgoSearch conv_algo_search();
void set_conv_algo_search(ConvAlgoSearch search);

// What the build found (cmake/cudnn.cmake).
struct CudnnBuildInfo {
  bool compiled = false;        // KILN_HAVE_CUDNN: built against cuDNN's headers
  std::string version;          // of those headers, "9.19.0"
  std::string library;          // the library file the build found, tried first at run time
};
CudnnBuildInfo cudnn_build_info();

// Loads cuDNN once per process (needs no GPU) and returns its version (cudnnGetVersion, e.g.
// 91900). kUnavailable says why not: built without cuDNN, no library, a library other than 9.x,
// a missing symbol.
Result<int> cudnn_runtime_version();

// One convolution in cuDNN's terms: NCHW tensors of rank 4 (1-D convs get H = 1) or 5 (3-D).
struct CudnnConvParams {
  int nb_dims = 4;
  int x[5] = {}, w[5] = {}, y[5] = {};  // X [N, C, spatial], W [M, C / groups, kernel], Y [N, M, out]
  int pad[3] = {}, stride[3] = {}, dilation[3] = {};  // nb_dims - 2 spatial dims used
  int groups = 1;
  DType dtype = DType::kF32;
  bool bias = false, relu = false;
};

// Maps a Conv's geometry (the window kernels' 3-dim form, kernels/nn.h) to cuDNN's parameters, or
// nullopt with the reason in `why` when cuDNN cannot take it (asymmetric pads, a dtype other than
// f32/f16/bf16, sizes past 32-bit).
std::optional<CudnnConvParams> cudnn_conv_params(const kernels::WindowArgs& geom, DType dtype, bool bias, bool relu,
                                                 std::string* why);
// A cache key naming everything the algorithm choice depends on.
std::string cudnn_conv_key(const CudnnConvParams& p, bool allow_tf32, int device);

// Builds cuDNN's descriptors for `p` and checks that cuDNN computes the same output dims
// (cudnnGetConvolutionNdForwardOutputDim); needs no GPU. kUnavailable without cuDNN, kInternal
// on a mismatch, kInvalidArgument when cuDNN rejects a descriptor (naming the call).
Status cudnn_check_descriptors(const CudnnConvParams& p);

// Runs the node's convolution on cuDNN into `y` (allocated by the caller with the output dims) and
// returns true, or returns false when the JIT path should run it (path jit, a case cuDNN does not
// take, no cuDNN under path auto, no algorithm for the problem). `geom` has m and groups set.
// Errors name the cuDNN call and the node.
Result<bool> cudnn_conv(RunContext& ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                        const kernels::WindowArgs& geom, Tensor& y);

// Whether convolutions on cuDNN go through its backend (graph) API first (an execution plan per
// problem, cached; conv_cudnn_plan.h), else the legacy API. KILN_CUDNN_GRAPH=0 turns it off (read
// once; default on). False in builds without cuDNN.
bool graph_api_enabled();

// Process-wide counts of real runs (host-only planning counts nothing), for tests and diagnosis.
struct ConvStats {
  uint64_t cudnn_convs = 0;      // convolutions enqueued on cuDNN
  uint64_t graph_convs = 0;      // of those, through a backend-API execution plan (conv_cudnn_plan.h)
  uint64_t jit_convs = 0;        // convolutions left to the JIT kernels
  uint64_t algo_choices = 0;     // problems whose algorithm was chosen (heuristic or measured)
  uint64_t measured = 0;         // of those, chosen by timing (Find)
  uint64_t fused_epilogues = 0;  // convolutions run by cudnnConvolutionBiasActivationForward
};
ConvStats conv_stats();

// Destroys the pooled cuDNN handles that no call holds now (with their descriptors); returns how
// many. The pool otherwise keeps them for the process's lifetime (never destroyed at exit: no
// cuDNN calls during static destruction), which leak checkers report. Later convolutions create
// handles again. Thread-safe.
size_t release_cudnn_handles();

}  // namespace kiln::cuda
