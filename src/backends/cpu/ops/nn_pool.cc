// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool over [N, C, D1, ..., Dn] inputs.
//
// A window is the product of per-dim tap ranges: along dim d, output o starts at
// o * stride - pad_begin and takes kernel taps `dilation` apart; taps outside the input are skipped
// (max, and average without count_include_pad) or counted as zeros up to the end padding (average
// with count_include_pad; taps past the end padding that ceil_mode adds are never counted).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/nn_common.h"
#include "backends/cpu/ops/nn_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu::nn {
namespace {

// Per spatial dim and output index: the first input position (of tap 0), the valid tap range
// [lo, hi) and the number of taps inside input plus padding.
struct TapTable {
  std::vector<std::vector<int64_t>> pos0, lo, hi, padded;
};

int64_t ceil_div_pos(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

TapTable tap_table(const Window& w) {
  TapTable t;
  t.pos0.resize(w.rank);
  t.lo.resize(w.rank);
  t.hi.resize(w.rank);
  t.padded.resize(w.rank);
  for (size_t d = 0; d < w.rank; ++d) {
    const int64_t k = w.kernel[d], dil = w.dilations[d], in = w.in[d];
    for (int64_t o = 0; o < w.out[d]; ++o) {
      const int64_t p0 = o * w.strides[d] - w.pad_begin[d];
      t.pos0[d].push_back(p0);
      t.lo[d].push_back(std::min(k, ceil_div_pos(-p0, dil)));
      t.hi[d].push_back(std::min(k, ceil_div_pos(in - p0, dil)));
      t.padded[d].push_back(std::min(k, ceil_div_pos(in + w.pad_end[d] - p0, dil)));
    }
  }
  return t;
}

// Calls visit(out_index, window) for every output position of one plane, where window lists
// per-dim [first input position, step, tap count] of the valid taps; `padded_count` is the number
// of taps inside input plus padding.
struct WindowRange {
  std::vector<int64_t> first, count;
  int64_t padded_count = 1;
};

template <typename Visit>
void for_each_window(const Window& w, const TapTable& t, Visit&& visit) {
  const size_t r = w.rank;
  std::vector<int64_t> o(r, 0);
  WindowRange win;
  win.first.resize(r);
  win.count.resize(r);
  const int64_t total = dims_numel(w.out);
  for (int64_t idx = 0; idx < total; ++idx) {
    win.padded_count = 1;
    for (size_t d = 0; d < r; ++d) {
      const int64_t lo = t.lo[d][o[d]], hi = t.hi[d][o[d]];
      win.first[d] = t.pos0[d][o[d]] + lo * w.dilations[d];
      win.count[d] = std::max<int64_t>(0, hi - lo);
      win.padded_count *= t.padded[d][o[d]];
    }
    visit(idx, win);
    for (size_t d = r; d-- > 0;) {
      if (++o[d] < w.out[d]) break;
      o[d] = 0;
    }
  }
}

// Visits every valid tap of a window: fn(row-major input offset). The last dim's taps run in a
// tight inner loop; the other dims step with an odometer in `k`.
template <typename Fn>
void for_each_tap(const Window& w, const WindowRange& win, std::vector<int64_t>& k, Fn&& fn) {
  const size_t r = w.rank;
  for (size_t d = 0; d < r; ++d)
    if (win.count[d] == 0) return;
  const int64_t last_count = win.count[r - 1], last_step = w.dilations[r - 1];
  std::fill(k.begin(), k.end(), 0);
  for (;;) {
    int64_t base = 0;
    for (size_t d = 0; d + 1 < r; ++d) base = (base + win.first[d] + k[d] * w.dilations[d]) * w.in[d + 1];
    base += win.first[r - 1];
    for (int64_t c = 0; c < last_count; ++c) fn(base + c * last_step);
    size_t d = r - 1;
    while (d-- > 0) {
      if (++k[d] < win.count[d]) break;
      k[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

int64_t plane_grain(int64_t work_per_plane) {
  return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(work_per_plane, 1));
}

// Rank 1 and 2 windows get leading unit dims so that the 3-D loops below serve them.
Window as_3d(Window w) {
  while (w.rank < 3) {
    for (auto* v : {&w.in, &w.out, &w.kernel, &w.strides, &w.dilations}) v->insert(v->begin(), 1);
    w.pad_begin.insert(w.pad_begin.begin(), 0);
    w.pad_end.insert(w.pad_end.begin(), 0);
    ++w.rank;
  }
  return w;
}

// Runs a reducer over every window of every [N * C] plane, in parallel over planes. A Reducer
// copy per chunk gets plane(p), then per output position reset(), add(input offset) per valid tap
// and finish(output index, valid tap count, taps inside input plus padding).
template <typename Reducer>
void pool_planes(const Window& window, int64_t planes, const Reducer& proto) {
  const Window w = window.rank <= 3 ? as_3d(window) : window;
  const TapTable t = tap_table(w);
  const int64_t out_size = dims_numel(w.out);
  parallel_for(planes, plane_grain(out_size * dims_numel(w.kernel)), [&](int64_t lo, int64_t hi) {
    Reducer r = proto;
    std::vector<int64_t> k(w.rank);
    for (int64_t p = lo; p < hi; ++p) {
      r.plane(p);
      if (w.rank != 3) {
        for_each_window(w, t, [&](int64_t o, const WindowRange& win) {
          int64_t valid = 1;
          for (size_t d = 0; d < w.rank; ++d) valid *= win.count[d];
          r.reset();
          for_each_tap(w, win, k, [&](int64_t off) { r.add(off); });
          r.finish(o, valid, win.padded_count);
        });
        continue;
      }
      const int64_t h = w.in[1], wd = w.in[2];
      const int64_t d0 = w.dilations[0], d1 = w.dilations[1], d2 = w.dilations[2];
      int64_t o = 0;
      for (int64_t a = 0; a < w.out[0]; ++a) {
        const int64_t lo0 = t.lo[0][a], hi0 = t.hi[0][a], p0 = t.pos0[0][a];
        for (int64_t b = 0; b < w.out[1]; ++b) {
          const int64_t lo1 = t.lo[1][b], hi1 = t.hi[1][b], p1 = t.pos0[1][b];
          for (int64_t c = 0; c < w.out[2]; ++c, ++o) {
            const int64_t lo2 = t.lo[2][c], hi2 = t.hi[2][c], p2 = t.pos0[2][c];
            r.reset();
            for (int64_t i0 = lo0; i0 < hi0; ++i0)
              for (int64_t i1 = lo1; i1 < hi1; ++i1) {
                const int64_t row = ((p0 + i0 * d0) * h + p1 + i1 * d1) * wd + p2;
                for (int64_t i2 = lo2; i2 < hi2; ++i2) r.add(row + i2 * d2);
              }
            const int64_t valid = std::max<int64_t>(0, hi0 - lo0) * std::max<int64_t>(0, hi1 - lo1) *
                                  std::max<int64_t>(0, hi2 - lo2);
            r.finish(o, valid, t.padded[0][a] * t.padded[1][b] * t.padded[2][c]);
          }
        }
      }
    }
  });
}

template <typename T>
struct MaxReducer {
  const T* x;
  T* y;
  int64_t* indices;  // null when Indices is not wanted
  int64_t in_size, out_size;
  const Window* w;  // the original window (for column-major indices)
  const std::vector<int64_t>* col_stride;  // non-null for storage_order = 1
  const T* xp = nullptr;
  int64_t p = 0, best_off = -1;
  T best{};

  void plane(int64_t plane) {
    p = plane;
    xp = x + plane * in_size;
  }
  void reset() { best_off = -1; }
  void add(int64_t off) {
    if (best_off < 0 || xp[off] > best) {
      best = xp[off];
      best_off = off;
    }
  }
  void finish(int64_t o, int64_t, int64_t) {
    y[p * out_size + o] = best_off >= 0 ? best : T{};
    if (!indices) return;
    int64_t flat = best_off;
    if (best_off >= 0 && col_stride) {  // re-linearise the spatial position column-major
      int64_t rem = best_off;
      flat = 0;
      for (size_t d = w->rank; d-- > 0;) {
        flat += (rem % w->in[d]) * (*col_stride)[d];
        rem /= w->in[d];
      }
    }
    indices[p * out_size + o] = best_off >= 0 ? p * in_size + flat : -1;
  }
};

template <typename T>
struct AverageReducer {
  const T* x;
  T* y;
  int64_t in_size, out_size;
  bool include_pad;
  const T* xp = nullptr;
  int64_t p = 0;
  double sum = 0;

  void plane(int64_t plane) {
    p = plane;
    xp = x + plane * in_size;
  }
  void reset() { sum = 0; }
  void add(int64_t off) { sum += xp[off]; }
  void finish(int64_t o, int64_t valid, int64_t padded) {
    const int64_t count = include_pad ? padded : valid;
    y[p * out_size + o] = static_cast<T>(count == 0 ? std::nan("") : sum / static_cast<double>(count));
  }
};

Result<Window> pool_window(const ir::Node& node, const Tensor& x) {
  KILN_RETURN_IF_ERROR(check_spatial_input(node, x, "X"));
  std::vector<int64_t> kernel = node.attrs.get_ints("kernel_shape");
  if (kernel.empty())
    return invalid_argument(node_context(node) + ": attribute 'kernel_shape' is required");
  return window_geometry(node, x.dims(), std::move(kernel), true);
}

Dims pooled_dims(const Tensor& x, const Window& w) {
  Dims od = {x.dim(0), x.dim(1)};
  od.insert(od.end(), w.out.begin(), w.out.end());
  return od;
}

}  // namespace

Status max_pool(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const Tensor x = in.empty() ? Tensor() : in[0];
  KILN_ASSIGN_OR_RETURN(Window w, pool_window(node, x));
  const int64_t storage_order = node.attrs.get_int("storage_order", 0);
  if (storage_order != 0 && storage_order != 1)
    return invalid_argument(node_context(node) + ": storage_order must be 0 or 1, got " +
                            std::to_string(storage_order));
  const Dims od = pooled_dims(x, w);
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), od));
  Tensor indices;
  if (wants_output(node, out, 1)) {
    KILN_ASSIGN_OR_RETURN(indices, make_output(node, out, 1, DType::kI64, od));
  }
  if (y.numel() == 0) return Status();
  // Column-major spatial strides for storage_order = 1.
  std::vector<int64_t> col_stride(w.rank, 1);
  for (size_t d = 1; d < w.rank; ++d) col_stride[d] = col_stride[d - 1] * w.in[d - 1];

  return dispatch_numeric(node, x.dtype(), [&]<typename T>() -> Status {
    MaxReducer<T> r{x.data_as<const T>(), y.data_as<T>(),
                    indices.defined() ? indices.data_as<int64_t>() : nullptr,
                    dims_numel(w.in), dims_numel(w.out), &w,
                    storage_order == 1 ? &col_stride : nullptr};
    pool_planes(w, x.dim(0) * x.dim(1), r);
    return Status();
  });
}

Status average_pool(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const Tensor x = in.empty() ? Tensor() : in[0];
  KILN_ASSIGN_OR_RETURN(Window w, pool_window(node, x));
  const bool include_pad = node.attrs.get_int("count_include_pad", 0) != 0;
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), pooled_dims(x, w)));
  if (y.numel() == 0) return Status();

  return dispatch_floats(node, x.dtype(), [&]<typename T>() -> Status {
    AverageReducer<T> r{x.data_as<const T>(), y.data_as<T>(), dims_numel(w.in), dims_numel(w.out),
                        include_pad};
    pool_planes(w, x.dim(0) * x.dim(1), r);
    return Status();
  });
}

