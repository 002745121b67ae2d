// Device memory for gpu tests: host <-> device copies of tensors and uninitialised device
// tensors, on any CUDA device. Test-only: a CUDA call that fails fails the test (EXPECT) and the
// helper goes on, so the test reports what went wrong instead of crashing.
#pragma once

#include "kiln/tensor.h"

namespace kiln::test {

// A device tensor of `dtype` and `dims` on cuda:`device`, contents undefined. The memory is freed
// (on that device) with the last copy of the tensor. The caller's current device is unchanged.
Tensor device_empty(DType dtype, const Dims& dims, int device = 0);

// A copy of host tensor `t` on cuda:`device` (as device_empty, then filled).
Tensor to_device(const Tensor& t, int device = 0);

// A host copy of `t`; a host tensor is returned as is. The caller's current device is unchanged.
Tensor to_host(const Tensor& t);

// The number of CUDA devices, 0 when there is no driver or device (the error is cleared).
int cuda_device_count();

}  // namespace kiln::test
