// BatchNormalization (inference and training_mode), InstanceNormalization, LayerNormalization.
// Statistics accumulate in double; outputs are written in the input's type.
#include <cmath>
#include <vector>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/nn_common.h"
#include "backends/cpu/ops/nn_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu::nn {
namespace {

// A per-channel parameter (f32 or f64, `count` values) as doubles.
Result<std::vector<double>> read_param(const ir::Node& node, std::span<const Tensor> in, size_t i,
                                       const char* name, int64_t count) {
  if (!has_input(in, i))
    return invalid_argument(node_context(node) + ": input " + name + " is missing");
  const Tensor& t = in[i];
  if (t.rank() != 1 || t.dim(0) != count)
    return invalid_argument(node_context(node) + ": input " + name + " must have shape [" +
                            std::to_string(count) + "], got " + dims_to_string(t.dims()));
  std::vector<double> v(static_cast<size_t>(count));
  if (t.dtype() == DType::kF32) {
    for (int64_t j = 0; j < count; ++j) v[j] = t.data_as<const float>()[j];
  } else if (t.dtype() == DType::kF64) {
    for (int64_t j = 0; j < count; ++j) v[j] = t.data_as<const double>()[j];
  } else {
    return unsupported(node_context(node) + ": input " + name + " has dtype " +
                       std::string(dtype_name(t.dtype())) + "; expected f32 or f64");
  }
  return v;
}

// Writes doubles into a new 1-D output of dtype `dtype` (f32 or f64).
Status write_vector(const ir::Node& node, std::span<Tensor> out, size_t i, DType dtype,
                    const std::vector<double>& v) {
  KILN_ASSIGN_OR_RETURN(Tensor t, make_output(node, out, i, dtype, {static_cast<int64_t>(v.size())}));
  for (size_t j = 0; j < v.size(); ++j) {
    if (dtype == DType::kF64) t.data_as<double>()[j] = v[j];
    else t.data_as<float>()[j] = static_cast<float>(v[j]);
  }
  return Status();
}

Status check_nc_input(const ir::Node& node, std::span<const Tensor> in) {
  if (!has_input(in, 0)) return invalid_argument(node_context(node) + ": input X is missing");
  if (in[0].rank() < 2)
    return invalid_argument(node_context(node) + ": X must have shape [N, C, ...], got " +
                            dims_to_string(in[0].dims()));
  return Status();
}

// y = x * a[c] + b[c] over an [N, C, inner] tensor.
template <typename T>
void affine_channels(const T* x, T* y, int64_t n, int64_t c, int64_t inner,
                     const std::vector<double>& a, const std::vector<double>& b) {
  parallel_for(n * c, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t p = lo; p < hi; ++p) {
                   const T av = static_cast<T>(a[p % c]), bv = static_cast<T>(b[p % c]);
                   const T* xs = x + p * inner;
                   T* ys = y + p * inner;
                   for (int64_t i = 0; i < inner; ++i) ys[i] = xs[i] * av + bv;
                 }
               });
}

}  // namespace

Status batch_normalization(const ir::Node& node, std::span<const Tensor> in,
                           std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(check_nc_input(node, in));
  const Tensor& x = in[0];
  const int64_t n = x.dim(0), c = x.dim(1), inner = x.numel() / std::max<int64_t>(n * c, 1);
  const double eps = node.attrs.get_float("epsilon", 1e-5);
  const double momentum = node.attrs.get_float("momentum", 0.9);
  const bool training = node.attrs.get_int("training_mode", 0) != 0;
  KILN_ASSIGN_OR_RETURN(std::vector<double> scale, read_param(node, in, 1, "scale", c));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bias, read_param(node, in, 2, "B", c));
  KILN_ASSIGN_OR_RETURN(std::vector<double> mean, read_param(node, in, 3, "input_mean", c));
  KILN_ASSIGN_OR_RETURN(std::vector<double> var, read_param(node, in, 4, "input_var", c));
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), x.dims()));

  return dispatch_floats(node, x.dtype(), [&]<typename T>() -> Status {
    const T* px = x.data_as<const T>();
    if (training) {
      // Batch statistics per channel (population variance), then running averages.
      std::vector<double> bmean(c, 0.0), bvar(c, 0.0);
      const double count = static_cast<double>(n * inner);
      parallel_for(c, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t ch = lo; ch < hi; ++ch) {
          double s = 0, ss = 0;
          for (int64_t b = 0; b < n; ++b)
            for (int64_t i = 0; i < inner; ++i) s += px[(b * c + ch) * inner + i];
          const double mu = count > 0 ? s / count : 0.0;
          for (int64_t b = 0; b < n; ++b)
            for (int64_t i = 0; i < inner; ++i) {
              const double d = px[(b * c + ch) * inner + i] - mu;
              ss += d * d;
            }
          bmean[ch] = mu;
          bvar[ch] = count > 0 ? ss / count : 0.0;
        }
      });
      std::vector<double> run_mean(c), run_var(c);
      for (int64_t ch = 0; ch < c; ++ch) {
        run_mean[ch] = mean[ch] * momentum + bmean[ch] * (1 - momentum);
        run_var[ch] = var[ch] * momentum + bvar[ch] * (1 - momentum);
      }
      mean = bmean;
      var = bvar;
      if (wants_output(node, out, 1))
        KILN_RETURN_IF_ERROR(write_vector(node, out, 1, in[3].dtype(), run_mean));
      if (wants_output(node, out, 2))
        KILN_RETURN_IF_ERROR(write_vector(node, out, 2, in[4].dtype(), run_var));
    }
    std::vector<double> a(c), b(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      a[ch] = scale[ch] / std::sqrt(var[ch] + eps);
      b[ch] = bias[ch] - mean[ch] * a[ch];
    }
    affine_channels<T>(px, y.data_as<T>(), n, c, inner, a, b);
    return Status();
  });
}

