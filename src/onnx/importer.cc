#include "onnx/importer.h"

#include <deque>
#include <filesystem>
#include <fstream>
#include <unordered_map>
#include <unordered_set>

#include "onnx/flatten.h"
#include "onnx/lowering.h"
#include "onnx/op_table.h"
#include "onnx/tensor_proto.h"

namespace kiln::onnx {

namespace {

namespace fs = std::filesystem;
using ::onnx::AttributeProto;
using ::onnx::ModelProto;
using ::onnx::TypeProto;
using ::onnx::ValueInfoProto;
using detail::FlatNode;
using detail::OpCall;

const char* type_case_name(TypeProto::ValueCase c) {
  switch (c) {
    case TypeProto::kSequenceType: return "a sequence";
    case TypeProto::kMapType: return "a map";
    case TypeProto::kOptionalType: return "an optional";
    case TypeProto::kSparseTensorType: return "a sparse tensor";
    default: return "not a tensor";
  }
}

// Declared type -> value dtype and shape. `strict` (graph inputs/outputs): a type kiln cannot
// represent is an error; otherwise (value_info) it is ignored.
Status apply_type(const ValueInfoProto& vi, ir::Value* v, bool strict, const std::string& role) {
  if (!vi.has_type()) return Status();
  const TypeProto& type = vi.type();
  if (type.value_case() != TypeProto::kTensorType) {
    if (strict && type.value_case() != TypeProto::VALUE_NOT_SET)
      return unsupported(role + " '" + vi.name() + "' is " + type_case_name(type.value_case()) +
                         "; kiln supports tensor inputs and outputs only");
    return Status();
  }
  const TypeProto::Tensor& tt = type.tensor_type();
  if (tt.elem_type() != 0) {
    Result<DType> dt = detail::dtype_from_onnx(tt.elem_type(), role + " '" + vi.name() + "'");
    if (dt.ok()) v->dtype = *dt;
    else if (strict) return dt.status();
  }
  if (tt.has_shape()) {
    ir::Shape s;
    s.rank_known = true;
    for (const auto& d : tt.shape().dim()) {
      // Some exporters write -1 for a dynamic dim: read any negative size as unknown.
      if (d.has_dim_value() && d.dim_value() >= 0) s.dims.push_back(ir::Dim::known(d.dim_value()));
      else if (d.has_dim_param() && !d.dim_param().empty()) s.dims.push_back(ir::Dim::named(d.dim_param()));
      else s.dims.push_back(ir::Dim{});
    }
    v->shape = std::move(s);
  }
  return Status();
}

AttributeProto::AttributeType guess_type(const AttributeProto& a) {
  if (a.has_f()) return AttributeProto::FLOAT;
  if (a.has_i()) return AttributeProto::INT;
  if (a.has_s()) return AttributeProto::STRING;
  if (a.has_t()) return AttributeProto::TENSOR;
  if (a.has_g()) return AttributeProto::GRAPH;
  if (a.floats_size()) return AttributeProto::FLOATS;
  if (a.ints_size()) return AttributeProto::INTS;
  if (a.strings_size()) return AttributeProto::STRINGS;
  return AttributeProto::UNDEFINED;
}

class Importer {
 public:
  Importer(const ModelProto& m, std::string base_dir) : m_(m), base_dir_(std::move(base_dir)) {}

  Result<ir::Graph> run() {
    KILN_RETURN_IF_ERROR(check_model());
    KILN_RETURN_IF_ERROR(add_initializers());
    KILN_RETURN_IF_ERROR(add_inputs());
    std::deque<::onnx::NodeProto> arena;
    KILN_ASSIGN_OR_RETURN(std::vector<FlatNode> flat,
                          detail::flatten_graph(m_, opset_, &names_, &arena));
    KILN_ASSIGN_OR_RETURN(flat, detail::topo_order(std::move(flat)));
    for (const std::string& n : names_) lx_.reserve_name(n);
    std::unordered_set<std::string> used;
    for (const FlatNode& f : flat)
      for (const std::string& in : f.proto->input()) used.insert(in);
    for (const ValueInfoProto& o : m_.graph().output()) used.insert(o.name());
    lx_.set_used(std::move(used));
    for (const FlatNode& f : flat) KILN_RETURN_IF_ERROR(add_node(f));
    KILN_RETURN_IF_ERROR(add_outputs());
    KILN_RETURN_IF_ERROR(g_.topo_sort());
    KILN_RETURN_IF_ERROR(g_.validate());
    return std::move(g_);
  }

