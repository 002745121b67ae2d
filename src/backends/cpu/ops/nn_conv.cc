// Conv: N-D convolution with groups, dilations, strides, pads / auto_pad and bias, and the fused
// kiln_activation epilogue (nn_epilogue.h; Relu only).
//
// General path: im2col into a [C/group * prod(kernel), prod(out)] matrix, then one GEMM per
// (batch, group) with the group's [M/group, C/group * prod(kernel)] weights. A 1x1 kernel with unit
// strides and no padding skips im2col. Depthwise-style convolutions (one input channel per group)
// of rank 1 or 2 use a direct loop instead.
#include <algorithm>
#include <vector>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/nn_common.h"
#include "backends/cpu/ops/nn_epilogue.h"
#include "backends/cpu/ops/nn_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu::nn {
namespace {

constexpr int64_t kSmallWork = int64_t{1} << 20;  // multiply-adds below which we batch items
constexpr int64_t kMaxColElems = int64_t{1} << 21;  // im2col block size (elements)

struct ConvShape {
  int64_t n, c, m, group, cg, mg;
  int64_t kernel_size;  // prod(kernel)
  int64_t in_size;      // prod(input spatial)
  int64_t out_size;     // prod(output spatial)
  Window w;
};

// Fills col ([cg * kernel_size, p_end - p_begin]) with output positions [p_begin, p_end) of the
// im2col matrix of one group's input channels x ([cg, in_size]).
template <typename T>
void im2col(const ConvShape& s, const T* x, int64_t p_begin, int64_t p_end, T* col, bool parallel) {
  const Window& w = s.w;
  const size_t r = w.rank;
  const int64_t last_out = w.out[r - 1], last_in = w.in[r - 1], ncols = p_end - p_begin;
  auto rows = [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> kidx(r);
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t ch = row / s.kernel_size;
      int64_t rem = row % s.kernel_size;
      for (size_t d = r; d-- > 0;) {
        kidx[d] = rem % w.kernel[d];
        rem /= w.kernel[d];
      }
      const T* xc = x + ch * s.in_size;
      T* dst = col + row * ncols - p_begin;
      const int64_t koff_last = kidx[r - 1] * w.dilations[r - 1] - w.pad_begin[r - 1];
      const int64_t st = w.strides[r - 1];
      for (int64_t p = p_begin; p < p_end;) {
        // One run along the last output dim: outer coordinates q, last coordinates [o0, o1).
        const int64_t q = p / last_out, o0 = p % last_out;
        const int64_t o1 = std::min(last_out, o0 + (p_end - p));
        int64_t rem_q = q, base = 0, scale = 1;
        bool inside = true;
        for (size_t d = r - 1; d-- > 0;) {
          const int64_t o = rem_q % w.out[d];
          rem_q /= w.out[d];
          const int64_t i = o * w.strides[d] - w.pad_begin[d] + kidx[d] * w.dilations[d];
          inside = inside && i >= 0 && i < w.in[d];
          base += i * scale * last_in;
          scale *= w.in[d];
        }
        T* drow = dst + q * last_out;
        if (!inside) {
          std::fill(drow + o0, drow + o1, T{0});
        } else {
          const T* src = xc + base;
          for (int64_t o = o0; o < o1; ++o) {
            const int64_t i = o * st + koff_last;
            drow[o] = (i >= 0 && i < last_in) ? src[i] : T{0};
          }
        }
        p += o1 - o0;
      }
    }
  };
  const int64_t nrows = s.cg * s.kernel_size;
  if (parallel) {
    parallel_for(nrows, std::max<int64_t>(1, 4096 / std::max<int64_t>(ncols, 1)), rows);
  } else {
    rows(0, nrows);
  }
}

