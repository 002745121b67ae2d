// MatMul (numpy matmul semantics) and Gemm, with the fused epilogue of nn_epilogue.h: MatMul's
// optional bias input (a [N] vector added to every row of the result) and kiln_activation.
#include <algorithm>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/nn_common.h"
#include "backends/cpu/ops/nn_epilogue.h"
#include "backends/cpu/ops/nn_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu::nn {
namespace {

Status too_large(const ir::Node& node, const std::string& what) {
  return unsupported(node_context(node) + ": " + what +
                     " exceed the 32-bit sizes the CPU GEMM accepts; split the operation");
}

}  // namespace

// MatMul with the bias input and kiln_activation (nn_epilogue.h).
static Status matmul_core(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const std::string ctx = node_context(node);
  if (!has_input(in, 0) || !has_input(in, 1)) return invalid_argument(ctx + ": needs inputs A and B");
  const Tensor& a = in[0];
  const Tensor& b = in[1];
  if (a.dtype() != b.dtype())
    return invalid_argument(ctx + ": A is " + std::string(dtype_name(a.dtype())) + " but B is " +
                            std::string(dtype_name(b.dtype())));
  if (a.rank() == 0 || b.rank() == 0)
    return invalid_argument(ctx + ": inputs must have rank >= 1, got " + dims_to_string(a.dims()) +
                            " and " + dims_to_string(b.dims()));
  // 1-D operands are promoted to matrices ([K] -> [1, K] for A, [K, 1] for B) and the added
  // dimension is removed from the result.
  const bool a_vec = a.rank() == 1, b_vec = b.rank() == 1;
  Dims ad = a.dims(), bd = b.dims();
  if (a_vec) ad.insert(ad.begin(), 1);
  if (b_vec) bd.push_back(1);
  const int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  if (bd[bd.size() - 2] != k)
    return invalid_argument(ctx + ": inner dimensions differ: A " + dims_to_string(a.dims()) +
                            " and B " + dims_to_string(b.dims()));
  const Dims a_batch(ad.begin(), ad.end() - 2), b_batch(bd.begin(), bd.end() - 2);
  const Dims batch_shapes[] = {a_batch, b_batch};
  KILN_ASSIGN_OR_RETURN(Dims batch, broadcast_shapes(node, batch_shapes));
  Dims od = batch;
  if (!a_vec) od.push_back(m);
  if (!b_vec) od.push_back(n);
  KILN_ASSIGN_OR_RETURN(const Activation act, epilogue_activation(node));
  if (act == Activation::kGeluTanh && !dtype_is_float(a.dtype()))
    return invalid_argument(ctx + ": kiln_activation='Gelu:tanh' needs a float type, got " +
                            std::string(dtype_name(a.dtype())));
  const Tensor* bias = has_input(in, 2) ? &in[2] : nullptr;
  if (bias && (b_vec || bias->rank() != 1 || bias->dim(0) != n || bias->dtype() != a.dtype()))
    return invalid_argument(ctx + ": the bias input must be a 1-D " + std::string(dtype_name(a.dtype())) +
                            " tensor of N = " + std::to_string(n) + " values with a B of rank >= 2, got " +
                            std::string(dtype_name(bias->dtype())) + " " + dims_to_string(bias->dims()) +
                            " and B " + dims_to_string(b.dims()));
  if (!gemm_dims_fit({m, n, k})) return too_large(node, "matrix sizes");
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, a.dtype(), od));
  const int64_t batch_n = dims_numel(batch);
  if (y.numel() == 0) return Status();

  return dispatch_numeric(node, a.dtype(), [&]<typename T>() -> Status {
    const T* pa = a.data_as<const T>();
    const T* pb = b.data_as<const T>();
    T* pc = y.data_as<T>();
    auto epilogue = [&]() {
      if (bias) {
        const T* pbias = bias->data_as<const T>();
        const int64_t rows = y.numel() / n;
        parallel_for(rows, std::max<int64_t>(1, 4096 / n), [&](int64_t lo, int64_t hi) {
          for (int64_t r = lo; r < hi; ++r)
            for (int64_t j = 0; j < n; ++j) pc[r * n + j] += pbias[j];
        });
      }
      apply_activation<T>(act, pc, y.numel());
    };
    // B shared by every batch entry and A not broadcast: one [batch * m, k] x [k, n] product.
    if (dims_numel(b_batch) == 1 && dims_numel(a_batch) == batch_n) {
      if (!gemm_dims_fit({batch_n * m})) return too_large(node, "batch * rows");
      gemm<T>(false, false, batch_n * m, n, k, T{1}, pa, k, pb, n, T{0}, pc, n);
      epilogue();
      return Status();
    }
    const std::vector<int64_t> sa = broadcast_strides(a_batch, batch);
    const std::vector<int64_t> sb = broadcast_strides(b_batch, batch);
    std::vector<int64_t> a_off(static_cast<size_t>(batch_n)), b_off(static_cast<size_t>(batch_n));
    std::vector<int64_t> idx(batch.size(), 0);
    for (int64_t i = 0; i < batch_n; ++i) {
      int64_t oa = 0, ob = 0;
      for (size_t d = 0; d < batch.size(); ++d) {
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
      }
      a_off[i] = oa * m * k;
      b_off[i] = ob * k * n;
      for (size_t d = batch.size(); d-- > 0;) {
        if (++idx[d] < batch[d]) break;
        idx[d] = 0;
      }
    }
    batched_matmul<T>(m, n, k, pa, a_off, pb, b_off, pc);
    epilogue();
    return Status();
  });
}

