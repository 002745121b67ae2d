// Einsum: explicit and implicit output, ellipsis (broadcast), repeated labels (diagonals), sums.
//
// Each operand first takes its diagonals (a label repeated inside one operand), drops size-1
// dims that broadcast against a larger size elsewhere, and sums out labels nothing else needs.
// Operands are then contracted left to right: shared labels still needed later become batch dims,
// the others are contracted by a batched GEMM over [batch, A-only, contracted] x
// [batch, contracted, B-only]. The result is finally permuted to the output labels.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/nn_common.h"
#include "backends/cpu/ops/nn_ops.h"

namespace kiln::cpu::nn {
namespace {

// Label ids: 'A'..'Z' -> 0..25, 'a'..'z' -> 26..51 (ASCII order, as numpy sorts implicit
// outputs), ellipsis dim j (right-aligned over the widest ellipsis) -> 52 + j.
constexpr int kEllipsisBase = 52;

struct Equation {
  std::vector<std::vector<int>> inputs;  // labels per input dim
  std::vector<int> output;
};

int letter_id(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -1;
}

// Parses one term into labels; the ellipsis expands to `ell` dims right-aligned in [0, max_ell).
Status parse_term(const ir::Node& node, const std::string& term, int64_t rank, bool is_output,
                  int64_t max_ell, std::vector<int>& labels, int64_t* ell_rank) {
  const std::string ctx = node_context(node) + ": equation term '" + term + "'";
  int64_t letters = 0;
  size_t ell_pos = std::string::npos;
  for (size_t i = 0; i < term.size(); ++i) {
    if (term.compare(i, 3, "...") == 0) {
      if (ell_pos != std::string::npos) return invalid_argument(ctx + " has two ellipses");
      ell_pos = i;
      i += 2;
    } else if (letter_id(term[i]) >= 0) {
      ++letters;
    } else {
      return invalid_argument(ctx + " has the invalid character '" + std::string(1, term[i]) + "'");
    }
  }
  int64_t ell = 0;
  if (is_output) {
    ell = ell_pos == std::string::npos ? 0 : max_ell;
  } else {
    ell = rank - letters;
    if (ell < 0 || (ell > 0 && ell_pos == std::string::npos))
      return invalid_argument(ctx + " has " + std::to_string(letters) +
                              " labels but its input has rank " + std::to_string(rank));
  }
  if (ell_rank) *ell_rank = ell;
  for (size_t i = 0; i < term.size(); ++i) {
    if (i == ell_pos) {
      for (int64_t j = 0; j < ell; ++j) labels.push_back(static_cast<int>(kEllipsisBase + max_ell - ell + j));
      i += 2;
    } else {
      labels.push_back(letter_id(term[i]));
    }
  }
  return Status();
}

Result<Equation> parse_equation(const ir::Node& node, std::span<const Tensor> in) {
  const std::string ctx = node_context(node);
  std::string eq;
  for (char c : node.attrs.get_string("equation", "")) if (c != ' ') eq += c;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != in.size())
    return invalid_argument(ctx + ": equation '" + eq + "' has " + std::to_string(terms.size()) +
                            " input terms but the node has " + std::to_string(in.size()) + " inputs");
  Equation e;
  // Pass 1: the widest ellipsis; pass 2: labels with the ellipsis right-aligned in it.
  int64_t max_ell = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (!in[i].defined()) return invalid_argument(ctx + ": input " + std::to_string(i) + " is missing");
    std::vector<int> scratch;
    int64_t ell = 0;
    KILN_RETURN_IF_ERROR(parse_term(node, terms[i], in[i].rank(), false, 0, scratch, &ell));
    max_ell = std::max(max_ell, ell);
  }
  std::vector<int> count(kEllipsisBase, 0);
  for (size_t i = 0; i < terms.size(); ++i) {
    e.inputs.emplace_back();
    KILN_RETURN_IF_ERROR(parse_term(node, terms[i], in[i].rank(), false, max_ell, e.inputs.back(), nullptr));
    for (int l : e.inputs.back())
      if (l < kEllipsisBase) ++count[l];
  }
  if (arrow != std::string::npos) {
    const std::string rhs = eq.substr(arrow + 2);
    KILN_RETURN_IF_ERROR(parse_term(node, rhs, 0, true, max_ell, e.output, nullptr));
    if (max_ell > 0 && rhs.find("...") == std::string::npos)
      return invalid_argument(ctx + ": the inputs of '" + eq +
                              "' have ellipsis dims, so the output must contain '...'");
    std::vector<int> seen(kEllipsisBase + max_ell, 0);
    for (int l : e.output) {
      if (seen[l]++) return invalid_argument(ctx + ": output of '" + eq + "' repeats a label");
      if (l < kEllipsisBase && count[l] == 0)
        return invalid_argument(ctx + ": output of '" + eq + "' has a label no input has");
    }
  } else {  // implicit: ellipsis dims, then labels seen exactly once, sorted
    for (int64_t j = 0; j < max_ell; ++j) e.output.push_back(static_cast<int>(kEllipsisBase + j));
    for (int l = 0; l < kEllipsisBase; ++l)
      if (count[l] == 1) e.output.push_back(l);
  }
  return e;
}

