// kiln.Attention on the GPU: one launch of kernels/attention.h per call. The node's attributes are
// decoded and its geometry derived on the first call at each input shape (planning at context
// creation included, so bad attributes in an engine file are an error, never a crash) and kept in
// the node's memo with the kernel variant and launch geometry.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "backends/cuda/kernels/attention.h"
#include "backends/cuda/ops/launch.h"
#include "ir/attention.h"

namespace kiln::cuda {
namespace {

namespace k = kernels;

struct AttentionLaunch {
  k::AttentionArgs args;
  Dims out_dims;
  unsigned grid = 0;
  std::shared_ptr<const KernelVariant> variant;
};

// A node's first call at a new shape reuses from its other shapes the parsed attributes (they
// depend on the input ranks alone; kAttentionAttrsKind) and the kernel variant of each kernel it
// has chosen (kAttentionVariantKind).
constexpr uint32_t kAttentionKind = 0x41540000;
constexpr uint32_t kAttentionAttrsKind = 0x41410000;
constexpr uint32_t kAttentionVariantKind = 0x41560000;

// KILN_ATTENTION_KERNEL=simt|mma (read once) overrides attention_use_mma: a diagnosis knob, to
// measure one kernel form against the other at the same shapes (docs/cuda_backend.md).
enum class KernelChoice { kAuto, kSimt, kMma };
KernelChoice kernel_choice() {
  static const KernelChoice c = [] {
    const char* v = std::getenv("KILN_ATTENTION_KERNEL");
    if (!v) return KernelChoice::kAuto;
    const std::string_view s(v);
    return s == "simt" ? KernelChoice::kSimt : s == "mma" ? KernelChoice::kMma : KernelChoice::kAuto;
  }();
  return c;
}

class AttentionHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.size() != 3 || !in[0].defined() || !in[1].defined() || !in[2].defined())
      return invalid_argument(ctx.where() + ": takes Q, K and V");
    const DType dt = in[0].dtype();
    if (in[1].dtype() != dt || in[2].dtype() != dt) return invalid_argument(ctx.where() + ": Q, K and V must share a dtype");
    if (dt != DType::kF32 && dt != DType::kF16 && dt != DType::kBF16)
      return unsupported(ctx.where() + ": dtype " + std::string(dtype_name(dt)));
    NodeMemo* memo = ctx.memo();
    thread_local std::vector<int64_t> sig;
    sig.clear();
    sig.push_back(static_cast<int64_t>(dt));
    for (const Tensor& t : in) {
      sig.push_back(t.rank());
      sig.insert(sig.end(), t.dims().begin(), t.dims().end());
    }
    std::shared_ptr<const AttentionLaunch> plan;
    if (memo)
      if (std::shared_ptr<const void> v = memo->find(kAttentionKind, sig))
        plan = std::static_pointer_cast<const AttentionLaunch>(v);
    if (!plan) {
      const uint64_t t_plan = ctx.profile_start();
      const int64_t ranks[3] = {in[0].rank(), in[1].rank(), in[2].rank()};
      std::shared_ptr<const ir::AttentionAttrs> parsed;
      if (memo)
        if (std::shared_ptr<const void> v = memo->find(kAttentionAttrsKind, ranks))
          parsed = std::static_pointer_cast<const ir::AttentionAttrs>(v);
      if (!parsed) {
        KILN_ASSIGN_OR_RETURN(ir::AttentionAttrs a, ir::attention_attrs(ctx.node(), ranks));
        parsed = std::make_shared<const ir::AttentionAttrs>(std::move(a));
        if (memo) memo->put(kAttentionAttrsKind, std::vector<int64_t>(ranks, ranks + 3), parsed);
      }
      const ir::AttentionAttrs& attrs = *parsed;
      KILN_ASSIGN_OR_RETURN(ir::AttentionGeometry g,
                            ir::attention_geometry(ctx.node(), attrs, in[0].dims(), in[1].dims(), in[2].dims()));
      if (g.dim > ir::kMaxAttentionHeadDim || g.dim_v > ir::kMaxAttentionHeadDim)
        return unsupported(ctx.where() + ": head dims over " + std::to_string(ir::kMaxAttentionHeadDim));
      auto p = std::make_shared<AttentionLaunch>();
      k::AttentionSpec spec;
      spec.dtype = dt;
      spec.dim = static_cast<int>(g.dim);
      spec.dim_v = static_cast<int>(g.dim_v);
      const int64_t bh = g.batch * g.heads;
      const DeviceInfo& dev = ctx.device();
      spec.mma = k::attention_use_mma(dt, dev.sm, bh);
      if (const KernelChoice c = kernel_choice(); c != KernelChoice::kAuto)
        spec.mma = c == KernelChoice::kMma && dt != DType::kF32 && dev.sm >= 80;
      spec.rows_per_warp = spec.mma ? 1 : k::attention_rows_per_warp(bh);
      // 16-byte staging loads when every operand's features are contiguous and each row starts
      // on a multiple of the vector width (packed QKV projections do); the pointers' alignment
      // is checked per call, so one kernel serves aligned and unaligned callers.
      const int vw = k::attention_vector_width(dt);
      spec.vector = g.dim % vw == 0 && g.dim_v % vw == 0;
      for (int o = 0; o < 3 && spec.vector; ++o) {
        spec.vector = g.stride[o][3] == 1 && g.offset[o] % vw == 0;
        for (int l = 0; l < 3 && spec.vector; ++l) spec.vector = g.stride[o][l] % vw == 0;
      }
      const int64_t rows = spec.mma ? k::kAttentionMmaRows : 4 * spec.rows_per_warp;
      k::AttentionArgs& a = p->args;
      a.heads = g.heads;
      a.seq_q = g.seq_q;
      a.seq_k = g.seq_k;
      a.tiles = (g.seq_q + rows - 1) / rows;
      for (int o = 0; o < 4; ++o) {
        a.off[o] = g.offset[o];
        for (int l = 0; l < 4; ++l) a.st[o][l] = g.stride[o][l];
      }
      a.scale = static_cast<float>(attrs.scale);
      const int64_t blocks = bh * a.tiles;
      if (blocks > 0x7fffffff) return unsupported(ctx.where() + ": too many blocks for one launch");
      p->grid = static_cast<unsigned>(blocks);
      p->out_dims = g.out_dims;
      const int64_t vsig[6] = {static_cast<int64_t>(spec.dtype), spec.dim, spec.dim_v, spec.mma ? 1 : 0,
                               spec.rows_per_warp, spec.vector ? 1 : 0};
      if (memo)
        if (std::shared_ptr<const void> v = memo->find(kAttentionVariantKind, vsig))
          p->variant = std::static_pointer_cast<const KernelVariant>(v);
      if (!p->variant) {
        p->variant = std::make_shared<const KernelVariant>(
            KernelVariant{k::attention_key(spec), [spec] { return k::attention_source(spec); }, {}, {}});
        if (memo) memo->put(kAttentionVariantKind, std::vector<int64_t>(vsig, vsig + 6), p->variant);
      }
      if (memo) memo->put(kAttentionKind, sig, p);
      plan = std::move(p);
      ctx.add_plan_ns(t_plan);
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(dt, plan->out_dims));
    if (plan->grid > 0 && y.numel() > 0) {
      if (plan->args.seq_k == 0) {
        KILN_RETURN_IF_ERROR(ctx.memset(y.data(), y.nbytes()));
      } else {
        void* yp = y.data();
        const void* qp = in[0].data();
        const void* kp = in[1].data();
        const void* vp = in[2].data();
        k::AttentionArgs a = plan->args;
        const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
        a.aligned = aligned(qp) && aligned(kp) && aligned(vp) ? 1 : 0;
        void* args[] = {&yp, &qp, &kp, &vp, &a};
        KILN_RETURN_IF_ERROR(ctx.launch(*plan->variant, plan->grid, k::kAttentionThreads, args));
      }
    }
    out[0] = y;
    return Status();
  }
};

}  // namespace

void register_attention_handlers(HandlerTable& t) {
  t.add(std::string(ir::kAttentionOp), std::make_unique<AttentionHandler>());
}

}  // namespace kiln::cuda
