// Inference rules of the neural-network ops: MatMul, Gemm, Conv and pools (the window formula on
// known sizes; symbols survive where the window cannot change a size), normalisations, Softmax,
// reductions, ArgMax/ArgMin, TopK, CumSum, Resize and Einsum.
#include <algorithm>
#include <cmath>
#include <map>

#include "ir/attention.h"
#include "ir/infer_util.h"

namespace kiln::ir {
namespace {

using infer::normalize_axis;
using infer::same_as_input;
using infer::unknown_dims;

Status infer_matmul(InferContext& ctx) {
  const Shape& a = ctx.input(0).shape;
  const Shape& b = ctx.input(1).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!a.rank_known || !b.rank_known) return Status();
  if (a.dims.empty() || b.dims.empty())
    return ctx.error("inputs must have rank >= 1, got " + a.to_string() + " and " + b.to_string());
  std::vector<Dim> ad = a.dims, bd = b.dims;
  // fuse_epilogues' kiln_trans_a / kiln_trans_b: the operand is read with its last two axes swapped.
  for (auto [attr, dims] : {std::pair{"kiln_trans_a", &ad}, std::pair{"kiln_trans_b", &bd}}) {
    if (ctx.attrs().get_int(attr, 0) == 0) continue;
    if (dims->size() < 2) return ctx.error(std::string(attr) + " needs an operand of rank >= 2");
    std::swap((*dims)[dims->size() - 1], (*dims)[dims->size() - 2]);
  }
  const bool a_vec = ad.size() == 1, b_vec = bd.size() == 1;
  if (a_vec) ad.insert(ad.begin(), Dim::known(1));
  if (b_vec) bd.push_back(Dim::known(1));
  bool conflict = false;
  infer::unify_dim(ad.back(), bd[bd.size() - 2], &conflict);
  if (conflict) return ctx.error("inner dimensions differ: A " + a.to_string() + " and B " + b.to_string());
  Shape ab{true, std::vector<Dim>(ad.begin(), ad.end() - 2)};
  Shape bb{true, std::vector<Dim>(bd.begin(), bd.end() - 2)};
  const Shape* batch_shapes[] = {&ab, &bb};
  KILN_ASSIGN_OR_RETURN(Shape batch, infer::broadcast_shapes(ctx, batch_shapes));
  if (!a_vec) batch.dims.push_back(ad[ad.size() - 2]);
  if (!b_vec) batch.dims.push_back(bd.back());
  out.shape = std::move(batch);
  return Status();
}

Status infer_gemm(InferContext& ctx) {
  const Shape& a = ctx.input(0).shape;
  const Shape& b = ctx.input(1).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  out.shape = unknown_dims(2);
  const bool ta = ctx.attrs().get_int("transA", 0) != 0, tb = ctx.attrs().get_int("transB", 0) != 0;
  if (a.rank_known && a.dims.size() != 2) return ctx.error("A must be 2-D, got " + a.to_string());
  if (b.rank_known && b.dims.size() != 2) return ctx.error("B must be 2-D, got " + b.to_string());
  if (a.rank_known) out.shape.dims[0] = a.dims[ta ? 1 : 0];
  if (b.rank_known) out.shape.dims[1] = b.dims[tb ? 0 : 1];
  if (a.rank_known && b.rank_known) {
    bool conflict = false;
    infer::unify_dim(a.dims[ta ? 0 : 1], b.dims[tb ? 1 : 0], &conflict);
    if (conflict) return ctx.error("inner dimensions differ: A " + a.to_string() + " and B " + b.to_string());
  }
  return Status();
}

// The output size of one spatial dim of a window op; unknown where the formula cannot tell.
Dim window_dim(const Dim& in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pb, int64_t pe,
               const std::string& auto_pad, bool ceil_mode) {
  const __int128 ek = static_cast<__int128>(dilation) * (kernel - 1) + 1;
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  if (!in.is_known()) {
    // A size the window cannot change: stride 1 with SAME padding, or a 1-wide unpadded window.
    if (stride == 1 && (same || (ek == 1 && ((pb == 0 && pe == 0) || auto_pad == "VALID")))) return in;
    return Dim{};
  }
  if (same) return Dim::known((in.value + stride - 1) / stride);
  if (auto_pad == "VALID") pb = pe = 0;
  const __int128 span = static_cast<__int128>(in.value) + pb + pe - ek;
  if (span < 0) return Dim{};  // the kernel rejects it; say nothing
  __int128 out = ceil_mode ? (span + stride - 1) / stride + 1 : span / stride + 1;
  if (ceil_mode && (out - 1) * stride >= static_cast<__int128>(in.value) + pb) --out;
  if (out > INT64_MAX) return Dim{};
  return Dim::known(static_cast<int64_t>(out));
}

// Conv and pools: [N, C, D1..] -> [N, channels, O1..]. `kernel` is empty when unknown.
Status window_op(InferContext& ctx, const Dim& channels, std::vector<int64_t> kernel, bool ceil_allowed) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  if (x.dims.size() < 3)
    return ctx.error("input must have shape [N, C, D1, ...] (rank >= 3), got " + x.to_string());
  const size_t r = x.dims.size() - 2;
  out.shape = unknown_dims(x.dims.size());
  out.shape.dims[0] = x.dims[0];
  out.shape.dims[1] = channels;
  if (kernel.size() != r) return Status();
  constexpr int64_t kMax = int64_t{1} << 31;
  auto read = [&](const char* name, int64_t def, size_t count, int64_t lo) -> std::optional<std::vector<int64_t>> {
    std::vector<int64_t> v = ctx.attrs().get_ints(name);
    if (v.empty()) v.assign(count, def);
    if (v.size() != count) return std::nullopt;
    for (int64_t e : v)
      if (e < lo || e >= kMax) return std::nullopt;
    return v;
  };
  std::optional<std::vector<int64_t>> strides = read("strides", 1, r, 1);
  std::optional<std::vector<int64_t>> dilations = read("dilations", 1, r, 1);
  std::optional<std::vector<int64_t>> pads = read("pads", 0, 2 * r, 0);
  for (int64_t k : kernel)
    if (k < 1 || k >= kMax) return Status();
  if (!strides || !dilations || !pads) return Status();  // the kernel reports these
  const std::string auto_pad = ctx.attrs().get_string("auto_pad", "NOTSET");
  const bool ceil_mode = ceil_allowed && ctx.attrs().get_int("ceil_mode", 0) != 0;
  for (size_t i = 0; i < r; ++i)
    out.shape.dims[i + 2] = window_dim(x.dims[i + 2], kernel[i], (*strides)[i], (*dilations)[i],
                                       (*pads)[i], (*pads)[i + r], auto_pad, ceil_mode);
  return Status();
}

