// Shared value encodings: dtype, dims, symbolic shapes, inline tensors, attributes.
#include <cstring>
#include <limits>

#include "format/section_codec.h"

namespace kiln::format {

void write_dtype(ByteWriter& w, DType d) { w.u8(static_cast<uint8_t>(d)); }

Status read_dtype(ByteReader& r, bool allow_undefined, DType* out, const char* what) {
  uint64_t at = r.offset();
  uint8_t raw = 0;
  KILN_RETURN_IF_ERROR(r.u8(&raw, what));
  if (raw == 0 && allow_undefined) {
    *out = DType::kUndefined;
    return Status();
  }
  if (!dtype_valid(raw))
    return r.error_at(at, std::string(what) + " has invalid dtype value " + std::to_string(raw));
  *out = static_cast<DType>(raw);
  return Status();
}

void write_dims(ByteWriter& w, const Dims& d) {
  w.count(d.size());
  for (int64_t v : d) w.i64(v);
}

Status read_dims(ByteReader& r, Dims* out, const char* what) {
  uint32_t n = 0;
  KILN_RETURN_IF_ERROR(r.count(&n, 8, what));
  out->assign(n, 0);
  for (uint32_t i = 0; i < n; ++i) KILN_RETURN_IF_ERROR(r.i64(&(*out)[i], what));
  return Status();
}

void write_shape(ByteWriter& w, const ir::Shape& s) {
  w.u8(s.rank_known ? 1 : 0);
  w.count(s.dims.size());
  for (const ir::Dim& d : s.dims) {
    w.i64(d.value);
    w.str(d.symbol);
  }
}

Status read_shape(ByteReader& r, ir::Shape* out) {
  uint64_t at = r.offset();
  KILN_RETURN_IF_ERROR(r.boolean(&out->rank_known, "shape rank_known"));
  uint32_t rank = 0;
  KILN_RETURN_IF_ERROR(r.count(&rank, 12, "shape dims"));
  if (!out->rank_known && rank != 0)
    return r.error_at(at, "shape of unknown rank lists " + std::to_string(rank) + " dims");
  out->dims.assign(rank, ir::Dim{});
  for (ir::Dim& d : out->dims) {
    uint64_t dim_at = r.offset();
    KILN_RETURN_IF_ERROR(r.i64(&d.value, "dim value"));
    if (d.value < -1) return r.error_at(dim_at, "dim value " + std::to_string(d.value) + " < -1");
    KILN_RETURN_IF_ERROR(r.str(&d.symbol, "dim symbol"));
  }
  return Status();
}

Status tensor_nbytes(const ByteReader& r, uint64_t at, DType dtype, const Dims& dims,
                     uint64_t* out) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : dims) {
    if (d < 0) return r.error_at(at, "tensor dims " + dims_to_string(dims) + " are negative");
    uint64_t u = static_cast<uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u)
      return r.error_at(at, "tensor dims " + dims_to_string(dims) + " overflow 64 bits");
    n *= u;
  }
  *out = n;
  return Status();
}

Result<uint64_t> host_tensor_nbytes(const Tensor& t, const std::string& what) {
  if (!t.defined()) return uint64_t{0};
  if (t.device().type != DeviceType::kCpu)
    return invalid_argument(what + " is on " + t.device().to_string() +
                            "; only host tensors can be written to an engine file");
  if (dtype_size(t.dtype()) == 0) return invalid_argument(what + " has an invalid dtype");
  uint64_t n = dtype_size(t.dtype());
  for (int64_t d : t.dims()) {
    if (d < 0) return invalid_argument(what + " has negative dims " + dims_to_string(t.dims()));
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return invalid_argument(what + " dims " + dims_to_string(t.dims()) + " overflow");
    n *= static_cast<uint64_t>(d);
  }
  if (n > 0 && t.data() == nullptr) return invalid_argument(what + " has no data");
  return n;
}

Status write_inline_tensor(ByteWriter& w, const Tensor& t, const std::string& what) {
  KILN_ASSIGN_OR_RETURN(uint64_t n, host_tensor_nbytes(t, what));
  write_dtype(w, t.dtype());
  write_dims(w, t.defined() ? t.dims() : Dims{});
  w.u64(n);
  w.bytes(t.data(), n);
  return Status();
}

