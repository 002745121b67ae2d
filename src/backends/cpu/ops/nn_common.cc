#include "backends/cpu/ops/nn_common.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <type_traits>

#include "platform/thread_pool.h"

namespace kiln::cpu::nn {
namespace {

// Products below this many multiply-adds are not worth splitting over threads.
constexpr int64_t kSmallGemm = 64 * 64 * 64;

// Integer GEMM in wrapping unsigned arithmetic (signed overflow would be undefined behaviour;
// narrow types are widened so the promotion to int cannot overflow either).
template <typename T>
void gemm_loop(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  using U = std::conditional_t<(sizeof(T) < 4), uint32_t, std::make_unsigned_t<T>>;
  const U ua = static_cast<U>(alpha), ub = static_cast<U>(beta);
  std::vector<U> row(static_cast<size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    T* crow = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) row[j] = ub == 0 ? U{0} : static_cast<U>(ub * static_cast<U>(crow[j]));
    for (int64_t p = 0; p < k; ++p) {
      U av = static_cast<U>(ua * static_cast<U>(trans_a ? a[p * lda + i] : a[i * lda + p]));
      if (av == 0) continue;
      if (trans_b) {
        for (int64_t j = 0; j < n; ++j) row[j] += static_cast<U>(av * static_cast<U>(b[j * ldb + p]));
      } else {
        const T* brow = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) row[j] += static_cast<U>(av * static_cast<U>(brow[j]));
      }
    }
    for (int64_t j = 0; j < n; ++j) crow[j] = static_cast<T>(row[j]);
  }
}

// k == 0: C = beta * C (BLAS implementations disagree on this corner, and lda may be 0).
template <typename T>
void scale_rows(int64_t m, int64_t n, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T{0} ? T{0} : static_cast<T>(beta * c[i * ldc + j]);
}

// One BLAS call on the calling thread (OpenBLAS is kept single-threaded, see blas_init).
template <typename T>
void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                 int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_rows(m, n, beta, c, ldc);
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
                static_cast<int>(ldc));
  } else if constexpr (std::is_same_v<T, double>) {
    cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
                static_cast<int>(ldc));
  } else {
    gemm_loop(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

// All GEMM parallelism comes from kiln's thread pool: OpenBLAS's own threads would oversubscribe
// the cores next to the pool (and spin badly on a loaded machine), so they are switched off once.
// Weak, so that a BLAS other than OpenBLAS still links.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));
void blas_init() {
  static const bool once = [] {
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

}  // namespace

bool gemm_dims_fit(std::initializer_list<int64_t> values) {
  for (int64_t v : values)
    if (v < 0 || v > INT_MAX) return false;
  return true;
}

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  blas_init();
  const int64_t work = m * n * std::max<int64_t>(k, 1);
  const int64_t tasks = std::min<int64_t>(parallel_threads(), work / kSmallGemm);
  if (tasks <= 1) return gemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  // Split the larger of m and n into `tasks` blocks (multiples of 16 for the BLAS kernels).
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n;
  const int64_t block = ((extent + tasks - 1) / tasks + 15) / 16 * 16;
  const int64_t blocks = (extent + block - 1) / block;
  parallel_for(blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t s = i * block, len = std::min(block, extent - s);
      if (by_rows) {
        gemm_serial(trans_a, trans_b, len, n, k, alpha, trans_a ? a + s : a + s * lda, lda, b, ldb,
                    beta, c + s * ldc, ldc);
      } else {
        gemm_serial(trans_a, trans_b, m, len, k, alpha, a, lda, trans_b ? b + s * ldb : b + s, ldb,
                    beta, c + s, ldc);
      }
    }
  });
}

template <typename T>
void batched_matmul(int64_t m, int64_t n, int64_t k, const T* a, std::span<const int64_t> a_off,
                    const T* b, std::span<const int64_t> b_off, T* c, bool trans_a, bool trans_b) {
  blas_init();
  const int64_t batch = static_cast<int64_t>(a_off.size());
  const int64_t work = std::max<int64_t>(1, m * n * std::max<int64_t>(k, 1));
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  // Enough batch entries to feed every thread, or entries too small to split: one thread each.
  if (batch > 1 && (work < kSmallGemm || batch >= parallel_threads())) {
    parallel_for(batch, std::max<int64_t>(1, kSmallGemm / work), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        gemm_serial<T>(trans_a, trans_b, m, n, k, T{1}, a + a_off[i], lda, b + b_off[i], ldb, T{0},
                       c + i * m * n, n);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i)
      gemm<T>(trans_a, trans_b, m, n, k, T{1}, a + a_off[i], lda, b + b_off[i], ldb, T{0},
              c + i * m * n, n);
  }
}

#define KILN_NN_GEMM(T)                                                                        \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, \
                        int64_t, T, T*, int64_t);                                              \
  template void batched_matmul<T>(int64_t, int64_t, int64_t, const T*, std::span<const int64_t>, \
                                  const T*, std::span<const int64_t>, T*, bool, bool);
