#include "onnx/tensor_proto.h"

#include <bit>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include <google/protobuf/io/coded_stream.h>

namespace kiln::onnx::detail {

static_assert(std::endian::native == std::endian::little,
              "raw_data is little-endian; a big-endian host needs byte swapping here");

namespace fs = std::filesystem;
using ::onnx::TensorProto;

Status parse_proto(std::string_view bytes, google::protobuf::MessageLite* msg, std::string_view what) {
  if (bytes.size() > kMaxProtoBytes)
    return invalid_data(std::string(what) + " is " + std::to_string(bytes.size()) +
                        " bytes; a protobuf message cannot exceed 2 GiB (save the weights as "
                        "external data, e.g. onnx.save(..., save_as_external_data=True))");
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  in.SetTotalBytesLimit(INT_MAX);
  if (!msg->ParseFromCodedStream(&in) || !in.ConsumedEntireMessage())
    return invalid_data(std::string(what) + " is not a valid serialized " + msg->GetTypeName() +
                        " (" + std::to_string(bytes.size()) +
                        " bytes; truncated or corrupt protobuf)");
  return Status();
}

Result<std::string> read_file(const std::string& path, uint64_t max_bytes, std::string_view what) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return not_found(std::string(what) + " '" + path + "' does not exist");
  if (!fs::is_regular_file(st)) return invalid_argument(std::string(what) + " '" + path + "' is not a regular file");
  uint64_t size = fs::file_size(path, ec);
  if (ec) return io_error("cannot stat " + std::string(what) + " '" + path + "': " + ec.message());
  if (size > max_bytes)
    return invalid_data(std::string(what) + " '" + path + "' is " + std::to_string(size) +
                        " bytes; a protobuf message cannot exceed 2 GiB (save the weights as "
                        "external data)");
  std::ifstream f(path, std::ios::binary);
  if (!f) return io_error("cannot open " + std::string(what) + " '" + path + "'");
  std::string data(static_cast<size_t>(size), '\0');
  if (size && !f.read(data.data(), static_cast<std::streamsize>(size)))
    return io_error("cannot read " + std::string(what) + " '" + path + "'");
  return data;
}

std::string onnx_type_name(int32_t elem_type) {
  if (TensorProto::DataType_IsValid(elem_type))
    return TensorProto::DataType_Name(static_cast<TensorProto::DataType>(elem_type));
  return std::to_string(elem_type);
}

Result<DType> dtype_from_onnx(int32_t elem_type, std::string_view what) {
  if (elem_type >= 0 && elem_type <= 255 && dtype_valid(static_cast<uint8_t>(elem_type)))
    return static_cast<DType>(elem_type);
  if (elem_type == TensorProto::UNDEFINED)
    return invalid_data(std::string(what) + " has data_type UNDEFINED");
  if (!TensorProto::DataType_IsValid(elem_type))
    return invalid_data(std::string(what) + " has unknown data_type " + std::to_string(elem_type));
  return unsupported(std::string(what) + " has element type " + onnx_type_name(elem_type) +
                     ", which kiln does not support (supported: float, float16, bfloat16, double, "
                     "int8..int64, uint8..uint64, bool)");
}

Result<int64_t> checked_numel(const google::protobuf::RepeatedField<int64_t>& dims,
                              std::string_view what) {
  constexpr int64_t kLimit = int64_t{1} << 62;
  int64_t n = 1;
  bool zero = false;
  for (int64_t d : dims) {
    if (d < 0) return invalid_data(std::string(what) + " has a negative dimension " + std::to_string(d));
    if (d == 0) zero = true;
  }
  if (zero) return int64_t{0};
  for (int64_t d : dims) {
    if (n > kLimit / d)
      return invalid_data(std::string(what) + " has dimensions whose product overflows");
    n *= d;
  }
  return n;
}

namespace {

std::string describe(const TensorProto& tp, std::string_view what) {
  std::string s(what);
  if (!tp.name().empty() && s.find(tp.name()) == std::string::npos) s += " '" + tp.name() + "'";
  return s;
}

Result<uint64_t> parse_u64(const std::string& s, std::string_view key, std::string_view what) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return invalid_data(std::string(what) + ": external data " + std::string(key) + " '" + s +
                        "' is not a non-negative integer");
  return v;
}

