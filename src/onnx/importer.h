// The ONNX importer: ONNX model files in, kiln graph IR out. The only code that sees protobuf.
//
// Import lowers every ONNX op version to kiln's canonical form of that op: the semantics of the
// newest version in onnx 1.23 (opset 28), with every parameter that newer opsets take as an input
// passed as an input (constants created by the importer: i64 for axes/pads/shapes/starts/k,
// the data dtype for Clip min/max and the Pad value, f32 for the Dropout ratio). Nothing after the
// importer knows about opsets. Beyond the newest ONNX form, canonical ops carry:
//   Softmax/LogSoftmax  coerce_2d=1 (with an explicit axis) for opsets < 13: flatten the input to
//                       2-D at `axis` and normalise over the second dimension; absent = 0.
//   Resize              also stands for Upsample and Resize-10 (mode nearest|linear with
//                       coordinate_transformation_mode asymmetric, nearest_mode floor, or ceil
//                       for Resize-10 with constant downsampling scales, as onnxruntime rounds).
//   Cast                `to` is always a kiln DType value (CastLike becomes Cast).
//   Split               has `num_outputs` whenever it has no `split` input.
//   Silu                x * sigmoid(x) (not an ONNX op in onnx 1.23; accepted in the default domain).
// Legacy attributes with no effect on inference (consumed_inputs, is_test, broadcast, ...) are
// dropped; old broadcasting (opset < 7 `broadcast`/`axis`, PRelu < 7 channel slopes) becomes an
// explicit Unsqueeze so numpy broadcasting applies. Constant nodes become constant values.
// Omitted optional inputs/outputs are ir::kNoValue. Input bytes are untrusted: any malformed model
// gives a Status (never a crash, never an allocation larger than the bytes present justify):
//   kInvalidData   malformed protobuf, dangling names, sizes that disagree with the data present,
//                  external data outside the model's folder or past the end of its file;
//   kUnsupported   valid ONNX that kiln cannot import (op, op version, dtype, custom domain,
//                  subgraph attributes, training-only outputs), naming the node, op and opset;
//   kNotFound / kIoError   a missing or unreadable model or external data file.
// All functions are thread-safe (they share no state).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::onnx {

// Imports a model file; external data (model.onnx.data etc.) is resolved relative to the model's
// folder and may not leave it.
Result<ir::Graph> import_file(const std::string& path);

// Imports serialized ModelProto bytes; external data is resolved relative to `base_dir`
// ("" refuses external data with kInvalidArgument).
Result<ir::Graph> import_bytes(std::string_view bytes, const std::string& base_dir);

// Reads a serialized TensorProto file (test_data_set inputs/outputs); `name` receives its name if
// non-null. External data is refused.
Result<Tensor> read_tensor_file(const std::string& path, std::string* name = nullptr);
Result<Tensor> parse_tensor(std::string_view bytes, std::string* name = nullptr);

// Writes a host tensor as a serialized TensorProto (dims, data_type, raw_data little-endian).
Status write_tensor_file(const std::string& path, const Tensor& t, const std::string& name);

// The op-version table: for each ONNX op (default domain) kiln imports, the range of model opsets
// it imports that op at. Sorted by op name; lives for the whole process.
struct OpSupport {
  std::string op;
  int min_version;
  int max_version;
};
const std::vector<OpSupport>& supported_ops();

// The newest default-domain opset kiln knows (onnx 1.23: 28). Newer models are kUnsupported.
constexpr int kMaxOpset = 28;
// ModelProto.ir_version range kiln reads.
constexpr int64_t kMinIrVersion = 3;
constexpr int64_t kMaxIrVersion = 14;

}  // namespace kiln::onnx
