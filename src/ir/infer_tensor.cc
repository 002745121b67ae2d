// Inference rules of shape ops: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Identity,
// Dropout, Transpose, Expand, Tile, ConstantOfShape, Range and Trilu. Shape, Size and the ops that
// move small integer tensors around also compute contents, so that a shape computed at run time
// from symbolic dims (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) keeps its symbols.
#include <algorithm>
#include <cmath>

#include "ir/infer_util.h"

namespace kiln::ir {
namespace {

using infer::normalize_axis;
using infer::same_as_input;
using infer::unknown_dims;

// Output 0 keeps input 0's contents when it holds at most one dim.
void pass_content(InferContext& ctx) {
  const Shape& s = ctx.output(0).shape;
  if (s.rank_known && s.dims.size() <= 1) ctx.output(0).content = ctx.content(0);
}

Status infer_identity(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(same_as_input(ctx));
  ctx.output(0).content = ctx.content(0);
  return Status();
}

Status infer_dropout(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(same_as_input(ctx));
  if (ctx.num_outputs() > 1) {
    ctx.output(1).shape = ctx.input(0).shape;
    ctx.output(1).dtype = DType::kBool;
  }
  return Status();
}

Status infer_shape(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = DType::kI64;
  const Shape& x = ctx.input(0).shape;
  if (!x.rank_known) {
    out.shape = unknown_dims(1);
    return Status();
  }
  const int64_t rank = static_cast<int64_t>(x.dims.size());
  auto clamp = [rank](int64_t v) {
    if (v < 0) v = v < -rank ? 0 : v + rank;
    return std::min(v, rank);
  };
  const int64_t start = clamp(ctx.attrs().get_int("start", 0));
  const int64_t end = clamp(ctx.attrs().get_int("end", rank));
  const int64_t n = std::max<int64_t>(0, end - start);
  out.shape = Shape::of({n});
  if (n <= static_cast<int64_t>(kMaxContent)) {
    std::vector<SymInt> c;
    for (int64_t i = start; i < start + n; ++i) c.push_back(SymInt::from_dim(x.dims[static_cast<size_t>(i)]));
    out.content = std::move(c);
  }
  return Status();
}

Status infer_size(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = DType::kI64;
  out.shape = Shape::of({});
  const Shape& x = ctx.input(0).shape;
  if (x.rank_known) out.content = std::vector<SymInt>{SymInt::from_dim(infer::dim_product(x.dims))};
  return Status();
}

// The -1 of a Reshape: the input's element count divided by the other target dims, as factors.
Dim reshape_rest(const Shape& x, const std::vector<Dim>& others) {
  if (!x.rank_known) return Dim{};
  infer::Factors total = infer::factors_of(x.dims);
  infer::Factors part = infer::factors_of(others);
  if (!total.exact || !part.exact || part.coef == 0 || total.coef % part.coef != 0) return Dim{};
  infer::Factors rest;
  rest.coef = total.coef / part.coef;
  // rest.symbols = total.symbols - part.symbols (multisets, both sorted)
  size_t j = 0;
  for (const std::string& s : total.symbols) {
    if (j < part.symbols.size() && part.symbols[j] == s) ++j;
    else rest.symbols.push_back(s);
  }
  if (j != part.symbols.size()) return Dim{};
  return infer::dim_of(rest);
}

Status infer_reshape(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  std::optional<std::vector<SymInt>> target = ctx.content(1);
  if (!target) {
    const Shape& s = ctx.input(1).shape;
    if (s.rank_known && s.dims.size() == 1 && s.dims[0].is_known() &&
        s.dims[0].value <= static_cast<int64_t>(kMaxContent))
      out.shape = unknown_dims(static_cast<size_t>(s.dims[0].value));
    return Status();
  }
  const bool allow_zero = ctx.attrs().get_int("allowzero", 0) != 0;
  out.shape = unknown_dims(target->size());
  int infer_at = -1;
  bool all_known = true;
  std::vector<Dim> others;
  for (size_t i = 0; i < target->size(); ++i) {
    const SymInt& t = (*target)[i];
    Dim d;
    if (t.value && *t.value == -1) {
      if (infer_at >= 0) return ctx.error("shape has more than one -1");
      infer_at = static_cast<int>(i);
      continue;
    } else if (t.value && *t.value == 0 && !allow_zero) {
      if (x.rank_known) {
        if (i >= x.dims.size())
          return ctx.error("shape has 0 at index " + std::to_string(i) +
                           " (copy the input dim) but the input " + x.to_string() + " has a lower rank");
        d = x.dims[i];
      }
    } else if (t.value && *t.value < 0) {
      return ctx.error("shape has a negative dimension other than -1");
    } else {
      d = t.to_dim();
    }
    out.shape.dims[i] = d;
    all_known = all_known && d.is_known();
    others.push_back(d);
  }
  if (infer_at >= 0) {
    if (all_known && x.fully_known()) {
      infer::Factors a = infer::factors_of(x.dims), b = infer::factors_of(others);
      if (a.exact && b.exact && (b.coef == 0 || a.coef % b.coef != 0))
        return ctx.error("cannot reshape input " + x.to_string() + " to " + out.shape.to_string() +
                         ": the -1 dimension cannot be inferred");
    }
    out.shape.dims[static_cast<size_t>(infer_at)] = reshape_rest(x, others);
  } else if (all_known && x.fully_known()) {
    infer::Factors a = infer::factors_of(x.dims), b = infer::factors_of(out.shape.dims);
    if (a.exact && b.exact && a.coef != b.coef)
      return ctx.error("cannot reshape input " + x.to_string() + " to " + out.shape.to_string());
  }
  pass_content(ctx);
  return Status();
}

Status infer_flatten(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  out.shape = unknown_dims(2);
  if (!x.rank_known) return Status();
  const int64_t rank = static_cast<int64_t>(x.dims.size());
  int64_t axis = ctx.attrs().get_int("axis", 1);
  if (axis < -rank || axis > rank) return ctx.error("axis " + std::to_string(axis) + " is out of range for " + x.to_string());
  if (axis < 0) axis += rank;
  const std::span<const Dim> d(x.dims);
  out.shape.dims[0] = infer::dim_product(d.first(static_cast<size_t>(axis)));
  out.shape.dims[1] = infer::dim_product(d.subspan(static_cast<size_t>(axis)));
  return Status();
}

// Normalised, duplicate-free axes against `rank`, or an error naming the node.
Result<std::vector<int64_t>> norm_axes(const InferContext& ctx, std::vector<int64_t> axes, int64_t rank) {
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t& a : axes) {
    std::optional<int64_t> n = normalize_axis(a, rank);
    if (!n) return ctx.error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    if (seen[static_cast<size_t>(*n)]) return ctx.error("axis " + std::to_string(a) + " is repeated");
    seen[static_cast<size_t>(*n)] = true;
    a = *n;
  }
  return axes;
}

Status infer_squeeze(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  const int64_t rank = static_cast<int64_t>(x.dims.size());
  std::vector<bool> drop(x.dims.size(), false);
  if (ctx.has_input(1)) {
    std::optional<std::vector<int64_t>> a = ctx.ints(1);
    if (!a) return Status();
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, norm_axes(ctx, *a, rank));
    for (int64_t ax : axes) {
      const Dim& d = x.dims[static_cast<size_t>(ax)];
      if (d.is_known() && d.value != 1)
        return ctx.error("cannot squeeze axis " + std::to_string(ax) + " of " + x.to_string());
      drop[static_cast<size_t>(ax)] = true;
    }
  } else {
    for (size_t i = 0; i < x.dims.size(); ++i) {
      if (!x.dims[i].is_known()) return Status();  // might be 1: the rank is unknown
      drop[i] = x.dims[i].value == 1;
    }
  }
  out.shape = Shape{true, {}};
  for (size_t i = 0; i < x.dims.size(); ++i)
    if (!drop[i]) out.shape.dims.push_back(x.dims[i]);
  pass_content(ctx);
  return Status();
}

