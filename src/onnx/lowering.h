// The state shared by the per-op lowerings: the graph being built, ONNX names -> value ids, and
// the helpers a lowering uses to add constants and nodes. Internal to src/onnx.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::onnx::detail {

// One ONNX node on its way into the IR. Lowerings edit it in place, then emit it (or something
// else). `inputs`/`outputs` are value ids (kNoValue for an omitted optional one).
struct OpCall {
  std::string name;    // the node's name (generated "<op>_<index>" when ONNX left it empty)
  std::string op;      // ONNX op_type
  int version = 0;     // since_version of the op schema in effect
  int opset = 0;       // the node's default-domain opset
  std::vector<int> inputs;
  std::vector<int> outputs;
  ir::Attributes attrs;

  // "node 'n3' (Slice-1, opset 9)": the prefix of every message about this node.
  std::string where() const;
  Status invalid(const std::string& msg) const;
  Status unsupported_here(const std::string& msg) const;
};

class Lowering {
 public:
  explicit Lowering(ir::Graph* g) : g_(g) {}

  ir::Graph& graph() { return *g_; }

  // Names used by the ONNX model: generated names never collide with these.
  void reserve_name(const std::string& name) { used_names_.insert(name); }
  std::string unique_name(const std::string& base);

  // ONNX name -> value id.
  std::optional<int> lookup(const std::string& name) const;
  void bind(const std::string& name, int id) { ids_[name] = id; }

  // Constants (a fresh value each call), named "<base>" made unique.
  int add_constant(const std::string& base, Tensor t);
  int add_i64(const std::string& base, const std::vector<int64_t>& v);  // 1-D
  int add_i64_scalar(const std::string& base, int64_t v);
  // A scalar (dims []) or 1-element 1-D tensor of `dtype` holding `v` (converted).
  Result<int> add_scalar(const std::string& base, DType dtype, double v, bool one_d = false);

  // Turns value `id` (a node output) into a constant holding `t`.
  void set_constant(int id, Tensor t);

  // A fresh intermediate value.
  int add_value(const std::string& base) { return g_->add_value(unique_name(base)); }

  // Appends a node, recording output dtypes it can infer (see dtype_of).
  void emit(ir::Node node);
  void emit(const OpCall& call);
  // Emits a helper node named "<owner>/<suffix>" with one new output value; returns its id.
  int emit_helper(const OpCall& owner, const std::string& suffix, const std::string& op,
                  std::vector<int> inputs, ir::Attributes attrs = {});

  // What the importer knows about a value: declared or inferred dtype, declared rank, and its
  // constant tensor if it is one.
  std::optional<DType> dtype_of(int id) const;
  std::optional<int64_t> rank_of(int id) const;
  const Tensor* constant_of(int id) const;

  // Non-null once set: ids of values consumed by a node or listed as graph outputs (lowerings
  // that drop outputs check this).
  void set_used(std::unordered_set<std::string> used) { used_ = std::move(used); }
  bool is_used(int id) const;

 private:
  void infer_dtypes(const ir::Node& node);

  ir::Graph* g_;
  std::unordered_map<std::string, int> ids_;
  std::unordered_set<std::string> used_names_;
  std::unordered_set<std::string> used_;
  std::unordered_map<int, DType> inferred_;
  int counter_ = 0;
};

// Reads a list attribute `name` of kind ints (kInvalidData naming the node if it has another kind).
Result<std::optional<std::vector<int64_t>>> take_ints(OpCall& call, const std::string& name);
Result<std::optional<double>> take_float(OpCall& call, const std::string& name);
Result<std::optional<int64_t>> take_int(OpCall& call, const std::string& name);
Result<std::optional<std::string>> take_string(OpCall& call, const std::string& name);
Result<std::optional<std::vector<double>>> take_floats(OpCall& call, const std::string& name);

// Drops trailing kNoValue entries (omitted optional inputs at the end).
void trim_inputs(std::vector<int>* ids);

}  // namespace kiln::onnx::detail
