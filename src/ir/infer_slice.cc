// Inference rules of ops that cut, join and index tensors: Concat, Split, Slice, Pad, Gather,
// GatherElements and GatherND. Concat, Slice and Gather also carry contents (small integer
// tensors holding dims).
#include <algorithm>

#include "ir/infer_util.h"

namespace kiln::ir {
namespace {

using infer::normalize_axis;
using infer::unknown_dims;

Status infer_concat(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  const Shape* first = nullptr;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const Shape& s = ctx.input(i).shape;
    if (!s.rank_known) continue;
    if (first && s.dims.size() != first->dims.size())
      return ctx.error("inputs have different ranks: " + first->to_string() + " and " + s.to_string());
    if (!first) first = &s;
  }
  if (!first) return Status();
  const int64_t rank = static_cast<int64_t>(first->dims.size());
  std::optional<int64_t> axis = normalize_axis(ctx.attrs().get_int("axis", 0), rank);
  if (!axis) return ctx.error("axis is out of range for inputs of shape " + first->to_string());
  Shape result = unknown_dims(first->dims.size());
  std::vector<Dim> parts;
  bool all_ranked = true;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const Shape& s = ctx.input(i).shape;
    if (!s.rank_known) {
      all_ranked = false;
      continue;
    }
    for (size_t d = 0; d < s.dims.size(); ++d) {
      if (static_cast<int64_t>(d) == *axis) continue;
      bool conflict = false;
      result.dims[d] = infer::unify_dim(result.dims[d], s.dims[d], &conflict);
      if (conflict)
        return ctx.error("inputs differ outside the concat axis: " + first->to_string() + " and " + s.to_string());
    }
    parts.push_back(s.dims[static_cast<size_t>(*axis)]);
  }
  // The axis: a known sum, or a lone symbol among known zeros.
  if (all_ranked) {
    int64_t sum = 0;
    const Dim* sym = nullptr;
    bool known = true;
    for (const Dim& d : parts) {
      if (d.is_known()) {
        std::optional<int64_t> s = infer::checked_add(sum, d.value);
        if (!s) known = false;
        else sum = *s;
      } else if (!sym && !d.symbol.empty()) {
        sym = &d;
      } else {
        known = false;
      }
    }
    if (known && !sym) result.dims[static_cast<size_t>(*axis)] = Dim::known(sum);
    else if (known && sym && sum == 0) result.dims[static_cast<size_t>(*axis)] = *sym;
  }
  out.shape = std::move(result);
  if (rank == 1) {
    std::vector<SymInt> c;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      std::optional<std::vector<SymInt>> p = ctx.content(i);
      if (!ctx.has_input(i) || !p) return Status();
      c.insert(c.end(), p->begin(), p->end());
    }
    if (c.size() <= kMaxContent) out.content = std::move(c);
  }
  return Status();
}

Status infer_split(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  const size_t n = ctx.num_outputs();
  for (size_t o = 0; o < n; ++o) ctx.output(o).dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  std::optional<int64_t> axis = normalize_axis(ctx.attrs().get_int("axis", 0), static_cast<int64_t>(x.dims.size()));
  if (!axis) return ctx.error("axis is out of range for input " + x.to_string());
  const Dim& dim = x.dims[static_cast<size_t>(*axis)];
  std::vector<Dim> sizes(n);
  if (ctx.has_input(1)) {
    std::optional<std::vector<int64_t>> split = ctx.ints(1);
    if (split && split->size() == n) {
      int64_t total = 0;
      for (size_t o = 0; o < n; ++o) {
        if ((*split)[o] < 0) return ctx.error("split sizes must not be negative");
        sizes[o] = Dim::known((*split)[o]);
        total = infer::checked_add(total, (*split)[o]).value_or(-1);
      }
      if (dim.is_known() && total != dim.value)
        return ctx.error("split sizes sum to " + std::to_string(total) + " but the axis of " +
                         x.to_string() + " has " + std::to_string(dim.value));
    }
  } else if (dim.is_known() && n > 0 && ctx.attrs().get_int("num_outputs", static_cast<int64_t>(n)) == static_cast<int64_t>(n)) {
    const int64_t k = static_cast<int64_t>(n);
    const int64_t chunk = dim.value / k + (dim.value % k != 0);
    const __int128 used = static_cast<__int128>(chunk) * (k - 1);
    if (used <= dim.value) {
      for (size_t o = 0; o < n; ++o) sizes[o] = Dim::known(chunk);
      sizes.back() = Dim::known(dim.value - static_cast<int64_t>(used));
    }
  } else if (n == 1) {
    sizes[0] = dim;
  }
  for (size_t o = 0; o < n; ++o) {
    Shape s = x;
    s.dims[static_cast<size_t>(*axis)] = sizes[o];
    ctx.output(o).shape = std::move(s);
  }
  return Status();
}

