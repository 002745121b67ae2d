// Sections 1 (header), 2 (bindings), 5 (kernels) and 6 (metadata).
#include "format/engine_layout.h"
#include "format/section_codec.h"

namespace kiln::format {

std::string section_name(uint32_t id) {
  switch (id) {
    case kSectionHeader:
      return "header";
    case kSectionBindings:
      return "bindings";
    case kSectionGraph:
      return "graph";
    case kSectionWeights:
      return "weights";
    case kSectionKernels:
      return "kernels";
    case kSectionMetadata:
      return "metadata";
  }
  return "section " + std::to_string(id);
}

void encode_header(const EngineHeader& h, ByteWriter& w) {
  w.str(h.name);
  w.str(h.kiln_version);
  w.str(h.target_platform);
  w.i32(h.min_compute_capability);
  w.u8(static_cast<uint8_t>(h.hardware_compatibility));
  w.u8(static_cast<uint8_t>(h.precision));
  w.u8(h.allow_tf32 ? 1 : 0);
  w.i32(h.optimization_level);
}

Status decode_header(ByteReader& r, EngineHeader* h) {
  KILN_RETURN_IF_ERROR(r.str(&h->name, "engine name"));
  KILN_RETURN_IF_ERROR(r.str(&h->kiln_version, "kiln version"));
  KILN_RETURN_IF_ERROR(r.str(&h->target_platform, "target platform"));
  KILN_RETURN_IF_ERROR(r.i32(&h->min_compute_capability, "minimum compute capability"));
  uint64_t at = r.offset();
  uint8_t hw = 0, precision = 0;
  KILN_RETURN_IF_ERROR(r.u8(&hw, "hardware compatibility"));
  if (hw > static_cast<uint8_t>(HardwareCompatibility::kArchSpecific))
    return r.error_at(at, "unknown hardware compatibility value " + std::to_string(hw));
  h->hardware_compatibility = static_cast<HardwareCompatibility>(hw);
  at = r.offset();
  KILN_RETURN_IF_ERROR(r.u8(&precision, "precision"));
  if (precision > static_cast<uint8_t>(Precision::kBf16))
    return r.error_at(at, "unknown precision value " + std::to_string(precision));
  h->precision = static_cast<Precision>(precision);
  KILN_RETURN_IF_ERROR(r.boolean(&h->allow_tf32, "allow_tf32"));
  return r.i32(&h->optimization_level, "optimization level");
}

namespace {

constexpr size_t kMinBindingBytes = 4 + 4 + 1 + kMinShapeBytes + 3 * 4;

void encode_binding(const Binding& b, ByteWriter& w) {
  w.str(b.name);
  w.i32(b.value);
  write_dtype(w, b.dtype);
  write_shape(w, b.shape);
  write_dims(w, b.min);
  write_dims(w, b.opt);
  write_dims(w, b.max);
}

Status decode_binding(ByteReader& r, Binding* b) {
  KILN_RETURN_IF_ERROR(r.str(&b->name, "binding name"));
  int32_t value = 0;
  KILN_RETURN_IF_ERROR(r.i32(&value, "binding value id"));
  b->value = value;
  KILN_RETURN_IF_ERROR(read_dtype(r, true, &b->dtype, "binding dtype"));
  KILN_RETURN_IF_ERROR(read_shape(r, &b->shape));
  KILN_RETURN_IF_ERROR(read_dims(r, &b->min, "binding min dims"));
  KILN_RETURN_IF_ERROR(read_dims(r, &b->opt, "binding opt dims"));
  return read_dims(r, &b->max, "binding max dims");
}

Status decode_binding_list(ByteReader& r, std::vector<Binding>* out, const char* what) {
  uint32_t n = 0;
  KILN_RETURN_IF_ERROR(r.count(&n, kMinBindingBytes, what));
  for (uint32_t i = 0; i < n; ++i) {
    Binding b;
    KILN_RETURN_IF_ERROR(decode_binding(r, &b));
    out->push_back(std::move(b));
  }
  return Status();
}

Status validate_binding(const Binding& b, const char* kind, size_t num_values) {
  const std::string where = std::string(kind) + " binding '" + b.name + "'";
  if (b.value < 0 || static_cast<size_t>(b.value) >= num_values)
    return invalid_data(where + " refers to value " + std::to_string(b.value) + ", out of range");
  if (b.min.size() != b.opt.size() || b.min.size() != b.max.size())
    return invalid_data(where + " has profile min/opt/max of different ranks");
  if (b.min.empty()) return Status();
  if (b.shape.rank_known && b.min.size() != b.shape.dims.size())
    return invalid_data(where + " has a profile of rank " + std::to_string(b.min.size()) +
                        " for a value of rank " + std::to_string(b.shape.dims.size()));
  for (size_t i = 0; i < b.min.size(); ++i) {
    if (b.min[i] < 0 || b.min[i] > b.opt[i] || b.opt[i] > b.max[i])
      return invalid_data(where + " dim " + std::to_string(i) + " profile is not 0 <= min " +
                          std::to_string(b.min[i]) + " <= opt " + std::to_string(b.opt[i]) +
                          " <= max " + std::to_string(b.max[i]));
  }
  return Status();
}

}  // namespace

Status encode_bindings(const EngineModel& m, ByteWriter& w) {
  w.count(m.inputs.size());
  for (const Binding& b : m.inputs) encode_binding(b, w);
  w.count(m.outputs.size());
  for (const Binding& b : m.outputs) encode_binding(b, w);
  return Status();
}

Status decode_bindings(ByteReader& r, EngineModel* m) {
  KILN_RETURN_IF_ERROR(decode_binding_list(r, &m->inputs, "input bindings"));
  return decode_binding_list(r, &m->outputs, "output bindings");
}

Status validate_bindings(const EngineModel& m) {
  for (const Binding& b : m.inputs)
    KILN_RETURN_IF_ERROR(validate_binding(b, "input", m.graph.values.size()));
  for (const Binding& b : m.outputs)
    KILN_RETURN_IF_ERROR(validate_binding(b, "output", m.graph.values.size()));
  return Status();
}

Status encode_kernels(const std::vector<KernelSource>& kernels, ByteWriter& w) {
  w.count(kernels.size());
  for (const KernelSource& k : kernels) {
    w.str(k.name);
    w.str(k.source);
    w.str(k.ptx);
  }
  return Status();
}

Status decode_kernels(ByteReader& r, std::vector<KernelSource>* out) {
  uint32_t n = 0;
  KILN_RETURN_IF_ERROR(r.count(&n, 12, "kernels"));
  for (uint32_t i = 0; i < n; ++i) {
    KernelSource k;
    KILN_RETURN_IF_ERROR(r.str(&k.name, "kernel name"));
    KILN_RETURN_IF_ERROR(r.str(&k.source, "kernel source"));
    KILN_RETURN_IF_ERROR(r.str(&k.ptx, "kernel ptx"));
    out->push_back(std::move(k));
  }
  return Status();
}

Status encode_metadata(const std::map<std::string, std::string>& m, ByteWriter& w) {
  w.count(m.size());
  for (const auto& [k, v] : m) {  // std::map: ascending bytewise key order
    w.str(k);
    w.str(v);
  }
  return Status();
}

Status decode_metadata(ByteReader& r, std::map<std::string, std::string>* out) {
  uint32_t n = 0;
  KILN_RETURN_IF_ERROR(r.count(&n, 8, "metadata entries"));
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t at = r.offset();
    std::string k, v;
    KILN_RETURN_IF_ERROR(r.str(&k, "metadata key"));
    KILN_RETURN_IF_ERROR(r.str(&v, "metadata value"));
    if (!out->empty() && !(out->rbegin()->first < k))
      return r.error_at(at, "metadata keys are not in strictly increasing order ('" +
                                out->rbegin()->first + "' then '" + k + "')");
    out->emplace_hint(out->end(), std::move(k), std::move(v));
  }
  return Status();
}

}  // namespace kiln::format
