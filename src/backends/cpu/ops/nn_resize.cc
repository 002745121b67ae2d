// Resize (opset 19+ semantics, plus Resize-11's tf_half_pixel_for_nn), following
// onnx/reference/ops/op_resize.py: separable resampling, one axis at a time, each output position
// a weighted sum of a few input positions along that axis (nearest: one; linear: two; cubic: four;
// antialias: a filter stretched by 1 / scale).
// Float inputs compute in float; everything else in double, rounded and saturated at the end.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/nn_common.h"
#include "backends/cpu/ops/nn_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu::nn {
namespace {

enum class Mode { kNearest, kLinear, kCubic };

struct ResizeAttrs {
  Mode mode = Mode::kNearest;
  std::string coord = "half_pixel";
  std::string nearest = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  bool antialias = false;
};

// The taps of one axis: output position y reads idx[begin[y] .. begin[y + 1]) with weights w.
struct AxisTaps {
  std::vector<int64_t> begin, idx;
  std::vector<double> w;
  std::vector<char> extrapolated;
};

std::vector<double> coefficients(const ResizeAttrs& a, double ratio, double scale) {
  switch (a.mode) {
    case Mode::kNearest: {
      if (ratio == std::floor(ratio)) return {0, 1};
      bool right;
      if (a.nearest == "round_prefer_floor") right = ratio > 0.5;
      else if (a.nearest == "round_prefer_ceil") right = ratio >= 0.5;
      else right = a.nearest == "ceil";
      return {right ? 0.0 : 1.0, right ? 1.0 : 0.0};
    }
    case Mode::kLinear: {
      if (!a.antialias) return {1 - ratio, ratio};
      const double s = std::min(scale, 1.0);
      const int64_t start = static_cast<int64_t>(std::floor(-1 / s) + 1);
      const int64_t footprint = 2 - 2 * start;
      std::vector<double> c(static_cast<size_t>(footprint));
      double sum = 0;
      for (int64_t i = 0; i < footprint; ++i) {
        const double arg = (static_cast<double>(start + i) - ratio) * s;
        c[i] = std::clamp(1 - std::abs(arg), 0.0, 1.0);
        sum += c[i];
      }
      for (double& v : c) v /= sum;
      return c;
    }
    case Mode::kCubic: {
      const double A = a.cubic_a;
      if (!a.antialias) {
        const double r = ratio, q = 1 - ratio;
        return {((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
                ((A + 2) * r - (A + 3)) * r * r + 1, ((A + 2) * q - (A + 3)) * q * q + 1,
                ((A * (q + 1) - 5 * A) * (q + 1) + 8 * A) * (q + 1) - 4 * A};
      }
      const double s = std::min(scale, 1.0);
      const int64_t start = static_cast<int64_t>(std::floor(-2 / s) + 1), end = 2 - start;
      std::vector<double> c;
      double sum = 0;
      for (int64_t i = start; i < end; ++i) {
        const double x = std::abs(s * (static_cast<double>(i) - ratio));
        double v = 0;
        if (x <= 1) v = (A + 2) * x * x * x - (A + 3) * x * x + 1;
        else if (x < 2) v = A * x * x * x - 5 * A * x * x + 8 * A * x - 4 * A;
        c.push_back(v);
        sum += v;
      }
      for (double& v : c) v /= sum;
      return c;
    }
  }
  return {};
}

// Source coordinate of output position y; sets `extrapolated` for tf_crop_and_resize positions
// outside the input.
double source_coord(const ResizeAttrs& a, double y, double scale, int64_t in_w, int64_t out_w,
                    double roi_lo, double roi_hi, bool& extrapolated) {
  const double out_f = scale * static_cast<double>(in_w);
  const double in_f = static_cast<double>(in_w);
  extrapolated = false;
  const std::string& m = a.coord;
  if (m == "align_corners") return out_f == 1 ? 0.0 : y * (in_f - 1) / (out_f - 1);
  if (m == "asymmetric") return y / scale;
  if (m == "tf_crop_and_resize") {
    double x = out_f == 1 ? (roi_hi - roi_lo) * (in_f - 1) / 2
                          : y * (roi_hi - roi_lo) * (in_f - 1) / (out_f - 1);
    x += roi_lo * (in_f - 1);
    extrapolated = x < 0 || x > in_f - 1;
    return x;
  }
  if (m == "pytorch_half_pixel") return out_f == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
  if (m == "half_pixel_symmetric") {
    const double adjustment = static_cast<double>(out_w) / out_f;
    const double offset = in_f / 2 * (1 - adjustment);
    return offset + (y + 0.5) / scale - 0.5;
  }
  if (m == "tf_half_pixel_for_nn") return (y + 0.5) / scale;  // Resize-11 only
  return (y + 0.5) / scale - 0.5;  // half_pixel
}

AxisTaps axis_taps(const ResizeAttrs& a, int64_t in_w, int64_t out_w, double scale, double roi_lo,
                   double roi_hi) {
  AxisTaps t;
  t.begin.push_back(0);
  for (int64_t y = 0; y < out_w; ++y) {
    bool extrap = false;
    const double x = source_coord(a, static_cast<double>(y), scale, in_w, out_w, roi_lo, roi_hi,
                                  extrap);
    t.extrapolated.push_back(extrap);
    const double xi = std::floor(x);
    const double ratio = x == xi ? 1.0 : x - xi;
    std::vector<double> c = coefficients(a, ratio, scale);
    const int64_t n = static_cast<int64_t>(c.size());
    // The n neighbours nearest to x (ties to the smaller index), as in _get_neighbor_idxes.
    const int64_t pad = (n + 1) / 2;
    const double xp = x + static_cast<double>(pad);
    const double p = std::floor(xp);
    const double frac = xp - p;
    int64_t off;
    if (n % 2 == 0) off = frac == 0 ? -(n / 2) : -(n / 2) + 1;
    else off = frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1;
    // Coordinates far outside the input only ever touch its edge.
    const double lim = static_cast<double>(in_w + 2 * n + 4);
    const int64_t start = static_cast<int64_t>(std::clamp(p, -lim, lim)) + off - pad;
    if (a.exclude_outside) {
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t i = start + j;
        if (i < 0 || i >= in_w) c[j] = 0;
        sum += c[j];
      }
      if (sum == 0) sum = 1;
      for (double& v : c) v /= sum;
    }
    for (int64_t j = 0; j < n; ++j) {
      if (c[j] == 0) continue;
      t.idx.push_back(std::clamp<int64_t>(start + j, 0, in_w - 1));
      t.w.push_back(c[j]);
    }
    t.begin.push_back(static_cast<int64_t>(t.idx.size()));
  }
  return t;
}

// Resamples axis `axis` of src (dims `cur`) into dst (same dims but out_w along axis).
template <typename C>
void resample_axis(const C* src, C* dst, const Dims& cur, size_t axis, int64_t out_w,
                   const AxisTaps& t, C extrapolation) {
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= cur[d];
  for (size_t d = axis + 1; d < cur.size(); ++d) inner *= cur[d];
  const int64_t in_w = cur[axis];
  std::vector<C> w(t.w.begin(), t.w.end());
  if (inner == 1) {  // the last axis: one scalar dot product per output
    parallel_for(outer, std::max<int64_t>(1, 8192 / std::max<int64_t>(out_w, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        const C* s = src + o * in_w;
        C* d = dst + o * out_w;
        for (int64_t y = 0; y < out_w; ++y) {
          C acc{0};
          for (int64_t k = t.begin[y]; k < t.begin[y + 1]; ++k) acc += w[k] * s[t.idx[k]];
          d[y] = t.extrapolated[y] ? extrapolation : acc;
        }
      }
    });
    return;
  }
  parallel_for(outer * out_w, std::max<int64_t>(1, 8192 / inner), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t o = row / out_w, y = row % out_w;
      C* d = dst + row * inner;
      if (t.extrapolated[y]) {
        std::fill(d, d + inner, extrapolation);
        continue;
      }
      std::fill(d, d + inner, C{0});
      for (int64_t k = t.begin[y]; k < t.begin[y + 1]; ++k) {
        const C wk = w[k];
        const C* s = src + (o * in_w + t.idx[k]) * inner;
        for (int64_t i = 0; i < inner; ++i) d[i] += wk * s[i];
      }
    }
  });
}