Status infer_conv(InferContext& ctx) {
  const Shape& w = ctx.input(1).shape;
  Dim m;
  std::vector<int64_t> kernel = ctx.attrs().get_ints("kernel_shape");
  if (w.rank_known) {
    if (w.dims.size() < 3) return ctx.error("weights must have rank >= 3, got " + w.to_string());
    m = w.dims[0];
    if (kernel.empty()) {
      for (size_t i = 2; i < w.dims.size(); ++i) {
        if (!w.dims[i].is_known()) {
          kernel.clear();
          break;
        }
        kernel.push_back(w.dims[i].value);
      }
    }
  }
  return window_op(ctx, m, std::move(kernel), false);
}

Status infer_pool(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  Dim c = x.rank_known && x.dims.size() >= 2 ? x.dims[1] : Dim{};
  KILN_RETURN_IF_ERROR(window_op(ctx, c, ctx.attrs().get_ints("kernel_shape"), true));
  if (ctx.num_outputs() > 1) {
    ctx.output(1).shape = ctx.output(0).shape;
    ctx.output(1).dtype = DType::kI64;
  }
  return Status();
}

Status infer_global_pool(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  if (x.dims.size() < 3) return ctx.error("input must have rank >= 3, got " + x.to_string());
  out.shape = x;
  for (size_t i = 2; i < x.dims.size(); ++i) out.shape.dims[i] = Dim::known(1);
  return Status();
}

Status infer_layer_norm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(same_as_input(ctx));
  const Shape& x = ctx.input(0).shape;
  // Mean and InvStdDev: stash_type (f32 by default); the CPU backend computes half inputs in f32
  // and stores every f32 result in the input's half type.
  DType stash = static_cast<DType>(ctx.attrs().get_int("stash_type", 1) == 11 ? 11 : 1);
  const DType xd = ctx.input(0).dtype;
  if (stash == DType::kF32 && (xd == DType::kF16 || xd == DType::kBF16)) stash = xd;
  for (size_t o = 1; o < 3 && o < ctx.num_outputs(); ++o) {
    ctx.output(o).dtype = stash;
    if (!x.rank_known) continue;
    std::optional<int64_t> axis =
        normalize_axis(ctx.attrs().get_int("axis", -1), static_cast<int64_t>(x.dims.size()));
    if (!axis) return ctx.error("axis is out of range for input " + x.to_string());
    Shape s = x;
    for (size_t i = static_cast<size_t>(*axis); i < s.dims.size(); ++i) s.dims[i] = Dim::known(1);
    ctx.output(o).shape = std::move(s);
  }
  return Status();
}

