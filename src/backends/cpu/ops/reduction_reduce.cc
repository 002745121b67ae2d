// ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL2 ReduceSumSquare with the
// canonical signature (data, axes?) and attributes keepdims (default 1) and
// noop_with_empty_axes (default 0).
//
// Float sums and products accumulate in double; integer ones wrap (mod 2^64, then to the
// dtype's width), like numpy keeping the input dtype. A reduction over zero elements gives the
// identity: 0 for sums, 1 for products, -inf / +inf (or the integer limits, false / true for
// bool) for max / min, NaN for a float mean. With noop_with_empty_axes=1 and no axes, each
// element is reduced on its own (ReduceSumSquare squares, ReduceL2 gives |x|).
//
// Kept and reduced axes are merged into runs. One run of reduced axes, with kept runs on
// either side, is reduced in place as [outer, reduced, inner]; several runs ending with a
// reduced one (NCHW over N, H, W) are summed run by run in place; anything else is first
// permuted so that every reduced axis is last.
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/reduction_ops.h"

namespace kiln::cpu {
namespace {

template <typename T>
using WideAcc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;

// A reducer: Acc init(); Acc step(Acc, T); Acc merge(Acc, Acc) (combines partial results);
// T finish(Acc, int64_t count).
template <typename T>
struct SumR {
  using Acc = WideAcc<T>;
  Acc init() const { return Acc(0); }
  Acc step(Acc a, T x) const { return a + static_cast<Acc>(x); }
  Acc merge(Acc a, Acc b) const { return a + b; }
  T finish(Acc a, int64_t) const { return static_cast<T>(a); }
};
template <typename T>
struct SumSquareR {
  using Acc = WideAcc<T>;
  Acc init() const { return Acc(0); }
  Acc step(Acc a, T x) const { return a + static_cast<Acc>(x) * static_cast<Acc>(x); }
  Acc merge(Acc a, Acc b) const { return a + b; }
  T finish(Acc a, int64_t) const { return static_cast<T>(a); }
};
template <typename T>
struct ProdR {
  using Acc = WideAcc<T>;
  Acc init() const { return Acc(1); }
  Acc step(Acc a, T x) const { return a * static_cast<Acc>(x); }
  Acc merge(Acc a, Acc b) const { return a * b; }
  T finish(Acc a, int64_t) const { return static_cast<T>(a); }
};
template <typename T>
struct MeanR {
  using Acc = double;
  Acc init() const { return 0; }
  Acc step(Acc a, T x) const { return a + static_cast<double>(x); }
  Acc merge(Acc a, Acc b) const { return a + b; }
  T finish(Acc a, int64_t n) const {
    if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(a / static_cast<double>(n));  // n == 0: NaN
    } else {
      return n == 0 ? T(0) : float_to_int<T>(a / static_cast<double>(n));
    }
  }
};
template <typename T>
struct L2R {
  using Acc = double;
  Acc init() const { return 0; }
  Acc step(Acc a, T x) const { return a + static_cast<double>(x) * static_cast<double>(x); }
  Acc merge(Acc a, Acc b) const { return a + b; }
  T finish(Acc a, int64_t) const {
    if constexpr (std::is_floating_point_v<T>)
      return static_cast<T>(std::sqrt(a));
    else
      return float_to_int<T>(std::sqrt(a));
  }
};
// Max and min propagate NaN. For bool data T is uint8_t and bytes are normalised to 0/1.
template <typename T, bool kMax, bool kBool = false>
struct ExtremumR {
  using Acc = T;
  Acc init() const {
    if constexpr (kBool)
      return kMax ? T(0) : T(1);
    else if constexpr (std::is_floating_point_v<T>)
      return kMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    else
      return kMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  }
  Acc step(Acc a, T x) const {
    if constexpr (kBool) x = x != 0;
    if constexpr (kMax)
      return (x > a || x != x) ? x : a;
    else
      return (x < a || x != x) ? x : a;
  }
  Acc merge(Acc a, Acc b) const { return step(a, b); }
  T finish(Acc a, int64_t) const { return a; }
};

// Accumulates contiguous runs in four independent chains, hiding the latency of each step.
template <typename R>
struct Chains {
  using Acc = typename R::Acc;
  const R& rd;
  Acc a0, a1, a2, a3;
  explicit Chains(const R& r) : rd(r), a0(r.init()), a1(r.init()), a2(r.init()), a3(r.init()) {}
  template <typename T>
  void add(const T* row, int64_t n) {
    int64_t r = 0;
    for (; r + 4 <= n; r += 4) {
      a0 = rd.step(a0, row[r]);
      a1 = rd.step(a1, row[r + 1]);
      a2 = rd.step(a2, row[r + 2]);
      a3 = rd.step(a3, row[r + 3]);
    }
    for (; r < n; ++r) a0 = rd.step(a0, row[r]);
  }
  Acc result() const { return rd.merge(rd.merge(a0, a1), rd.merge(a2, a3)); }
};

// Reduces x viewed as [outer, red, inner] into y viewed as [outer, inner].
template <typename T, typename R>
void reduce_3d(const T* x, T* y, int64_t outer, int64_t red, int64_t inner, const R& rd) {
  using Acc = typename R::Acc;
  if (inner == 1) {
    const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(red, 1));
    parallel_for(outer, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        Chains<R> c(rd);
        c.add(x + o * red, red);
        y[o] = rd.finish(c.result(), red);
      }
    });
    return;
  }
  // Accumulate whole rows at once: contiguous, vectorisable, a chunk of accumulators in cache.
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (inner + kChunk - 1) / kChunk;
  const int64_t work = std::max<int64_t>(1, red * std::min(inner, kChunk));
  parallel_for(outer * chunks, std::max<int64_t>(1, kElementwiseGrain / work),
               [&](int64_t b, int64_t e) {
                 Acc acc[kChunk];
                 for (int64_t t = b; t < e; ++t) {
                   const int64_t o = t / chunks, i0 = (t % chunks) * kChunk;
                   const int64_t n = std::min(kChunk, inner - i0);
                   for (int64_t i = 0; i < n; ++i) acc[i] = rd.init();
                   for (int64_t r = 0; r < red; ++r) {
                     const T* row = x + (o * red + r) * inner + i0;
                     for (int64_t i = 0; i < n; ++i) acc[i] = rd.step(acc[i], row[i]);
                   }
                   T* dst = y + o * inner + i0;
                   for (int64_t i = 0; i < n; ++i) dst[i] = rd.finish(acc[i], red);
                 }
               });
}