// One input channel per output channel group: direct loops over a 2-D plane (rank-1 problems
// arrive with a leading unit dim). Parallel over (batch, output channel) planes.
template <typename T>
void conv_direct_2d(const ConvShape& s, const T* x, const T* wt, const T* bias, T* y) {
  const Window& w = s.w;
  const int64_t ih = w.in[0], iw = w.in[1], oh = w.out[0], ow = w.out[1];
  const int64_t kh = w.kernel[0], kw = w.kernel[1];
  parallel_for(s.n * s.m, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t plane = lo; plane < hi; ++plane) {
      const int64_t b = plane / s.m, mo = plane % s.m;
      const int64_t ch = mo / s.mg;  // the group's single input channel
      const T* xp = x + (b * s.c + ch) * s.in_size;
      const T* wp = wt + mo * s.kernel_size;
      T* yp = y + plane * s.out_size;
      std::fill(yp, yp + s.out_size, bias ? bias[mo] : T{0});
      for (int64_t a = 0; a < kh; ++a) {
        for (int64_t c = 0; c < kw; ++c) {
          const T wv = wp[a * kw + c];
          const int64_t off_w = c * w.dilations[1] - w.pad_begin[1];
          // Output columns whose input column 0 <= o * stride + off_w < iw.
          const int64_t sw = w.strides[1];
          int64_t lo_w = off_w >= 0 ? 0 : (-off_w + sw - 1) / sw;
          int64_t hi_w = iw - off_w <= 0 ? 0 : (iw - 1 - off_w) / sw + 1;
          lo_w = std::min(lo_w, ow);
          hi_w = std::min(hi_w, ow);
          for (int64_t o = 0; o < oh; ++o) {
            const int64_t row = o * w.strides[0] - w.pad_begin[0] + a * w.dilations[0];
            if (row < 0 || row >= ih) continue;
            const T* src = xp + row * iw + off_w;
            T* dst = yp + o * ow;
            if (sw == 1) {
              for (int64_t q = lo_w; q < hi_w; ++q) dst[q] += wv * src[q];
            } else {
              for (int64_t q = lo_w; q < hi_w; ++q) dst[q] += wv * src[q * sw];
            }
          }
        }
      }
    }
  });
}

template <typename T>
void conv_gemm(const ConvShape& s, const T* x, const T* wt, const T* bias, T* y) {
  const Window& w = s.w;
  bool pointwise = true;
  for (size_t d = 0; d < w.rank; ++d)
    pointwise = pointwise && w.kernel[d] == 1 && w.strides[d] == 1 && w.pad_begin[d] == 0 &&
                w.pad_end[d] == 0;
  const int64_t kdim = s.cg * s.kernel_size;
  const int64_t items = s.n * s.group;
  const bool many_small = items > 1 && s.mg * kdim * s.out_size < kSmallWork;
  // The im2col matrix is built for blocks of output positions, so its size stays bounded.
  const int64_t block = pointwise ? s.out_size
                                  : std::clamp<int64_t>(kMaxColElems / std::max<int64_t>(kdim, 1), 1,
                                                        s.out_size);
  auto item = [&](int64_t i, std::vector<T>& col, bool parallel_im2col) {
    const int64_t b = i / s.group, g = i % s.group;
    const T* xg = x + (b * s.c + g * s.cg) * s.in_size;
    T* yg = y + (b * s.m + g * s.mg) * s.out_size;
    for (int64_t p0 = 0; p0 < s.out_size; p0 += block) {
      const int64_t len = std::min(block, s.out_size - p0);
      const T* src = xg;
      int64_t ld = s.out_size;
      if (!pointwise) {
        col.resize(static_cast<size_t>(kdim * len));
        im2col(s, xg, p0, p0 + len, col.data(), parallel_im2col);
        src = col.data();
        ld = len;
      }
      gemm<T>(false, false, s.mg, len, kdim, T{1}, wt + g * s.mg * kdim, kdim, src, ld, T{0},
              yg + p0, s.out_size);
    }
    if (bias) {
      for (int64_t mo = 0; mo < s.mg; ++mo) {
        const T bv = bias[g * s.mg + mo];
        T* row = yg + mo * s.out_size;
        for (int64_t p = 0; p < s.out_size; ++p) row[p] += bv;
      }
    }
  };
  if (many_small) {
    parallel_for(items, 1, [&](int64_t lo, int64_t hi) {
      std::vector<T> col;
      for (int64_t i = lo; i < hi; ++i) item(i, col, false);
    });
  } else {
    std::vector<T> col;
    for (int64_t i = 0; i < items; ++i) item(i, col, true);
  }
}

}  // namespace

