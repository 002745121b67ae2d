// Section 3 (graph) and the weights it points into (section 4).
#include <cstring>

#include "format/engine_layout.h"
#include "format/section_codec.h"

namespace kiln::format {
namespace {

constexpr size_t kMinValueBytes = 4 + 1 + kMinShapeBytes + 4;  // name, dtype, shape, constant
constexpr size_t kMinConstantBytes = 1 + 4 + 8 + 8;            // dtype, dims, offset, size
constexpr size_t kMinNodeBytes = 4 + 4 + 4 + 4 + 4;            // name, op, 3 counts

void write_ids(ByteWriter& w, const std::vector<int>& ids) {
  w.count(ids.size());
  for (int id : ids) w.i32(id);
}

Status read_ids(ByteReader& r, std::vector<int>* out, const char* what) {
  uint32_t n = 0;
  KILN_RETURN_IF_ERROR(r.count(&n, 4, what));
  out->assign(n, 0);
  for (int& id : *out) {
    int32_t v = 0;
    KILN_RETURN_IF_ERROR(r.i32(&v, what));
    id = v;
  }
  return Status();
}

Status read_constant(ByteReader& r, const WeightsView& weights, size_t index, Tensor* out) {
  uint64_t at = r.offset();
  DType dtype;
  Dims dims;
  uint64_t offset = 0, size = 0;
  KILN_RETURN_IF_ERROR(read_dtype(r, true, &dtype, "constant dtype"));
  KILN_RETURN_IF_ERROR(read_dims(r, &dims, "constant dims"));
  KILN_RETURN_IF_ERROR(r.u64(&offset, "constant offset"));
  KILN_RETURN_IF_ERROR(r.u64(&size, "constant size"));
  const std::string what = "constant " + std::to_string(index);
  if (dtype == DType::kUndefined) {  // a constant pruned away: ids stay stable
    if (!dims.empty() || offset != 0 || size != 0)
      return r.error_at(at, what + " is undefined but has dims, offset or size");
    *out = Tensor();
    return Status();
  }
  uint64_t expect = 0;
  KILN_RETURN_IF_ERROR(tensor_nbytes(r, at, dtype, dims, &expect));
  if (size != expect)
    return r.error_at(at, what + " (" + std::string(dtype_name(dtype)) + dims_to_string(dims) +
                              ") declares " + std::to_string(size) + " bytes, expected " +
                              std::to_string(expect));
  const uint64_t avail = weights.bytes.size();
  if (size > avail || offset > avail - size)
    return r.error_at(at, what + " spans weights bytes [" + std::to_string(offset) + ", +" +
                              std::to_string(size) + ") beyond the weights section's " +
                              std::to_string(avail) + " bytes");
  if ((weights.file_offset + offset) % kWeightAlignment != 0)
    return r.error_at(at, what + " starts at file offset " +
                              std::to_string(weights.file_offset + offset) +
                              ", not a multiple of " + std::to_string(kWeightAlignment));
  const uint8_t* p = weights.bytes.data() + offset;
  if (weights.copy || size == 0) {
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dtype, std::move(dims)));
    if (size) std::memcpy(t.data(), p, size);
    *out = std::move(t);
  } else {
    *out = Tensor::wrap(dtype, std::move(dims), const_cast<uint8_t*>(p),
                        std::const_pointer_cast<void>(weights.owner));
  }
  return Status();
}

