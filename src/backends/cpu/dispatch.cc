#include "backends/cpu/dispatch.h"

#include <algorithm>

namespace kiln::cpu {

Result<Dims> broadcast_shapes(const ir::Node& node, std::span<const Dims> shapes) {
  size_t rank = 0;
  for (const Dims& s : shapes) rank = std::max(rank, s.size());
  Dims out(rank, 1);
  for (const Dims& s : shapes) {
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[rank - s.size() + i];
      int64_t d = s[i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (const Dims& t : shapes) all += (all.empty() ? "" : " and ") + dims_to_string(t);
      return invalid_argument(node_context(node) + ": shapes " + all + " cannot be broadcast");
    }
  }
  return out;
}

std::vector<int64_t> contiguous_strides(const Dims& dims) {
  std::vector<int64_t> st(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) st[i - 1] = st[i] * dims[i];
  return st;
}

std::vector<int64_t> broadcast_strides(const Dims& dims, const Dims& out) {
  std::vector<int64_t> st(out.size(), 0);
  std::vector<int64_t> own = contiguous_strides(dims);
  size_t off = out.size() - dims.size();
  for (size_t i = 0; i < dims.size(); ++i) st[off + i] = dims[i] == 1 ? 0 : own[i];
  return st;
}

}  // namespace kiln::cpu