KILN_NN_GEMM(float)
KILN_NN_GEMM(double)
KILN_NN_GEMM(int8_t)
KILN_NN_GEMM(int16_t)
KILN_NN_GEMM(int32_t)
KILN_NN_GEMM(int64_t)
KILN_NN_GEMM(uint8_t)
KILN_NN_GEMM(uint16_t)
KILN_NN_GEMM(uint32_t)
KILN_NN_GEMM(uint64_t)
#undef KILN_NN_GEMM

Result<Tensor> make_output(const ir::Node& node, std::span<Tensor> out, size_t i, DType dtype,
                           Dims dims) {
  if (i >= out.size())
    return invalid_argument(node_context(node) + ": output " + std::to_string(i) +
                            " has no slot (node has " + std::to_string(out.size()) + " outputs)");
  auto t = Tensor::empty(dtype, std::move(dims));
  if (!t.ok()) return t.status().with_context(node_context(node));
  out[i] = *t;
  return std::move(t).value();
}

Status check_spatial_input(const ir::Node& node, const Tensor& x, const char* what) {
  if (!x.defined()) return invalid_argument(node_context(node) + ": input " + what + " is missing");
  if (x.rank() < 3)
    return invalid_argument(node_context(node) + ": input " + what +
                            " must have shape [N, C, D1, ...] (rank >= 3), got " +
                            dims_to_string(x.dims()));
  return Status();
}

Result<Window> window_geometry(const ir::Node& node, const Dims& x, std::vector<int64_t> kernel,
                               bool ceil_mode_allowed) {
  // Bounds keep every product below 2^62 for any tensor that fits in memory.
  constexpr int64_t kMaxAttr = int64_t{1} << 31;
  Window w;
  w.rank = x.size() - 2;
  w.in.assign(x.begin() + 2, x.end());
  const std::string ctx = node_context(node);
  if (kernel.size() != w.rank)
    return invalid_argument(ctx + ": kernel has " + std::to_string(kernel.size()) +
                            " spatial dims but the input " + dims_to_string(x) + " has " +
                            std::to_string(w.rank));
  auto read = [&](const char* name, int64_t def, size_t count, int64_t lo,
                  std::vector<int64_t>& dst) -> Status {
    dst = node.attrs.get_ints(name, std::vector<int64_t>(count, def));
    if (dst.empty()) dst.assign(count, def);
    if (dst.size() != count)
      return invalid_argument(ctx + ": attribute '" + name + "' has " + std::to_string(dst.size()) +
                              " values, expected " + std::to_string(count) + " for input " +
                              dims_to_string(x));
    for (int64_t v : dst)
      if (v < lo || v >= kMaxAttr)
        return invalid_argument(ctx + ": attribute '" + name + "' value " + std::to_string(v) +
                                " is out of range [" + std::to_string(lo) + ", 2^31)");
    return Status();
  };
  w.kernel = std::move(kernel);
  for (int64_t k : w.kernel)
    if (k < 1 || k >= kMaxAttr)
      return invalid_argument(ctx + ": kernel size " + std::to_string(k) + " is out of range");
  std::vector<int64_t> pads;
  KILN_RETURN_IF_ERROR(read("strides", 1, w.rank, 1, w.strides));
  KILN_RETURN_IF_ERROR(read("dilations", 1, w.rank, 1, w.dilations));
  KILN_RETURN_IF_ERROR(read("pads", 0, 2 * w.rank, 0, pads));
  const std::string auto_pad = node.attrs.get_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "" && auto_pad != "SAME_UPPER" &&
      auto_pad != "SAME_LOWER" && auto_pad != "VALID")
    return invalid_argument(ctx + ": invalid auto_pad '" + auto_pad +
                            "'; expected NOTSET|SAME_UPPER|SAME_LOWER|VALID");
  const bool ceil_mode = ceil_mode_allowed && node.attrs.get_int("ceil_mode", 0) != 0;
  w.pad_begin.resize(w.rank);
  w.pad_end.resize(w.rank);
  w.out.resize(w.rank);
  for (size_t i = 0; i < w.rank; ++i) {
    const int64_t in = w.in[i], s = w.strides[i];
    const int64_t ek = w.dilations[i] * (w.kernel[i] - 1) + 1;  // dilated kernel extent
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out[i] = (in + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (w.out[i] - 1) * s + ek - in);
      w.pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[i] = total - w.pad_begin[i];
      continue;
    }
    if (auto_pad == "VALID") {
      w.pad_begin[i] = w.pad_end[i] = 0;
    } else {
      w.pad_begin[i] = pads[i];
      w.pad_end[i] = pads[i + w.rank];
    }
    const int64_t span = in + w.pad_begin[i] + w.pad_end[i] - ek;
    if (span < 0)
      return invalid_argument(ctx + ": the (dilated) kernel extent " + std::to_string(ek) +
                              " along spatial dim " + std::to_string(i) +
                              " is larger than the padded input size " +
                              std::to_string(in + w.pad_begin[i] + w.pad_end[i]) + " (input " +
                              dims_to_string(x) + ")");
    if (ceil_mode) {
      w.out[i] = (span + s - 1) / s + 1;
      // The last window must start inside the input or its begin padding.
      if ((w.out[i] - 1) * s >= in + w.pad_begin[i]) --w.out[i];
    } else {
      w.out[i] = span / s + 1;
    }
  }
  return w;
}

}  // namespace kiln::cpu::nn