Status read_node(ByteReader& r, ir::Node* node) {
  KILN_RETURN_IF_ERROR(r.str(&node->name, "node name"));
  KILN_RETURN_IF_ERROR(r.str(&node->op, "node op"));
  uint32_t n_attrs = 0;
  KILN_RETURN_IF_ERROR(r.count(&n_attrs, kMinAttributeBytes, "node attributes"));
  std::string prev;
  for (uint32_t i = 0; i < n_attrs; ++i) {
    uint64_t at = r.offset();
    std::string name;
    KILN_RETURN_IF_ERROR(r.str(&name, "attribute name"));
    // Written in std::map order; anything else is corruption (and catches duplicates).
    if (i > 0 && !(prev < name))
      return r.error_at(at, "attributes of node '" + node->name + "' are not in strictly " +
                                "increasing name order ('" + prev + "' then '" + name + "')");
    ir::Attribute a;
    KILN_RETURN_IF_ERROR(read_attribute(r, &a));
    node->attrs.set(name, std::move(a));
    prev = std::move(name);
  }
  KILN_RETURN_IF_ERROR(read_ids(r, &node->inputs, "node inputs"));
  return read_ids(r, &node->outputs, "node outputs");
}

}  // namespace

Status encode_graph(const ir::Graph& g, ByteWriter& w, ByteWriter& weights) {
  w.count(g.values.size());
  for (const ir::Value& v : g.values) {
    w.str(v.name);
    write_dtype(w, v.dtype);
    write_shape(w, v.shape);
    w.i32(v.constant);
  }
  w.count(g.constants.size());
  for (size_t i = 0; i < g.constants.size(); ++i) {
    const Tensor& t = g.constants[i];
    KILN_ASSIGN_OR_RETURN(uint64_t n, host_tensor_nbytes(t, "constant " + std::to_string(i)));
    uint64_t offset = 0;
    if (t.defined()) {
      weights.pad_to(kWeightAlignment);
      offset = weights.size();
      weights.bytes(t.data(), n);
    }
    write_dtype(w, t.dtype());
    write_dims(w, t.defined() ? t.dims() : Dims{});
    w.u64(offset);
    w.u64(n);
  }
  w.count(g.nodes.size());
  for (const ir::Node& node : g.nodes) {
    w.str(node.name);
    w.str(node.op);
    w.count(node.attrs.all().size());
    for (const auto& [name, a] : node.attrs.all()) {
      w.str(name);
      KILN_RETURN_IF_ERROR(write_attribute(
          w, a, "attribute '" + name + "' of node '" + node.name + "' (" + node.op + ")"));
    }
    write_ids(w, node.inputs);
    write_ids(w, node.outputs);
  }
  write_ids(w, g.inputs);
  write_ids(w, g.outputs);
  return Status();
}

Status decode_graph(ByteReader& r, const WeightsView& weights, ir::Graph* g) {
  uint32_t n = 0;
  KILN_RETURN_IF_ERROR(r.count(&n, kMinValueBytes, "values"));
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t at = r.offset();
    ir::Value v;
    KILN_RETURN_IF_ERROR(r.str(&v.name, "value name"));
    KILN_RETURN_IF_ERROR(read_dtype(r, true, &v.dtype, "value dtype"));
    KILN_RETURN_IF_ERROR(read_shape(r, &v.shape));
    int32_t c = 0;
    KILN_RETURN_IF_ERROR(r.i32(&c, "value constant index"));
    if (c < -1)
      return r.error_at(at, "value '" + v.name + "' has constant index " + std::to_string(c));
    v.constant = c;
    g->values.push_back(std::move(v));
  }
  KILN_RETURN_IF_ERROR(r.count(&n, kMinConstantBytes, "constants"));
  for (uint32_t i = 0; i < n; ++i) {
    Tensor t;
    KILN_RETURN_IF_ERROR(read_constant(r, weights, i, &t));
    g->constants.push_back(std::move(t));
  }
  KILN_RETURN_IF_ERROR(r.count(&n, kMinNodeBytes, "nodes"));
  for (uint32_t i = 0; i < n; ++i) {
    ir::Node node;
    KILN_RETURN_IF_ERROR(read_node(r, &node));
    g->nodes.push_back(std::move(node));
  }
  KILN_RETURN_IF_ERROR(read_ids(r, &g->inputs, "graph inputs"));
  KILN_RETURN_IF_ERROR(read_ids(r, &g->outputs, "graph outputs"));
  return Status();
}

}  // namespace kiln::format