// Copies x (dims `dims`) into a new row-major buffer whose axes are `perm` of x's.
template <typename T>
std::vector<T> permute_copy(const T* x, const Dims& dims, const std::vector<size_t>& perm) {
  const size_t rank = dims.size();
  const std::vector<int64_t> st = contiguous_strides(dims);
  Dims pd(rank);
  std::vector<int64_t> pst(rank);
  for (size_t d = 0; d < rank; ++d) pd[d] = dims[perm[d]], pst[d] = st[perm[d]];
  std::vector<T> out(static_cast<size_t>(dims_numel(dims)));
  const int64_t inner = pd.back(), rows = static_cast<int64_t>(out.size()) / inner;
  parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / inner), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      int64_t off = 0;
      for (size_t d = rank - 1, r = static_cast<size_t>(row); d-- > 0;) {
        off += static_cast<int64_t>(r % static_cast<size_t>(pd[d])) * pst[d];
        r /= static_cast<size_t>(pd[d]);
      }
      T* dst = out.data() + row * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] = x[off + i * pst[rank - 1]];
    }
  });
  return out;
}

template <typename T, typename R>
void reduce_axes(const T* x, T* y, const Dims& dims, const std::vector<bool>& reduced,
                 const R& rd) {
  // Merge adjacent axes of the same kind, dropping size-1 axes (they change no offset).
  Dims md;
  std::vector<bool> mr;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    if (!md.empty() && mr.back() == reduced[d])
      md.back() *= dims[d];
    else
      md.push_back(dims[d]), mr.push_back(reduced[d]);
  }
  int64_t red = 1, kept = 1, red_runs = 0;
  for (size_t d = 0; d < md.size(); ++d) {
    (mr[d] ? red : kept) *= md[d];
    red_runs += mr[d] && (d == 0 || !mr[d - 1]);
  }
  if (red_runs <= 1 || red * kept == 0) {  // with no elements, nothing needs permuting
    int64_t outer = 1, inner = 1;
    bool seen = false;
    for (size_t d = 0; d < md.size(); ++d) {
      if (mr[d])
        seen = true;
      else
        (seen ? inner : outer) *= md[d];
    }
    if (red_runs > 1) outer *= inner, inner = 1;
    reduce_3d(x, y, outer, red, inner, rd);
    return;
  }
  const std::vector<int64_t> st = contiguous_strides(md);
  if (mr.back() && md.back() >= 16) {
    // The innermost axis is reduced: sum each output's contiguous runs in place. run_off holds
    // the offset of every run relative to the output's first element.
    std::vector<int64_t> run_off = {0};
    for (size_t d = 0; d + 1 < md.size(); ++d) {
      if (!mr[d]) continue;
      std::vector<int64_t> next;
      next.reserve(run_off.size() * static_cast<size_t>(md[d]));
      for (int64_t off : run_off)
        for (int64_t j = 0; j < md[d]; ++j) next.push_back(off + j * st[d]);
      run_off = std::move(next);
    }
    const int64_t len = md.back();
    parallel_for(kept, std::max<int64_t>(1, kElementwiseGrain / red), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        int64_t base = 0;
        for (size_t d = md.size(), rem = static_cast<size_t>(o); d-- > 0;) {
          if (mr[d]) continue;
          base += static_cast<int64_t>(rem % static_cast<size_t>(md[d])) * st[d];
          rem /= static_cast<size_t>(md[d]);
        }
        Chains<R> c(rd);
        for (int64_t off : run_off) c.add(x + base + off, len);
        y[o] = rd.finish(c.result(), red);
      }
    });
    return;
  }
  std::vector<size_t> perm;
  for (size_t d = 0; d < md.size(); ++d)
    if (!mr[d]) perm.push_back(d);
  for (size_t d = 0; d < md.size(); ++d)
    if (mr[d]) perm.push_back(d);
  std::vector<T> t = permute_copy(x, md, perm);
  reduce_3d(t.data(), y, kept, red, 1, rd);
}

