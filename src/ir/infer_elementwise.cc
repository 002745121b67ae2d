// Inference rules of elementwise ops: unary (same shape), binary and variadic (numpy
// broadcasting), comparisons and logic (bool), Cast, Where, and kiln.FusedElementwise. Integer
// Add/Sub/Mul/Div also compute their contents, so that shape arithmetic (Shape -> Mul -> Reshape)
// keeps its symbols.
#include <algorithm>

#include "ir/infer_util.h"

namespace kiln::ir {
namespace {

using infer::broadcast_shapes;
using infer::same_as_input;

Result<Shape> broadcast_inputs(const InferContext& ctx, size_t first, size_t count) {
  std::vector<const Shape*> shapes;
  for (size_t i = first; i < first + count && i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) shapes.push_back(&ctx.input(i).shape);
  if (shapes.empty()) return Shape::unknown();
  return broadcast_shapes(ctx, shapes);
}

Status infer_unary(InferContext& ctx) { return same_as_input(ctx); }

Status infer_unary_bool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(same_as_input(ctx));
  ctx.output(0).dtype = DType::kBool;
  return Status();
}

// Elementwise integer arithmetic on contents (Add, Sub, Mul, Div, Max, Min); symbols survive
// x+0, x-0, x*1, x/1, and products and exact quotients of symbols stay symbolic ("4*batch").
std::optional<SymInt> content_op(const std::string& op, const SymInt& a, const SymInt& b) {
  if (a.value && b.value) {
    int64_t x = *a.value, y = *b.value;
    std::optional<int64_t> r;
    if (op == "Add") r = infer::checked_add(x, y);
    else if (op == "Mul") r = infer::checked_mul(x, y);
    else if (op == "Sub" && y != INT64_MIN) r = infer::checked_add(x, -y);
    else if (op == "Div" && y != 0 && !(x == INT64_MIN && y == -1) && (x % y == 0 || (x >= 0 && y > 0)))
      r = x / y;  // exact, or non-negative (where truncation and flooring agree)
    else if (op == "Max") r = std::max(x, y);
    else if (op == "Min") r = std::min(x, y);
    if (!r) return std::nullopt;
    return SymInt::of(*r);
  }
  const bool b_is = b.value.has_value();
  const int64_t bv = b.value.value_or(0);
  if (!a.symbol.empty() && b_is) {
    if ((op == "Add" || op == "Sub") && bv == 0) return a;
    if ((op == "Mul" || op == "Div") && bv == 1) return a;
  }
  if (!b.symbol.empty() && a.value) {
    if (op == "Add" && *a.value == 0) return b;
    if (op == "Mul" && *a.value == 1) return b;
  }
  if (op == "Div" && !a.symbol.empty() && b_is && bv > 0) {
    infer::Factors f = infer::factors_of(std::vector<Dim>{a.to_dim()});
    if (f.exact && f.coef % bv == 0) {
      f.coef /= bv;
      return SymInt::from_dim(infer::dim_of(f));
    }
  }
  if (op == "Mul" && (!a.symbol.empty() || a.value) && (!b.symbol.empty() || b.value)) {
    Dim d = infer::dim_product(std::vector<Dim>{a.to_dim(), b.to_dim()});
    return SymInt::from_dim(d);
  }
  return SymInt{};
}

void binary_content(InferContext& ctx) {
  const std::string& op = ctx.node().op;
  if (op != "Add" && op != "Sub" && op != "Mul" && op != "Div" && op != "Max" && op != "Min") return;
  if (ctx.num_inputs() != 2) return;
  if (!dtype_is_signed_int(ctx.input(0).dtype) && ctx.input(0).dtype != DType::kUndefined) return;
  std::optional<std::vector<SymInt>> a = ctx.content(0), b = ctx.content(1);
  if (!a || !b) return;
  if (a->size() != b->size() && a->size() != 1 && b->size() != 1) return;
  // Broadcast length: the other side's when one side has 1 element (0 when the other is empty).
  const size_t n = a->size() == 1 ? b->size() : a->size();
  std::vector<SymInt> out;
  for (size_t i = 0; i < n; ++i) {
    std::optional<SymInt> r = content_op(op, (*a)[a->size() == 1 ? 0 : i], (*b)[b->size() == 1 ? 0 : i]);
    out.push_back(r.value_or(SymInt{}));
  }
  ctx.output(0).content = std::move(out);
}

Status infer_binary(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ctx.output(0).shape, broadcast_inputs(ctx, 0, 2));
  ctx.output(0).dtype = ctx.input(0).dtype;
  binary_content(ctx);
  return Status();
}