Status conv(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const std::string ctx = node_context(node);
  KILN_RETURN_IF_ERROR(check_spatial_input(node, in.empty() ? Tensor() : in[0], "X"));
  if (!has_input(in, 1)) return invalid_argument(ctx + ": input W is missing");
  const Tensor& x = in[0];
  const Tensor& wt = in[1];
  if (wt.rank() != x.rank())
    return invalid_argument(ctx + ": W " + dims_to_string(wt.dims()) + " must have the rank of X " +
                            dims_to_string(x.dims()));
  if (wt.dtype() != x.dtype())
    return invalid_argument(ctx + ": W is " + std::string(dtype_name(wt.dtype())) + " but X is " +
                            std::string(dtype_name(x.dtype())));
  ConvShape s;
  s.n = x.dim(0);
  s.c = x.dim(1);
  s.m = wt.dim(0);
  s.group = node.attrs.get_int("group", 1);
  if (s.group < 1 || s.c % s.group != 0 || s.m % s.group != 0 || wt.dim(1) * s.group != s.c)
    return invalid_argument(ctx + ": group " + std::to_string(s.group) + " does not fit X " +
                            dims_to_string(x.dims()) + " and W " + dims_to_string(wt.dims()) +
                            " (need C = W.dim(1) * group and M divisible by group)");
  s.cg = s.c / s.group;
  s.mg = s.m / s.group;
  std::vector<int64_t> kernel(wt.dims().begin() + 2, wt.dims().end());
  const std::vector<int64_t> attr_kernel = node.attrs.get_ints("kernel_shape");
  if (!attr_kernel.empty() && attr_kernel != kernel)
    return invalid_argument(ctx + ": kernel_shape " + dims_to_string(attr_kernel) +
                            " does not match W " + dims_to_string(wt.dims()));
  KILN_ASSIGN_OR_RETURN(s.w, window_geometry(node, x.dims(), kernel, false));
  const Tensor* bias = nullptr;
  if (has_input(in, 2)) {
    bias = &in[2];
    if (bias->rank() != 1 || bias->dim(0) != s.m || bias->dtype() != x.dtype())
      return invalid_argument(ctx + ": B must be a 1-D " + std::string(dtype_name(x.dtype())) +
                              " tensor of " + std::to_string(s.m) + " values, got " +
                              std::string(dtype_name(bias->dtype())) + " " +
                              dims_to_string(bias->dims()));
  }
  KILN_ASSIGN_OR_RETURN(const Activation act, epilogue_activation(node));
  s.kernel_size = dims_numel(s.w.kernel);
  s.in_size = dims_numel(s.w.in);
  s.out_size = dims_numel(s.w.out);
  if (!gemm_dims_fit({s.mg, s.out_size, s.cg * s.kernel_size}))
    return unsupported(ctx + ": the convolution exceeds the 32-bit sizes of the CPU GEMM");
  Dims od = {s.n, s.m};
  od.insert(od.end(), s.w.out.begin(), s.w.out.end());
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), od));
  if (y.numel() == 0) return Status();

  return dispatch_floats(node, x.dtype(), [&]<typename T>() -> Status {
    const T* pb = bias ? bias->data_as<const T>() : nullptr;
    if (s.cg == 1 && s.w.rank <= 2) {
      ConvShape s2 = s;
      if (s.w.rank == 1) {  // view a 1-D problem as [1, L]
        Window& w = s2.w;
        w.rank = 2;
        w.in.insert(w.in.begin(), 1);
        w.out.insert(w.out.begin(), 1);
        w.kernel.insert(w.kernel.begin(), 1);
        w.strides.insert(w.strides.begin(), 1);
        w.dilations.insert(w.dilations.begin(), 1);
        w.pad_begin.insert(w.pad_begin.begin(), 0);
        w.pad_end.insert(w.pad_end.begin(), 0);
      }
      conv_direct_2d<T>(s2, x.data_as<const T>(), wt.data_as<const T>(), pb, y.data_as<T>());
    } else {
      conv_gemm<T>(s, x.data_as<const T>(), wt.data_as<const T>(), pb, y.data_as<T>());
    }
    apply_activation<T>(act, y.data_as<T>(), y.numel());
    return Status();
  });
}

}  // namespace kiln::cpu::nn
