// Helpers shared by the CPU shape and data-movement kernels (ops/tensor_*.cc).
//
// These ops only move bytes, so they work on every dtype by element size (1, 2, 4 or 8 bytes),
// f16/bf16/bool included. Copies split over kiln::parallel_for once they are large enough.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "backends/cpu/kernel.h"

namespace kiln::cpu::tensor_ops {

// Input `i`, or an undefined Tensor when it is omitted (past in.size() or not defined).
const Tensor& optional_input(std::span<const Tensor> in, size_t i);

// Input `i`, or invalid_argument naming the node and `what` when it is missing.
Result<Tensor> required_input(const ir::Node& node, std::span<const Tensor> in, size_t i,
                              std::string_view what);

// invalid_argument naming the node unless `out` has room for at least `n` outputs.
Status need_outputs(const ir::Node& node, std::span<Tensor> out, size_t n);

// Tensor::empty with the node named in the error.
Result<Tensor> new_output(const ir::Node& node, DType dtype, Dims dims);

// A one-element integer (i32/i64) tensor, of rank 0 or 1, as int64.
Result<int64_t> read_int_scalar(const ir::Node& node, const Tensor& t, std::string_view what);

// Checks that `dims` has no negative entry and that the element count cannot overflow;
// `what` names the shape in the message.
Status check_dims(const ir::Node& node, const Dims& dims, std::string_view what);

// The same bytes as `t` with new `dims` (equal element count, checked by the caller). Shares
// `t`'s storage when `t` owns it (storage() != null); otherwise (memory borrowed from a caller
// without an owner) returns a copy, so the result never outlives memory it does not own.
Result<Tensor> view_or_copy(const ir::Node& node, const Tensor& t, Dims dims);

// memcpy of `n` bytes, split over the thread pool when large.
void copy_bytes(void* dst, const void* src, size_t n);

// Fills `count` elements of `esize` bytes at `dst` with the element at `value`.
void fill_elements(void* dst, const void* value, size_t esize, int64_t count);

// Gathers a strided view into contiguous memory: the output element at multi-index
// (i_0, ..., i_{n-1}) of `dims` is read from `src` + sum_k i_k * src_strides[k] elements.
// Strides may be zero (broadcast) or negative (reversed). The caller guarantees every address
// read lies inside the source. Size-1 dims are dropped and contiguous dims merged first; unit
// stride runs are copied with memcpy; a transposed pair of dims is copied in cache tiles.
void strided_copy(void* dst, const void* src, const Dims& dims, std::vector<int64_t> src_strides,
                  size_t esize);

// Calls fn.template operator()<U>() with the unsigned integer type of `esize` bytes (1, 2, 4, 8),
// which kernels use to copy elements of any dtype.
template <typename Fn>
void with_element_type(size_t esize, Fn&& fn) {
  switch (esize) {
    case 1:
      fn.template operator()<uint8_t>();
      break;
    case 2:
      fn.template operator()<uint16_t>();
      break;
    case 4:
      fn.template operator()<uint32_t>();
      break;
    default:
      fn.template operator()<uint64_t>();
      break;
  }
}

}  // namespace kiln::cpu::tensor_ops
