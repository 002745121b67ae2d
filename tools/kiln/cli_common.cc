#include "cli_common.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

namespace kiln::cli {

int exit_code_for(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kMismatch:
      return kExitMismatch;
    case StatusCode::kUnsupported:
      return kExitUnsupported;
    default:
      return kExitBadInput;
  }
}

void print_error(std::string_view message) {
  std::fprintf(stderr, "kiln: error: %.*s\n", static_cast<int>(message.size()), message.data());
}

int report_error(const Status& status) {
  print_error(status.message());
  return exit_code_for(status);
}

nlohmann::json status_json(const Status& status) {
  return {{"code", std::string(status_code_name(status.code()))},
          {"message", status.message()},
          {"exit_code", exit_code_for(status)}};
}

void print_json(const nlohmann::json& value) {
  std::string text = value.dump(2);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

Result<Dims> parse_dims(std::string_view text) {
  constexpr int64_t kMaxDim = int64_t{1} << 62;
  Dims dims;
  if (text.empty()) return invalid_argument("empty shape; expected dims like 1x3x224x224");
  size_t start = 0;
  while (true) {
    size_t end = text.find('x', start);
    std::string_view part = text.substr(start, end == std::string_view::npos ? end : end - start);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || v < 0 ||
        v >= kMaxDim)
      return invalid_argument("invalid shape '" + std::string(text) +
                              "'; expected non-negative integer dims separated by 'x', like "
                              "1x3x224x224");
    dims.push_back(v);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return dims;
}

Result<ShapeProfile> parse_shape_spec(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t end = text.find(':', start);
    fields.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  auto name_of = [&](size_t n_shapes) {
    // Everything before the trailing n_shapes fields, re-joined with ':'.
    size_t cut = 0;
    for (size_t i = 0; i + n_shapes < fields.size(); ++i) cut += fields[i].size() + 1;
    return std::string(text.substr(0, cut - 1));
  };
  ShapeProfile p;
  bool matched = false;
  if (fields.size() >= 4) {
    auto mn = parse_dims(fields[fields.size() - 3]);
    auto op = parse_dims(fields[fields.size() - 2]);
    auto mx = parse_dims(fields[fields.size() - 1]);
    if (mn.ok() && op.ok() && mx.ok()) {
      matched = true;
      p.input = name_of(3);
      p.min = std::move(mn).value();
      p.opt = std::move(op).value();
      p.max = std::move(mx).value();
    }
  }
  if (!matched && fields.size() >= 2) {
    auto d = parse_dims(fields.back());
    std::string_view before = fields[fields.size() - 2];
    if (d.ok() && before.find('x') != std::string_view::npos && parse_dims(before).ok())
      return invalid_argument("invalid --shape '" + std::string(text) +
                              "': two shapes given; expected NAME:MIN:OPT:MAX or NAME:DIMS");
    if (d.ok()) {
      matched = true;
      p.input = name_of(1);
      p.min = p.opt = p.max = std::move(d).value();
    }
  }
  if (!matched || p.input.empty())
    return invalid_argument("invalid --shape '" + std::string(text) +
                            "'; expected NAME:MIN:OPT:MAX (like x:1x3x224x224:8x3x224x224:"
                            "32x3x224x224) or NAME:DIMS for a fixed shape");
  if (p.min.size() != p.opt.size() || p.opt.size() != p.max.size())
    return invalid_argument("invalid --shape '" + std::string(text) +
                            "': MIN, OPT and MAX must have the same number of dims");
  for (size_t d = 0; d < p.min.size(); ++d) {
    if (p.min[d] > p.opt[d] || p.opt[d] > p.max[d])
      return invalid_argument("invalid --shape '" + std::string(text) + "': dim " +
                              std::to_string(d) + " needs MIN <= OPT <= MAX, got " +
                              std::to_string(p.min[d]) + ", " + std::to_string(p.opt[d]) + ", " +
                              std::to_string(p.max[d]));
  }
  return p;
}

Result<std::pair<std::string, std::string>> parse_key_value(std::string_view text,
                                                            std::string_view option) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return invalid_argument("invalid " + std::string(option) + " '" + std::string(text) +
                            "'; expected KEY=VALUE");
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

std::string format_dims(const Dims& dims) { return dims_to_string(dims); }

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", value);
  return buf;
}

std::string format_ms(double ms) {
  char buf[32];
  if (ms < 1)
    std::snprintf(buf, sizeof buf, "%.3f ms", ms);
  else if (ms < 100)
    std::snprintf(buf, sizeof buf, "%.2f ms", ms);
  else
    std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  return buf;
}

std::string format_bytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string safe_file_name(std::string_view name) {
  std::string out;
  bool only_dots = true;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
    if (c != '.') only_dots = false;
  }
  if (out.empty() || only_dots) return "_";
  return out;
}

}  // namespace kiln::cli
