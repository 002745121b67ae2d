// kiln.Attention on the CPU: the reference semantics (ir/attention.h). Scores, the softmax and
// the weighted sum accumulate in double; f32 and f64 (half inputs arrive widened to f32).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/ops/nn_ops.h"
#include "ir/attention.h"
#include "platform/thread_pool.h"

namespace kiln::cpu::nn {
namespace {

template <typename T>
void attend(const ir::AttentionGeometry& g, double scale, const T* q, const T* k, const T* v, T* o) {
  const int64_t rows = g.batch * g.heads * g.seq_q;
  parallel_for(rows, 16, [&](int64_t lo, int64_t hi) {
    std::vector<double> s(static_cast<size_t>(g.seq_k)), acc(static_cast<size_t>(g.dim_v));
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t i = r % g.seq_q, bh = r / g.seq_q, h = bh % g.heads, b = bh / g.heads;
      const T* qr = q + g.offset[0] + b * g.stride[0][0] + h * g.stride[0][1] + i * g.stride[0][2];
      const T* kb = k + g.offset[1] + b * g.stride[1][0] + h * g.stride[1][1];
      const T* vb = v + g.offset[2] + b * g.stride[2][0] + h * g.stride[2][1];
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < g.seq_k; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < g.dim; ++d)
          dot += static_cast<double>(qr[d * g.stride[0][3]]) * static_cast<double>(kb[j * g.stride[1][2] + d * g.stride[1][3]]);
        s[static_cast<size_t>(j)] = dot * scale;
        mx = std::max(mx, s[static_cast<size_t>(j)]);
      }
      double sum = 0;
      for (int64_t j = 0; j < g.seq_k; ++j) sum += (s[static_cast<size_t>(j)] = std::exp(s[static_cast<size_t>(j)] - mx));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < g.seq_k; ++j) {
        const double p = s[static_cast<size_t>(j)] / sum;
        for (int64_t d = 0; d < g.dim_v; ++d)
          acc[static_cast<size_t>(d)] += p * static_cast<double>(vb[j * g.stride[2][2] + d * g.stride[2][3]]);
      }
      T* orow = o + g.offset[3] + b * g.stride[3][0] + h * g.stride[3][1] + i * g.stride[3][2];
      for (int64_t d = 0; d < g.dim_v; ++d) orow[d * g.stride[3][3]] = static_cast<T>(acc[static_cast<size_t>(d)]);
    }
  });
}

}  // namespace

Status attention(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const std::string ctx = node_context(node);
  if (in.size() != 3 || !in[0].defined() || !in[1].defined() || !in[2].defined())
    return invalid_argument(ctx + ": takes Q, K and V");
  const DType dt = in[0].dtype();
  if (dt != DType::kF32 && dt != DType::kF64) return unsupported(ctx + ": dtype " + std::string(dtype_name(dt)));
  if (in[1].dtype() != dt || in[2].dtype() != dt) return invalid_argument(ctx + ": Q, K and V must share a dtype");
  const int64_t ranks[3] = {in[0].rank(), in[1].rank(), in[2].rank()};
  KILN_ASSIGN_OR_RETURN(ir::AttentionAttrs attrs, ir::attention_attrs(node, ranks));
  KILN_ASSIGN_OR_RETURN(ir::AttentionGeometry g,
                        ir::attention_geometry(node, attrs, in[0].dims(), in[1].dims(), in[2].dims()));
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(dt, g.out_dims));  // zero-filled: Sk == 0 stays 0
  if (y.numel() > 0 && g.seq_k > 0) {
    if (dt == DType::kF32) {
      attend<float>(g, attrs.scale, in[0].data_as<const float>(), in[1].data_as<const float>(),
                    in[2].data_as<const float>(), y.data_as<float>());
    } else {
      attend<double>(g, attrs.scale, in[0].data_as<const double>(), in[1].data_as<const double>(),
                     in[2].data_as<const double>(), y.data_as<double>());
    }
  }
  out[0] = std::move(y);
  return Status();
}

}  // namespace kiln::cpu::nn
