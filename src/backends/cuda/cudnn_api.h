// The cuDNN entry points kiln uses, resolved from libcudnn.so.9 at run time (dlopen), so that a
// kiln binary starts on machines without cuDNN. Only for builds with KILN_HAVE_CUDNN; everything
// else goes through conv_cudnn.h.
#pragma once

#ifdef KILN_HAVE_CUDNN

#include <cudnn.h>

#include <string>

#include "kiln/status.h"

namespace kiln::cuda {

#define KILN_CUDNN_FUNCTIONS(X)                                                                        \
  X(cudnnGetVersion) X(cudnnGetErrorString) X(cudnnCreate) X(cudnnDestroy) X(cudnnSetStream)           \
  X(cudnnCreateTensorDescriptor) X(cudnnSetTensorNdDescriptor) X(cudnnDestroyTensorDescriptor)         \
  X(cudnnCreateFilterDescriptor) X(cudnnSetFilterNdDescriptor) X(cudnnDestroyFilterDescriptor)         \
  X(cudnnCreateConvolutionDescriptor) X(cudnnSetConvolutionNdDescriptor)                               \
  X(cudnnSetConvolutionGroupCount) X(cudnnSetConvolutionMathType) X(cudnnDestroyConvolutionDescriptor) \
  X(cudnnGetConvolutionNdForwardOutputDim) X(cudnnGetConvolutionForwardAlgorithmMaxCount)              \
  X(cudnnGetConvolutionForwardAlgorithm_v7) X(cudnnFindConvolutionForwardAlgorithmEx)                  \
  X(cudnnGetConvolutionForwardWorkspaceSize) X(cudnnConvolutionForward)                                \
  X(cudnnConvolutionBiasActivationForward) X(cudnnAddTensor) X(cudnnCreateActivationDescriptor)        \
  X(cudnnSetActivationDescriptor) X(cudnnDestroyActivationDescriptor) X(cudnnActivationForward)        \
  X(cudnnBackendCreateDescriptor) X(cudnnBackendDestroyDescriptor) X(cudnnBackendSetAttribute)         \
  X(cudnnBackendGetAttribute) X(cudnnBackendFinalize) X(cudnnBackendExecute)

struct CudnnApi {
#define KILN_CUDNN_MEMBER(f) decltype(&::f) f = nullptr;
  KILN_CUDNN_FUNCTIONS(KILN_CUDNN_MEMBER)
#undef KILN_CUDNN_MEMBER
  int version = 0;    // cudnnGetVersion()
  std::string path;   // the file loaded
};

// The loaded library (once per process; never unloaded), or kUnavailable saying why.
Result<const CudnnApi*> cudnn_api();

// ok, or `code` with "`call` failed: CUDNN_STATUS_... (`where`)".
Status cudnn_status(cudnnStatus_t s, std::string_view call, std::string_view where,
                    StatusCode code = StatusCode::kDeviceError);

}  // namespace kiln::cuda

#endif  // KILN_HAVE_CUDNN
