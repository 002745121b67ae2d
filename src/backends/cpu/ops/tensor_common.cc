#include "backends/cpu/ops/tensor_common.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "platform/thread_pool.h"

namespace kiln::cpu::tensor_ops {
namespace {

// Work per parallel chunk: small enough to balance, large enough to hide the pool's overhead.
constexpr int64_t kChunkBytes = 64 * 1024;
// Side of the square tiles (in elements) for transposed copies: at least one cache line of
// output per tile row. Larger tiles lose to cache-set and TLB conflicts on power-of-two strides.
template <typename U>
constexpr int64_t kTile = std::max<int64_t>(16, 64 / sizeof(U));

struct Layout {
  Dims dims;
  std::vector<int64_t> strides;
};

// Drops size-1 dims and merges neighbours that are contiguous in the source (the destination is
// contiguous, so any merge the source allows is valid).
Layout simplify(const Dims& dims, const std::vector<int64_t>& strides) {
  Layout l;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1) continue;
    if (!l.dims.empty() && l.strides.back() == strides[i] * dims[i]) {
      l.dims.back() *= dims[i];
      l.strides.back() = strides[i];
    } else {
      l.dims.push_back(dims[i]);
      l.strides.push_back(strides[i]);
    }
  }
  return l;
}

// Copies rows [row_begin, row_end) of the layout (a row = the innermost dim).
template <typename U>
void copy_rows(U* dst, const U* src, const Layout& l, int64_t row_begin, int64_t row_end) {
  const size_t n = l.dims.size();
  const int64_t inner = l.dims[n - 1], is = l.strides[n - 1];
  std::vector<int64_t> idx(n - 1, 0);
  int64_t off = 0;
  for (int64_t r = row_begin, k = static_cast<int64_t>(n) - 2; k >= 0; --k) {
    idx[k] = r % l.dims[k];
    r /= l.dims[k];
    off += idx[k] * l.strides[k];
  }
  U* d = dst + row_begin * inner;
  for (int64_t row = row_begin; row < row_end; ++row, d += inner) {
    const U* s = src + off;
    if (is == 1) {
      std::memcpy(d, s, static_cast<size_t>(inner) * sizeof(U));
    } else if (is == 0) {
      std::fill(d, d + inner, *s);
    } else {
      for (int64_t i = 0; i < inner; ++i) d[i] = s[i * is];
    }
    for (int64_t k = static_cast<int64_t>(n) - 2; k >= 0; --k) {
      off += l.strides[k];
      if (++idx[k] < l.dims[k]) break;
      off -= l.strides[k] * l.dims[k];
      idx[k] = 0;
    }
  }
}

#if defined(__SSE2__)
// Register transposes of one square block: dst[i * ds + k] = src[i + k * ss].
inline void transpose_block(uint32_t* dst, const uint32_t* src, int64_t ds, int64_t ss) {
  const float* s = reinterpret_cast<const float*>(src);
  __m128 a = _mm_loadu_ps(s), b = _mm_loadu_ps(s + ss);
  __m128 c = _mm_loadu_ps(s + 2 * ss), d = _mm_loadu_ps(s + 3 * ss);
  _MM_TRANSPOSE4_PS(a, b, c, d);
  float* o = reinterpret_cast<float*>(dst);
  _mm_storeu_ps(o, a);
  _mm_storeu_ps(o + ds, b);
  _mm_storeu_ps(o + 2 * ds, c);
  _mm_storeu_ps(o + 3 * ds, d);
}

