// DType, Device and Tensor: the values that cross kiln's public API.
//
// A Tensor is a dtype, a concrete shape (row-major, contiguous) and a pointer into storage that
// it shares (std::shared_ptr) with every copy of it: copying a Tensor never copies data. Storage
// is either owned (Tensor::empty, 64-byte aligned, zero-filled) or borrowed from the caller
// (Tensor::wrap), who then keeps the memory alive for the tensor's lifetime or hands kiln an owner.
// A Tensor is not synchronised: share it read-only across threads, or not at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"

namespace kiln {

// Numbering follows onnx.TensorProto.DataType so the importer needs no table.
enum class DType : uint8_t {
  kUndefined = 0,
  kF32 = 1,
  kU8 = 2,
  kI8 = 3,
  kU16 = 4,
  kI16 = 5,
  kI32 = 6,
  kI64 = 7,
  kBool = 9,
  kF16 = 10,
  kF64 = 11,
  kU32 = 12,
  kU64 = 13,
  kBF16 = 16,
};

// Bytes per element; 0 for kUndefined or an unknown value.
size_t dtype_size(DType dtype);
// "f32", "f16", "bf16", "f64", "i64", "i32", "i16", "i8", "u64", "u32", "u16", "u8", "bool".
std::string_view dtype_name(DType dtype);
Result<DType> dtype_parse(std::string_view name);
// True for a dtype value kiln defines (untrusted bytes are checked with this).
bool dtype_valid(uint8_t raw);
bool dtype_is_float(DType dtype);
bool dtype_is_signed_int(DType dtype);

enum class DeviceType : uint8_t { kCpu = 0, kCuda = 1 };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;
  bool operator==(const Device&) const = default;
  std::string to_string() const;  // "cpu" or "cuda:0"
};

using Dims = std::vector<int64_t>;

// Product of dims; 1 for a scalar (empty dims).
int64_t dims_numel(std::span<const int64_t> dims);
// "[1, 3, 224, 224]"
std::string dims_to_string(std::span<const int64_t> dims);

class Tensor {
 public:
  Tensor() = default;

  // New zero-filled host tensor. Fails if the size overflows or memory runs out.
  static Result<Tensor> empty(DType dtype, Dims dims);
  // Like empty(), for internal callers that have already validated the size; aborts on OOM.
  static Tensor zeros(DType dtype, Dims dims);
  // A view over memory the caller owns (`owner` may be null: then the caller keeps `data` alive
  // for as long as any copy of the tensor lives).
  static Tensor wrap(DType dtype, Dims dims, void* data, std::shared_ptr<void> owner = nullptr,
                     Device device = {});
  // A host tensor holding a copy of `values`.
  template <typename T>
  static Tensor from_vector(DType dtype, Dims dims, const std::vector<T>& values);

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const Dims& dims() const { return dims_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t dim(int64_t i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t numel() const { return dims_numel(dims_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  Device device() const { return device_; }

  void* data() const { return data_; }
  template <typename T>
  T* data_as() const { return static_cast<T*>(data_); }
  const std::shared_ptr<void>& storage() const { return storage_; }

  // Same storage, new dims of equal element count (checked: KILN_CHECK on mismatch).
  Tensor reshaped(Dims dims) const;
  // A deep copy into fresh host memory (host tensors only).
  Tensor clone() const;

 private:
  DType dtype_ = DType::kUndefined;
  Dims dims_;
  Device device_;
  void* data_ = nullptr;
  std::shared_ptr<void> storage_;
};

template <typename T>
Tensor Tensor::from_vector(DType dtype, Dims dims, const std::vector<T>& values) {
  Tensor t = zeros(dtype, std::move(dims));
  size_t n = std::min(values.size() * sizeof(T), t.nbytes());
  if (n) std::memcpy(t.data(), values.data(), n);
  return t;
}

}  // namespace kiln