Status infer_binary_bool(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ctx.output(0).shape, broadcast_inputs(ctx, 0, 2));
  ctx.output(0).dtype = DType::kBool;
  return Status();
}

Status infer_variadic(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ctx.output(0).shape, broadcast_inputs(ctx, 0, ctx.num_inputs()));
  ctx.output(0).dtype = ctx.input(0).dtype;
  binary_content(ctx);
  return Status();
}

Status infer_where(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ctx.output(0).shape, broadcast_inputs(ctx, 0, 3));
  DType d = ctx.input(1).dtype;
  ctx.output(0).dtype = d != DType::kUndefined ? d : ctx.input(2).dtype;
  return Status();
}

Status infer_cast(InferContext& ctx) {
  ValueFacts& out = ctx.output(0);
  out.shape = ctx.input(0).shape;
  const int64_t to = ctx.attrs().get_int("to", 0);
  if (to > 0 && to < 256 && dtype_valid(static_cast<uint8_t>(to))) out.dtype = static_cast<DType>(to);
  // Integer to a wider-or-equal integer keeps the values that shapes are made of.
  if (out.dtype == DType::kI64 || out.dtype == DType::kI32) out.content = ctx.content(0);
  return Status();
}

// Parameters per step of the program ops that take any (fused_elementwise_program.cc's table);
// every other op takes none.
int fused_params(const std::string& op) {
  if (op == "Literal" || op == "Clip" || op == "Selu" || op == "HardSigmoid" || op == "IsInf") return 2;
  if (op == "LeakyRelu" || op == "Elu") return 1;
  return 0;
}

// kiln.FusedElementwise (docs/architecture.md, "Fusion"): the result dtype is attribute `dtype`
// (else the last step's, from `dtypes`); the shape is the broadcast of every input and of each Literal step's all-ones shape
// of rank params[1]. A program whose parameters do not decode leaves the rank unknown.
Status infer_fused(InferContext& ctx) {
  const std::vector<int64_t> dtypes = ctx.attrs().get_ints("dtypes");
  const int64_t last = ctx.attrs().get_int("dtype", dtypes.empty() ? 0 : dtypes.back());
  if (last > 0 && last < 256 && dtype_valid(static_cast<uint8_t>(last)))
    ctx.output(0).dtype = static_cast<DType>(last);
  KILN_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, 0, ctx.num_inputs()));
  if (!shape.rank_known) return Status();
  const Attribute* ops = ctx.attrs().find("ops");
  const std::vector<double> params = ctx.attrs().get_floats("params");
  if (!ops || ops->kind != Attribute::Kind::kStrings) return Status();
  size_t at = 0;
  size_t rank = shape.dims.size();
  for (const std::string& op : ops->strings) {
    const size_t n = static_cast<size_t>(fused_params(op));
    if (at + n > params.size()) return Status();
    if (op == "Literal") {
      const double r = params[at + 1];
      if (!(r >= 0 && r <= 64) || r != static_cast<double>(static_cast<size_t>(r))) return Status();
      rank = std::max(rank, static_cast<size_t>(r));
    }
    at += n;
  }
  if (at != params.size()) return Status();
  shape.dims.insert(shape.dims.begin(), rank - shape.dims.size(), Dim::known(1));
  ctx.output(0).shape = std::move(shape);
  return Status();
}

}  // namespace

void add_elementwise_schemas(std::vector<OpSchema>& out) {
  for (std::string_view op :
       {"Abs", "Ceil", "Cos", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish",
        "LeakyRelu", "Log", "Mish", "Neg", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid",
        "Sign", "Silu", "Sin", "Softplus", "Softsign", "Sqrt", "Tanh"})
    out.push_back({op, 1, 1, 1, 1, &infer_unary});
  for (std::string_view op : {"Not", "IsInf", "IsNaN"}) out.push_back({op, 1, 1, 1, 1, &infer_unary_bool});
  out.push_back({"Clip", 1, 3, 1, 1, &infer_unary});
  for (std::string_view op : {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu"})
    out.push_back({op, 2, 2, 1, 1, &infer_binary});
  for (std::string_view op :
       {"And", "Or", "Xor", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"})
    out.push_back({op, 2, 2, 1, 1, &infer_binary_bool});
  for (std::string_view op : {"Max", "Min", "Mean", "Sum"})
    out.push_back({op, 1, kVariadic, 1, 1, &infer_variadic});
  out.push_back({"Where", 3, 3, 1, 1, &infer_where});
  out.push_back({"Cast", 1, 1, 1, 1, &infer_cast});
  out.push_back({"kiln.FusedElementwise", 1, kVariadic, 1, 1, &infer_fused});
}

}  // namespace kiln::ir
