// TensorProto <-> Tensor, and bounded protobuf parsing. Internal to src/onnx.
#pragma once

#include <string>
#include <string_view>

#include "kiln/status.h"
#include "kiln/tensor.h"
#include "kiln_onnx/onnx.pb.h"

namespace kiln::onnx::detail {

// Largest serialized proto protobuf can represent (its sizes are int32).
constexpr uint64_t kMaxProtoBytes = (uint64_t{1} << 31) - 1;

// Parses `bytes` into `msg` with a raised total-bytes limit. `what` names the input in errors
// ("model.onnx"). kInvalidData for garbage or truncated bytes, or for > 2 GiB.
Status parse_proto(std::string_view bytes, google::protobuf::MessageLite* msg, std::string_view what);

// Reads a whole file. kNotFound / kIoError; kInvalidData if larger than `max_bytes`.
Result<std::string> read_file(const std::string& path, uint64_t max_bytes, std::string_view what);

// ONNX elem_type -> kiln DType. kUnsupported (naming `what` and the ONNX type name) for types kiln
// has no DType for (string, complex, float8, int4, ...); kInvalidData for unknown numbers.
Result<DType> dtype_from_onnx(int32_t elem_type, std::string_view what);
// "FLOAT", "STRING", ... or the number.
std::string onnx_type_name(int32_t elem_type);

// Decodes a TensorProto into a new host tensor. Every size is checked against the bytes present.
// External data is read from files under `base_dir` ("" refuses external data); its location must
// be relative and stay inside base_dir. `what` names the tensor's role in errors.
Result<Tensor> decode_tensor(const ::onnx::TensorProto& tp, const std::string& base_dir,
                             std::string_view what);

// Encodes a host tensor as dims + data_type + raw_data.
void encode_tensor(const Tensor& t, const std::string& name, ::onnx::TensorProto* tp);

// Checked element count of `dims`: kInvalidData for a negative dim or overflow past 2^62.
Result<int64_t> checked_numel(const google::protobuf::RepeatedField<int64_t>& dims,
                              std::string_view what);

}  // namespace kiln::onnx::detail
