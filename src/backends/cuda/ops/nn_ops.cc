// MatMul, Gemm and Conv through cuBLASLt (gemm.h), pooling and grouped convolution through
// generated window kernels (kernels/nn.h).
//
// Conv goes to cuDNN first where the build and the machine have it (conv_cudnn.h). Otherwise,
// Conv with group == 1 is im2col + one strided-batched GEMM per chunk of images (a 1x1 stride-1
// unpadded conv skips im2col: the input already is the column matrix); grouped and depthwise
// convs run the direct kernel. Integer MatMul/Gemm have no cuBLASLt path: they fall back to the CPU.
// Fused epilogues (fuse_epilogues: MatMul's bias input, kiln_activation) run in cuBLASLt's
// epilogue, or in the direct conv kernel; a case neither covers is kUnsupported (CPU fallback).
// The conv bias of the GEMM path is prefilled into y by the im2col launch itself.
#include <algorithm>

#include "backends/cpu/kernel.h"
#include "backends/cpu/ops/nn_common.h"
#include "backends/cpu/ops/nn_epilogue.h"
#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/kernels/common.h"
#include "backends/cuda/kernels/nn.h"
#include "backends/cuda/ops/launch.h"

namespace kiln::cuda {
namespace {

namespace k = kernels;

constexpr int64_t kMaxColumnBytes = int64_t{256} << 20;  // im2col scratch per chunk

bool gemm_dtype(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kF64; }

// The node's kiln_activation (cpu/ops/nn_epilogue.h) as a cuBLASLt epilogue.
Result<GemmActivation> gemm_activation(const ir::Node& node) {
  KILN_ASSIGN_OR_RETURN(const cpu::nn::Activation a, cpu::nn::epilogue_activation(node));
  switch (a) {
    case cpu::nn::Activation::kRelu: return GemmActivation::kRelu;
    case cpu::nn::Activation::kGeluTanh: return GemmActivation::kGeluTanh;
    case cpu::nn::Activation::kNone: break;
  }
  return GemmActivation::kNone;
}

// MatMul with fuse_epilogues' extensions: a [N] bias input, kiln_trans_a / kiln_trans_b (an
// operand stored with its last two axes swapped: cuBLASLt reads it transposed), kiln_alpha (the
// product's factor), a 4th input R of the result's dims (cuBLASLt's C with beta = 1) and
// kiln_activation.
class MatMulHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.size() < 2 || !in[0].defined() || !in[1].defined()) return invalid_argument(ctx.where() + ": takes A and B");
    const ir::Node& node = ctx.node();
    Tensor a = in[0], b = in[1];
    if (a.dtype() != b.dtype()) return invalid_argument(ctx.where() + ": A and B have different dtypes");
    if (!gemm_dtype(a.dtype())) return unsupported(ctx.where() + ": dtype " + std::string(dtype_name(a.dtype())));
    if (a.rank() == 0 || b.rank() == 0) return invalid_argument(ctx.where() + ": MatMul of a scalar");
    const bool ta = node.attrs.get_int("kiln_trans_a", 0) != 0, tb = node.attrs.get_int("kiln_trans_b", 0) != 0;
    if ((ta && a.rank() < 2) || (tb && b.rank() < 2))
      return invalid_argument(ctx.where() + ": kiln_trans_a / kiln_trans_b need operands of rank >= 2");
    const bool a_vec = a.rank() == 1, b_vec = b.rank() == 1;
    if (a_vec) a = a.reshaped({1, a.dim(0)});
    if (b_vec) b = b.reshaped({b.dim(0), 1});
    // Stored dims (rows, cols) of each matrix, and the product's m, k, n.
    const int64_t a_rows = a.dim(a.rank() - 2), a_cols = a.dim(a.rank() - 1);
    const int64_t b_rows = b.dim(b.rank() - 2), b_cols = b.dim(b.rank() - 1);
    const int64_t m = ta ? a_cols : a_rows, kk = ta ? a_rows : a_cols, n = tb ? b_rows : b_cols;
    if ((tb ? b_cols : b_rows) != kk)
      return invalid_argument(ctx.where() + ": A " + dims_to_string(in[0].dims()) + " and B " +
                              dims_to_string(in[1].dims()) + " do not multiply" +
                              (ta || tb ? " (kiln_trans_a=" + std::to_string(ta) + ", kiln_trans_b=" + std::to_string(tb) + ")"
                                        : std::string()));
    const Dims ab(a.dims().begin(), a.dims().end() - 2), bb(b.dims().begin(), b.dims().end() - 2);
    const size_t br = std::max(ab.size(), bb.size());
    Dims batch(br, 1);
    for (size_t d = 0; d < br; ++d) {
      int64_t x = d + ab.size() >= br ? ab[d + ab.size() - br] : 1;
      int64_t y = d + bb.size() >= br ? bb[d + bb.size() - br] : 1;
      if (x != y && x != 1 && y != 1)
        return invalid_argument(ctx.where() + ": batch dims of A " + dims_to_string(in[0].dims()) + " and B " +
                                dims_to_string(in[1].dims()) + " do not broadcast");
      batch[d] = x == 1 ? y : x;
    }
    Dims od = batch;
    if (!a_vec) od.push_back(m);
    if (!b_vec) od.push_back(n);
    // Fused epilogue (fuse_epilogues): a [N] bias input, a residual input and kiln_activation.
    const Tensor bias = in.size() > 2 ? in[2] : Tensor();
    if (bias.defined() && (b_vec || bias.rank() != 1 || bias.dim(0) != n || bias.dtype() != a.dtype()))
      return invalid_argument(ctx.where() + ": the bias input must be 1-D with N = " + std::to_string(n) +
                              " values of A's dtype and B of rank >= 2, got " + dims_to_string(bias.dims()));
    const Tensor residual = in.size() > 3 ? in[3] : Tensor();
    if (residual.defined() && (residual.dtype() != a.dtype() || residual.dims() != od))
      return invalid_argument(ctx.where() + ": the residual input must be " + std::string(dtype_name(a.dtype())) + " " +
                              dims_to_string(od) + " (the product's dims), got " +
                              std::string(dtype_name(residual.dtype())) + " " + dims_to_string(residual.dims()));
    KILN_ASSIGN_OR_RETURN(const GemmActivation act, gemm_activation(node));
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(a.dtype(), od));
    GemmDesc g;
    g.dtype = a.dtype();
    g.allow_tf32 = ctx.allow_tf32();
    g.act = act;
    g.bias = bias.defined();
    g.alpha = node.attrs.get_float("kiln_alpha", 1.0);
    g.beta = residual.defined() ? 1.0 : 0.0;
    g.trans_a = ta;
    g.trans_b = tb;
    g.n = n;
    g.k = kk;
    g.lda = a_cols;
    g.ldb = b_cols;
    g.ldd = n;
    const int64_t nbatch = dims_numel(batch);
    if (dims_numel(bb) == 1 && !ta) {  // B shared by every batch entry: one GEMM with the batch folded into m
      g.m = m * nbatch;
    } else {
      g.m = m;
      g.batch = nbatch;
      g.stride_d = m * n;
      // Each side is either full (its batch dims equal the result's) or shared (one matrix).
      auto prepare = [&](Tensor& t, const Dims& tb_dims, int64_t rows, int64_t cols, int64_t* stride) -> Status {
        Dims padded(br - tb_dims.size(), 1);
        padded.insert(padded.end(), tb_dims.begin(), tb_dims.end());
        if (dims_numel(tb_dims) == 1) {
          *stride = 0;
        } else if (padded == batch) {
          *stride = rows * cols;
        } else {
          Dims full = batch;
          full.push_back(rows);
          full.push_back(cols);
          Dims src_dims = padded;
          src_dims.push_back(rows);
          src_dims.push_back(cols);
          KILN_ASSIGN_OR_RETURN(Tensor e, ctx.alloc(t.dtype(), full));
          KILN_RETURN_IF_ERROR(strided_copy(ctx, e.data(), contiguous_strides(full), t.data(),
                                            broadcast_strides(src_dims, full), full, t.dtype()));
          t = e;
          *stride = rows * cols;
        }
        return Status();
      };
      KILN_RETURN_IF_ERROR(prepare(a, ab, a_rows, a_cols, &g.stride_a));
      KILN_RETURN_IF_ERROR(prepare(b, bb, b_rows, b_cols, &g.stride_b));
    }
    if (y.numel() > 0) {
      if (kk == 0 && (g.bias || residual.defined())) {
        return unsupported(ctx.where() + ": K = 0 with a fused bias or residual");
      } else if (kk == 0) {  // Relu(0) = Gelu(0) = 0
        KILN_RETURN_IF_ERROR(ctx.memset(y.data(), y.nbytes()));
      } else {
        Status s = ctx.gemm_run(g, a.data(), b.data(), y.data(), g.bias ? bias.data() : nullptr,
                                residual.defined() ? residual.data() : nullptr);
        if (!s.ok()) return s.with_context(ctx.where());
      }
    }
    out[0] = y;
    return Status();
  }
};

class GemmHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    if (in.size() < 2 || !in[0].defined() || !in[1].defined()) return invalid_argument(ctx.where() + ": takes A, B and C");
    const Tensor& a = in[0];
    const Tensor& b = in[1];
    if (a.rank() != 2 || b.rank() != 2) return invalid_argument(ctx.where() + ": A and B must be 2-D");
    if (a.dtype() != b.dtype()) return invalid_argument(ctx.where() + ": A and B have different dtypes");
    if (!gemm_dtype(a.dtype())) return unsupported(ctx.where() + ": dtype " + std::string(dtype_name(a.dtype())));
    GemmDesc g;
    g.dtype = a.dtype();
    g.allow_tf32 = ctx.allow_tf32();
    KILN_ASSIGN_OR_RETURN(g.act, gemm_activation(node));
    g.trans_a = node.attrs.get_int("transA", 0) != 0;
    g.trans_b = node.attrs.get_int("transB", 0) != 0;
    g.alpha = node.attrs.get_float("alpha", 1.0);
    const double beta = node.attrs.get_float("beta", 1.0);
    g.m = g.trans_a ? a.dim(1) : a.dim(0);
    g.k = g.trans_a ? a.dim(0) : a.dim(1);
    g.n = g.trans_b ? b.dim(0) : b.dim(1);
    const int64_t kb = g.trans_b ? b.dim(1) : b.dim(0);
    if (kb != g.k)
      return invalid_argument(ctx.where() + ": A " + dims_to_string(a.dims()) + " and B " + dims_to_string(b.dims()) +
                              " do not multiply (transA=" + std::to_string(g.trans_a) + ", transB=" +
                              std::to_string(g.trans_b) + ")");
    g.lda = a.dim(1);
    g.ldb = b.dim(1);
    g.ldd = g.n;
    const Dims od = {g.m, g.n};
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(a.dtype(), od));
    const Tensor c = in.size() > 2 ? in[2] : Tensor();
    const void* bias = nullptr;
    if (c.defined() && beta != 0) {
      if (c.dtype() != a.dtype()) return invalid_argument(ctx.where() + ": C has another dtype than A");
      if (c.rank() > 2) return invalid_argument(ctx.where() + ": C must have rank <= 2");
      for (size_t d = 0; d < c.dims().size(); ++d)
        if (c.dims()[d] != 1 && c.dims()[d] != od[2 - c.dims().size() + d])
          return invalid_argument(ctx.where() + ": C " + dims_to_string(c.dims()) + " does not broadcast to " +
                                  dims_to_string(od));
      const bool row_vector = c.numel() == g.n && (c.rank() == 1 || c.dim(0) == 1) && c.numel() > 1;
      if (row_vector && beta == 1.0 && g.k > 0) {
        g.bias = true;
        bias = c.data();
      } else {
        KILN_RETURN_IF_ERROR(strided_copy(ctx, y.data(), contiguous_strides(od), c.data(),
                                          broadcast_strides(c.dims(), od), od, c.dtype()));
        g.beta = beta;
      }
    }
    if (y.numel() > 0) {
      if (g.k == 0) {
        if (g.beta == 0 && !g.bias)
          KILN_RETURN_IF_ERROR(ctx.memset(y.data(), y.nbytes()));  // Relu(0) = Gelu(0) = 0
        else if (g.beta != 1.0)
          return unsupported(ctx.where() + ": K = 0 with beta != 1");
        else if (g.act != GemmActivation::kNone)
          return unsupported(ctx.where() + ": K = 0 with C and a fused activation");
      } else {
        Status s = ctx.gemm_run(g, a.data(), b.data(), y.data(), bias);
        if (!s.ok()) return s.with_context(ctx.where());
      }
    }
    out[0] = y;
    return Status();
  }
};

