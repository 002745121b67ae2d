// The op registry: every canonical op kiln's importer and passes produce, with its arity and a
// rule that infers the dtype and shape of its outputs from what is known about its inputs.
//
// Rules see dtypes, shapes (known, symbolic or unknown dims), constant input tensors and the
// "contents" of small integer tensors computed along the way (Shape -> Gather -> Concat chains),
// and fill in what they can prove. A rule never guesses: where it cannot tell, it leaves a dim,
// a rank or a dtype unknown. It returns an error only for a definite contradiction the node
// would also fail on at run time (broadcasting 3 against 4, a Reshape to a different element
// count, a MatMul with mismatched inner dims), naming the node and op. Rules are pure functions,
// safe to call from any thread; the registry is immutable after its first use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::ir {

// One element of an integer tensor's contents: a number (possibly negative), a symbol (the
// run-time size a dim symbol stands for), or unknown.
struct SymInt {
  std::optional<int64_t> value;
  std::string symbol;

  static SymInt of(int64_t v) { return SymInt{v, {}}; }
  static SymInt from_dim(const Dim& d);  // known dim -> number, symbol -> symbol, else unknown
  bool is_known() const { return value.has_value(); }
  Dim to_dim() const;                   // a non-negative number or a symbol; otherwise unknown
  bool operator==(const SymInt&) const = default;
};

// What inference knows about one value.
struct ValueFacts {
  DType dtype = DType::kUndefined;
  Shape shape;                       // rank unknown when nothing is known
  const Tensor* constant = nullptr;  // the value's data when it is a constant (not owned)
  // The elements (row-major) of an integer tensor of rank <= 1 with at most kMaxContent
  // elements, when inference can tell them (each may still be symbolic or unknown).
  std::optional<std::vector<SymInt>> content;
};

constexpr size_t kMaxContent = 64;

// The view an inference rule gets of one node.
class InferContext {
 public:
  InferContext(const Node& node, std::vector<const ValueFacts*> inputs, std::vector<ValueFacts>* outputs)
      : node_(node), inputs_(std::move(inputs)), outputs_(outputs) {}

  const Node& node() const { return node_; }
  const Attributes& attrs() const { return node_.attrs; }
  size_t num_inputs() const { return inputs_.size(); }
  // False for an input past the end or omitted (kNoValue).
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  // The facts of input i; an all-unknown ValueFacts when it is absent.
  const ValueFacts& input(size_t i) const;
  size_t num_outputs() const { return outputs_->size(); }
  // Output i's facts, to fill in (they start all unknown). Writes past the end are dropped.
  ValueFacts& output(size_t i);

  // Input i's elements as known integers (from a constant or fully known contents).
  std::optional<std::vector<int64_t>> ints(size_t i) const;
  // Input i's elements as doubles, from a float or integer constant.
  std::optional<std::vector<double>> floats(size_t i) const;
  // Input i's contents (constants included), when known to be a small integer tensor.
  std::optional<std::vector<SymInt>> content(size_t i) const;

  // kInvalidData "node 'name' (Op): <message>".
  Status error(const std::string& message) const;

 private:
  const Node& node_;
  std::vector<const ValueFacts*> inputs_;
  std::vector<ValueFacts>* outputs_;
  ValueFacts scratch_;
};

using InferFn = Status (*)(InferContext& ctx);

constexpr int kVariadic = 1 << 20;  // max_inputs of ops that take any number of inputs

struct OpSchema {
  std::string_view op;
  int min_inputs = 1;
  int max_inputs = 1;  // kVariadic: no limit
  int min_outputs = 1;
  int max_outputs = 1;
  InferFn infer = nullptr;
};

// The schema of canonical op `op`, or nullptr for an op kiln does not know.
const OpSchema* find_op_schema(std::string_view op);
// Every schema, sorted by op name.
std::span<const OpSchema> op_schemas();

// Rule families (infer_elementwise.cc, infer_nn.cc, infer_tensor.cc); the registry collects them.
void add_elementwise_schemas(std::vector<OpSchema>& out);
void add_nn_schemas(std::vector<OpSchema>& out);
void add_tensor_schemas(std::vector<OpSchema>& out);

}  // namespace kiln::ir
