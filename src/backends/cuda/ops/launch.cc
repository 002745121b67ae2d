#include "backends/cuda/ops/launch.h"

#include <bit>
#include <cstdlib>
#include <memory>

#include "backends/cuda/kernels/common.h"
#include "backends/cuda/kernels/elementwise.h"

namespace kiln::cuda {

namespace k = kernels;

KernelVariant specialisable(std::string key, KernelTable::Builder build, kernels::Bake bake) {
  KernelVariant v;
  v.spec_key = key + k::bake_key(bake);
  v.key = std::move(key);
  v.spec_build = [build, bake]() -> Result<KernelSource> {
    KILN_ASSIGN_OR_RETURN(KernelSource generic, build());
    return k::bake_source(generic, bake);
  };
  v.build = std::move(build);
  return v;
}

DType bits_dtype(DType dtype) {
  switch (dtype_size(dtype)) {
    case 1: return DType::kU8;
    case 2: return DType::kU16;
    case 4: return DType::kU32;
    case 8: return DType::kU64;
    default: return DType::kUndefined;
  }
}

std::vector<int64_t> contiguous_strides(const Dims& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t d = dims.size(); d-- > 1;) s[d - 1] = s[d] * dims[d];
  return s;
}

std::vector<int64_t> broadcast_strides(const Dims& dims, const Dims& out) {
  std::vector<int64_t> s(out.size(), 0);
  std::vector<int64_t> c = contiguous_strides(dims);
  const size_t off = out.size() - dims.size();
  for (size_t d = 0; d < dims.size(); ++d) s[off + d] = dims[d] == 1 ? 0 : c[d];
  return s;
}

Result<Dims> broadcast_dims(const RunContext& ctx, std::span<const Tensor> inputs) {
  size_t rank = 0;
  for (const Tensor& t : inputs) rank = std::max(rank, t.dims().size());
  Dims out(rank, 1);
  for (const Tensor& t : inputs) {
    const size_t off = rank - t.dims().size();
    for (size_t d = 0; d < t.dims().size(); ++d) {
      int64_t v = t.dims()[d];
      int64_t& o = out[off + d];
      if (o == v || v == 1) continue;
      if (o == 1) {
        o = v;
        continue;
      }
      std::string shapes;
      for (const Tensor& u : inputs) shapes += (shapes.empty() ? "" : ", ") + dims_to_string(u.dims());
      return invalid_argument(ctx.where() + ": input shapes " + shapes + " do not broadcast");
    }
  }
  return out;
}

namespace {

// Drops size-1 dims and merges adjacent dims that every operand walks contiguously.
void coalesce(Dims& dims, std::vector<std::vector<int64_t>>& strides) {
  Dims nd;
  std::vector<std::vector<int64_t>> ns(strides.size());
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    bool merge = !nd.empty();
    for (size_t k = 0; merge && k < strides.size(); ++k)
      merge = ns[k].back() == strides[k][d] * dims[d];
    if (merge) {
      nd.back() *= dims[d];
      for (size_t k = 0; k < strides.size(); ++k) ns[k].back() = strides[k][d];
    } else {
      nd.push_back(dims[d]);
      for (size_t k = 0; k < strides.size(); ++k) ns[k].push_back(strides[k][d]);
    }
  }
  if (nd.empty()) {
    nd.push_back(1);
    for (auto& s : ns) s.push_back(0);
  }
  dims = std::move(nd);
  strides = std::move(ns);
}

// What launch_spec derives from a spec, dims and strides: reused through the node's memo while
// they stay the same.
struct EwLaunch {
  std::string op;
  std::vector<k::FusedKernelStep> program;
  bool flat = true;
  k::StridedArgs st{};
  unsigned grid = 0;
  std::shared_ptr<const KernelVariant> variant;
};

// The generic kernel of a launch (key and source builder): it depends on the op, program,
// attributes, dtypes and layout class but not on dims or strides, so a node's first call at a new
// shape takes it from the memo and builds no key text (a fused program's key runs to kilobytes).
struct EwGeneric {
  std::string op;
  std::vector<k::FusedKernelStep> program;
  std::shared_ptr<const KernelVariant> variant;  // not specialisable
};

constexpr uint32_t kEwLaunchKind = 0x45570000;   // + the launch's ordinal within its node
constexpr uint32_t kEwGenericKind = 0x47450000;  // + the same ordinal
constexpr int kEwBlock = 256;