// Reduce*: axes from input 1 (a constant), keepdims, noop_with_empty_axes.
Status infer_reduce(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  const int64_t rank = static_cast<int64_t>(x.dims.size());
  const bool keepdims = ctx.attrs().get_int("keepdims", 1) != 0;
  const bool noop = ctx.attrs().get_int("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  if (ctx.has_input(1)) {
    std::optional<std::vector<int64_t>> a = ctx.ints(1);
    if (!a) {
      if (keepdims) out.shape = unknown_dims(x.dims.size());
      return Status();
    }
    axes = *a;
  }
  std::vector<bool> reduced(x.dims.size(), axes.empty() && !noop);
  for (int64_t a : axes) {
    std::optional<int64_t> n = normalize_axis(a, rank);
    if (!n) return ctx.error("axis " + std::to_string(a) + " is out of range for input " + x.to_string());
    reduced[static_cast<size_t>(*n)] = true;
  }
  out.shape = Shape{true, {}};
  for (size_t d = 0; d < x.dims.size(); ++d) {
    if (!reduced[d]) out.shape.dims.push_back(x.dims[d]);
    else if (keepdims) out.shape.dims.push_back(Dim::known(1));
  }
  return Status();
}

Status infer_arg(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = DType::kI64;
  if (!x.rank_known) return Status();
  std::optional<int64_t> axis = normalize_axis(ctx.attrs().get_int("axis", 0), static_cast<int64_t>(x.dims.size()));
  if (!axis) return ctx.error("axis is out of range for input " + x.to_string());
  out.shape = x;
  if (ctx.attrs().get_int("keepdims", 1) != 0) out.shape.dims[static_cast<size_t>(*axis)] = Dim::known(1);
  else out.shape.dims.erase(out.shape.dims.begin() + *axis);
  return Status();
}

Status infer_topk(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ctx.output(0).dtype = ctx.input(0).dtype;
  ctx.output(1).dtype = DType::kI64;
  if (!x.rank_known) return Status();
  std::optional<int64_t> axis = normalize_axis(ctx.attrs().get_int("axis", -1), static_cast<int64_t>(x.dims.size()));
  if (!axis) return ctx.error("axis is out of range for input " + x.to_string());
  Shape s = x;
  std::optional<std::vector<int64_t>> k = ctx.ints(1);
  s.dims[static_cast<size_t>(*axis)] = k && k->size() == 1 && (*k)[0] >= 0 ? Dim::known((*k)[0]) : Dim{};
  ctx.output(0).shape = s;
  ctx.output(1).shape = s;
  return Status();
}

// Resize: output sizes from constant `sizes` or floor(scale * size) from constant `scales`.
Status infer_resize(InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  if (!x.rank_known) return Status();
  const int64_t r = static_cast<int64_t>(x.dims.size());
  std::vector<int64_t> axes = ctx.attrs().get_ints("axes");
  if (axes.empty())
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  for (int64_t& a : axes) {
    std::optional<int64_t> n = normalize_axis(a, r);
    if (!n) return ctx.error("axis " + std::to_string(a) + " is out of range for input " + x.to_string());
    a = *n;
  }
  out.shape = x;
  for (int64_t a : axes) out.shape.dims[static_cast<size_t>(a)] = Dim{};
  std::optional<std::vector<double>> scales = ctx.floats(2);
  std::optional<std::vector<int64_t>> sizes = ctx.ints(3);
  const std::string policy = ctx.attrs().get_string("keep_aspect_ratio_policy", "stretch");
  if (scales && !scales->empty() && scales->size() == axes.size()) {
    for (size_t i = 0; i < axes.size(); ++i) {
      const Dim& in = x.dims[static_cast<size_t>(axes[i])];
      const double s = (*scales)[i];
      if (!(s > 0) || !std::isfinite(s)) continue;
      if (s == 1.0) out.shape.dims[static_cast<size_t>(axes[i])] = in;
      else if (in.is_known() && s * static_cast<double>(in.value) <= 1e15)
        out.shape.dims[static_cast<size_t>(axes[i])] = Dim::known(static_cast<int64_t>(s * static_cast<double>(in.value)));
    }
  } else if (sizes && !sizes->empty() && sizes->size() == axes.size()) {
    if (policy == "stretch") {
      for (size_t i = 0; i < axes.size(); ++i)
        if ((*sizes)[i] >= 0) out.shape.dims[static_cast<size_t>(axes[i])] = Dim::known((*sizes)[i]);
    } else if (policy == "not_larger" || policy == "not_smaller") {
      double s = 0;
      for (size_t i = 0; i < axes.size(); ++i) {
        const Dim& in = x.dims[static_cast<size_t>(axes[i])];
        if (!in.is_known() || in.value == 0 || (*sizes)[i] < 0) return Status();
        double si = static_cast<double>((*sizes)[i]) / static_cast<double>(in.value);
        s = i == 0 ? si : policy == "not_larger" ? std::min(s, si) : std::max(s, si);
      }
      for (int64_t a : axes) {
        double v = s * static_cast<double>(x.dims[static_cast<size_t>(a)].value) + 0.5;
        if (v <= 1e15) out.shape.dims[static_cast<size_t>(a)] = Dim::known(static_cast<int64_t>(v));
      }
    }
  }
  return Status();
}