namespace {

// Input `t` with its last two axes swapped (a fresh tensor).
Result<Tensor> swap_last_axes(const ir::Node& node, const Tensor& t, const char* attr) {
  if (t.rank() < 2)
    return invalid_argument(node_context(node) + ": " + attr + " needs an operand of rank >= 2, got " +
                            dims_to_string(t.dims()));
  ir::Node tr;
  tr.op = "Transpose";
  tr.name = node.name + "/" + attr;
  std::vector<int64_t> perm(static_cast<size_t>(t.rank()));
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  tr.attrs.set_ints("perm", perm);
  Tensor in[] = {t};
  Tensor res[1];
  KILN_RETURN_IF_ERROR(run_node(tr, in, res));
  return res[0];
}

}  // namespace

// fuse_epilogues' MatMul extensions on top of matmul_core: kiln_trans_a / kiln_trans_b (an operand
// read with its last two axes swapped), kiln_alpha (the product scaled before the bias) and a 4th
// input R of the result's dims added after the bias, before kiln_activation.
Status matmul(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const bool ta = node.attrs.get_int("kiln_trans_a", 0) != 0, tb = node.attrs.get_int("kiln_trans_b", 0) != 0;
  const double alpha = node.attrs.get_float("kiln_alpha", 1.0);
  const bool residual = has_input(in, 3);
  if (!ta && !tb && alpha == 1.0 && !residual) return matmul_core(node, in, out);
  const std::string ctx = node_context(node);
  if (!has_input(in, 0) || !has_input(in, 1)) return invalid_argument(ctx + ": needs inputs A and B");
  if ((alpha != 1.0 || residual) && !dtype_is_float(in[0].dtype()))
    return invalid_argument(ctx + ": kiln_alpha and a residual input need a float type, got " +
                            std::string(dtype_name(in[0].dtype())));
  Tensor a = in[0], b = in[1];
  if (ta) {
    KILN_ASSIGN_OR_RETURN(a, swap_last_axes(node, a, "kiln_trans_a"));
  }
  if (tb) {
    KILN_ASSIGN_OR_RETURN(b, swap_last_axes(node, b, "kiln_trans_b"));
  }
  // The product alone, then alpha, bias, residual and activation in that order.
  ir::Node core;
  core.op = "MatMul";
  core.name = node.name;
  Tensor ab[] = {a, b};
  Tensor y[1];
  KILN_RETURN_IF_ERROR(matmul_core(core, ab, y));
  KILN_ASSIGN_OR_RETURN(const Activation act, epilogue_activation(node));
  if (act == Activation::kGeluTanh && !dtype_is_float(a.dtype()))
    return invalid_argument(ctx + ": kiln_activation='Gelu:tanh' needs a float type, got " +
                            std::string(dtype_name(a.dtype())));
  const Tensor* bias = has_input(in, 2) ? &in[2] : nullptr;
  const int64_t n = y[0].rank() > 0 ? y[0].dims().back() : 1;
  if (bias && (bias->rank() != 1 || bias->dim(0) != n || bias->dtype() != a.dtype() || in[1].rank() < 2))
    return invalid_argument(ctx + ": the bias input must be a 1-D " + std::string(dtype_name(a.dtype())) +
                            " tensor of N = " + std::to_string(n) + " values with a B of rank >= 2, got " +
                            std::string(dtype_name(bias->dtype())) + " " + dims_to_string(bias->dims()));
  const Tensor* r = residual ? &in[3] : nullptr;
  if (r && (r->dtype() != a.dtype() || r->dims() != y[0].dims()))
    return invalid_argument(ctx + ": the residual input must be " + std::string(dtype_name(a.dtype())) + " " +
                            dims_to_string(y[0].dims()) + " (the product's dims), got " +
                            std::string(dtype_name(r->dtype())) + " " + dims_to_string(r->dims()));
  Tensor result = y[0];
  if (result.numel() > 0) {
    KILN_RETURN_IF_ERROR(dispatch_numeric(node, a.dtype(), [&]<typename T>() -> Status {
      T* py = result.data_as<T>();
      const T* pb = bias ? bias->data_as<const T>() : nullptr;
      const T* pr = r ? r->data_as<const T>() : nullptr;
      const int64_t total = result.numel();
      parallel_for(total, 1 << 14, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          T v = py[i];
          if (alpha != 1.0) v = static_cast<T>(static_cast<double>(v) * alpha);
          if (pb) v += pb[i % n];
          if (pr) v += pr[i];
          py[i] = v;
        }
      });
      apply_activation<T>(act, py, total);
      return Status();
    }));
  }
  out[0] = result;
  return Status();
}