Result<std::vector<double>> read_floats(const ir::Node& node, const Tensor& t, const char* what) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kF32) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = t.data_as<const float>()[i];
  } else if (t.dtype() == DType::kF64) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = t.data_as<const double>()[i];
  } else {
    return invalid_argument(node_context(node) + ": " + what + " must be f32 or f64, got " +
                            std::string(dtype_name(t.dtype())));
  }
  return v;
}

Result<ResizeAttrs> read_attrs(const ir::Node& node) {
  const std::string ctx = node_context(node);
  ResizeAttrs a;
  const std::string mode = node.attrs.get_string("mode", "nearest");
  if (mode == "nearest") a.mode = Mode::kNearest;
  else if (mode == "linear") a.mode = Mode::kLinear;
  else if (mode == "cubic") a.mode = Mode::kCubic;
  else return invalid_argument(ctx + ": invalid mode '" + mode + "'; expected nearest|linear|cubic");
  a.coord = node.attrs.get_string("coordinate_transformation_mode", "half_pixel");
  static const char* kCoords[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                  "align_corners", "asymmetric", "tf_crop_and_resize",
                                  "tf_half_pixel_for_nn"};
  if (std::find(std::begin(kCoords), std::end(kCoords), a.coord) == std::end(kCoords))
    return invalid_argument(ctx + ": invalid coordinate_transformation_mode '" + a.coord +
                            "'; expected half_pixel|half_pixel_symmetric|pytorch_half_pixel|"
                            "align_corners|asymmetric|tf_crop_and_resize");
  a.nearest = node.attrs.get_string("nearest_mode", "round_prefer_floor");
  if (a.nearest != "round_prefer_floor" && a.nearest != "round_prefer_ceil" &&
      a.nearest != "floor" && a.nearest != "ceil")
    return invalid_argument(ctx + ": invalid nearest_mode '" + a.nearest +
                            "'; expected round_prefer_floor|round_prefer_ceil|floor|ceil");
  a.cubic_a = node.attrs.get_float("cubic_coeff_a", -0.75);
  a.exclude_outside = node.attrs.get_int("exclude_outside", 0) != 0;
  a.extrapolation = node.attrs.get_float("extrapolation_value", 0.0);
  a.antialias = node.attrs.get_int("antialias", 0) != 0 && a.mode != Mode::kNearest;
  return a;
}

}  // namespace

