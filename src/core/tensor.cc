#include "kiln/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "core/alloc_limit.h"
#include "core/check.h"

namespace kiln {

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32: case DType::kI32: case DType::kU32: return 4;
    case DType::kF64: case DType::kI64: case DType::kU64: return 8;
    case DType::kF16: case DType::kBF16: case DType::kI16: case DType::kU16: return 2;
    case DType::kI8: case DType::kU8: case DType::kBool: return 1;
    case DType::kUndefined: return 0;
  }
  return 0;
}

std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kF64: return "f64";
    case DType::kI64: return "i64";
    case DType::kI32: return "i32";
    case DType::kI16: return "i16";
    case DType::kI8: return "i8";
    case DType::kU64: return "u64";
    case DType::kU32: return "u32";
    case DType::kU16: return "u16";
    case DType::kU8: return "u8";
    case DType::kBool: return "bool";
    case DType::kUndefined: return "undefined";
  }
  return "invalid";
}

bool dtype_valid(uint8_t raw) {
  DType d = static_cast<DType>(raw);
  return d != DType::kUndefined && dtype_size(d) != 0;
}

Result<DType> dtype_parse(std::string_view name) {
  for (uint8_t raw = 1; raw <= 16; ++raw) {
    if (dtype_valid(raw) && dtype_name(static_cast<DType>(raw)) == name) return static_cast<DType>(raw);
  }
  return invalid_argument("unknown dtype '" + std::string(name) +
                          "'; expected f32|f16|bf16|f64|i64|i32|i16|i8|u64|u32|u16|u8|bool");
}

bool dtype_is_float(DType d) {
  return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kF64;
}

bool dtype_is_signed_int(DType d) {
  return d == DType::kI8 || d == DType::kI16 || d == DType::kI32 || d == DType::kI64;
}

std::string Device::to_string() const {
  return type == DeviceType::kCpu ? "cpu" : "cuda:" + std::to_string(index);
}

int64_t dims_numel(std::span<const int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string dims_to_string(std::span<const int64_t> dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

namespace {
constexpr size_t kAlign = 64;

std::shared_ptr<void> allocate(size_t nbytes) {
  size_t rounded = (std::max<size_t>(nbytes, 1) + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) return nullptr;
  std::memset(p, 0, rounded);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace

Result<Tensor> Tensor::empty(DType dtype, Dims dims) {
  if (dtype_size(dtype) == 0) return invalid_argument("cannot allocate a tensor of dtype undefined");
  // Overflow-checked byte count: dims come from untrusted files.
  uint64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return invalid_argument("negative dimension in " + dims_to_string(dims));
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return resource_exhausted("tensor of shape " + dims_to_string(dims) + " is too large");
    n *= static_cast<uint64_t>(d);
  }
  const uint64_t esize = dtype_size(dtype);
  if (!allocation_within_limit(n > UINT64_MAX / esize ? UINT64_MAX : n * esize))
    return resource_exhausted("tensor of shape " + dims_to_string(dims) + " (" +
                              std::string(dtype_name(dtype)) +
                              ") exceeds this thread's allocation limit of " +
                              std::to_string(allocation_limit()) + " bytes");
  if (n > (uint64_t{1} << 40) / dtype_size(dtype))
    return resource_exhausted("tensor of shape " + dims_to_string(dims) + " (" +
                              std::string(dtype_name(dtype)) + ") exceeds 1 TiB");
  Tensor t;
  t.storage_ = allocate(n * dtype_size(dtype));
  if (!t.storage_)
    return resource_exhausted("out of memory allocating " + std::to_string(n * dtype_size(dtype)) +
                              " bytes for a tensor of shape " + dims_to_string(dims));
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(DType dtype, Dims dims) {
  Result<Tensor> r = empty(dtype, std::move(dims));
  if (!r.ok()) {
    std::fprintf(stderr, "kiln: %s\n", r.status().to_string().c_str());
    std::abort();
  }
  return std::move(r).value();
}

Tensor Tensor::wrap(DType dtype, Dims dims, void* data, std::shared_ptr<void> owner, Device device) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.data_ = data;
  t.storage_ = std::move(owner);
  t.device_ = device;
  return t;
}

Tensor Tensor::reshaped(Dims dims) const {
  KILN_CHECK(dims_numel(dims) == numel());
  Tensor t = *this;
  t.dims_ = std::move(dims);
  return t;
}

Tensor Tensor::clone() const {
  KILN_CHECK(device_.type == DeviceType::kCpu);
  Tensor t = zeros(dtype_, dims_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

}  // namespace kiln