// Resolves `location` under `base_dir`, refusing anything that could leave it.
Result<fs::path> resolve_external(const std::string& base_dir, const std::string& location,
                                  std::string_view what) {
  if (location.empty() || location.find('\0') != std::string::npos)
    return invalid_data(std::string(what) + ": external data location is empty or invalid");
  fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
    return invalid_data(std::string(what) + ": external data location '" + location +
                        "' is absolute; it must be relative to the model's folder");
  for (const fs::path& part : rel) {
    if (part == "..")
      return invalid_data(std::string(what) + ": external data location '" + location +
                          "' contains '..'; it must stay inside the model's folder");
  }
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::path(base_dir), ec);
  if (ec) return io_error(std::string(what) + ": cannot resolve model folder '" + base_dir + "'");
  fs::path full = fs::weakly_canonical(base / rel, ec);
  if (ec) return io_error(std::string(what) + ": cannot resolve external data '" + location + "'");
  // Symlinks may still point outside: the canonical path must stay under the canonical folder.
  fs::path inside = full.lexically_relative(base);
  if (inside.empty() || *inside.begin() == "..")
    return invalid_data(std::string(what) + ": external data location '" + location +
                        "' resolves outside the model's folder");
  return full;
}

struct ExternalRange {
  fs::path path;
  std::string location;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Validates location, offset and length against the file before anything is allocated.
Result<ExternalRange> locate_external(const TensorProto& tp, const std::string& base_dir,
                                      std::string_view what, uint64_t expected_bytes) {
  ExternalRange r;
  bool has_length = false;
  for (const auto& kv : tp.external_data()) {
    if (kv.key() == "location") {
      r.location = kv.value();
    } else if (kv.key() == "offset") {
      KILN_ASSIGN_OR_RETURN(r.offset, parse_u64(kv.value(), "offset", what));
    } else if (kv.key() == "length") {
      KILN_ASSIGN_OR_RETURN(r.length, parse_u64(kv.value(), "length", what));
      has_length = true;
    }
  }
  KILN_ASSIGN_OR_RETURN(r.path, resolve_external(base_dir, r.location, what));
  std::error_code ec;
  if (!fs::is_regular_file(r.path, ec))
    return not_found(std::string(what) + ": external data file '" + r.location +
                     "' does not exist in '" + base_dir + "'");
  uint64_t file_size = fs::file_size(r.path, ec);
  if (ec) return io_error(std::string(what) + ": cannot stat external data '" + r.location + "'");
  if (r.offset > file_size)
    return invalid_data(std::string(what) + ": external data offset " + std::to_string(r.offset) +
                        " is past the end of '" + r.location + "' (" + std::to_string(file_size) +
                        " bytes)");
  if (!has_length) r.length = file_size - r.offset;
  if (r.length > file_size - r.offset)
    return invalid_data(std::string(what) + ": external data at offset " +
                        std::to_string(r.offset) + " with length " + std::to_string(r.length) +
                        " runs past the end of '" + r.location + "' (" +
                        std::to_string(file_size) + " bytes)");
  if (r.length != expected_bytes)
    return invalid_data(std::string(what) + ": external data holds " + std::to_string(r.length) +
                        " bytes but its dims and data type need " + std::to_string(expected_bytes));
  return r;
}

Status read_external(const ExternalRange& r, std::string_view what, void* dst) {
  if (r.length == 0) return Status();
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(r.path.c_str(), "rb"), &std::fclose);
  if (!f) return io_error(std::string(what) + ": cannot open external data '" + r.location + "'");
  if (fseeko(f.get(), static_cast<off_t>(r.offset), SEEK_SET) != 0 ||
      std::fread(dst, 1, r.length, f.get()) != r.length)
    return io_error(std::string(what) + ": cannot read " + std::to_string(r.length) +
                    " bytes at offset " + std::to_string(r.offset) + " of '" + r.location + "'");
  return Status();
}

template <typename Dst, typename Field, typename Conv>
Status copy_typed(const Field& field, int64_t numel, const char* field_name, std::string_view what,
                  void* out, Conv conv) {
  if (static_cast<int64_t>(field.size()) != numel)
    return invalid_data(std::string(what) + " has " + std::to_string(field.size()) + " values in " +
                        field_name + " but its dims need " + std::to_string(numel));
  Dst* dst = static_cast<Dst*>(out);
  for (int64_t i = 0; i < numel; ++i) dst[i] = conv(field.Get(static_cast<int>(i)));
  return Status();
}

