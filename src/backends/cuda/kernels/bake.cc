#include "backends/cuda/kernels/bake.h"

#include <charconv>
#include <string>
#include <vector>

namespace kiln::cuda::kernels {
namespace {

// Appended in place (std::to_chars, no temporaries): a first call at a new shape builds these
// texts for every launch it makes (the specialised variant's key), so they are on its path.
void append_ll(std::string& s, int64_t v) {
  char buf[24];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr).append("LL");
}

template <size_t N>
void append_ll_array(std::string& s, const int64_t (&a)[N]) {
  s += '{';
  for (size_t i = 0; i < N; ++i) {
    if (i) s += ", ";
    append_ll(s, a[i]);
  }
  s += '}';
}

std::string ll(int64_t v) {
  std::string s;
  append_ll(s, v);
  return s;
}

}  // namespace

std::string bake_key(const Bake& bake) {
  size_t size = 16;
  for (const BakedParam& p : bake.params) size += p.name.size() + p.value.size() + 2;
  std::string k;
  k.reserve(size);
  k += '#';
  for (const BakedParam& p : bake.params) k.append(p.name).append("=").append(p.value).append(";");
  if (bake.block) k.append("block=").append(std::to_string(bake.block));
  return k;
}

BakedParam bake_i64(const std::string& name, int64_t value) { return {"long long", name, ll(value)}; }

BakedParam bake_strided(const std::string& name, const StridedArgs& a, int operands) {
  // Unused operand rows are zero, so equal launches give equal text.
  std::string v;
  v.reserve(64 + 48 * (kMaxOperands + 1) * kMaxRank);
  v += '{';
  append_ll_array(v, a.dims);
  v += ", {";
  for (int o = 0; o < kMaxOperands; ++o) {
    int64_t row[kMaxRank] = {};
    if (o < operands)
      for (int d = 0; d < kMaxRank; ++d) row[d] = a.strides[o][d];
    if (o) v += ", ";
    append_ll_array(v, row);
  }
  v += "}, " + std::to_string(a.rank) + "}";
  return {"KilnStrided", name, v};
}

BakedParam bake_window(const std::string& name, const WindowArgs& a) {
  std::string v = "{";
  for (const auto* arr : {&a.in, &a.out, &a.k, &a.s, &a.d, &a.pb, &a.pe}) {
    append_ll_array(v, *arr);
    v += ", ";
  }
  for (int64_t x : {a.n, a.c, a.m, a.groups}) {
    append_ll(v, x);
    v += ", ";
  }
  v += std::to_string(a.rank) + "}";
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
  // The parameter list is a comma-separated list of plain declarations (no templates, no
  // default arguments), so a split on ',' finds each one. A plain scan, not std::regex: regex
  // compilation crashed on the specialiser's background threads (bench run on an H200).
  std::string params = src.substr(sig + head.size(), body - sig - head.size());
  std::vector<std::string> decl_list;
  for (size_t start = 0;;) {
    size_t comma = params.find(',', start);
    decl_list.push_back(params.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  auto normalized = [](const std::string& d) {  // single spaces, no leading/trailing space
    std::string out;
    for (char c : d) {
      bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
      if (space) {
        if (!out.empty() && out.back() != ' ') out += ' ';
      } else {
        out += c;
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  };
  std::string decls;
  for (const BakedParam& p : bake.params) {
    const std::string want = p.type + " " + p.name;
    bool found = false;
    for (std::string& d : decl_list) {
      if (normalized(d) != want) continue;
      size_t lead = d.find_first_not_of(" \t\n\r");
      d = d.substr(0, lead == std::string::npos ? 0 : lead) + want + "_arg";
      found = true;
      break;
    }
    if (!found)
      return internal_error("bake: kernel " + generic.name + " has no parameter '" + want + "'");
    decls += "  constexpr " + p.type + " " + p.name + " = " + p.value + ";\n";
  }
  params.clear();
  for (size_t i = 0; i < decl_list.size(); ++i) params += (i ? "," : "") + decl_list[i];
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
