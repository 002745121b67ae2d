#include "backends/cuda/kernels/bake.h"

#include <regex>

namespace kiln::cuda::kernels {
namespace {

std::string ll(int64_t v) { return std::to_string(v) + "LL"; }

template <size_t N>
std::string ll_array(const int64_t (&a)[N]) {
  std::string s = "{";
  for (size_t i = 0; i < N; ++i) s += (i ? ", " : "") + ll(a[i]);
  return s + "}";
}

}  // namespace

std::string bake_key(const Bake& bake) {
  std::string k = "#";
  for (const BakedParam& p : bake.params) k += p.name + "=" + p.value + ";";
  if (bake.block) k += "block=" + std::to_string(bake.block);
  return k;
}

BakedParam bake_i64(const std::string& name, int64_t value) { return {"long long", name, ll(value)}; }

BakedParam bake_strided(const std::string& name, const StridedArgs& a, int operands) {
  // Unused operand rows are zero, so equal launches give equal text.
  std::string v = "{" + ll_array(a.dims) + ", {";
  for (int o = 0; o < kMaxOperands; ++o) {
    int64_t row[kMaxRank] = {};
    if (o < operands)
      for (int d = 0; d < kMaxRank; ++d) row[d] = a.strides[o][d];
    v += (o ? ", " : "") + ll_array(row);
  }
  v += "}, " + std::to_string(a.rank) + "}";
  return {"KilnStrided", name, v};
}

BakedParam bake_window(const std::string& name, const WindowArgs& a) {
  std::string v = "{" + ll_array(a.in) + ", " + ll_array(a.out) + ", " + ll_array(a.k) + ", " +
                  ll_array(a.s) + ", " + ll_array(a.d) + ", " + ll_array(a.pb) + ", " + ll_array(a.pe) +
                  ", " + ll(a.n) + ", " + ll(a.c) + ", " + ll(a.m) + ", " + ll(a.groups) + ", " +
                  std::to_string(a.rank) + "}";
  return {"KilnWindow", name, v};
}

Result<KernelSource> bake_source(const KernelSource& generic, const Bake& bake) {
  std::string src = generic.source;
  const std::string head = "void " + generic.name + "(";
  const size_t sig = src.find(head);
  if (sig == std::string::npos)
    return internal_error("bake: kernel " + generic.name + " has no signature in its source");
  const size_t body = src.find(") {\n", sig);
  if (body == std::string::npos)
    return internal_error("bake: kernel " + generic.name + ": signature not closed");
  std::string params = src.substr(sig + head.size(), body - sig - head.size());
  std::string decls;
  for (const BakedParam& p : bake.params) {
    const std::regex re("(^|[(,]\\s*)" + p.type + "\\s+" + p.name + "(\\s*(,|$))");
    std::smatch m;
    if (!std::regex_search(params, m, re))
      return internal_error("bake: kernel " + generic.name + " has no parameter '" + p.type + " " +
                            p.name + "'");
    params = m.prefix().str() + m[1].str() + p.type + " " + p.name + "_arg" + m[2].str() +
             m.suffix().str();
    decls += "  constexpr " + p.type + " " + p.name + " = " + p.value + ";\n";
  }
  std::string out = src.substr(0, sig + head.size()) + params + ") {\n" + decls +
                    src.substr(body + 4);
  if (bake.block) {
    const std::string b = "(" + std::to_string(bake.block) + "u)";
    for (size_t pos = 0; (pos = out.find("blockDim.x", pos)) != std::string::npos; pos += b.size())
      out.replace(pos, 10, b);
  }
  return KernelSource{generic.name, out};
}

}  // namespace kiln::cuda::kernels
