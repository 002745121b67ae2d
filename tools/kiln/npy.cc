#include "npy.h"

#include <bit>
#include <cstring>
#include <optional>

#include "platform/file.h"

namespace kiln::cli {
namespace {

static_assert(std::endian::native == std::endian::little, "kiln assumes a little-endian host");

constexpr uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kMaxHeaderBytes = size_t{1} << 20;  // numpy itself caps headers far lower

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Dims shape;
  bool has_descr = false, has_order = false, has_shape = false;
};

// A bounded parser for the Python dict literal in an .npy header. Accepts exactly what numpy
// writes (and Python 2's "3L" ints); anything else is an error naming the offset.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view what) : s_(text), what_(what) {}

  Result<NpyHeader> parse() {
    NpyHeader h;
    skip_ws();
    if (!eat('{')) return error("expected '{'");
    while (true) {
      skip_ws();
      if (eat('}')) break;
      KILN_ASSIGN_OR_RETURN(std::string key, string_literal());
      skip_ws();
      if (!eat(':')) return error("expected ':' after '" + key + "'");
      skip_ws();
      if (key == "descr") {
        if (peek() == '[')
          return unsupported(std::string(what_) +
                             ": structured (record) dtypes are not supported; save a plain "
                             "numeric array");
        KILN_ASSIGN_OR_RETURN(h.descr, string_literal());
        h.has_descr = true;
      } else if (key == "fortran_order") {
        if (word("True")) {
          h.fortran_order = true;
        } else if (word("False")) {
          h.fortran_order = false;
        } else {
          return error("fortran_order must be True or False");
        }
        h.has_order = true;
      } else if (key == "shape") {
        KILN_RETURN_IF_ERROR(shape_tuple(&h.shape));
        h.has_shape = true;
      } else {
        return error("unexpected key '" + key + "'");
      }
      skip_ws();
      if (eat(',')) continue;
      skip_ws();
      if (eat('}')) break;
      return error("expected ',' or '}'");
    }
    skip_ws();
    if (pos_ != s_.size()) return error("unexpected text after the header dict");
    if (!h.has_descr || !h.has_order || !h.has_shape)
      return error("header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  Status error(const std::string& msg) const {
    return invalid_data(std::string(what_) + ": malformed .npy header at character " +
                        std::to_string(pos_) + ": " + msg);
  }
  Result<std::string> string_literal() {
    char q = peek();
    if (q != '\'' && q != '"') return error("expected a quoted string");
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') return error("escapes are not supported in header strings");
      out.push_back(s_[pos_++]);
      if (out.size() > 256) return error("string too long");
    }
    if (!eat(q)) return error("unterminated string");
    return out;
  }
  Status shape_tuple(Dims* dims) {
    constexpr int64_t kMaxDim = int64_t{1} << 62;
    if (!eat('(')) return error("shape must be a tuple");
    while (true) {
      skip_ws();
      if (eat(')')) return Status();
      int64_t v = 0;
      size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        if (v > (kMaxDim - 9) / 10) return error("dim too large");
        v = v * 10 + (s_[pos_++] - '0');
      }
      if (pos_ == start) return error("expected a non-negative integer dim");
      eat('L');
      if (dims->size() >= 64) return error("more than 64 dims");
      dims->push_back(v);
      skip_ws();
      if (eat(',')) continue;
      if (eat(')')) return Status();
      return error("expected ',' or ')' in shape");
    }
  }

  std::string_view s_;
  std::string_view what_;
  size_t pos_ = 0;
};

std::optional<DType> dtype_from_code(char kind, int size) {
  switch (kind) {
    case 'f':
      if (size == 2) return DType::kF16;
      if (size == 4) return DType::kF32;
      if (size == 8) return DType::kF64;
      break;
    case 'i':
      if (size == 1) return DType::kI8;
      if (size == 2) return DType::kI16;
      if (size == 4) return DType::kI32;
      if (size == 8) return DType::kI64;
      break;
    case 'u':
      if (size == 1) return DType::kU8;
      if (size == 2) return DType::kU16;
      if (size == 4) return DType::kU32;
      if (size == 8) return DType::kU64;
      break;
    case 'b':
      if (size == 1) return DType::kBool;
      break;
  }
  return std::nullopt;
}

Result<DType> dtype_from_descr(const std::string& descr, std::string_view what) {
  auto bad = [&] {
    return unsupported(std::string(what) + ": .npy dtype '" + descr +
                       "' is not supported; kiln reads f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1");
  };
  if (descr == "?" || descr == "|?") return DType::kBool;
  if (descr.size() != 3 || descr[2] < '1' || descr[2] > '9') return bad();
  char order = descr[0];
  int size = descr[2] - '0';
  std::optional<DType> dt = dtype_from_code(descr[1], size);
  if (!dt) return bad();
  if (order == '>' && size > 1)
    return unsupported(std::string(what) + ": .npy data is big-endian ('" + descr +
                       "'); save it little-endian, e.g. arr.astype('<" + descr.substr(1) + "')");
  if (order != '<' && order != '|' && order != '=' && order != '>') return bad();
  return *dt;
}

