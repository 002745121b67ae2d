#include "ir/infer_util.h"

#include <algorithm>

namespace kiln::ir::infer {

std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

Factors factors_of(std::span<const Dim> dims) {
  Factors f;
  for (const Dim& d : dims) {
    if (d.is_known()) {
      std::optional<int64_t> c = checked_mul(f.coef, d.value);
      if (!c) {
        f.exact = false;
        return f;
      }
      f.coef = *c;
    } else if (!d.symbol.empty()) {
      // "4*batch*seq": numeric factors (only inside a product) multiply the coefficient.
      const bool product = d.symbol.find('*') != std::string::npos;
      size_t start = 0;
      while (start <= d.symbol.size()) {
        size_t star = d.symbol.find('*', start);
        if (star == std::string::npos) star = d.symbol.size();
        const std::string part = d.symbol.substr(start, star - start);
        start = star + 1;
        if (part.empty()) continue;
        if (product && part.size() <= 18 && part.find_first_not_of("0123456789") == std::string::npos) {
          std::optional<int64_t> c = checked_mul(f.coef, std::stoll(part));
          if (!c) {
            f.exact = false;
            return f;
          }
          f.coef = *c;
        } else {
          f.symbols.push_back(part);
        }
      }
    } else {
      f.exact = false;
    }
  }
  std::sort(f.symbols.begin(), f.symbols.end());
  return f;
}

Dim dim_of(const Factors& f) {
  if (!f.exact) return Dim{};
  if (f.symbols.empty()) return f.coef >= 0 ? Dim::known(f.coef) : Dim{};
  if (f.coef == 0) return Dim::known(0);
  if (f.coef < 0) return Dim{};
  std::string name = f.coef == 1 ? "" : std::to_string(f.coef);
  for (const std::string& s : f.symbols) name += (name.empty() ? "" : "*") + s;
  return Dim::named(std::move(name));
}

Dim dim_product(std::span<const Dim> dims) { return dim_of(factors_of(dims)); }

Dim broadcast_dim(const Dim& a, const Dim& b, bool* conflict) {
  if (a.is_known() && b.is_known()) {
    if (a.value == b.value || b.value == 1) return a;
    if (a.value == 1) return b;
    *conflict = true;
    return Dim{};
  }
  if (a.is_known() && a.value == 1) return b;
  if (b.is_known() && b.value == 1) return a;
  // A size other than 1 against a dim that must then be 1 or equal to it.
  if (a.is_known()) return a;
  if (b.is_known()) return b;
  if (!a.symbol.empty() && a.symbol == b.symbol) return a;
  return Dim{};
}

Dim unify_dim(const Dim& a, const Dim& b, bool* conflict) {
  if (a.is_known() && b.is_known()) {
    if (a.value != b.value) *conflict = true;
    return a;
  }
  if (a.is_known()) return a;
  if (b.is_known()) return b;
  return a.symbol.empty() ? b : a;
}

Result<Shape> broadcast_shapes(const InferContext& ctx, std::span<const Shape* const> shapes) {
  size_t rank = 0;
  for (const Shape* s : shapes) {
    if (!s->rank_known) return Shape::unknown();
    rank = std::max(rank, s->dims.size());
  }
  Shape out = unknown_dims(rank);
  for (size_t i = 0; i < rank; ++i) out.dims[i] = Dim::known(1);
  for (const Shape* s : shapes) {
    const size_t off = rank - s->dims.size();
    for (size_t i = 0; i < s->dims.size(); ++i) {
      bool conflict = false;
      out.dims[off + i] = broadcast_dim(out.dims[off + i], s->dims[i], &conflict);
      if (conflict) {
        std::string all;
        for (const Shape* t : shapes) all += (all.empty() ? "" : " and ") + t->to_string();
        return ctx.error("cannot broadcast " + all + " (dim " + std::to_string(off + i) +
                         " of the result)");
      }
    }
  }
  return out;
}

std::optional<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) return std::nullopt;
  return axis < 0 ? axis + rank : axis;
}

Shape unknown_dims(size_t rank) {
  Shape s;
  s.rank_known = true;
  s.dims.assign(rank, Dim{});
  return s;
}

Status same_as_input(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  out.shape = ctx.input(0).shape;
  return Status();
}

}  // namespace kiln::ir::infer