Status decode_typed(const TensorProto& tp, DType dt, int64_t n, std::string_view w, void* out) {
  auto same = [](auto v) { return v; };
  switch (dt) {
    case DType::kF32:
      return copy_typed<float>(tp.float_data(), n, "float_data", w, out, same);
    case DType::kF64:
      return copy_typed<double>(tp.double_data(), n, "double_data", w, out, same);
    case DType::kI64:
      return copy_typed<int64_t>(tp.int64_data(), n, "int64_data", w, out, same);
    case DType::kI32:
      return copy_typed<int32_t>(tp.int32_data(), n, "int32_data", w, out, same);
    case DType::kI16:
      return copy_typed<int16_t>(tp.int32_data(), n, "int32_data", w, out,
                                 [](int32_t v) { return static_cast<int16_t>(v); });
    case DType::kI8:
      return copy_typed<int8_t>(tp.int32_data(), n, "int32_data", w, out,
                                [](int32_t v) { return static_cast<int8_t>(v); });
    case DType::kU16: case DType::kF16: case DType::kBF16:  // f16/bf16: the bit pattern
      return copy_typed<uint16_t>(tp.int32_data(), n, "int32_data", w, out,
                                  [](int32_t v) { return static_cast<uint16_t>(v); });
    case DType::kU8:
      return copy_typed<uint8_t>(tp.int32_data(), n, "int32_data", w, out,
                                 [](int32_t v) { return static_cast<uint8_t>(v); });
    case DType::kBool:
      return copy_typed<uint8_t>(tp.int32_data(), n, "int32_data", w, out,
                                 [](int32_t v) { return static_cast<uint8_t>(v != 0); });
    case DType::kU32:
      return copy_typed<uint32_t>(tp.uint64_data(), n, "uint64_data", w, out,
                                  [](uint64_t v) { return static_cast<uint32_t>(v); });
    case DType::kU64:
      return copy_typed<uint64_t>(tp.uint64_data(), n, "uint64_data", w, out, same);
    case DType::kUndefined:
      break;
  }
  return internal_error("decode_typed: unhandled dtype");
}

}  // namespace

Result<Tensor> decode_tensor(const TensorProto& tp, const std::string& base_dir, std::string_view what) {
  const std::string w = describe(tp, what);
  if (tp.has_segment()) return unsupported(w + " is segmented; kiln does not read segmented tensors");
  KILN_ASSIGN_OR_RETURN(DType dt, dtype_from_onnx(tp.data_type(), w));
  KILN_ASSIGN_OR_RETURN(int64_t numel, checked_numel(tp.dims(), w));
  const size_t esize = dtype_size(dt);
  if (static_cast<uint64_t>(numel) > std::numeric_limits<uint64_t>::max() / 16 / esize)
    return invalid_data(w + " is too large");
  const uint64_t nbytes = static_cast<uint64_t>(numel) * esize;
  Dims dims(tp.dims().begin(), tp.dims().end());

  const bool external = tp.data_location() == TensorProto::EXTERNAL;
  // The data must be shown present before anything is allocated: sizes come from untrusted bytes.
  ExternalRange range;
  if (external) {
    if (tp.external_data_size() == 0)
      return invalid_data(w + " has data_location EXTERNAL but no external_data entries");
    if (base_dir.empty())
      return invalid_argument(w + " stores its data in an external file, but no model folder was "
                                  "given to resolve it (use import_file, or import_bytes with a "
                                  "base_dir)");
    KILN_ASSIGN_OR_RETURN(range, locate_external(tp, base_dir, w, nbytes));
  } else if (tp.has_raw_data()) {
    if (tp.raw_data().size() != nbytes)
      return invalid_data(w + " has " + std::to_string(tp.raw_data().size()) +
                          " bytes of raw_data but dims " + dims_to_string(dims) + " of " +
                          std::string(dtype_name(dt)) + " need " + std::to_string(nbytes));
  } else {
    int64_t have = 0;
    switch (dt) {
      case DType::kF32: have = tp.float_data_size(); break;
      case DType::kF64: have = tp.double_data_size(); break;
      case DType::kI64: have = tp.int64_data_size(); break;
      case DType::kU32: case DType::kU64: have = tp.uint64_data_size(); break;
      default: have = tp.int32_data_size(); break;
    }
    if (have != numel)
      return invalid_data(w + " has dims " + dims_to_string(dims) + " (" + std::to_string(numel) +
                          " elements) but holds " + std::to_string(have) + " values");
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dt, dims));
  if (external) {
    KILN_RETURN_IF_ERROR(read_external(range, w, t.data()));
  } else if (tp.has_raw_data()) {
    if (nbytes) std::memcpy(t.data(), tp.raw_data().data(), nbytes);
  } else {
    KILN_RETURN_IF_ERROR(decode_typed(tp, dt, numel, w, t.data()));
  }
  return t;
}

void encode_tensor(const Tensor& t, const std::string& name, TensorProto* tp) {
  tp->Clear();
  tp->set_name(name);
  tp->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.dims()) tp->add_dims(d);
  tp->set_raw_data(static_cast<const char*>(t.data()), t.nbytes());
}

}  // namespace kiln::onnx::detail