// The length of a slice of a dim of size d (ONNX clamping), or nullopt for step 0.
std::optional<int64_t> slice_len(int64_t d, int64_t start, int64_t end, int64_t step, int64_t* first) {
  if (step == 0) return std::nullopt;
  *first = 0;
  if (d == 0) return 0;
  __int128 s = start < 0 ? static_cast<__int128>(start) + d : start;
  __int128 e = end < 0 ? static_cast<__int128>(end) + d : end;
  __int128 len;
  if (step > 0) {
    s = std::clamp<__int128>(s, 0, d);
    e = std::clamp<__int128>(e, 0, d);
    len = e > s ? (e - s + step - 1) / step : 0;
  } else {
    s = std::clamp<__int128>(s, 0, static_cast<__int128>(d) - 1);
    e = std::clamp<__int128>(e, -1, static_cast<__int128>(d) - 1);
    const __int128 st = -static_cast<__int128>(step);
    len = s > e ? (s - e + st - 1) / st : 0;
  }
  *first = static_cast<int64_t>(s);
  return static_cast<int64_t>(len);
}

Status infer_slice(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  const int64_t rank = static_cast<int64_t>(x.dims.size());
  out.shape = unknown_dims(x.dims.size());
  std::optional<std::vector<int64_t>> starts = ctx.ints(1), ends = ctx.ints(2);
  std::optional<std::vector<int64_t>> axes = ctx.has_input(3) ? ctx.ints(3) : std::nullopt;
  std::optional<std::vector<int64_t>> steps = ctx.has_input(4) ? ctx.ints(4) : std::nullopt;
  if (!starts || !ends || (ctx.has_input(3) && !axes) || (ctx.has_input(4) && !steps)) {
    // Axes known: the other dims are kept.
    if (axes) {
      std::vector<bool> cut(x.dims.size(), false);
      for (int64_t a : *axes)
        if (std::optional<int64_t> n = normalize_axis(a, rank)) cut[static_cast<size_t>(*n)] = true;
      for (size_t i = 0; i < x.dims.size(); ++i)
        if (!cut[i]) out.shape.dims[i] = x.dims[i];
    }
    return Status();
  }
  const size_t k = starts->size();
  if (!axes) {
    axes.emplace();
    for (size_t i = 0; i < k; ++i) axes->push_back(static_cast<int64_t>(i));
  }
  if (!steps) steps = std::vector<int64_t>(k, 1);
  if (ends->size() != k || axes->size() != k || steps->size() != k)
    return ctx.error("starts, ends, axes and steps must have the same length");
  out.shape = x;
  std::vector<bool> seen(x.dims.size(), false);
  std::optional<std::vector<SymInt>> content = ctx.content(0);
  for (size_t i = 0; i < k; ++i) {
    std::optional<int64_t> a = normalize_axis((*axes)[i], rank);
    if (!a || seen[static_cast<size_t>(*a)]) return ctx.error("axes are out of range or repeated");
    seen[static_cast<size_t>(*a)] = true;
    const int64_t st = (*steps)[i];
    if (st == 0) return ctx.error("steps must not be 0");
    Dim& d = out.shape.dims[static_cast<size_t>(*a)];
    const Dim in = d;
    if (in.is_known()) {
      int64_t first = 0;
      const int64_t len = *slice_len(in.value, (*starts)[i], (*ends)[i], st, &first);
      d = Dim::known(len);
      if (content && rank == 1 && static_cast<int64_t>(content->size()) == in.value) {
        std::vector<SymInt> c;
        for (int64_t j = 0; j < len; ++j) c.push_back((*content)[static_cast<size_t>(first + j * st)]);
        out.content = std::move(c);
      }
    } else {
      // The whole dim, forwards: the size (and symbol) survives.
      const bool whole = st == 1 && ((*starts)[i] == 0 || (*starts)[i] <= INT64_MIN / 2) &&
                         (*ends)[i] >= INT64_MAX / 2;
      if (!whole) d = Dim{};
    }
  }
  if (!out.content && content && rank == 1 && out.shape.dims[0] == x.dims[0]) out.content = content;
  return Status();
}