// Window geometry in the kernels' 3-dim form (spatial dims right-aligned, unused dims of size 1).
Result<k::WindowArgs> window_args(RunContext& ctx, const Tensor& x, std::vector<int64_t> kernel, bool ceil_allowed) {
  const size_t r = static_cast<size_t>(x.rank()) - 2;
  if (r < 1 || r > 3) return unsupported(ctx.where() + ": " + std::to_string(r) + " spatial dims (CUDA kernels take 1 to 3)");
  KILN_ASSIGN_OR_RETURN(cpu::nn::Window w, cpu::nn::window_geometry(ctx.node(), x.dims(), std::move(kernel), ceil_allowed));
  k::WindowArgs a{};
  for (size_t j = 0; j < 3; ++j) {
    a.in[j] = a.out[j] = a.k[j] = a.s[j] = a.d[j] = 1;
    a.pb[j] = a.pe[j] = 0;
  }
  for (size_t i = 0; i < r; ++i) {
    const size_t j = 3 - r + i;
    a.in[j] = w.in[i];
    a.out[j] = w.out[i];
    a.k[j] = w.kernel[i];
    a.s[j] = w.strides[i];
    a.d[j] = w.dilations[i];
    a.pb[j] = w.pad_begin[i];
    a.pe[j] = w.pad_end[i];
  }
  a.n = x.dim(0);
  a.c = x.dim(1);
  a.m = a.c;
  a.groups = 1;
  a.rank = static_cast<int32_t>(r);
  return a;
}