inline void transpose_block(uint16_t* dst, const uint16_t* src, int64_t ds, int64_t ss) {
  __m128i r[8], t[8], u[8];
  for (int k = 0; k < 8; ++k)
    r[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k * ss));
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm_unpacklo_epi16(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm_unpackhi_epi16(r[2 * k], r[2 * k + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3 then 4-7 of the source
    u[4 * h + 0] = _mm_unpacklo_epi32(t[4 * h + 0], t[4 * h + 2]);
    u[4 * h + 1] = _mm_unpackhi_epi32(t[4 * h + 0], t[4 * h + 2]);
    u[4 * h + 2] = _mm_unpacklo_epi32(t[4 * h + 1], t[4 * h + 3]);
    u[4 * h + 3] = _mm_unpackhi_epi32(t[4 * h + 1], t[4 * h + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (2 * k) * ds),
                     _mm_unpacklo_epi64(u[k], u[k + 4]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (2 * k + 1) * ds),
                     _mm_unpackhi_epi64(u[k], u[k + 4]));
  }
}
#endif

// One tile of a transposed copy: dst[r * dst_stride + c] = src[r + c * src_stride] for r in
// [r0, r1), c in [c0, c1). 4- and 2-byte elements go through SSE register blocks (2-10x faster
// than element copies), the rest and the edges element by element.
template <typename U>
void transpose_tile(U* dst, const U* src, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                    int64_t dst_stride, int64_t src_stride) {
  int64_t r = r0;
#if defined(__SSE2__)
  constexpr int64_t kB = sizeof(U) == 4 ? 4 : sizeof(U) == 2 ? 8 : 0;
  if constexpr (kB > 0) {
    for (; r + kB <= r1; r += kB) {
      int64_t c = c0;
      for (; c + kB <= c1; c += kB)
        transpose_block(dst + r * dst_stride + c, src + r + c * src_stride, dst_stride, src_stride);
      for (; c < c1; ++c)
        for (int64_t k = 0; k < kB; ++k)
          dst[(r + k) * dst_stride + c] = src[r + k + c * src_stride];
    }
  }
#endif
  for (; r < r1; ++r) {
    U* d = dst + r * dst_stride;
    const U* s = src + r;
    for (int64_t c = c0; c < c1; ++c) d[c] = s[c * src_stride];
  }
}

// The source's unit-stride dim `j` is not the innermost one: copy (dim j x innermost dim)
// planes in square tiles so that both reads and writes stay within a few cache lines.
template <typename U>
void copy_tiled(U* dst, const U* src, const Layout& l, size_t j) {
  const size_t n = l.dims.size();
  const int64_t rows = l.dims[j], cols = l.dims[n - 1], col_stride = l.strides[n - 1];
  std::vector<int64_t> dst_strides(n, 1);
  for (size_t k = n - 1; k-- > 0;) dst_strides[k] = dst_strides[k + 1] * l.dims[k + 1];
  const int64_t row_dst_stride = dst_strides[j];
  Dims od;
  std::vector<int64_t> os, odst;
  for (size_t k = 0; k + 1 < n; ++k) {
    if (k == j) continue;
    od.push_back(l.dims[k]);
    os.push_back(l.strides[k]);
    odst.push_back(dst_strides[k]);
  }
  const int64_t outer = dims_numel(od);
  constexpr int64_t kT = kTile<U>;
  const int64_t row_tiles = (rows + kT - 1) / kT, col_tiles = (cols + kT - 1) / kT;
  const int64_t items = outer * row_tiles * col_tiles;
  const int64_t grain =
      std::max<int64_t>(1, kChunkBytes / static_cast<int64_t>(kT * kT * sizeof(U)));
  parallel_for(items, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t ct = item % col_tiles, rt = (item / col_tiles) % row_tiles;
      int64_t o = item / (col_tiles * row_tiles);
      int64_t soff = 0, doff = 0;
      for (size_t k = od.size(); k-- > 0;) {
        int64_t i = o % od[k];
        o /= od[k];
        soff += i * os[k];
        doff += i * odst[k];
      }
      const int64_t r0 = rt * kT, r1 = std::min(rows, r0 + kT);
      const int64_t c0 = ct * kT, c1 = std::min(cols, c0 + kT);
      transpose_tile(dst + doff, src + soff, r0, r1, c0, c1, row_dst_stride, col_stride);
    }
  });
}

}  // namespace

const Tensor& optional_input(std::span<const Tensor> in, size_t i) {
  static const Tensor kNone;
  return i < in.size() ? in[i] : kNone;
}

Result<Tensor> required_input(const ir::Node& node, std::span<const Tensor> in, size_t i,
                              std::string_view what) {
  const Tensor& t = optional_input(in, i);
  if (!t.defined())
    return invalid_argument(node_context(node) + ": required input " + std::to_string(i) + " (" +
                            std::string(what) + ") is missing");
  return t;
}