namespace {

template <bool kMax>
Status global_pool(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const Tensor x = in.empty() ? Tensor() : in[0];
  KILN_RETURN_IF_ERROR(check_spatial_input(node, x, "X"));
  Dims od(x.dims().size(), 1);
  od[0] = x.dim(0);
  od[1] = x.dim(1);
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), od));
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t size = x.numel() / std::max<int64_t>(planes, 1);
  if (planes == 0) return Status();
  if (size == 0)
    return invalid_argument(node_context(node) + ": cannot pool over an empty spatial extent " +
                            dims_to_string(x.dims()));
  return dispatch_floats(node, x.dtype(), [&]<typename T>() -> Status {
    const T* px = x.data_as<const T>();
    T* py = y.data_as<T>();
    parallel_for(planes, plane_grain(size), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) {
        const T* xp = px + p * size;
        if constexpr (kMax) {
          T best = xp[0];
          for (int64_t i = 1; i < size; ++i) best = xp[i] > best ? xp[i] : best;
          py[p] = best;
        } else {
          double sum = 0;
          for (int64_t i = 0; i < size; ++i) sum += xp[i];
          py[p] = static_cast<T>(sum / static_cast<double>(size));
        }
      }
    });
    return Status();
  });
}

}  // namespace

Status global_average_pool(const ir::Node& node, std::span<const Tensor> in,
                           std::span<Tensor> out) {
  return global_pool<false>(node, in, out);
}

Status global_max_pool(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  return global_pool<true>(node, in, out);
}

}  // namespace kiln::cpu::nn
