#include "dlpack_bridge.h"

#ifdef KILN_DLPACK_FROM_ATEN
#include <ATen/dlpack.h>
#else
#include <dlpack/dlpack.h>
#endif

#include <string>
#include <vector>

namespace kiln::python {
namespace py = pybind11;

namespace {

constexpr uint8_t kDLBoolCode = 6;  // kDLBool, added in DLPack 0.8

Result<DType> from_dl(DLDataType t) {
  if (t.lanes != 1) return invalid_argument("DLPack tensors with vector lanes are not supported");
  switch (t.code) {
    case kDLFloat:
      if (t.bits == 32) return DType::kF32;
      if (t.bits == 16) return DType::kF16;
      if (t.bits == 64) return DType::kF64;
      break;
    case kDLBfloat:
      if (t.bits == 16) return DType::kBF16;
      break;
    case kDLInt:
      if (t.bits == 8) return DType::kI8;
      if (t.bits == 16) return DType::kI16;
      if (t.bits == 32) return DType::kI32;
      if (t.bits == 64) return DType::kI64;
      break;
    case kDLUInt:
      if (t.bits == 8) return DType::kU8;
      if (t.bits == 16) return DType::kU16;
      if (t.bits == 32) return DType::kU32;
      if (t.bits == 64) return DType::kU64;
      break;
    case kDLBoolCode:
      if (t.bits == 8) return DType::kBool;
      break;
    default:
      break;
  }
  return invalid_argument("DLPack dtype (code " + std::to_string(t.code) + ", bits " + std::to_string(t.bits) +
                          ") is not supported by kiln");
}

DLDataType to_dl(DType d) {
  DLDataType t{};
  t.lanes = 1;
  t.bits = static_cast<uint8_t>(dtype_size(d) * 8);
  switch (d) {
    case DType::kF32: case DType::kF16: case DType::kF64: t.code = kDLFloat; break;
    case DType::kBF16: t.code = kDLBfloat; break;
    case DType::kI8: case DType::kI16: case DType::kI32: case DType::kI64: t.code = kDLInt; break;
    case DType::kBool: t.code = kDLBoolCode; break;
    default: t.code = kDLUInt; break;
  }
  return t;
}

// What a capsule we export owns: the tensor (keeping its storage alive) and the shape arrays.
struct Export {
  Tensor tensor;
  std::vector<int64_t> shape;
  DLManagedTensor managed{};
};

}  // namespace

Result<Tensor> tensor_from_capsule(py::capsule capsule) {
  if (std::string(capsule.name() ? capsule.name() : "") != "dltensor")
    return invalid_argument("expected a DLPack 'dltensor' capsule (was it consumed already?)");
  auto* managed = static_cast<DLManagedTensor*>(capsule.get_pointer());
  if (!managed) return invalid_argument("empty DLPack capsule");
  const DLTensor& dl = managed->dl_tensor;
  KILN_ASSIGN_OR_RETURN(DType dtype, from_dl(dl.dtype));
  Dims dims(dl.shape, dl.shape + dl.ndim);
  if (dl.strides) {  // accept only compact row-major strides
    int64_t expect = 1;
    for (int i = dl.ndim - 1; i >= 0; --i) {
      if (dims[i] != 1 && dl.strides[i] != expect)
        return invalid_argument("kiln needs contiguous (C-order) tensors; call .contiguous() / np.ascontiguousarray first");
      expect *= dims[i];
    }
  }
  Device device;
  if (dl.device.device_type == kDLCPU) {
    device = Device{DeviceType::kCpu, 0};
  } else if (dl.device.device_type == kDLCUDA) {
    device = Device{DeviceType::kCuda, dl.device.device_id};
  } else {
    return invalid_argument("DLPack device type " + std::to_string(dl.device.device_type) +
                            " is not supported (cpu and cuda are)");
  }
  void* data = static_cast<char*>(dl.data) + dl.byte_offset;
  std::shared_ptr<void> owner(managed, [](void* p) {
    auto* m = static_cast<DLManagedTensor*>(p);
    if (m->deleter) {
      py::gil_scoped_acquire gil;  // producers' deleters may touch Python objects
      m->deleter(m);
    }
  });
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  return Tensor::wrap(dtype, std::move(dims), data, std::move(owner), device);
}

py::capsule tensor_to_capsule(const Tensor& t) {
  auto* ex = new Export();
  ex->tensor = t;
  ex->shape = t.dims();
  DLTensor& dl = ex->managed.dl_tensor;
  dl.data = t.data();
  dl.device.device_type = t.device().type == DeviceType::kCuda ? kDLCUDA : kDLCPU;
  dl.device.device_id = t.device().index;
  dl.ndim = static_cast<int>(ex->shape.size());
  dl.dtype = to_dl(t.dtype());
  dl.shape = ex->shape.data();
  dl.strides = nullptr;
  dl.byte_offset = 0;
  ex->managed.manager_ctx = ex;
  ex->managed.deleter = [](DLManagedTensor* m) { delete static_cast<Export*>(m->manager_ctx); };
  // A capsule nobody consumed frees the tensor itself; a consumed one was renamed.
  return py::capsule(&ex->managed, "dltensor", [](PyObject* cap) {
    if (PyCapsule_IsValid(cap, "dltensor")) {
      auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
      if (m && m->deleter) m->deleter(m);
    }
  });
}

}  // namespace kiln::python