Status instance_normalization(const ir::Node& node, std::span<const Tensor> in,
                              std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(check_nc_input(node, in));
  const Tensor& x = in[0];
  const int64_t n = x.dim(0), c = x.dim(1), inner = x.numel() / std::max<int64_t>(n * c, 1);
  const double eps = node.attrs.get_float("epsilon", 1e-5);
  KILN_ASSIGN_OR_RETURN(std::vector<double> scale, read_param(node, in, 1, "scale", c));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bias, read_param(node, in, 2, "B", c));
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), x.dims()));

  return dispatch_floats(node, x.dtype(), [&]<typename T>() -> Status {
    const T* px = x.data_as<const T>();
    T* py = y.data_as<T>();
    parallel_for(n * c, std::max<int64_t>(1, 8192 / std::max<int64_t>(inner, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t p = lo; p < hi; ++p) {
                     const T* xs = px + p * inner;
                     double s = 0, ss = 0;
                     for (int64_t i = 0; i < inner; ++i) s += xs[i];
                     const double mu = inner > 0 ? s / inner : 0.0;
                     for (int64_t i = 0; i < inner; ++i) ss += (xs[i] - mu) * (xs[i] - mu);
                     const double var = inner > 0 ? ss / inner : 0.0;
                     const double a = scale[p % c] / std::sqrt(var + eps);
                     const T av = static_cast<T>(a), bv = static_cast<T>(bias[p % c] - mu * a);
                     T* ys = py + p * inner;
                     for (int64_t i = 0; i < inner; ++i) ys[i] = xs[i] * av + bv;
                   }
                 });
    return Status();
  });
}