 private:
  Status check_model() {
    if (m_.ir_version() < kMinIrVersion || m_.ir_version() > kMaxIrVersion)
      return unsupported("model has IR version " + std::to_string(m_.ir_version()) +
                         "; kiln reads IR versions " + std::to_string(kMinIrVersion) + " to " +
                         std::to_string(kMaxIrVersion) + " (re-export with a current onnx)");
    for (const auto& imp : m_.opset_import()) {
      if (!detail::is_default_domain(imp.domain())) continue;
      if (opset_ != -1 && opset_ != imp.version())
        return invalid_data("model imports the default domain twice, at opsets " +
                            std::to_string(opset_) + " and " + std::to_string(imp.version()));
      if (imp.version() < 1) return invalid_data("model imports the default domain at opset " +
                                                 std::to_string(imp.version()));
      if (imp.version() > kMaxOpset)
        return unsupported("model uses opset " + std::to_string(imp.version()) +
                           " of the default domain; kiln knows opsets 1 to " +
                           std::to_string(kMaxOpset) + " (onnx 1.23)");
      opset_ = static_cast<int>(imp.version());
    }
    if (!m_.has_graph()) return invalid_data("model has no graph");
    const auto& g = m_.graph();
    if (g.sparse_initializer_size() > 0)
      return unsupported("initializer '" + g.sparse_initializer(0).values().name() +
                         "' is sparse; kiln does not import sparse initializers");
    // Every name the model uses, so generated names never collide with one.
    for (const auto& t : g.initializer()) names_.insert(t.name());
    for (const auto& v : g.input()) names_.insert(v.name());
    for (const auto& v : g.output()) names_.insert(v.name());
    for (const auto& n : g.node()) {
      for (const auto& s : n.input()) names_.insert(s);
      for (const auto& s : n.output()) names_.insert(s);
    }
    for (const auto& vi : g.value_info()) declared_[vi.name()] = &vi;
    for (const auto& vi : g.output()) declared_[vi.name()] = &vi;
    return Status();
  }

  Status add_initializers() {
    const auto& inits = m_.graph().initializer();
    for (int i = 0; i < inits.size(); ++i) {
      const ::onnx::TensorProto& tp = inits.Get(i);
      if (tp.name().empty()) return invalid_data("initializer #" + std::to_string(i) + " has no name");
      if (lx_.lookup(tp.name())) return invalid_data("initializer '" + tp.name() + "' is defined twice");
      KILN_ASSIGN_OR_RETURN(Tensor t, detail::decode_tensor(tp, base_dir_, "initializer '" + tp.name() + "'"));
      lx_.bind(tp.name(), g_.add_constant(tp.name(), std::move(t)));
    }
    return Status();
  }

  Status add_inputs() {
    std::unordered_set<std::string> seen;
    for (const ValueInfoProto& vi : m_.graph().input()) {
      if (vi.name().empty()) return invalid_data("a graph input has no name");
      if (!seen.insert(vi.name()).second)
        return invalid_data("graph input '" + vi.name() + "' is listed twice");
      // Old IR versions list initializers as inputs too: those are constants, not bindings.
      if (lx_.lookup(vi.name())) continue;
      int id = g_.add_value(vi.name());
      KILN_RETURN_IF_ERROR(apply_type(vi, &g_.values[id], true, "graph input"));
      g_.inputs.push_back(id);
      lx_.bind(vi.name(), id);
    }
    return Status();
  }

  Result<ir::Attribute> convert_attribute(const AttributeProto& a, const OpCall& call) {
    const std::string what = call.where() + ": attribute '" + a.name() + "'";
    if (!a.ref_attr_name().empty())
      return invalid_data(what + " refers to function attribute '" + a.ref_attr_name() +
                          "' outside a function");
    ir::Attribute out;
    AttributeProto::AttributeType type = a.type();
    if (type == AttributeProto::UNDEFINED) type = guess_type(a);
    switch (type) {
      case AttributeProto::FLOAT: out.kind = ir::Attribute::Kind::kFloat; out.f = a.f(); break;
      case AttributeProto::INT: out.kind = ir::Attribute::Kind::kInt; out.i = a.i(); break;
      case AttributeProto::STRING: out.kind = ir::Attribute::Kind::kString; out.s = a.s(); break;
      case AttributeProto::FLOATS:
        out.kind = ir::Attribute::Kind::kFloats;
        out.floats.assign(a.floats().begin(), a.floats().end());
        break;
      case AttributeProto::INTS:
        out.kind = ir::Attribute::Kind::kInts;
        out.ints.assign(a.ints().begin(), a.ints().end());
        break;
      case AttributeProto::STRINGS:
        out.kind = ir::Attribute::Kind::kStrings;
        out.strings.assign(a.strings().begin(), a.strings().end());
        break;
      case AttributeProto::TENSOR: {
        out.kind = ir::Attribute::Kind::kTensor;
        KILN_ASSIGN_OR_RETURN(out.t, detail::decode_tensor(a.t(), base_dir_, what));
        break;
      }
      case AttributeProto::GRAPH: case AttributeProto::GRAPHS:
        return unsupported(what + " is a subgraph; kiln does not import control flow");
      case AttributeProto::UNDEFINED:
        return invalid_data(what + " has no value");
      default:
        return unsupported(what + " has type " + AttributeProto::AttributeType_Name(type) +
                           ", which kiln does not import");
    }
    return out;
  }

