#include "backends/cpu/ops/tensor_ops.h"

namespace kiln::cpu {

void register_tensor_ops(KernelRegistry& r) {
  // Byte movers: every dtype, half types included.
  constexpr bool kNativeHalf = true;
  r.add("Shape", shape_kernel, kNativeHalf);
  r.add("Size", size_kernel, kNativeHalf);
  r.add("Reshape", reshape_kernel, kNativeHalf);
  r.add("Flatten", flatten_kernel, kNativeHalf);
  r.add("Squeeze", squeeze_kernel, kNativeHalf);
  r.add("Unsqueeze", unsqueeze_kernel, kNativeHalf);
  r.add("Identity", identity_kernel, kNativeHalf);
  r.add("Dropout", dropout_kernel, kNativeHalf);
  r.add("Transpose", transpose_kernel, kNativeHalf);
  r.add("Concat", concat_kernel, kNativeHalf);
  r.add("Split", split_kernel, kNativeHalf);
  r.add("Slice", slice_kernel, kNativeHalf);
  r.add("Pad", pad_kernel, kNativeHalf);
  r.add("Gather", gather_kernel, kNativeHalf);
  r.add("GatherElements", gather_elements_kernel, kNativeHalf);
  r.add("GatherND", gather_nd_kernel, kNativeHalf);
  r.add("Expand", expand_kernel, kNativeHalf);
  r.add("Tile", tile_kernel, kNativeHalf);
  r.add("Trilu", trilu_kernel, kNativeHalf);
  r.add("ConstantOfShape", constant_of_shape_kernel, kNativeHalf);
  // Arithmetic: f16/bf16 arrive as f32.
  r.add("Range", range_kernel, /*native_half=*/false);
}

}  // namespace kiln::cpu