// Launches the kernel of `spec` (op or program and output set; inputs, layout and index width
// filled in here).
Status launch_spec(RunContext& ctx, k::ElementwiseSpec spec, void* out, const Dims& dims,
                   std::vector<int64_t> out_strides, std::vector<EwOperand> inputs) {
  const int64_t n = dims_numel(dims);
  if (n == 0) return Status();
  if (inputs.size() > 6) return unsupported(ctx.where() + ": more than 6 inputs for one CUDA elementwise kernel");

  // The memo: everything below depends on the op, program, attributes, dtypes, dims and strides.
  NodeMemo* memo = ctx.memo();
  thread_local std::vector<int64_t> sig;  // reused: a steady-state call allocates nothing for it
  sig.clear();
  const uint32_t ordinal = memo ? ctx.next_memo_ordinal() : 0;  // this launch within its node
  const uint32_t kind = kEwLaunchKind + ordinal;
  std::shared_ptr<const EwLaunch> plan;
  if (memo) {
    sig.push_back(static_cast<int64_t>(spec.output));
    sig.push_back(static_cast<int64_t>(dims.size()));
    sig.insert(sig.end(), dims.begin(), dims.end());
    sig.insert(sig.end(), out_strides.begin(), out_strides.end());
    for (const auto& in : inputs) {
      sig.push_back(static_cast<int64_t>(in.dtype));
      sig.insert(sig.end(), in.strides.begin(), in.strides.end());
    }
    sig.push_back(static_cast<int64_t>(spec.attrs.size()));
    for (double a : spec.attrs) sig.push_back(std::bit_cast<int64_t>(a));
    if (std::shared_ptr<const void> v = memo->find(kind, sig)) {
      auto e = std::static_pointer_cast<const EwLaunch>(v);
      if (e->op == spec.op && e->program == spec.program) plan = std::move(e);
    }
  }
  if (!plan) {
    const uint64_t t_plan = ctx.profile_start();
    auto e = std::make_shared<EwLaunch>();
    e->op = spec.op;
    e->program = spec.program;
    for (const auto& in : inputs) spec.inputs.push_back(in.dtype);
    // Flat when the output is contiguous and each input is contiguous or one broadcast element.
    const std::vector<int64_t> contig = contiguous_strides(dims);
    auto same_walk = [&](const std::vector<int64_t>& s, const std::vector<int64_t>& ref) {
      for (size_t d = 0; d < dims.size(); ++d)
        if (dims[d] != 1 && s[d] != ref[d]) return false;
      return true;
    };
    const std::vector<int64_t> zeros(dims.size(), 0);
    bool flat = same_walk(out_strides, contig);
    std::vector<bool> scalar;
    for (const auto& in : inputs) {
      if (!flat) break;
      if (same_walk(in.strides, contig)) {
        scalar.push_back(false);
      } else if (same_walk(in.strides, zeros)) {
        scalar.push_back(true);
      } else {
        flat = false;
      }
    }
    k::StridedArgs st{};
    int64_t max_offset = n;
    if (flat) {
      spec.layout = k::Layout::kFlat;
      spec.scalar_inputs = scalar;
    } else {
      spec.layout = k::Layout::kStrided;
      Dims cd = dims;
      std::vector<std::vector<int64_t>> strides = {out_strides};
      for (const auto& in : inputs) strides.push_back(in.strides);
      coalesce(cd, strides);
      if (cd.size() > static_cast<size_t>(k::kMaxRank))
        return unsupported(ctx.where() + ": a strided view of rank " + std::to_string(cd.size()) +
                           " after merging dims (the CUDA kernels take up to 8)");
      st.rank = static_cast<int32_t>(cd.size());
      for (size_t d = 0; d < cd.size(); ++d) {
        st.dims[d] = cd[d];
        for (size_t o = 0; o < strides.size(); ++o) st.strides[o][d] = strides[o][d];
      }
      for (const auto& s : strides) {
        int64_t span = 0;
        for (size_t d = 0; d < cd.size(); ++d) span += std::llabs(s[d]) * (cd[d] - 1);
        max_offset = std::max(max_offset, span + 1);
      }
    }
    spec.wide_index = max_offset >= (int64_t{1} << 31) - 1;
    e->flat = flat;
    e->st = st;
    e->grid = k::grid_for(n, kEwBlock, ctx.device().multiprocessors);
    // The generic kernel: from the memo when this node launched it at another shape.
    thread_local std::vector<int64_t> gsig;
    gsig.clear();
    gsig.push_back(static_cast<int64_t>(spec.output));
    gsig.push_back(static_cast<int64_t>(spec.layout));
    gsig.push_back(spec.wide_index ? 1 : 0);
    gsig.push_back(static_cast<int64_t>(spec.inputs.size()));
    for (DType d : spec.inputs) gsig.push_back(static_cast<int64_t>(d));
    for (bool b : spec.scalar_inputs) gsig.push_back(b ? 1 : 0);
    gsig.push_back(static_cast<int64_t>(spec.attrs.size()));
    for (double a : spec.attrs) gsig.push_back(std::bit_cast<int64_t>(a));
    std::shared_ptr<const KernelVariant> generic;
    const uint32_t gkind = kEwGenericKind + ordinal;
    if (memo)
      if (std::shared_ptr<const void> v = memo->find(gkind, gsig)) {
        auto g = std::static_pointer_cast<const EwGeneric>(v);
        if (g->op == spec.op && g->program == spec.program) generic = g->variant;
      }
    if (!generic) {
      auto g = std::make_shared<EwGeneric>();
      g->op = spec.op;
      g->program = spec.program;
      std::string key = k::elementwise_key(spec);
      g->variant = std::make_shared<const KernelVariant>(
          KernelVariant{std::move(key), [spec = std::move(spec)] { return k::elementwise_source(spec); }, {}, {}});
      generic = g->variant;
      if (memo) memo->put(gkind, gsig, std::move(g));
    }
    if (flat) {  // contiguous: nothing to fold, specialising would not gain
      e->variant = std::move(generic);
    } else {  // broadcasts and views: baked dims and strides turn the per-element index math into constants
      k::Bake bake{{k::bake_strided("st", st, static_cast<int>(inputs.size()) + 1), k::bake_i64("n", n)}, kEwBlock};
      e->variant = std::make_shared<const KernelVariant>(specialisable(generic->key, generic->build, std::move(bake)));
    }
    plan = e;
    if (memo) memo->put(kind, sig, std::move(e));
    ctx.add_plan_ns(t_plan);
  }
  std::vector<void*> args;
  void* out_ptr = out;
  std::vector<const void*> in_ptrs;
  for (const auto& in : inputs) in_ptrs.push_back(in.data);
  args.push_back(&out_ptr);
  for (auto& p : in_ptrs) args.push_back(&p);
  k::StridedArgs st = plan->st;
  if (!plan->flat) args.push_back(&st);
  long long count = n;
  args.push_back(&count);
  return ctx.launch(*plan->variant, plan->grid, kEwBlock, args.data());
}

}  // namespace