Status read_inline_tensor(ByteReader& r, Tensor* out) {
  uint64_t at = r.offset();
  DType dtype;
  Dims dims;
  uint64_t nbytes = 0;
  KILN_RETURN_IF_ERROR(read_dtype(r, true, &dtype, "tensor dtype"));
  KILN_RETURN_IF_ERROR(read_dims(r, &dims, "tensor dims"));
  KILN_RETURN_IF_ERROR(r.u64(&nbytes, "tensor byte size"));
  if (dtype == DType::kUndefined) {
    if (!dims.empty() || nbytes != 0) return r.error_at(at, "undefined tensor has dims or bytes");
    *out = Tensor();
    return Status();
  }
  uint64_t expect = 0;
  KILN_RETURN_IF_ERROR(tensor_nbytes(r, at, dtype, dims, &expect));
  if (nbytes != expect)
    return r.error_at(at, "tensor " + std::string(dtype_name(dtype)) + dims_to_string(dims) +
                              " declares " + std::to_string(nbytes) + " bytes, expected " +
                              std::to_string(expect));
  std::span<const uint8_t> data;
  KILN_RETURN_IF_ERROR(r.view(nbytes, &data, "tensor data"));
  // nbytes is bounded by the bytes present, so this allocation is too.
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dtype, std::move(dims)));
  if (nbytes) std::memcpy(t.data(), data.data(), nbytes);
  *out = std::move(t);
  return Status();
}

Status write_attribute(ByteWriter& w, const ir::Attribute& a, const std::string& what) {
  using K = ir::Attribute::Kind;
  w.u8(static_cast<uint8_t>(a.kind));
  switch (a.kind) {
    case K::kInt:
      w.i64(a.i);
      return Status();
    case K::kFloat:
      w.f64(a.f);
      return Status();
    case K::kString:
      w.str(a.s);
      return Status();
    case K::kInts:
      w.count(a.ints.size());
      for (int64_t v : a.ints) w.i64(v);
      return Status();
    case K::kFloats:
      w.count(a.floats.size());
      for (double v : a.floats) w.f64(v);
      return Status();
    case K::kStrings:
      w.count(a.strings.size());
      for (const std::string& s : a.strings) w.str(s);
      return Status();
    case K::kTensor:
      return write_inline_tensor(w, a.t, what);
  }
  return invalid_argument(what + " has unknown kind " + std::to_string(static_cast<int>(a.kind)));
}

Status read_attribute(ByteReader& r, ir::Attribute* out) {
  using K = ir::Attribute::Kind;
  uint64_t at = r.offset();
  uint8_t kind = 0;
  KILN_RETURN_IF_ERROR(r.u8(&kind, "attribute kind"));
  if (kind < static_cast<uint8_t>(K::kInt) || kind > static_cast<uint8_t>(K::kTensor))
    return r.error_at(at, "unknown attribute kind " + std::to_string(kind));
  *out = ir::Attribute{};
  out->kind = static_cast<K>(kind);
  uint32_t n = 0;
  switch (out->kind) {
    case K::kInt:
      return r.i64(&out->i, "int attribute");
    case K::kFloat:
      return r.f64(&out->f, "float attribute");
    case K::kString:
      return r.str(&out->s, "string attribute");
    case K::kInts:
      KILN_RETURN_IF_ERROR(r.count(&n, 8, "ints attribute"));
      out->ints.assign(n, 0);
      for (int64_t& v : out->ints) KILN_RETURN_IF_ERROR(r.i64(&v, "ints attribute"));
      return Status();
    case K::kFloats:
      KILN_RETURN_IF_ERROR(r.count(&n, 8, "floats attribute"));
      out->floats.assign(n, 0.0);
      for (double& v : out->floats) KILN_RETURN_IF_ERROR(r.f64(&v, "floats attribute"));
      return Status();
    case K::kStrings:
      KILN_RETURN_IF_ERROR(r.count(&n, 4, "strings attribute"));
      out->strings.assign(n, std::string());
      for (std::string& s : out->strings) KILN_RETURN_IF_ERROR(r.str(&s, "strings attribute"));
      return Status();
    case K::kTensor:
      return read_inline_tensor(r, &out->t);
  }
  return r.error_at(at, "unknown attribute kind");  // unreachable: range checked above
}

}  // namespace kiln::format