Status infer_unsqueeze(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  std::optional<std::vector<int64_t>> a = ctx.ints(1);
  if (!x.rank_known || !a) return Status();
  if (a->size() > 4096) return Status();
  const int64_t rank = static_cast<int64_t>(x.dims.size() + a->size());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, norm_axes(ctx, *a, rank));
  std::vector<bool> added(static_cast<size_t>(rank), false);
  for (int64_t ax : axes) added[static_cast<size_t>(ax)] = true;
  out.shape = Shape{true, {}};
  size_t k = 0;
  for (int64_t i = 0; i < rank; ++i)
    out.shape.dims.push_back(added[static_cast<size_t>(i)] ? Dim::known(1) : x.dims[k++]);
  pass_content(ctx);
  return Status();
}

Status infer_transpose(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  const size_t rank = x.dims.size();
  std::vector<int64_t> perm = ctx.attrs().get_ints("perm");
  if (perm.empty())
    for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int64_t>(rank - 1 - i));
  std::vector<bool> seen(rank, false);
  if (perm.size() != rank) return ctx.error("perm has " + std::to_string(perm.size()) + " entries for input " + x.to_string());
  out.shape = Shape{true, {}};
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(p)])
      return ctx.error("perm is not a permutation of the input's " + std::to_string(rank) + " dims");
    seen[static_cast<size_t>(p)] = true;
    out.shape.dims.push_back(x.dims[static_cast<size_t>(p)]);
  }
  return Status();
}