Status launch_elementwise(RunContext& ctx, const std::string& op, const std::vector<double>& attrs, void* out,
                          DType out_dtype, const Dims& dims, std::vector<int64_t> out_strides,
                          std::vector<EwOperand> inputs) {
  k::ElementwiseSpec spec;
  spec.op = op;
  spec.output = out_dtype;
  spec.attrs = attrs;
  return launch_spec(ctx, std::move(spec), out, dims, std::move(out_strides), std::move(inputs));
}

Status launch_fused_elementwise(RunContext& ctx, std::vector<kernels::FusedKernelStep> program, void* out,
                                DType out_dtype, const Dims& dims, std::vector<int64_t> out_strides,
                                std::vector<EwOperand> inputs) {
  k::ElementwiseSpec spec;
  spec.op = "kiln.FusedElementwise";
  spec.program = std::move(program);
  spec.output = out_dtype;
  return launch_spec(ctx, std::move(spec), out, dims, std::move(out_strides), std::move(inputs));
}

Result<Tensor> elementwise(RunContext& ctx, const std::string& op, std::span<const Tensor> inputs, DType out_dtype,
                           const std::vector<double>& attrs) {
  KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_dims(ctx, inputs));
  std::vector<EwOperand> ops;
  for (const Tensor& t : inputs) ops.push_back({t.data(), t.dtype(), broadcast_strides(t.dims(), dims)});
  KILN_ASSIGN_OR_RETURN(Tensor out, ctx.alloc(out_dtype, dims));
  KILN_RETURN_IF_ERROR(launch_elementwise(ctx, op, attrs, out.data(), out_dtype, dims, contiguous_strides(dims),
                                          std::move(ops)));
  return out;
}

Status strided_copy(RunContext& ctx, void* dst, std::vector<int64_t> dst_strides, const void* src,
                    std::vector<int64_t> src_strides, const Dims& dims, DType dtype) {
  DType bits = bits_dtype(dtype);
  if (bits == DType::kUndefined) return unsupported(ctx.where() + ": dtype " + std::string(dtype_name(dtype)));
  return launch_elementwise(ctx, "Identity", {}, dst, bits, dims, std::move(dst_strides),
                            {EwOperand{src, bits, std::move(src_strides)}});
}

}  // namespace kiln::cuda