uint32_t read_le(const uint8_t* p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::string npy_descr(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return "<f2";
    case DType::kF32:
      return "<f4";
    case DType::kF64:
      return "<f8";
    case DType::kI8:
      return "|i1";
    case DType::kI16:
      return "<i2";
    case DType::kI32:
      return "<i4";
    case DType::kI64:
      return "<i8";
    case DType::kU8:
      return "|u1";
    case DType::kU16:
      return "<u2";
    case DType::kU32:
      return "<u4";
    case DType::kU64:
      return "<u8";
    case DType::kBool:
      return "|b1";
    default:
      return "";
  }
}

Result<Tensor> npy_parse(std::span<const uint8_t> bytes, std::string_view what) {
  std::string w(what);
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
    return invalid_data(w + ": not an .npy file (missing the \\x93NUMPY magic)");
  uint8_t major = bytes[6];
  if (major < 1 || major > 3)
    return unsupported(w + ": .npy format version " + std::to_string(major) + "." +
                       std::to_string(bytes[7]) + " is not supported (kiln reads 1.x to 3.x)");
  size_t len_bytes = major == 1 ? 2 : 4;
  size_t prefix = 8 + len_bytes;
  if (bytes.size() < prefix) return invalid_data(w + ": truncated .npy header");
  size_t header_len = read_le(bytes.data() + 8, static_cast<int>(len_bytes));
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - prefix)
    return invalid_data(w + ": .npy header length " + std::to_string(header_len) +
                        " runs past the end of the file (" + std::to_string(bytes.size()) +
                        " bytes)");
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + prefix), header_len);
  KILN_ASSIGN_OR_RETURN(NpyHeader h, HeaderParser(text, w).parse());
  if (h.fortran_order)
    return unsupported(w +
                       ": .npy array is in Fortran order; save a C-ordered array "
                       "(numpy.ascontiguousarray) instead");
  KILN_ASSIGN_OR_RETURN(DType dtype, dtype_from_descr(h.descr, w));

  size_t data_offset = prefix + header_len;
  size_t available = bytes.size() - data_offset;
  uint64_t item = dtype_size(dtype);
  bool empty = false;
  for (int64_t d : h.shape) empty |= d == 0;
  uint64_t numel = empty ? 0 : 1;
  for (int64_t d : h.shape) {
    // numel * d stays within the bytes present, so it cannot overflow.
    if (empty) break;
    if (numel > available / item / static_cast<uint64_t>(d))
      return invalid_data(w + ": .npy shape " + dims_to_string(h.shape) + " of " + h.descr +
                          " needs more data than the " + std::to_string(available) +
                          " bytes present (truncated file?)");
    numel *= static_cast<uint64_t>(d);
  }
  uint64_t nbytes = numel * item;
  if (nbytes != available)
    return invalid_data(w + ": .npy file has " + std::to_string(available - nbytes) +
                        " bytes after the data of shape " + dims_to_string(h.shape) +
                        "; expected exactly " + std::to_string(nbytes));
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dtype, h.shape));
  if (nbytes) std::memcpy(t.data(), bytes.data() + data_offset, nbytes);
  if (dtype == DType::kBool) {  // any non-zero byte is True, as in numpy
    uint8_t* p = t.data_as<uint8_t>();
    for (uint64_t i = 0; i < numel; ++i) p[i] = p[i] != 0;
  }
  return t;
}

Result<Tensor> npy_read(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, platform::read_file(path));
  return npy_parse(bytes, path);
}

Result<std::vector<uint8_t>> npy_serialize(const Tensor& tensor) {
  std::string descr = npy_descr(tensor.dtype());
  if (descr.empty())
    return unsupported("numpy has no dtype for " + std::string(dtype_name(tensor.dtype())) +
                       "; convert the tensor (e.g. bf16 to f32) before writing .npy");
  if (tensor.device().type != DeviceType::kCpu)
    return invalid_argument("npy_serialize needs a host tensor, got one on " +
                            tensor.device().to_string());
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < tensor.dims().size(); ++i) {
    if (i) dict += ", ";
    dict += std::to_string(tensor.dims()[i]);
  }
  if (tensor.dims().size() == 1) dict += ",";
  dict += "), }";
  // Pad with spaces and a final newline so the data starts 64-byte aligned, like numpy.
  bool v2 = dict.size() + 12 + 64 > 65535;
  size_t prefix = v2 ? 12 : 10;
  size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::vector<uint8_t> out;
  out.reserve(total + tensor.nbytes());
  out.insert(out.end(), kMagic, kMagic + 6);
  out.push_back(v2 ? 2 : 1);
  out.push_back(0);
  uint32_t hlen = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) out.push_back(static_cast<uint8_t>(hlen >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  const uint8_t* data = static_cast<const uint8_t*>(tensor.data());
  if (tensor.nbytes()) out.insert(out.end(), data, data + tensor.nbytes());
  return out;
}

Status npy_write(const std::string& path, const Tensor& tensor) {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, npy_serialize(tensor));
  return platform::write_file_atomic(path, bytes).with_context("writing " + path);
}

}  // namespace kiln::cli
