// Dtype dispatch and broadcasting helpers shared by CPU kernels.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/cpu/kernel.h"

namespace kiln::cpu {

// Calls fn.template operator()<T>() with the C++ type of `dtype`. Half types (f16, bf16) are not
// dispatched here (kernels without native_half only ever see f32); bool is `bool`.
// Returns kUnsupported naming the node for a dtype outside `allowed`.
enum DTypeSet : unsigned {
  kFloats = 1u << 0,      // f32, f64
  kSignedInts = 1u << 1,  // i8, i16, i32, i64
  kUnsignedInts = 1u << 2,// u8, u16, u32, u64
  kBools = 1u << 3,
  kNumeric = kFloats | kSignedInts | kUnsignedInts,
  kAll = kNumeric | kBools,
};

template <typename Fn>
Status dispatch_dtype(const ir::Node& node, DType dtype, unsigned allowed, Fn&& fn) {
  auto refuse = [&] {
    return unsupported(node_context(node) + ": dtype " + std::string(dtype_name(dtype)) +
                       " is not supported by this op on the CPU backend");
  };
  switch (dtype) {
    case DType::kF32: if (allowed & kFloats) return fn.template operator()<float>(); break;
    case DType::kF64: if (allowed & kFloats) return fn.template operator()<double>(); break;
    case DType::kI8: if (allowed & kSignedInts) return fn.template operator()<int8_t>(); break;
    case DType::kI16: if (allowed & kSignedInts) return fn.template operator()<int16_t>(); break;
    case DType::kI32: if (allowed & kSignedInts) return fn.template operator()<int32_t>(); break;
    case DType::kI64: if (allowed & kSignedInts) return fn.template operator()<int64_t>(); break;
    case DType::kU8: if (allowed & kUnsignedInts) return fn.template operator()<uint8_t>(); break;
    case DType::kU16: if (allowed & kUnsignedInts) return fn.template operator()<uint16_t>(); break;
    case DType::kU32: if (allowed & kUnsignedInts) return fn.template operator()<uint32_t>(); break;
    case DType::kU64: if (allowed & kUnsignedInts) return fn.template operator()<uint64_t>(); break;
    case DType::kBool: if (allowed & kBools) return fn.template operator()<bool>(); break;
    default: break;
  }
  return refuse();
}

// Numpy-style broadcast of several shapes. Error names the node and both shapes.
Result<Dims> broadcast_shapes(const ir::Node& node, std::span<const Dims> shapes);

// Element strides of `dims` when broadcast to `out` (0 along broadcast dims), right-aligned.
std::vector<int64_t> broadcast_strides(const Dims& dims, const Dims& out);

// Row-major contiguous strides.
std::vector<int64_t> contiguous_strides(const Dims& dims);

}  // namespace kiln::cpu