template <typename T>
struct Operand {
  std::vector<T> data;
  Dims dims;
  std::vector<int> labels;
};

// Generic strided copy: dst[i...] = src[sum(i_d * strides[d])] over `dims`.
template <typename T>
std::vector<T> strided_copy(const T* src, const Dims& dims, const std::vector<int64_t>& strides) {
  std::vector<T> dst(static_cast<size_t>(dims_numel(dims)));
  std::vector<int64_t> idx(dims.size(), 0);
  int64_t off = 0;
  for (size_t i = 0; i < dst.size(); ++i) {
    dst[i] = src[off];
    for (size_t d = dims.size(); d-- > 0;) {
      off += strides[d];
      if (++idx[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      idx[d] = 0;
    }
  }
  return dst;
}

template <typename T>
void permute(Operand<T>& op, const std::vector<size_t>& perm) {
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity = identity && perm[i] == i;
  if (identity) return;
  const std::vector<int64_t> st = contiguous_strides(op.dims);
  Dims nd;
  std::vector<int64_t> nst;
  std::vector<int> nl;
  for (size_t p : perm) {
    nd.push_back(op.dims[p]);
    nst.push_back(st[p]);
    nl.push_back(op.labels[p]);
  }
  op.data = strided_copy(op.data.data(), nd, nst);
  op.dims = nd;
  op.labels = nl;
}

// Sums out every label for which keep(label) is false.
template <typename T, typename Keep>
void reduce(Operand<T>& op, Keep&& keep) {
  std::vector<size_t> kept, gone;
  for (size_t i = 0; i < op.labels.size(); ++i) (keep(op.labels[i]) ? kept : gone).push_back(i);
  if (gone.empty()) return;
  std::vector<size_t> perm = kept;
  perm.insert(perm.end(), gone.begin(), gone.end());
  permute(op, perm);
  int64_t inner = 1;
  for (size_t i = kept.size(); i < op.dims.size(); ++i) inner *= op.dims[i];
  const int64_t outer = inner == 0 ? dims_numel(Dims(op.dims.begin(), op.dims.begin() + kept.size()))
                                   : static_cast<int64_t>(op.data.size()) / inner;
  std::vector<T> sum(static_cast<size_t>(outer), T{0});
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) sum[o] = static_cast<T>(sum[o] + op.data[o * inner + i]);
  op.data.swap(sum);
  op.dims.resize(kept.size());
  op.labels.resize(kept.size());
}

// Intermediate results above this many elements are refused rather than allocated.
constexpr int64_t kMaxIntermediate = int64_t{1} << 31;

template <typename T>
Result<Operand<T>> contract(const ir::Node& node, Operand<T>& a, Operand<T>& b,
                            const std::vector<char>& needed_later) {
  auto in = [](const Operand<T>& op, int l) {
    return std::find(op.labels.begin(), op.labels.end(), l) != op.labels.end();
  };
  std::vector<int> batch, summed, a_only, b_only;
  for (int l : a.labels) {
    if (!in(b, l)) a_only.push_back(l);
    else (needed_later[l] ? batch : summed).push_back(l);
  }
  for (int l : b.labels)
    if (!in(a, l)) b_only.push_back(l);
  // Brings op to the label order `plain`, unless it already is in `transposed` order (then the
  // GEMM reads it transposed instead of copying). Returns true for the transposed case.
  auto order = [](Operand<T>& op, std::initializer_list<const std::vector<int>*> plain,
                  std::initializer_list<const std::vector<int>*> transposed) {
    auto concat = [](std::initializer_list<const std::vector<int>*> groups) {
      std::vector<int> all;
      for (const auto* g : groups) all.insert(all.end(), g->begin(), g->end());
      return all;
    };
    const std::vector<int> want = concat(plain);
    if (op.labels != want && op.labels == concat(transposed)) return true;
    std::vector<size_t> perm;
    for (int l : want) perm.push_back(std::find(op.labels.begin(), op.labels.end(), l) - op.labels.begin());
    permute(op, perm);
    return false;
  };
  const bool trans_a = order(a, {&batch, &a_only, &summed}, {&batch, &summed, &a_only});
  const bool trans_b = order(b, {&batch, &summed, &b_only}, {&batch, &b_only, &summed});
  // Sizes by label (a label's size is the same in both operands after the size-1 drop).
  auto label_size = [](const Operand<T>& op, const std::vector<int>& labels) {
    int64_t s = 1;
    for (int l : labels) s *= op.dims[std::find(op.labels.begin(), op.labels.end(), l) - op.labels.begin()];
    return s;
  };
  const int64_t nb = label_size(a, batch), m = label_size(a, a_only), k = label_size(a, summed);
  const int64_t n = label_size(b, b_only);
  Operand<T> r;
  for (int l : batch) r.dims.push_back(a.dims[std::find(a.labels.begin(), a.labels.end(), l) - a.labels.begin()]);
  for (int l : a_only) r.dims.push_back(a.dims[std::find(a.labels.begin(), a.labels.end(), l) - a.labels.begin()]);
  for (int l : b_only) r.dims.push_back(b.dims[std::find(b.labels.begin(), b.labels.end(), l) - b.labels.begin()]);
  r.labels = batch;
  r.labels.insert(r.labels.end(), a_only.begin(), a_only.end());
  r.labels.insert(r.labels.end(), b_only.begin(), b_only.end());
  int64_t total = 0;
  if (__builtin_mul_overflow(nb, m, &total) || __builtin_mul_overflow(total, n, &total) ||
      total > kMaxIntermediate)
    return resource_exhausted(node_context(node) + ": an intermediate product of the equation has " +
                              "more than 2^31 elements; reorder the operands or split the Einsum");
  r.data.assign(static_cast<size_t>(total), T{0});
  if (r.data.empty()) return r;
  std::vector<int64_t> a_off(static_cast<size_t>(nb)), b_off(static_cast<size_t>(nb));
  for (int64_t i = 0; i < nb; ++i) {
    a_off[i] = i * m * k;
    b_off[i] = i * k * n;
  }
  batched_matmul<T>(m, n, k, a.data.data(), a_off, b.data.data(), b_off, r.data.data(), trans_a,
                    trans_b);
  return r;
}

}  // namespace

