#include "backends/cpu/kernel.h"
#include "backends/cpu/ops/nn_ops.h"
#include "ir/attention.h"

namespace kiln::cpu {

void register_nn_ops(KernelRegistry& r) {
  r.add("MatMul", nn::matmul);
  r.add("Gemm", nn::gemm_op);
  r.add("Conv", nn::conv);
  r.add("MaxPool", nn::max_pool);
  r.add("AveragePool", nn::average_pool);
  r.add("GlobalAveragePool", nn::global_average_pool);
  r.add("GlobalMaxPool", nn::global_max_pool);
  r.add("BatchNormalization", nn::batch_normalization);
  r.add("InstanceNormalization", nn::instance_normalization);
  r.add("LayerNormalization", nn::layer_normalization);
  r.add("Resize", nn::resize);
  r.add("Einsum", nn::einsum);
  r.add(std::string(ir::kAttentionOp), nn::attention);
}

}  // namespace kiln::cpu