Status layer_normalization(const ir::Node& node, std::span<const Tensor> in,
                           std::span<Tensor> out) {
  const std::string ctx = node_context(node);
  if (!has_input(in, 0) || !has_input(in, 1))
    return invalid_argument(ctx + ": needs inputs X and Scale");
  const Tensor& x = in[0];
  if (x.rank() == 0) return invalid_argument(ctx + ": X must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node, node.attrs.get_int("axis", -1), x.rank()));
  const double eps = node.attrs.get_float("epsilon", 1e-5);
  const int64_t stash = node.attrs.get_int("stash_type", 1);
  if (stash != static_cast<int64_t>(DType::kF32) && stash != static_cast<int64_t>(DType::kF64))
    return unsupported(ctx + ": stash_type " + std::to_string(stash) +
                       " is not supported; expected 1 (f32) or 11 (f64)");
  const DType stash_dtype = static_cast<DType>(stash);
  const Dims& xd = x.dims();
  int64_t rows = 1, cols = 1;
  for (int64_t i = 0; i < x.rank(); ++i) (i < axis ? rows : cols) *= xd[i];
  // Scale and B broadcast (unidirectionally) to X: per element offset = outer part + inner part.
  const Tensor* params[2] = {&in[1], has_input(in, 2) ? &in[2] : nullptr};
  std::vector<int64_t> outer_off[2], inner_off[2];
  for (int p = 0; p < 2; ++p) {
    if (!params[p]) continue;
    const Tensor& t = *params[p];
    const char* name = p == 0 ? "Scale" : "B";
    bool ok = t.dtype() == x.dtype() && t.rank() <= x.rank();
    for (int64_t i = 0; ok && i < t.rank(); ++i) {
      const int64_t d = t.dim(i), target = xd[x.rank() - t.rank() + i];
      ok = d == target || d == 1;
    }
    if (!ok)
      return invalid_argument(ctx + ": " + name + " (" + std::string(dtype_name(t.dtype())) + " " +
                              dims_to_string(t.dims()) + ") must have X's dtype and broadcast to X " +
                              dims_to_string(xd));
    const std::vector<int64_t> st = broadcast_strides(t.dims(), xd);
    auto offsets = [&](int64_t lo_dim, int64_t hi_dim, std::vector<int64_t>& dst) {
      int64_t count = 1;
      for (int64_t i = lo_dim; i < hi_dim; ++i) count *= xd[i];
      dst.assign(static_cast<size_t>(count), 0);
      std::vector<int64_t> idx(static_cast<size_t>(hi_dim - lo_dim), 0);
      for (int64_t e = 0; e < count; ++e) {
        int64_t off = 0;
        for (int64_t i = lo_dim; i < hi_dim; ++i) off += idx[i - lo_dim] * st[i];
        dst[e] = off;
        for (int64_t i = hi_dim - lo_dim; i-- > 0;) {
          if (++idx[i] < xd[lo_dim + i]) break;
          idx[i] = 0;
        }
      }
    };
    // Outer offsets only matter when the parameter varies before `axis`.
    bool outer_varies = false;
    for (int64_t i = 0; i < axis; ++i) outer_varies = outer_varies || st[i] != 0;
    if (outer_varies) offsets(0, axis, outer_off[p]);
    offsets(axis, x.rank(), inner_off[p]);
  }
  bool contiguous = params[1] != nullptr;
  for (int p = 0; p < 2 && contiguous; ++p)
    for (int64_t i = 0; i < cols && contiguous; ++i) contiguous = inner_off[p][i] == i;
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, x.dtype(), xd));
  Dims stat_dims(xd.begin(), xd.begin() + axis);
  stat_dims.resize(xd.size(), 1);
  Tensor mean_t, inv_t;
  if (wants_output(node, out, 1)) {
    KILN_ASSIGN_OR_RETURN(mean_t, make_output(node, out, 1, stash_dtype, stat_dims));
  }
  if (wants_output(node, out, 2)) {
    KILN_ASSIGN_OR_RETURN(inv_t, make_output(node, out, 2, stash_dtype, stat_dims));
  }
  auto store_stat = [&](Tensor& t, int64_t row, double v) {
    if (!t.defined()) return;
    if (stash_dtype == DType::kF64) t.data_as<double>()[row] = v;
    else t.data_as<float>()[row] = static_cast<float>(v);
  };

  return dispatch_floats(node, x.dtype(), [&]<typename T>() -> Status {
    const T* px = x.data_as<const T>();
    T* py = y.data_as<T>();
    const T* ps = params[0]->data_as<const T>();
    const T* pb = params[1] ? params[1]->data_as<const T>() : nullptr;
    parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(cols, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t r = lo; r < hi; ++r) {
                     const T* xs = px + r * cols;
                     double s = 0, ss = 0;
                     for (int64_t i = 0; i < cols; ++i) s += xs[i];
                     const double mu = cols > 0 ? s / cols : 0.0;
                     for (int64_t i = 0; i < cols; ++i) ss += (xs[i] - mu) * (xs[i] - mu);
                     const double inv = 1.0 / std::sqrt((cols > 0 ? ss / cols : 0.0) + eps);
                     store_stat(mean_t, r, mu);
                     store_stat(inv_t, r, inv);
                     const T* sr = ps + (outer_off[0].empty() ? 0 : outer_off[0][r]);
                     const T* br = pb ? pb + (outer_off[1].empty() ? 0 : outer_off[1][r]) : nullptr;
                     T* ys = py + r * cols;
                     const T tmu = static_cast<T>(mu), tinv = static_cast<T>(inv);
                     if (contiguous) {  // Scale and B vary exactly like the normalised dims
                       for (int64_t i = 0; i < cols; ++i) ys[i] = (xs[i] - tmu) * tinv * sr[i] + br[i];
                     } else {
                       for (int64_t i = 0; i < cols; ++i) {
                         T v = (xs[i] - tmu) * tinv * sr[inner_off[0][i]];
                         ys[i] = br ? v + br[inner_off[1][i]] : v;
                       }
                     }
                   }
                 });
    return Status();
  });
}

}  // namespace kiln::cpu::nn