Status einsum(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const std::string ctx = node_context(node);
  if (in.empty()) return invalid_argument(ctx + ": needs at least one input");
  KILN_ASSIGN_OR_RETURN(Equation eq, parse_equation(node, in));
  const int num_labels = kEllipsisBase + 64;
  std::vector<int64_t> size(num_labels, -1);
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].dtype() != in[0].dtype())
      return invalid_argument(ctx + ": all inputs must share a dtype; input " + std::to_string(i) +
                              " is " + std::string(dtype_name(in[i].dtype())));
    for (size_t d = 0; d < eq.inputs[i].size(); ++d) {
      const int l = eq.inputs[i][d];
      if (l >= num_labels) return unsupported(ctx + ": too many ellipsis dims");
      const int64_t s = in[i].dim(static_cast<int64_t>(d));
      if (size[l] == -1 || size[l] == 1) size[l] = size[l] == 1 && s == 1 ? 1 : s;
      else if (s != size[l] && s != 1)
        return invalid_argument(ctx + ": input " + std::to_string(i) + " " +
                                dims_to_string(in[i].dims()) + " has size " + std::to_string(s) +
                                " for a label of size " + std::to_string(size[l]));
    }
  }
  // A label repeated within one operand needs equal sizes there.
  for (size_t i = 0; i < in.size(); ++i)
    for (size_t d = 0; d < eq.inputs[i].size(); ++d)
      for (size_t e = d + 1; e < eq.inputs[i].size(); ++e)
        if (eq.inputs[i][d] == eq.inputs[i][e] && in[i].dim(d) != in[i].dim(e))
          return invalid_argument(ctx + ": input " + std::to_string(i) + " " +
                                  dims_to_string(in[i].dims()) +
                                  " repeats a label over dims of different sizes");
  Dims od;
  for (int l : eq.output) od.push_back(size[l]);
  KILN_ASSIGN_OR_RETURN(Tensor y, make_output(node, out, 0, in[0].dtype(), od));

  return dispatch_numeric(node, in[0].dtype(), [&]<typename T>() -> Status {
    std::vector<char> in_output(num_labels, 0);
    for (int l : eq.output) in_output[l] = 1;
    std::vector<Operand<T>> ops(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      Operand<T>& op = ops[i];
      // Diagonal: one dim per distinct label, its stride the sum of the repeated dims' strides.
      const std::vector<int64_t> st = contiguous_strides(in[i].dims());
      std::vector<int64_t> nst;
      for (size_t d = 0; d < eq.inputs[i].size(); ++d) {
        const int l = eq.inputs[i][d];
        auto it = std::find(op.labels.begin(), op.labels.end(), l);
        if (it != op.labels.end()) {
          nst[it - op.labels.begin()] += st[d];
          continue;
        }
        // Size-1 dims broadcasting against a larger size elsewhere are dropped.
        if (in[i].dim(d) == 1 && size[l] > 1) continue;
        op.labels.push_back(l);
        op.dims.push_back(in[i].dim(d));
        nst.push_back(st[d]);
      }
      op.data = strided_copy(in[i].data_as<const T>(), op.dims, nst);
    }
    // Which labels the operands after `i` (and the output) still need.
    auto needed_after = [&](size_t i) {
      std::vector<char> need = in_output;
      for (size_t j = i + 1; j < ops.size(); ++j)
        for (int l : ops[j].labels) need[l] = 1;
      return need;
    };
    Operand<T> acc = std::move(ops[0]);
    for (size_t i = 1; i <= ops.size(); ++i) {
      std::vector<char> need = needed_after(i - 1);
      if (i < ops.size())
        for (int l : ops[i].labels) need[l] = 1;
      reduce(acc, [&](int l) { return need[l] != 0; });
      if (i == ops.size()) break;
      std::vector<char> need_b = needed_after(i);
      for (int l : acc.labels) need_b[l] = 1;
      reduce(ops[i], [&](int l) { return need_b[l] != 0; });
      KILN_ASSIGN_OR_RETURN(acc, contract(node, acc, ops[i], needed_after(i)));
    }
    // Output labels the result lacks (size 1 everywhere and dropped) come back as size-1 dims.
    for (int l : eq.output) {
      if (std::find(acc.labels.begin(), acc.labels.end(), l) == acc.labels.end()) {
        acc.labels.push_back(l);
        acc.dims.push_back(1);
      }
    }
    std::vector<size_t> perm;
    for (int l : eq.output)
      perm.push_back(std::find(acc.labels.begin(), acc.labels.end(), l) - acc.labels.begin());
    permute(acc, perm);
    if (!acc.data.empty()) std::copy(acc.data.begin(), acc.data.end(), y.data_as<T>());
    return Status();
  });
}

}  // namespace kiln::cpu::nn
