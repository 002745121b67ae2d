// Encoders and decoders of the engine file's sections and of the values they share (shapes,
// dims, inline tensors, attributes). Internal to src/format; engine_file.h is the API.
//
// Decoders read from a bounded ByteReader and check every value they read (dtype values,
// enum ranges, counts, tensor byte sizes, ids where the section alone can tell); cross-section
// checks (binding value ids, graph.validate()) happen in the reader once everything is decoded.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "format/byte_io.h"
#include "format/engine_model.h"

namespace kiln::format {

// --- shared values -----------------------------------------------------------------------------
// Minimum encoded sizes, for ByteReader::count.
inline constexpr size_t kMinShapeBytes = 5;      // u8 rank_known + u32 rank
inline constexpr size_t kMinTensorBytes = 13;    // u8 dtype + u32 rank + u64 nbytes
inline constexpr size_t kMinAttributeBytes = 5;  // string name (u32 len) + u8 kind

void write_dtype(ByteWriter& w, DType d);
// An undefined dtype (0) is accepted only when `allow_undefined`.
Status read_dtype(ByteReader& r, bool allow_undefined, DType* out, const char* what);
void write_dims(ByteWriter& w, const Dims& d);
Status read_dims(ByteReader& r, Dims* out, const char* what);
void write_shape(ByteWriter& w, const ir::Shape& s);
Status read_shape(ByteReader& r, ir::Shape* out);
// numel(dims) * dtype_size(dtype) with every multiplication overflow-checked; dims must be >= 0.
// `at` is the file offset named in errors.
Status tensor_nbytes(const ByteReader& r, uint64_t at, DType dtype, const Dims& dims,
                     uint64_t* out);
// Byte size of an in-memory tensor, or kInvalidArgument if it cannot be written (device tensor,
// negative dim, missing data). Undefined tensors have 0 bytes.
Result<uint64_t> host_tensor_nbytes(const Tensor& t, const std::string& what);
// Inline tensor: dtype, dims, u64 nbytes, bytes. An undefined Tensor round-trips.
Status write_inline_tensor(ByteWriter& w, const Tensor& t, const std::string& what);
Status read_inline_tensor(ByteReader& r, Tensor* out);
Status write_attribute(ByteWriter& w, const ir::Attribute& a, const std::string& what);
Status read_attribute(ByteReader& r, ir::Attribute* out);

// --- sections ----------------------------------------------------------------------------------
void encode_header(const EngineHeader& h, ByteWriter& w);
Status decode_header(ByteReader& r, EngineHeader* out);

Status encode_bindings(const EngineModel& m, ByteWriter& w);
Status decode_bindings(ByteReader& r, EngineModel* out);
// Profile sanity and value ids, shared by writer and reader so neither accepts what the other
// refuses. Returns kInvalidData (the reader rewrites the code for the writer).
Status validate_bindings(const EngineModel& m);

// Graph section plus the weights section it points into. Weight offsets are relative to the
// weights section, whose start in the file is a multiple of kWeightAlignment.
Status encode_graph(const ir::Graph& g, ByteWriter& graph, ByteWriter& weights);
struct WeightsView {
  std::span<const uint8_t> bytes;     // the whole weights section
  uint64_t file_offset = 0;           // where it starts in the file
  bool copy = false;                  // copy constants instead of viewing them
  std::shared_ptr<const void> owner;  // keeps `bytes` alive (may be null)
};
Status decode_graph(ByteReader& r, const WeightsView& weights, ir::Graph* out);

Status encode_kernels(const std::vector<KernelSource>& k, ByteWriter& w);
Status decode_kernels(ByteReader& r, std::vector<KernelSource>* out);
Status encode_metadata(const std::map<std::string, std::string>& m, ByteWriter& w);
Status decode_metadata(ByteReader& r, std::map<std::string, std::string>* out);

}  // namespace kiln::format