Dims window_out_dims(const k::WindowArgs& a, int64_t channels, size_t r) {
  Dims od = {a.n, channels};
  for (size_t i = 0; i < r; ++i) od.push_back(a.out[3 - r + i]);
  return od;
}

class PoolHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    if (in.empty() || !in[0].defined() || in[0].rank() < 3) return invalid_argument(ctx.where() + ": X must be [N, C, spatial...]");
    const bool is_max = node.op == "MaxPool";
    if (is_max && node.outputs.size() > 1 && node.outputs[1] >= 0) return unsupported(ctx.where() + ": MaxPool Indices output");
    const Tensor& x = in[0];
    std::vector<int64_t> kernel = node.attrs.get_ints("kernel_shape");
    if (kernel.empty()) return invalid_argument(ctx.where() + ": attribute 'kernel_shape' is required");
    KILN_ASSIGN_OR_RETURN(k::WindowArgs w, window_args(ctx, x, kernel, true));
    const Dims od = window_out_dims(w, x.dim(1), static_cast<size_t>(x.rank()) - 2);
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), od));
    k::WindowSpec spec{is_max ? k::WindowOp::kMaxPool
                              : node.attrs.get_int("count_include_pad", 0) ? k::WindowOp::kAvgPoolIncludePad
                                                                            : k::WindowOp::kAvgPool,
                       x.dtype()};
    if (y.numel() > 0) {
      void* yp = y.data();
      const void* xp = x.data();
      void* args[] = {&yp, &xp, &w};
      KILN_RETURN_IF_ERROR(ctx.launch(
          specialisable(k::window_key(spec), [spec] { return k::window_source(spec); },
                        k::Bake{{k::bake_window("w", w)}, 256}),
          k::grid_for(y.numel(), 256, ctx.device().multiprocessors), 256, args));
    }
    out[0] = y;
    return Status();
  }
};

class ConvHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    if (in.size() < 2 || !in[0].defined() || !in[1].defined() || in[0].rank() < 3)
      return invalid_argument(ctx.where() + ": takes X [N, C, spatial...] and W");
    const Tensor& x = in[0];
    const Tensor& wt = in[1];
    const Tensor bias = in.size() > 2 ? in[2] : Tensor();
    if (wt.rank() != x.rank() || wt.dtype() != x.dtype())
      return invalid_argument(ctx.where() + ": W " + dims_to_string(wt.dims()) + " does not match X " + dims_to_string(x.dims()));
    if (!gemm_dtype(x.dtype())) return unsupported(ctx.where() + ": dtype " + std::string(dtype_name(x.dtype())));
    const int64_t groups = node.attrs.get_int("group", 1);
    const int64_t c = x.dim(1), m = wt.dim(0);
    if (groups < 1 || c % groups != 0 || m % groups != 0 || wt.dim(1) * groups != c)
      return invalid_argument(ctx.where() + ": group " + std::to_string(groups) + " does not fit X " +
                              dims_to_string(x.dims()) + " and W " + dims_to_string(wt.dims()));
    if (bias.defined() && (bias.rank() != 1 || bias.dim(0) != m || bias.dtype() != x.dtype()))
      return invalid_argument(ctx.where() + ": B must be 1-D with " + std::to_string(m) + " values");
    std::vector<int64_t> kernel(wt.dims().begin() + 2, wt.dims().end());
    const std::vector<int64_t> attr_kernel = node.attrs.get_ints("kernel_shape");
    if (!attr_kernel.empty() && attr_kernel != kernel)
      return invalid_argument(ctx.where() + ": kernel_shape does not match W " + dims_to_string(wt.dims()));
    KILN_ASSIGN_OR_RETURN(k::WindowArgs w, window_args(ctx, x, kernel, false));
    w.m = m;
    w.groups = groups;
    const size_t r = static_cast<size_t>(x.rank()) - 2;
    const Dims od = window_out_dims(w, m, r);
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), od));
    if (y.numel() == 0) {
      out[0] = y;
      return Status();
    }
    KILN_ASSIGN_OR_RETURN(const bool on_cudnn, cudnn_conv(ctx, x, wt, bias, w, y));  // conv_cudnn.h
    if (on_cudnn) {
      out[0] = y;
      return Status();
    }
    const int64_t ksize = w.k[0] * w.k[1] * w.k[2], isize = w.in[0] * w.in[1] * w.in[2];
    const int64_t osize = w.out[0] * w.out[1] * w.out[2];
    KILN_ASSIGN_OR_RETURN(const GemmActivation act, gemm_activation(node));  // Relu only on Conv
    if (groups != 1) {
      k::WindowSpec spec{k::WindowOp::kConv, x.dtype(), act == GemmActivation::kRelu};
      void* yp = y.data();
      const void* xp = x.data();
      const void* wp = wt.data();
      const void* bp = bias.defined() ? bias.data() : nullptr;
      void* args[] = {&yp, &xp, &wp, &bp, &w};
      KILN_RETURN_IF_ERROR(ctx.launch(
          specialisable(k::window_key(spec), [spec] { return k::window_source(spec); },
                        k::Bake{{k::bake_window("w", w)}, 256}),
          k::grid_for(y.numel(), 256, ctx.device().multiprocessors), 256, args));
      out[0] = y;
      return Status();
    }
    const int64_t es = static_cast<int64_t>(dtype_size(x.dtype()));
    GemmDesc g;
    g.dtype = x.dtype();
    g.allow_tf32 = ctx.allow_tf32();
    g.m = m;
    g.n = osize;
    g.k = c * ksize;
    g.lda = g.k;
    g.ldb = osize;
    g.ldd = osize;
    g.stride_a = 0;
    g.stride_b = g.k * osize;
    g.stride_d = m * osize;
    g.act = act;  // applied after the bias, in cuBLASLt's epilogue
    bool direct = true;  // the input already is the column matrix
    for (int j = 0; j < 3; ++j) direct = direct && w.k[j] == 1 && w.s[j] == 1 && w.pb[j] == 0 && w.pe[j] == 0;
    // The per-channel bias is one value per row of each image's [M, spatial] product, which no
    // cuBLASLt epilogue takes (gemm.h): y is prefilled with it and the GEMM accumulates (beta =
    // 1). The im2col kernel writes the prefill in its own launch; a 1x1 conv has no im2col and
    // uses a broadcast copy.
    // One image of one pixel (a squeeze-and-excitation block's 1x1 convolutions at batch 1): the
    // product is one column, which the GEMV kernel computes with the bias in its epilogue (no
    // prefill launch) when it is ready for it.
    bool bias_in_gemv = false;
    if (bias.defined() && direct && w.n == 1) {
      GemmDesc probe = g;
      probe.batch = 1;
      probe.bias_rows = true;
      bias_in_gemv = ctx.gemv_ready(probe);
    }
    g.bias_rows = bias_in_gemv;
    if (bias.defined() && !bias_in_gemv) {
      g.beta = 1.0;
      if (direct) {
        std::vector<int64_t> bs(od.size(), 0);
        bs[1] = 1;
        KILN_RETURN_IF_ERROR(strided_copy(ctx, y.data(), contiguous_strides(od), bias.data(), bs, od, x.dtype()));
      }
    }
    const int64_t per_image = g.k * osize * es;
    const int64_t chunk = direct ? w.n : std::max<int64_t>(1, std::min<int64_t>(w.n, kMaxColumnBytes / std::max<int64_t>(per_image, 1)));
    Tensor col;
    if (!direct) {
      KILN_ASSIGN_OR_RETURN(col, ctx.alloc(x.dtype(), {chunk, g.k, osize}));
    }
    for (int64_t n0 = 0; n0 < w.n; n0 += chunk) {
      const int64_t nb = std::min(chunk, w.n - n0);
      const char* xb = static_cast<const char*>(x.data()) + n0 * c * isize * es;
      char* yb = static_cast<char*>(y.data()) + n0 * m * osize * es;
      const void* bmat = xb;
      if (!direct) {
        k::WindowArgs wc = w;
        wc.n = nb;
        k::WindowSpec spec{k::WindowOp::kIm2col, x.dtype()};
        spec.bias = bias.defined();
        void* cp = col.data();
        const void* xp = xb;
        void* yp = yb;
        const void* bp = bias.defined() ? bias.data() : nullptr;
        void* args_bias[] = {&cp, &xp, &wc, &yp, &bp};
        void* args_plain[] = {&cp, &xp, &wc};
        void** args = spec.bias ? args_bias : args_plain;
        KILN_RETURN_IF_ERROR(ctx.launch(
            specialisable(k::window_key(spec), [spec] { return k::window_source(spec); },
                          k::Bake{{k::bake_window("w", wc)}, 256}),
            k::grid_for(nb * g.k * osize, 256, ctx.device().multiprocessors), 256, args));
        bmat = col.data();
      }
      g.batch = nb;
      Status s = ctx.gemm_run(g, wt.data(), bmat, yb, bias_in_gemv ? bias.data() : nullptr);
      if (s.code() == StatusCode::kUnsupported && nb > 1) {  // no batched algorithm: one GEMM per image
        GemmDesc one = g;
        one.batch = 1;
        s = Status();
        for (int64_t i = 0; i < nb && s.ok(); ++i)
          s = ctx.gemm_run(one, wt.data(), static_cast<const char*>(bmat) + i * g.stride_b * es,
                             yb + i * g.stride_d * es, nullptr);
      }
      if (!s.ok()) return s.with_context(ctx.where());
    }
    out[0] = y;
    return Status();
  }
};

}  // namespace

void register_nn_handlers(HandlerTable& t) {
  t.add("MatMul", std::make_unique<MatMulHandler>());
  t.add("Gemm", std::make_unique<GemmHandler>());
  t.add("Conv", std::make_unique<ConvHandler>());
  t.add("MaxPool", std::make_unique<PoolHandler>());
  t.add("AveragePool", std::make_unique<PoolHandler>());
}

}  // namespace kiln::cuda
