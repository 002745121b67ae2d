// The graph IR: typed values with symbolic shapes, nodes carrying canonical op semantics.
//
// The importer lowers every ONNX op version to kiln's canonical form of that op (the newest
// ONNX semantics, with attributes that later opsets moved to inputs turned into constant
// inputs), so nothing past the importer knows about opsets. A Graph owns its constants.
// Graphs are plain values: not synchronised, cheap enough to copy at build time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::ir {

// One dimension: a known size, or a named symbol ("batch"), or unknown (value < 0, no symbol).
struct Dim {
  int64_t value = -1;
  std::string symbol;

  static Dim known(int64_t v) { return Dim{v, {}}; }
  static Dim named(std::string s) { return Dim{-1, std::move(s)}; }
  bool is_known() const { return value >= 0; }
  bool operator==(const Dim&) const = default;
  std::string to_string() const;  // "3", "batch" or "?"
};

struct Shape {
  bool rank_known = false;
  std::vector<Dim> dims;

  static Shape unknown() { return Shape{}; }
  static Shape of(const Dims& d);
  bool fully_known() const;
  std::optional<Dims> concrete() const;  // when fully known
  bool operator==(const Shape&) const = default;
  std::string to_string() const;  // "[batch, 3, 224, 224]" or "[*]"
};

struct Attribute {
  enum class Kind : uint8_t { kInt = 1, kFloat, kString, kInts, kFloats, kStrings, kTensor };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  Tensor t;
};

class Attributes {
 public:
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  const Attribute* find(const std::string& name) const;
  void set(const std::string& name, Attribute a) { map_[name] = std::move(a); }
  void set_int(const std::string& name, int64_t v);
  void set_float(const std::string& name, double v);
  void set_string(const std::string& name, std::string v);
  void set_ints(const std::string& name, std::vector<int64_t> v);
  void set_floats(const std::string& name, std::vector<double> v);
  void erase(const std::string& name) { map_.erase(name); }

  // Getters with defaults; a present attribute of the wrong kind yields the default too
  // (the importer validated kinds already).
  int64_t get_int(const std::string& name, int64_t def) const;
  double get_float(const std::string& name, double def) const;
  std::string get_string(const std::string& name, const std::string& def) const;
  std::vector<int64_t> get_ints(const std::string& name, std::vector<int64_t> def = {}) const;
  std::vector<double> get_floats(const std::string& name, std::vector<double> def = {}) const;

  const std::map<std::string, Attribute>& all() const { return map_; }

 private:
  std::map<std::string, Attribute> map_;  // ordered: serialisation must be deterministic
};

struct Value {
  std::string name;
  DType dtype = DType::kUndefined;
  Shape shape;
  int producer = -1;        // node index, or -1 for graph inputs and constants
  int constant = -1;        // index into Graph::constants, or -1
};

constexpr int kNoValue = -1;  // an omitted optional input

struct Node {
  std::string name;
  std::string op;           // canonical kiln op name (same spelling as ONNX)
  Attributes attrs;
  std::vector<int> inputs;  // value ids; kNoValue for an omitted optional input
  std::vector<int> outputs;
};

class Graph {
 public:
  std::vector<Value> values;
  std::vector<Node> nodes;     // in topological order once validate() passes
  std::vector<int> inputs;     // value ids of the runtime inputs, in binding order
  std::vector<int> outputs;    // value ids of the outputs, in binding order
  std::vector<Tensor> constants;

  int add_value(std::string name, DType dtype = DType::kUndefined, Shape shape = {});
  int add_constant(std::string name, Tensor t);
  int add_node(Node node);  // sets producers of the outputs
  std::optional<int> find_value(const std::string& name) const;

  // Checks that every id is in range, each value has at most one producer, inputs of every
  // node are produced earlier (topological order), and outputs are reachable. Never aborts.
  Status validate() const;
  // Reorders nodes topologically; fails on a cycle, naming a node on it.
  Status topo_sort();
  // Removes nodes whose outputs no graph output needs, and unused constants.
  void prune();
};

}  // namespace kiln::ir