Status infer_pad(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  const int64_t rank = static_cast<int64_t>(x.dims.size());
  out.shape = unknown_dims(x.dims.size());
  std::optional<std::vector<int64_t>> pads = ctx.ints(1);
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) {
    std::optional<std::vector<int64_t>> a = ctx.ints(3);
    if (!a) return Status();
    for (int64_t v : *a) {
      std::optional<int64_t> n = normalize_axis(v, rank);
      if (!n) return ctx.error("axis " + std::to_string(v) + " is out of range for " + x.to_string());
      axes.push_back(*n);
    }
  } else {
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  std::vector<bool> padded(x.dims.size(), false);
  for (int64_t a : axes) padded[static_cast<size_t>(a)] = true;
  for (size_t i = 0; i < x.dims.size(); ++i)
    if (!padded[i]) out.shape.dims[i] = x.dims[i];
  if (!pads) return Status();
  if (pads->size() != 2 * axes.size())
    return ctx.error("pads has " + std::to_string(pads->size()) + " values for " +
                     std::to_string(axes.size()) + " axes of input " + x.to_string());
  for (size_t i = 0; i < axes.size(); ++i) {
    const Dim& in = x.dims[static_cast<size_t>(axes[i])];
    const int64_t b = (*pads)[i], e = (*pads)[i + axes.size()];
    Dim& d = out.shape.dims[static_cast<size_t>(axes[i])];
    if (b == 0 && e == 0) {
      d = in;
    } else if (in.is_known()) {
      const __int128 v = static_cast<__int128>(in.value) + b + e;
      if (v < 0) return ctx.error("pads make axis " + std::to_string(axes[i]) + " of " + x.to_string() + " negative");
      if (v <= INT64_MAX) d = Dim::known(static_cast<int64_t>(v));
    }
  }
  return Status();
}

Status infer_gather(InferContext& ctx) {
  const Shape& data = ctx.input(0).shape;
  const Shape& idx = ctx.input(1).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!data.rank_known || !idx.rank_known) return Status();
  const int64_t rank = static_cast<int64_t>(data.dims.size());
  std::optional<int64_t> axis = normalize_axis(ctx.attrs().get_int("axis", 0), rank);
  if (!axis) return ctx.error("axis is out of range for data " + data.to_string());
  out.shape = Shape{true, {}};
  for (int64_t i = 0; i < *axis; ++i) out.shape.dims.push_back(data.dims[static_cast<size_t>(i)]);
  for (const Dim& d : idx.dims) out.shape.dims.push_back(d);
  for (int64_t i = *axis + 1; i < rank; ++i) out.shape.dims.push_back(data.dims[static_cast<size_t>(i)]);
  // Picking dims out of a shape vector.
  std::optional<std::vector<SymInt>> c = ctx.content(0);
  std::optional<std::vector<int64_t>> picks = ctx.ints(1);
  if (rank == 1 && c && picks && idx.dims.size() <= 1 && picks->size() <= kMaxContent) {
    const int64_t n = static_cast<int64_t>(c->size());
    std::vector<SymInt> v;
    for (int64_t p : *picks) {
      if (p < -n || p >= n) return ctx.error("index " + std::to_string(p) + " is out of range for " + std::to_string(n) + " elements");
      v.push_back((*c)[static_cast<size_t>(p < 0 ? p + n : p)]);
    }
    out.content = std::move(v);
  }
  return Status();
}

Status infer_gather_elements(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  out.shape = ctx.input(1).shape;
  return Status();
}

Status infer_gather_nd(InferContext& ctx) {
  const Shape& data = ctx.input(0).shape;
  const Shape& idx = ctx.input(1).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!data.rank_known || !idx.rank_known || idx.dims.empty() || !idx.dims.back().is_known()) return Status();
  const int64_t b = ctx.attrs().get_int("batch_dims", 0);
  const int64_t last = idx.dims.back().value;
  const int64_t r = static_cast<int64_t>(data.dims.size()), q = static_cast<int64_t>(idx.dims.size());
  if (b < 0 || b >= q || b >= r || last > r - b)
    return ctx.error("indices " + idx.to_string() + " do not fit data " + data.to_string() +
                     " with batch_dims " + std::to_string(b));
  out.shape = Shape{true, std::vector<Dim>(idx.dims.begin(), idx.dims.end() - 1)};
  for (int64_t i = b + last; i < r; ++i) out.shape.dims.push_back(data.dims[static_cast<size_t>(i)]);
  return Status();
}

}  // namespace

void add_slice_schemas(std::vector<OpSchema>& out) {
  out.push_back({"Concat", 1, kVariadic, 1, 1, &infer_concat});
  out.push_back({"Split", 1, 2, 1, kVariadic, &infer_split});
  out.push_back({"Slice", 3, 5, 1, 1, &infer_slice});
  out.push_back({"Pad", 2, 4, 1, 1, &infer_pad});
  out.push_back({"Gather", 2, 2, 1, 1, &infer_gather});
  out.push_back({"GatherElements", 2, 2, 1, 1, &infer_gather_elements});
  out.push_back({"GatherND", 2, 2, 1, 1, &infer_gather_nd});
}

}  // namespace kiln::ir