  Status add_node(const FlatNode& f) {
    const ::onnx::NodeProto& n = *f.proto;
    OpCall call;
    call.name = f.name;
    call.op = n.op_type();
    call.opset = f.opset;
    if (f.opset < 0)
      return invalid_data("node '" + call.name + "' (" + call.op +
                          ") uses the default ONNX domain, which the model's opset_import lacks");
    KILN_ASSIGN_OR_RETURN(const detail::OpEntry* entry, detail::resolve_op(call));
    for (const std::string& in : n.input()) {
      if (in.empty()) {
        call.inputs.push_back(ir::kNoValue);
        continue;
      }
      std::optional<int> id = lx_.lookup(in);
      if (!id)
        return invalid_data(call.where() + ": input '" + in +
                            "' is not a graph input, an initializer or the output of a node");
      call.inputs.push_back(*id);
    }
    for (const AttributeProto& a : n.attribute()) {
      if (call.attrs.has(a.name()))
        return invalid_data(call.where() + ": attribute '" + a.name() + "' is given twice");
      KILN_ASSIGN_OR_RETURN(ir::Attribute attr, convert_attribute(a, call));
      call.attrs.set(a.name(), std::move(attr));
    }
    for (const std::string& out : n.output()) {
      if (out.empty()) {
        call.outputs.push_back(ir::kNoValue);
        continue;
      }
      if (lx_.lookup(out))
        return invalid_data(call.where() + ": output '" + out +
                            "' is already a graph input, an initializer or another node's output");
      int id = g_.add_value(out);
      if (auto it = declared_.find(out); it != declared_.end())
        KILN_RETURN_IF_ERROR(apply_type(*it->second, &g_.values[id], false, "value"));
      lx_.bind(out, id);
      call.outputs.push_back(id);
    }
    return detail::lower_node(lx_, *entry, call);
  }

  Status add_outputs() {
    for (const ValueInfoProto& vi : m_.graph().output()) {
      std::optional<int> id = lx_.lookup(vi.name());
      if (!id)
        return invalid_data("graph output '" + vi.name() +
                            "' is not produced by any node, graph input or initializer");
      ir::Value& v = g_.values[*id];
      if (v.constant < 0 && v.producer >= 0)
        KILN_RETURN_IF_ERROR(apply_type(vi, &v, true, "graph output"));
      g_.outputs.push_back(*id);
    }
    return Status();
  }

  const ModelProto& m_;
  std::string base_dir_;
  ir::Graph g_;
  detail::Lowering lx_{&g_};
  int opset_ = -1;
  std::unordered_set<std::string> names_;
  std::unordered_map<std::string, const ValueInfoProto*> declared_;
};

}  // namespace

Result<ir::Graph> import_bytes(std::string_view bytes, const std::string& base_dir) {
  ModelProto model;
  KILN_RETURN_IF_ERROR(detail::parse_proto(bytes, &model, "ONNX model"));
  return Importer(model, base_dir).run();
}

Result<ir::Graph> import_file(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, detail::read_file(path, detail::kMaxProtoBytes, "ONNX model"));
  std::string base = fs::path(path).parent_path().string();
  if (base.empty()) base = ".";
  ModelProto model;
  Status s = detail::parse_proto(bytes, &model, "ONNX model '" + path + "'");
  if (!s.ok()) return s;
  bytes = std::string();  // the parsed model holds its own copy of the weights
  Result<ir::Graph> g = Importer(model, base).run();
  if (!g.ok()) return g.status().with_context(path);
  return g;
}

Result<Tensor> parse_tensor(std::string_view bytes, std::string* name) {
  ::onnx::TensorProto tp;
  KILN_RETURN_IF_ERROR(detail::parse_proto(bytes, &tp, "tensor file"));
  KILN_ASSIGN_OR_RETURN(Tensor t, detail::decode_tensor(tp, "", "tensor"));
  if (name) *name = tp.name();
  return t;
}

Result<Tensor> read_tensor_file(const std::string& path, std::string* name) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, detail::read_file(path, detail::kMaxProtoBytes, "tensor file"));
  Result<Tensor> t = parse_tensor(bytes, name);
  if (!t.ok()) return t.status().with_context(path);
  return t;
}

Status write_tensor_file(const std::string& path, const Tensor& t, const std::string& name) {
  if (!t.defined()) return invalid_argument("write_tensor_file: tensor '" + name + "' is undefined");
  if (t.device().type != DeviceType::kCpu)
    return invalid_argument("write_tensor_file: tensor '" + name + "' is not on the host");
  if (t.nbytes() > detail::kMaxProtoBytes - 4096)
    return invalid_argument("write_tensor_file: tensor '" + name + "' exceeds 2 GiB");
  ::onnx::TensorProto tp;
  detail::encode_tensor(t, name, &tp);
  std::string bytes;
  if (!tp.SerializeToString(&bytes)) return internal_error("cannot serialize tensor '" + name + "'");
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return io_error("cannot open '" + path + "' for writing");
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) return io_error("cannot write '" + path + "'");
  return Status();
}

}  // namespace kiln::onnx