// Einsum: output dims from the labels' sizes in the inputs. Equations with an ellipsis give an
// unknown shape.
Status infer_einsum(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.dtype = ctx.input(0).dtype;
  std::string eq;
  for (char c : ctx.attrs().get_string("equation", ""))
    if (c != ' ') eq += c;
  if (eq.find('.') != std::string::npos) return Status();
  std::string rhs;
  const size_t arrow = eq.find("->");
  if (arrow != std::string::npos) {
    rhs = eq.substr(arrow + 2);
  } else {
    // Implicit output: the labels seen exactly once, in alphabetical order (lower case only,
    // where ASCII and alphabetical order agree).
    std::map<char, int> count;
    for (char c : eq) {
      if (c == ',') continue;
      if (c < 'a' || c > 'z') return Status();
      ++count[c];
    }
    for (const auto& [c, n] : count)
      if (n == 1) rhs += c;
  }
  std::vector<std::string> terms;
  const std::string lhs = eq.substr(0, arrow);
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ctx.num_inputs()) return Status();
  std::map<char, Dim> size;
  for (size_t i = 0; i < terms.size(); ++i) {
    const Shape& s = ctx.input(i).shape;
    if (!s.rank_known || s.dims.size() != terms[i].size()) return Status();
    for (size_t k = 0; k < terms[i].size(); ++k) {
      auto [it, fresh] = size.emplace(terms[i][k], s.dims[k]);
      if (!fresh) {
        // A label of size 1 may broadcast against a larger one.
        bool conflict = false;
        it->second = infer::broadcast_dim(it->second, s.dims[k], &conflict);
        if (conflict) return ctx.error("label '" + std::string(1, terms[i][k]) + "' has different sizes");
      }
    }
  }
  Shape result{true, {}};
  for (char c : rhs) {
    auto it = size.find(c);
    if (it == size.end()) return Status();
    result.dims.push_back(it->second);
  }
  out.shape = std::move(result);
  return Status();
}

}  // namespace

void add_nn_schemas(std::vector<OpSchema>& out) {
  // Optional fused bias and residual inputs (fuse_epilogues).
  out.push_back({"MatMul", 2, 4, 1, 1, &infer_matmul});
  out.push_back({"Gemm", 2, 3, 1, 1, &infer_gemm});
  out.push_back({"Conv", 2, 3, 1, 1, &infer_conv});
  out.push_back({"MaxPool", 1, 1, 1, 2, &infer_pool});
  out.push_back({"AveragePool", 1, 1, 1, 1, &infer_pool});
  out.push_back({"GlobalAveragePool", 1, 1, 1, 1, &infer_global_pool});
  out.push_back({"GlobalMaxPool", 1, 1, 1, 1, &infer_global_pool});
  out.push_back({"BatchNormalization", 5, 5, 1, 1, &same_as_input});
  out.push_back({"InstanceNormalization", 3, 3, 1, 1, &same_as_input});
  out.push_back({"LayerNormalization", 2, 3, 1, 3, &infer_layer_norm});
  out.push_back({kAttentionOp, 3, 3, 1, 1, &infer_attention});  // fuse_attention (ir/attention.h)
  for (std::string_view op : {"Softmax", "LogSoftmax"}) out.push_back({op, 1, 1, 1, 1, &same_as_input});
  out.push_back({"CumSum", 2, 2, 1, 1, &same_as_input});
  for (std::string_view op : {"ReduceL2", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
                              "ReduceSum", "ReduceSumSquare"})
    out.push_back({op, 1, 2, 1, 1, &infer_reduce});
  for (std::string_view op : {"ArgMax", "ArgMin"}) out.push_back({op, 1, 1, 1, 1, &infer_arg});
  out.push_back({"TopK", 2, 2, 2, 2, &infer_topk});
  out.push_back({"Resize", 1, 4, 1, 1, &infer_resize});
  out.push_back({"Einsum", 1, kVariadic, 1, 1, &infer_einsum});
}

}  // namespace kiln::ir