template <template <typename> class R, unsigned kTypes>
Status reduce_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "data"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  const Tensor& x = in[0];
  const int64_t rank = x.rank();
  const bool keepdims = node.attrs.get_int("keepdims", 1) != 0;
  const bool noop = node.attrs.get_int("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  if (in.size() > 1 && in[1].defined()) {
    KILN_ASSIGN_OR_RETURN(axes, read_int_list(node, in[1], "axes"));
  }
  std::vector<bool> reduced(static_cast<size_t>(rank), axes.empty() && !noop);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return invalid_argument(node_context(node) + ": axis " + std::to_string(a) +
                              " is out of range for input of rank " + std::to_string(rank));
    reduced[static_cast<size_t>(a < 0 ? a + rank : a)] = true;
  }
  Dims out_dims;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d])
      out_dims.push_back(x.dim(d));
    else if (keepdims)
      out_dims.push_back(1);
  }
  return dispatch_dtype(node, x.dtype(), kTypes, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kTypes) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(x.dtype(), out_dims));
      if constexpr (std::is_same_v<T, bool>) {
        // Only ReduceMax / ReduceMin accept bool; they see the bytes through a bool reducer.
        if constexpr (std::is_same_v<R<uint8_t>, ExtremumR<uint8_t, true>>) {
          reduce_axes(x.data_as<const uint8_t>(), y.data_as<uint8_t>(), x.dims(), reduced,
                      ExtremumR<uint8_t, true, true>{});
        } else {
          reduce_axes(x.data_as<const uint8_t>(), y.data_as<uint8_t>(), x.dims(), reduced,
                      ExtremumR<uint8_t, false, true>{});
        }
      } else {
        reduce_axes(x.data_as<const T>(), y.data_as<T>(), x.dims(), reduced, R<T>{});
      }
      out[0] = std::move(y);
      return Status();
    }
  });
}

template <typename T>
using MaxR = ExtremumR<T, true>;
template <typename T>
using MinR = ExtremumR<T, false>;

}  // namespace

void register_reduce_ops(KernelRegistry& r) {
  r.add("ReduceSum", &reduce_kernel<SumR, kNumeric>);
  r.add("ReduceSumSquare", &reduce_kernel<SumSquareR, kNumeric>);
  r.add("ReduceProd", &reduce_kernel<ProdR, kNumeric>);
  r.add("ReduceMean", &reduce_kernel<MeanR, kNumeric>);
  r.add("ReduceL2", &reduce_kernel<L2R, kNumeric>);
  r.add("ReduceMax", &reduce_kernel<MaxR, kNumeric | kBools>);
  r.add("ReduceMin", &reduce_kernel<MinR, kNumeric | kBools>);
}

}  // namespace kiln::cpu
