// Specialised kernel variants: a generic kernel with its shape arguments baked in as constants.
//
// A generic kernel (elementwise.h, reduce.h, nn.h) takes shapes and strides as arguments, so one
// compiled kernel serves the whole profile. bake() turns its source into the *specialised*
// variant for one concrete launch: each named parameter keeps its place in the signature (renamed,
// so launch arguments and grid stay exactly the same) and is redeclared at the top of the body as
// `constexpr TYPE NAME = VALUE;`; blockDim.x may be baked too. NVRTC then folds the index
// arithmetic (divisions by constant dims become multiply-shifts), resolves rank and window loops
// at compile time and unrolls loops whose trip counts become constant.
//
// A specialised kernel is valid only for launches whose arguments equal the baked values: its
// variant key (bake_key) names every baked value, so the kernel table never confuses two.
#pragma once

#include <string>
#include <vector>

#include "backends/cuda/kernels/common.h"
#include "backends/cuda/kernels/nn.h"
#include "backends/cuda/nvrtc.h"
#include "kiln/status.h"

namespace kiln::cuda::kernels {

struct BakedParam {
  std::string type;   // as spelled in the kernel's signature: "long long", "KilnStrided"
  std::string name;   // the parameter's name: "R", "st"
  std::string value;  // a constant expression of `type`: "768LL", "{{4LL, 3LL}, ...}"
};

struct Bake {
  std::vector<BakedParam> params;
  unsigned block = 0;  // bake blockDim.x as this constant; 0: leave it
};

// Canonical text naming every baked value, appended to the generic variant key ("#...").
std::string bake_key(const Bake& bake);
// The specialised source. Errors: kInternal when the source has no parameter `type name`.
Result<KernelSource> bake_source(const KernelSource& generic, const Bake& bake);

BakedParam bake_i64(const std::string& name, int64_t value);
BakedParam bake_strided(const std::string& name, const StridedArgs& args, int operands);
BakedParam bake_window(const std::string& name, const WindowArgs& args);

}  // namespace kiln::cuda::kernels
