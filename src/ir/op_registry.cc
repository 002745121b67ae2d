#include "ir/op_registry.h"

#include <algorithm>
#include <cmath>

namespace kiln::ir {

SymInt SymInt::from_dim(const Dim& d) {
  if (d.is_known()) return SymInt::of(d.value);
  return SymInt{std::nullopt, d.symbol};
}

Dim SymInt::to_dim() const {
  if (value) return *value >= 0 ? Dim::known(*value) : Dim{};
  return symbol.empty() ? Dim{} : Dim::named(symbol);
}

const ValueFacts& InferContext::input(size_t i) const {
  static const ValueFacts kNothing;
  return has_input(i) ? *inputs_[i] : kNothing;
}

ValueFacts& InferContext::output(size_t i) {
  if (i < outputs_->size()) return (*outputs_)[i];
  scratch_ = ValueFacts{};
  return scratch_;
}

namespace {

// Parameter lists (pads, axes, scales) are short; a huge constant is data, not a parameter.
constexpr int64_t kMaxListElements = 1 << 16;

template <typename T>
void append_ints(const Tensor& t, std::vector<int64_t>* out) {
  const T* p = t.data_as<const T>();
  for (int64_t i = 0; i < t.numel(); ++i) out->push_back(static_cast<int64_t>(p[i]));
}

}  // namespace

std::optional<std::vector<int64_t>> InferContext::ints(size_t i) const {
  if (!has_input(i)) return std::nullopt;
  const ValueFacts& f = *inputs_[i];
  if (f.constant && f.constant->defined() && f.constant->data()) {
    const Tensor& t = *f.constant;
    if (t.numel() > kMaxListElements) return std::nullopt;
    std::vector<int64_t> v;
    switch (t.dtype()) {
      case DType::kI64: append_ints<int64_t>(t, &v); return v;
      case DType::kI32: append_ints<int32_t>(t, &v); return v;
      case DType::kI16: append_ints<int16_t>(t, &v); return v;
      case DType::kI8: append_ints<int8_t>(t, &v); return v;
      case DType::kU8: append_ints<uint8_t>(t, &v); return v;
      default: return std::nullopt;
    }
  }
  if (!f.content) return std::nullopt;
  std::vector<int64_t> v;
  for (const SymInt& s : *f.content) {
    if (!s.value) return std::nullopt;
    v.push_back(*s.value);
  }
  return v;
}

std::optional<std::vector<double>> InferContext::floats(size_t i) const {
  if (!has_input(i)) return std::nullopt;
  const ValueFacts& f = *inputs_[i];
  if (!f.constant || !f.constant->defined() || !f.constant->data()) return std::nullopt;
  const Tensor& t = *f.constant;
  if (t.numel() > kMaxListElements) return std::nullopt;
  std::vector<double> v;
  if (t.dtype() == DType::kF32) {
    for (int64_t k = 0; k < t.numel(); ++k) v.push_back(t.data_as<const float>()[k]);
    return v;
  }
  if (t.dtype() == DType::kF64) {
    for (int64_t k = 0; k < t.numel(); ++k) v.push_back(t.data_as<const double>()[k]);
    return v;
  }
  std::optional<std::vector<int64_t>> n = ints(i);
  if (!n) return std::nullopt;
  for (int64_t x : *n) v.push_back(static_cast<double>(x));
  return v;
}

std::optional<std::vector<SymInt>> InferContext::content(size_t i) const {
  if (!has_input(i)) return std::nullopt;
  const ValueFacts& f = *inputs_[i];
  if (f.content) return f.content;
  if (!f.constant || f.constant->rank() > 1 || f.constant->numel() > static_cast<int64_t>(kMaxContent))
    return std::nullopt;
  std::optional<std::vector<int64_t>> v = ints(i);
  if (!v) return std::nullopt;
  std::vector<SymInt> out;
  for (int64_t x : *v) out.push_back(SymInt::of(x));
  return out;
}

Status InferContext::error(const std::string& message) const {
  return invalid_data("node '" + node_.name + "' (" + node_.op + "): " + message);
}

namespace {

std::vector<OpSchema> build_registry() {
  std::vector<OpSchema> all;
  add_elementwise_schemas(all);
  add_nn_schemas(all);
  add_tensor_schemas(all);
  std::sort(all.begin(), all.end(), [](const OpSchema& a, const OpSchema& b) { return a.op < b.op; });
  return all;
}

const std::vector<OpSchema>& registry() {
  static const std::vector<OpSchema> kAll = build_registry();
  return kAll;
}

}  // namespace

const OpSchema* find_op_schema(std::string_view op) {
  const std::vector<OpSchema>& all = registry();
  auto it = std::lower_bound(all.begin(), all.end(), op,
                             [](const OpSchema& s, std::string_view o) { return s.op < o; });
  return it != all.end() && it->op == op ? &*it : nullptr;
}

std::span<const OpSchema> op_schemas() { return registry(); }

}  // namespace kiln::ir