Status need_outputs(const ir::Node& node, std::span<Tensor> out, size_t n) {
  if (out.size() < n)
    return invalid_argument(node_context(node) + ": expected at least " + std::to_string(n) +
                            " output(s), got " + std::to_string(out.size()));
  return Status();
}

Result<Tensor> new_output(const ir::Node& node, DType dtype, Dims dims) {
  Result<Tensor> t = Tensor::empty(dtype, std::move(dims));
  if (!t.ok()) return t.status().with_context(node_context(node));
  return t;
}

Result<int64_t> read_int_scalar(const ir::Node& node, const Tensor& t, std::string_view what) {
  if (t.defined() && t.numel() != 1)
    return invalid_argument(node_context(node) + ": " + std::string(what) +
                            " must hold exactly one value, got shape " + dims_to_string(t.dims()));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, read_int_list(node, t.reshaped({1}), what));
  return v[0];
}

Status check_dims(const ir::Node& node, const Dims& dims, std::string_view what) {
  uint64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0)
      return invalid_argument(node_context(node) + ": " + std::string(what) + " " +
                              dims_to_string(dims) + " has a negative dimension");
    if (d != 0 &&
        n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / static_cast<uint64_t>(d))
      return invalid_argument(node_context(node) + ": " + std::string(what) + " " +
                              dims_to_string(dims) + " has too many elements");
    n *= static_cast<uint64_t>(d);
  }
  return Status();
}

Result<Tensor> view_or_copy(const ir::Node& node, const Tensor& t, Dims dims) {
  if (t.storage()) return t.reshaped(std::move(dims));
  KILN_ASSIGN_OR_RETURN(Tensor out, new_output(node, t.dtype(), std::move(dims)));
  copy_bytes(out.data(), t.data(), t.nbytes());
  return out;
}

void copy_bytes(void* dst, const void* src, size_t n) {
  if (n == 0) return;
  constexpr int64_t kBlock = 1 << 20;
  const int64_t blocks = (static_cast<int64_t>(n) + kBlock - 1) / kBlock;
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
    size_t lo = static_cast<size_t>(b * kBlock);
    size_t hi = std::min(n, static_cast<size_t>(e * kBlock));
    std::memcpy(d + lo, s + lo, hi - lo);
  });
}

void fill_elements(void* dst, const void* value, size_t esize, int64_t count) {
  if (count <= 0) return;
  with_element_type(esize, [&]<typename U>() {
    U v;
    std::memcpy(&v, value, sizeof(U));
    U* d = static_cast<U*>(dst);
    const int64_t grain = std::max<int64_t>(1, kChunkBytes / static_cast<int64_t>(sizeof(U)));
    parallel_for(count, grain, [&](int64_t b, int64_t e) { std::fill(d + b, d + e, v); });
  });
}

void strided_copy(void* dst, const void* src, const Dims& dims, std::vector<int64_t> src_strides,
                  size_t esize) {
  if (dims_numel(dims) == 0) return;
  const Layout l = simplify(dims, src_strides);
  with_element_type(esize, [&]<typename U>() {
    U* d = static_cast<U*>(dst);
    const U* s = static_cast<const U*>(src);
    const size_t n = l.dims.size();
    if (n == 0) {
      *d = *s;
      return;
    }
    if (n == 1 && l.strides[0] == 1) {
      copy_bytes(d, s, static_cast<size_t>(l.dims[0]) * sizeof(U));
      return;
    }
    if (l.strides[n - 1] != 1 && l.dims[n - 1] >= 4) {
      for (size_t j = 0; j + 1 < n; ++j) {
        if (l.strides[j] == 1 && l.dims[j] >= 4) return copy_tiled(d, s, l, j);
      }
    }
    const int64_t inner = l.dims[n - 1];
    const int64_t rows = dims_numel(std::span<const int64_t>(l.dims).first(n - 1));
    const int64_t grain =
        std::max<int64_t>(1, kChunkBytes / (inner * static_cast<int64_t>(sizeof(U))));
    parallel_for(rows, grain, [&](int64_t b, int64_t e) { copy_rows(d, s, l, b, e); });
  });
}

}  // namespace kiln::cpu::tensor_ops
