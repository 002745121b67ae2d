// DLPack <-> kiln::Tensor, zero-copy both ways.
#pragma once

#include <pybind11/pybind11.h>

#include "kiln/tensor.h"

namespace kiln::python {

// Consumes a "dltensor" capsule (renaming it "used_dltensor"); the returned tensor keeps the
// producer's memory alive until its last copy is gone. Non-contiguous or unsupported dtypes
// are kInvalidArgument.
Result<Tensor> tensor_from_capsule(pybind11::capsule capsule);

// A "dltensor" capsule viewing `t`'s memory; the capsule (or whoever consumes it) keeps the
// storage alive.
pybind11::capsule tensor_to_capsule(const Tensor& t);

}  // namespace kiln::python