Status infer_expand(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  std::optional<std::vector<SymInt>> target = ctx.content(1);
  if (!target) return Status();
  Shape t = unknown_dims(target->size());
  for (size_t i = 0; i < target->size(); ++i) {
    const SymInt& v = (*target)[i];
    if (v.value && *v.value < 0) return ctx.error("shape has a negative dimension");
    t.dims[i] = v.to_dim();
  }
  const Shape* shapes[] = {&ctx.input(0).shape, &t};
  KILN_ASSIGN_OR_RETURN(out.shape, infer::broadcast_shapes(ctx, shapes));
  return Status();
}

Status infer_tile(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  out.shape = unknown_dims(x.dims.size());
  std::optional<std::vector<SymInt>> reps = ctx.content(1);
  if (!reps) return Status();
  if (reps->size() != x.dims.size())
    return ctx.error("repeats has " + std::to_string(reps->size()) + " values for input " + x.to_string());
  for (size_t i = 0; i < reps->size(); ++i) {
    const std::optional<int64_t> r = (*reps)[i].value;
    if (!r) continue;
    if (*r < 0) return ctx.error("repeats must not be negative");
    if (*r == 1) out.shape.dims[i] = x.dims[i];
    else if (x.dims[i].is_known())
      if (std::optional<int64_t> p = infer::checked_mul(x.dims[i].value, *r)) out.shape.dims[i] = Dim::known(*p);
    if (*r == 0) out.shape.dims[i] = Dim::known(0);
  }
  return Status();
}

Status infer_constant_of_shape(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  const Attribute* a = ctx.attrs().find("value");
  out.dtype = a && a->kind == Attribute::Kind::kTensor ? a->t.dtype() : DType::kF32;
  std::optional<std::vector<SymInt>> target = ctx.content(0);
  if (!target) {
    const Shape& s = ctx.input(0).shape;
    if (s.rank_known && s.dims.size() == 1 && s.dims[0].is_known() &&
        s.dims[0].value <= static_cast<int64_t>(kMaxContent))
      out.shape = unknown_dims(static_cast<size_t>(s.dims[0].value));
    return Status();
  }
  out.shape = unknown_dims(target->size());
  for (size_t i = 0; i < target->size(); ++i) {
    if ((*target)[i].value && *(*target)[i].value < 0) return ctx.error("shape has a negative dimension");
    out.shape.dims[i] = (*target)[i].to_dim();
  }
  // A small integer vector of one value (ConstantOfShape(n) of ones: a shape of 1s).
  std::optional<Dims> dims = out.shape.concrete();
  if (dims && dims->size() == 1 && (*dims)[0] <= static_cast<int64_t>(kMaxContent) && a &&
      a->t.numel() == 1 && (a->t.dtype() == DType::kI64 || a->t.dtype() == DType::kI32)) {
    const int64_t v = a->t.dtype() == DType::kI64 ? *a->t.data_as<const int64_t>() : *a->t.data_as<const int32_t>();
    out.content = std::vector<SymInt>(static_cast<size_t>((*dims)[0]), SymInt::of(v));
  }
  return Status();
}

