// Helpers for the importer tests: small ModelProtos built with the protobuf API.
#pragma once

#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/graph.h"
#include "kiln_onnx/onnx.pb.h"
#include "onnx/importer.h"

namespace kiln::onnx::testing {

inline ::onnx::ModelProto make_model(int opset, int64_t ir_version = 8) {
  ::onnx::ModelProto m;
  m.set_ir_version(ir_version);
  auto* imp = m.add_opset_import();
  imp->set_domain("");
  imp->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

// dims: >= 0 known, -1 unknown; `syms` gives names for dims (empty string: none).
inline void add_value_info(::onnx::ValueInfoProto* vi, const std::string& name, int elem,
                           const std::vector<int64_t>& dims, const std::vector<std::string>& syms = {}) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    auto* d = shape->add_dim();
    if (i < syms.size() && !syms[i].empty()) d->set_dim_param(syms[i]);
    else if (dims[i] >= 0) d->set_dim_value(dims[i]);
  }
}

inline void add_input(::onnx::ModelProto& m, const std::string& name, int elem,
                      const std::vector<int64_t>& dims, const std::vector<std::string>& syms = {}) {
  add_value_info(m.mutable_graph()->add_input(), name, elem, dims, syms);
}

inline void add_output(::onnx::ModelProto& m, const std::string& name, int elem = 0,
                       const std::vector<int64_t>& dims = {}) {
  auto* vi = m.mutable_graph()->add_output();
  if (elem == 0) {
    vi->set_name(name);
    return;
  }
  add_value_info(vi, name, elem, dims);
}

inline ::onnx::NodeProto* add_node(::onnx::ModelProto& m, const std::string& op,
                                   std::initializer_list<std::string> ins,
                                   std::initializer_list<std::string> outs, const std::string& name = "") {
  auto* n = m.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& s : ins) n->add_input(s);
  for (const auto& s : outs) n->add_output(s);
  return n;
}

inline void set_int(::onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void set_float(::onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline void set_string(::onnx::NodeProto* n, const std::string& name, const std::string& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::STRING);
  a->set_s(v);
}
inline void set_ints(::onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
inline void set_floats(::onnx::NodeProto* n, const std::string& name, std::vector<float> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::FLOATS);
  for (float x : v) a->add_floats(x);
}

// An initializer of `dims` holding `v` (float -> FLOAT, int64_t -> INT64).
template <typename T>
inline ::onnx::TensorProto* add_initializer(::onnx::ModelProto& m, const std::string& name,
                                            const std::vector<int64_t>& dims, const std::vector<T>& v) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, int64_t>);
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name(name);
  for (int64_t d : dims) t->add_dims(d);
  if constexpr (std::is_same_v<T, float>) {
    t->set_data_type(::onnx::TensorProto::FLOAT);
    for (float x : v) t->add_float_data(x);
  } else {
    t->set_data_type(::onnx::TensorProto::INT64);
    for (int64_t x : v) t->add_int64_data(x);
  }
  return t;
}

inline ::onnx::TensorProto* add_initializer_f32(::onnx::ModelProto& m, const std::string& name,
                                                const std::vector<int64_t>& dims, const std::vector<float>& v) {
  return add_initializer(m, name, dims, v);
}

inline ::onnx::TensorProto* add_initializer_i64(::onnx::ModelProto& m, const std::string& name,
                                                const std::vector<int64_t>& dims, const std::vector<int64_t>& v) {
  return add_initializer(m, name, dims, v);
}

inline Result<ir::Graph> import_model(const ::onnx::ModelProto& m, const std::string& base_dir = "") {
  std::string bytes;
  m.SerializeToString(&bytes);
  return import_bytes(bytes, base_dir);
}

// The first node with op `op`, or nullptr.
inline const ir::Node* find_op(const ir::Graph& g, const std::string& op) {
  for (const ir::Node& n : g.nodes)
    if (n.op == op) return &n;
  return nullptr;
}

inline const ir::Node* find_node(const ir::Graph& g, const std::string& name) {
  for (const ir::Node& n : g.nodes)
    if (n.name == name) return &n;
  return nullptr;
}

inline std::vector<int64_t> const_i64(const ir::Graph& g, int id) {
  const ir::Value& v = g.values.at(id);
  if (v.constant < 0) return {};
  const Tensor& t = g.constants.at(v.constant);
  if (t.dtype() != DType::kI64) return {};
  return std::vector<int64_t>(t.data_as<int64_t>(), t.data_as<int64_t>() + t.numel());
}

}  // namespace kiln::onnx::testing
