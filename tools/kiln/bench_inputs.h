// The inputs `kiln bench` feeds an engine: shapes from the engine's profiles and the user's
// --batch / --shape, filled with deterministic random values. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/engine.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cli {

// One shape per input binding, in binding order: the profile's opt shape; `batch` > 0 replaces
// dim 0 of every input whose dim 0 is dynamic (profile min != max); each `shape_args` entry
// ("NAME:DIMS", as --shape takes it) replaces that input's whole shape and wins over `batch`.
// kInvalidArgument for a malformed or repeated --shape, an unknown input name (the message lists
// the inputs), a NAME:MIN:OPT:MAX range, or a `batch` when no input has a dynamic dim 0.
// Whether the shapes fit the profiles is left to Engine::check_inputs.
Result<std::vector<Dims>> bench_shapes(const std::vector<BindingInfo>& inputs,
                                       const std::vector<std::string>& shape_args, int64_t batch);

// Host tensors of `shapes` (one per input, as bench_shapes gives), the same for the same seed:
// floating-point inputs uniform in [-1, 1), integer inputs 0 or 1 (valid indices and masks for
// any Gather or attention mask), bools random. kInvalidArgument if the counts differ, an input's
// dtype is undefined, or a tensor is too large to allocate.
Result<std::vector<Tensor>> random_inputs(const std::vector<BindingInfo>& inputs,
                                          const std::vector<Dims>& shapes, uint64_t seed);

}  // namespace kiln::cli