Status infer_range(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  out.shape = unknown_dims(1);
  if (dtype_is_float(out.dtype)) {
    std::optional<std::vector<double>> s = ctx.floats(0), l = ctx.floats(1), d = ctx.floats(2);
    if (!s || !l || !d || s->size() != 1 || l->size() != 1 || d->size() != 1 || (*d)[0] == 0) return Status();
    const double count = std::ceil(((*l)[0] - (*s)[0]) / (*d)[0]);
    if (std::isfinite(count) && count <= 9.0e15) out.shape.dims[0] = Dim::known(count > 0 ? static_cast<int64_t>(count) : 0);
    return Status();
  }
  std::optional<std::vector<SymInt>> s = ctx.content(0), l = ctx.content(1), d = ctx.content(2);
  if (!s || !l || !d || s->size() != 1 || l->size() != 1 || d->size() != 1) return Status();
  const SymInt &start = (*s)[0], &limit = (*l)[0], &delta = (*d)[0];
  if (start.value && *start.value == 0 && delta.value && *delta.value == 1 && !limit.symbol.empty()) {
    out.shape.dims[0] = Dim::named(limit.symbol);  // Range(0, n, 1) of a dim n
    return Status();
  }
  if (!start.value || !limit.value || !delta.value || *delta.value == 0) return Status();
  const __int128 span = static_cast<__int128>(*limit.value) - *start.value;
  int64_t n = 0;
  if ((span > 0) == (*delta.value > 0) && span != 0) {
    const __int128 mag = span > 0 ? span : -span;
    const __int128 step = *delta.value > 0 ? static_cast<__int128>(*delta.value) : -static_cast<__int128>(*delta.value);
    const __int128 count = (mag - 1) / step + 1;
    if (count > (__int128{1} << 50)) return Status();
    n = static_cast<int64_t>(count);
  }
  out.shape.dims[0] = Dim::known(n);
  if (n <= static_cast<int64_t>(kMaxContent)) {  // axes lists computed as Range(axis, rank)
    std::vector<SymInt> c;
    for (int64_t i = 0; i < n; ++i) c.push_back(SymInt::of(*start.value + i * *delta.value));
    out.content = std::move(c);
  }
  return Status();
}

}  // namespace

void add_slice_schemas(std::vector<OpSchema>& out);  // infer_slice.cc

void add_tensor_schemas(std::vector<OpSchema>& out) {
  out.push_back({"Shape", 1, 1, 1, 1, &infer_shape});
  out.push_back({"Size", 1, 1, 1, 1, &infer_size});
  out.push_back({"Reshape", 2, 2, 1, 1, &infer_reshape});
  out.push_back({"Flatten", 1, 1, 1, 1, &infer_flatten});
  out.push_back({"Squeeze", 1, 2, 1, 1, &infer_squeeze});
  out.push_back({"Unsqueeze", 2, 2, 1, 1, &infer_unsqueeze});
  out.push_back({"Identity", 1, 1, 1, 1, &infer_identity});
  out.push_back({"Dropout", 1, 3, 1, 2, &infer_dropout});
  out.push_back({"Transpose", 1, 1, 1, 1, &infer_transpose});
  out.push_back({"Expand", 2, 2, 1, 1, &infer_expand});
  out.push_back({"Tile", 2, 2, 1, 1, &infer_tile});
  out.push_back({"ConstantOfShape", 1, 1, 1, 1, &infer_constant_of_shape});
  out.push_back({"Range", 3, 3, 1, 1, &infer_range});
  out.push_back({"Trilu", 1, 2, 1, 1, &same_as_input});
  add_slice_schemas(out);
}

}  // namespace kiln::ir