Status gemm_op(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const std::string ctx = node_context(node);
  if (!has_input(in, 0) || !has_input(in, 1)) return invalid_argument(ctx + ": needs inputs A and B");
  const Tensor& a = in[0];
  const Tensor& b = in[1];
  if (a.rank() != 2 || b.rank() != 2)
    return invalid_argument(ctx + ": A and B must be 2-D, got " + dims_to_string(a.dims()) +
                            " and " + dims_to_string(b.dims()));
  if (a.dtype() != b.dtype())
    return invalid_argument(ctx + ": A is " + std::string(dtype_name(a.dtype())) + " but B is " +
                            std::string(dtype_name(b.dtype())));
  const bool ta = node.attrs.get_int("transA", 0) != 0, tb = node.attrs.get_int("transB", 0) != 0;
  const double alpha = node.attrs.get_float("alpha", 1.0), beta = node.attrs.get_float("beta", 1.0);
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t kb = tb ? b.dim(1) : b.dim(0), n = tb ? b.dim(0) : b.dim(1);
  if (k != kb)
    return invalid_argument(ctx + ": inner dimensions differ: op(A) is [" + std::to_string(m) + ", " +
                            std::to_string(k) + "], op(B) is [" + std::to_string(kb) + ", " +
                            std::to_string(n) + "] (transA=" + std::to_string(ta) +
                            ", transB=" + std::to_string(tb) + ")");
  const bool has_c = has_input(in, 2) && beta != 0.0;
  if (has_input(in, 2)) {
    const Tensor& c = in[2];
    if (c.dtype() != a.dtype())
      return invalid_argument(ctx + ": C is " + std::string(dtype_name(c.dtype())) + " but A is " +
                              std::string(dtype_name(a.dtype())));
    bool ok = c.rank() <= 2;
    const Dims target = {m, n};
    for (int64_t i = 0; ok && i < c.rank(); ++i) {
      int64_t d = c.dim(i), t = target[static_cast<size_t>(2 - c.rank() + i)];
      ok = d == t || d == 1;
    }
    if (!ok)
      return invalid_argument(ctx + ": C of shape " + dims_to_string(c.dims()) +
                              " cannot be broadcast to the output [" + std::to_string(m) + ", " +
                              std::to_string(n) + "]");
  }
  KILN_ASSIGN_OR_RETURN(const Activation act, epilogue_activation(node));
  if (act == Activation::kGeluTanh && !dtype_is_float(a.dtype()))
    return invalid_argument(ctx + ": kiln_activation='Gelu:tanh' needs a float type, got " +
                            std::string(dtype_name(a.dtype())));
  if (!gemm_dims_fit({m, n, k})) return too_large(node, "matrix sizes");
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, a.dtype(), {m, n}));
  if (y.numel() == 0) return Status();

  return dispatch_numeric(node, a.dtype(), [&]<typename T>() -> Status {
    T* py = y.data_as<T>();
    if (has_c) {
      const Tensor& c = in[2];
      const T* pc = c.data_as<const T>();
      const Dims cd = c.dims();
      // Strides of C over the [m, n] output, 0 along broadcast dims.
      const std::vector<int64_t> st = broadcast_strides(cd, {m, n});
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) py[i * n + j] = pc[i * st[0] + j * st[1]];
    }
    gemm<T>(ta, tb, m, n, k, static_cast<T>(alpha), a.data_as<const T>(), a.dim(1),
            b.data_as<const T>(), b.dim(1), has_c ? static_cast<T>(beta) : T{0}, py, n);
    apply_activation<T>(act, py, y.numel());
    return Status();
  });
}

}  // namespace kiln::cpu::nn