Status resize(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const std::string ctx = node_context(node);
  if (!has_input(in, 0)) return invalid_argument(ctx + ": input X is missing");
  const Tensor& x = in[0];
  const int64_t r = x.rank();
  if (r == 0) return invalid_argument(ctx + ": X must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(ResizeAttrs a, read_attrs(node));
  // axes: which dims scales / sizes / roi talk about (default: all).
  std::vector<int64_t> axes = node.attrs.get_ints("axes");
  if (axes.empty())
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  std::vector<char> seen(static_cast<size_t>(r), 0);
  for (int64_t& ax : axes) {
    KILN_ASSIGN_OR_RETURN(ax, normalize_axis(node, ax, r));
    if (seen[ax]++) return invalid_argument(ctx + ": axes lists axis " + std::to_string(ax) + " twice");
  }
  const size_t na = axes.size();
  const bool has_scales = has_input(in, 2) && in[2].numel() > 0;
  const bool has_sizes = has_input(in, 3) && in[3].numel() > 0;
  if (has_scales == has_sizes)
    return invalid_argument(ctx + ": exactly one of scales and sizes must be given (non-empty)");
  const Dims& xd = x.dims();
  std::vector<double> scale(static_cast<size_t>(r), 1.0);
  Dims od = xd;
  if (has_scales) {
    KILN_ASSIGN_OR_RETURN(std::vector<double> s, read_floats(node, in[2], "scales"));
    if (s.size() != na)
      return invalid_argument(ctx + ": scales has " + std::to_string(s.size()) + " values for " +
                              std::to_string(na) + " axes");
    for (size_t i = 0; i < na; ++i) {
      if (!(s[i] > 0) || !std::isfinite(s[i]) || s[i] * static_cast<double>(xd[axes[i]]) > 1e15)
        return invalid_argument(ctx + ": scale " + std::to_string(s[i]) + " for axis " +
                                std::to_string(axes[i]) + " must be positive and finite");
      scale[axes[i]] = s[i];
      od[axes[i]] = static_cast<int64_t>(s[i] * static_cast<double>(xd[axes[i]]));
    }
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sz, read_int_list(node, in[3], "sizes"));
    if (sz.size() != na)
      return invalid_argument(ctx + ": sizes has " + std::to_string(sz.size()) + " values for " +
                              std::to_string(na) + " axes");
    for (size_t i = 0; i < na; ++i) {
      if (sz[i] < 0 || (sz[i] > 0 && xd[axes[i]] == 0))
        return invalid_argument(ctx + ": size " + std::to_string(sz[i]) + " for axis " +
                                std::to_string(axes[i]) + " is invalid for input " +
                                dims_to_string(xd));
      scale[axes[i]] = xd[axes[i]] == 0 ? 1.0 : static_cast<double>(sz[i]) / xd[axes[i]];
      od[axes[i]] = sz[i];
    }
    const std::string policy = node.attrs.get_string("keep_aspect_ratio_policy", "stretch");
    if (policy == "not_larger" || policy == "not_smaller") {
      double s = scale[axes[0]];
      for (int64_t ax : axes) s = policy == "not_larger" ? std::min(s, scale[ax]) : std::max(s, scale[ax]);
      for (int64_t ax : axes) {
        scale[ax] = s;
        od[ax] = static_cast<int64_t>(s * static_cast<double>(xd[ax]) + 0.5);
      }
    } else if (policy != "stretch") {
      return invalid_argument(ctx + ": invalid keep_aspect_ratio_policy '" + policy +
                              "'; expected stretch|not_larger|not_smaller");
    }
  }
  // roi: [starts..., ends...] over `axes`, only read by tf_crop_and_resize.
  std::vector<double> roi_lo(static_cast<size_t>(r), 0.0), roi_hi(static_cast<size_t>(r), 1.0);
  if (a.coord == "tf_crop_and_resize") {
    if (!has_input(in, 1) || in[1].numel() == 0)
      return invalid_argument(ctx + ": coordinate_transformation_mode tf_crop_and_resize needs roi");
    KILN_ASSIGN_OR_RETURN(std::vector<double> roi, read_floats(node, in[1], "roi"));
    if (roi.size() != 2 * na)
      return invalid_argument(ctx + ": roi has " + std::to_string(roi.size()) + " values, expected " +
                              std::to_string(2 * na) + " (starts and ends of each axis)");
    for (size_t i = 0; i < na; ++i) {
      roi_lo[axes[i]] = roi[i];
      roi_hi[axes[i]] = roi[na + i];
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), od));
  if (y.numel() == 0) return Status();
  if (x.numel() == 0) return invalid_argument(ctx + ": cannot resize the empty input " + dims_to_string(xd));

  return dispatch_numeric(node, x.dtype(), [&]<typename T>() -> Status {
    using C = std::conditional_t<std::is_same_v<T, float>, float, double>;
    std::vector<C> cur(x.data_as<const T>(), x.data_as<const T>() + x.numel()), next;
    Dims cd = xd;
    for (size_t ax = 0; ax < static_cast<size_t>(r); ++ax) {
      const bool identity = std::abs(scale[ax] - 1.0) <= 1e-9 && od[ax] == cd[ax] &&
                            roi_lo[ax] == 0.0 && roi_hi[ax] == 1.0;
      if (identity) continue;
      const AxisTaps taps = axis_taps(a, cd[ax], od[ax], scale[ax], roi_lo[ax], roi_hi[ax]);
      Dims nd = cd;
      nd[ax] = od[ax];
      next.assign(static_cast<size_t>(dims_numel(nd)), C{0});
      resample_axis<C>(cur.data(), next.data(), cd, ax, od[ax], taps, static_cast<C>(a.extrapolation));
      cur.swap(next);
      cd = nd;
    }
    T* py = y.data_as<T>();
    for (size_t i = 0; i < cur.size(); ++i) {
      if constexpr (std::is_floating_point_v<T>) {
        py[i] = static_cast<T>(cur[i]);
      } else {
        const double v = std::nearbyint(static_cast<double>(cur[i]));
        const double lo = static_cast<double>(std::numeric_limits<T>::lowest());
        const double hi = static_cast<double>(std::numeric_limits<T>::max());
        // NaN and values past the range saturate (NaN to 0).
        py[i] = std::isnan(v) ? T{0} : v <= lo ? std::numeric_limits<T>::lowest()
                                       : v >= hi ? std::numeric_limits<T>::max()
                                                 : static_cast<T>(v);
      }
    }
    return Status();
  });
}

}  // namespace kiln::cpu::nn
