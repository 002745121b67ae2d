// `kiln cache`: what a runtime cache file holds, whether it is intact, and emptying it.
#include "cache_cmd.h"

#include <algorithm>
#include <cstdio>

#include "cli_common.h"
#include "kiln/runtime.h"
#include "kiln/runtime_cache.h"

namespace kiln::cli {
namespace {

constexpr const char* kCacheFooter = R"(
PATH defaults to the runtime_cache setting in effect: $KILN_RUNTIME_CACHE, else the per-user
file ($XDG_CACHE_HOME/kiln/runtime.kcache, else ~/.cache/kiln/runtime.kcache).

Examples:
  kiln cache info
  kiln cache info /deploy/warm.kcache --json | jq .archs
  kiln cache verify /deploy/warm.kcache
  kiln cache clear /tmp/test.kcache
  kiln cache warm model.kiln --arch sm_90 --arch sm_100 --cache /deploy/warm.kcache

Exit codes: 0 ok, 1 verify found corrupt records or a file this kiln cannot read, or warm
could not compile a kernel, 2 bad usage,
a missing or unreadable file, or (clear) a file that is not a kiln runtime cache.)";

constexpr size_t kInfoTopEntries = 10;

Result<std::string> resolve_path(const CacheArgs& args) {
  if (!args.path.empty()) return args.path;
  ResolvedSettings s = current_runtime_settings();
  if (s.runtime_cache.kind() == RuntimeCacheSetting::Kind::kPath) return s.runtime_cache.path();
  return invalid_argument("no cache PATH given, and the runtime_cache setting is " +
                          s.runtime_cache.to_string() + " (" +
                          std::string(to_string(s.sources.runtime_cache)) + "); pass PATH");
}

// The file's report; a missing file is an error for info and verify.
Result<CacheVerifyReport> existing_file_report(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(CacheVerifyReport report, RuntimeCache::verify_file(path));
  if (!report.exists) return not_found("no runtime cache file at '" + path + "'");
  return report;
}

nlohmann::json problems_json(const CacheVerifyReport& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : r.problems) out.push_back({{"offset", p.offset}, {"reason", p.reason}});
  return out;
}

std::string counts_text(const std::map<std::string, uint64_t>& counts) {
  std::string out;
  for (const auto& [name, n] : counts) {
    out += (out.empty() ? "" : ", ") + (name.empty() ? std::string("(none)") : name) + " " +
           std::to_string(n);
  }
  return out.empty() ? "-" : out;
}

int fail(const CacheArgs& args, const Status& s) {
  if (args.json) print_json({{"status", "error"}, {"error", status_json(s)}});
  return report_error(s);
}

int run_info(const CacheArgs& args, const std::string& path) {
  Result<CacheVerifyReport> report = existing_file_report(path);
  if (!report.ok()) return fail(args, report.status());
  // Read-only and unbounded: show the whole file, never rewrite it.
  Result<std::shared_ptr<RuntimeCache>> opened =
      RuntimeCache::open(path, {.max_bytes = UINT64_MAX, .read_only = true});
  if (!opened.ok()) return fail(args, opened.status());
  const RuntimeCache& cache = **opened;
  CacheStats s = cache.stats();
  std::vector<CacheEntryInfo> entries = cache.entries();

  if (args.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const CacheEntryInfo& e : entries) {
      list.push_back({{"key", e.key.to_hex()},
                      {"name", e.meta.name},
                      {"kind", std::string(to_string(e.meta.kind))},
                      {"arch", e.meta.arch},
                      {"size", e.size},
                      {"hits", e.hits},
                      {"last_use_unix_us", e.last_use_us}});
    }
    print_json({{"status", "ok"},
                {"path", cache.path()},
                {"file_bytes", report->file_bytes},
                {"compatible", report->compatible},
                {"format_version", kRuntimeCacheFormatVersion},
                {"problem_count", report->problem_count},
                {"problems", problems_json(*report)},
                {"entries", s.entries},
                {"bytes", s.bytes},
                {"kinds", s.kinds},
                {"archs", s.archs},
                {"recorded_hits", s.recorded_hits},
                {"entry_list", list}});
    return kExitOk;
  }
  std::printf("runtime cache   %s\n", cache.path().c_str());
  std::printf("file            %s", format_bytes(report->file_bytes).c_str());
  if (!report->compatible) {
    std::printf(", not readable by this kiln: %s (the next save replaces it)\n",
                report->problems.empty() ? "?" : report->problems[0].reason.c_str());
  } else if (report->problem_count > 0) {
    std::printf(", format version %u, %llu damaged record(s) skipped (see 'kiln cache verify')\n",
                kRuntimeCacheFormatVersion, static_cast<unsigned long long>(report->problem_count));
  } else {
    std::printf(", format version %u, intact\n", kRuntimeCacheFormatVersion);
  }
  std::printf("entries         %llu (%s), %s\n", static_cast<unsigned long long>(s.entries),
              counts_text(s.kinds).c_str(), format_bytes(s.bytes).c_str());
  std::printf("archs           %s\n", counts_text(s.archs).c_str());
  std::printf("recorded hits   %llu\n", static_cast<unsigned long long>(s.recorded_hits));
  if (!entries.empty()) {
    std::stable_sort(
        entries.begin(), entries.end(),
        [](const CacheEntryInfo& a, const CacheEntryInfo& b) { return a.hits > b.hits; });
    size_t n = std::min(entries.size(), kInfoTopEntries);
    std::printf("most used (%zu of %zu)\n", n, entries.size());
    std::printf("  %10s  %10s  %-8s %-7s %s\n", "hits", "size", "arch", "kind", "name");
    for (size_t i = 0; i < n; ++i) {
      const CacheEntryInfo& e = entries[i];
      std::printf("  %10llu  %10s  %-8s %-7s %s\n", static_cast<unsigned long long>(e.hits),
                  format_bytes(e.size).c_str(), e.meta.arch.c_str(),
                  std::string(to_string(e.meta.kind)).c_str(), e.meta.name.c_str());
    }
  }
  return kExitOk;
}

int run_verify(const CacheArgs& args, const std::string& path) {
  Result<CacheVerifyReport> report = existing_file_report(path);
  if (!report.ok()) return fail(args, report.status());
  const CacheVerifyReport& r = *report;
  if (args.json) {
    print_json({{"status", r.ok() ? "ok" : "corrupt"},
                {"path", path},
                {"file_bytes", r.file_bytes},
                {"compatible", r.compatible},
                {"valid_records", r.valid_records},
                {"problem_count", r.problem_count},
                {"problems", problems_json(r)}});
    return r.ok() ? kExitOk : kExitMismatch;
  }
  if (r.ok()) {
    std::printf("%s: ok, %llu records, %s\n", path.c_str(),
                static_cast<unsigned long long>(r.valid_records),
                format_bytes(r.file_bytes).c_str());
    return kExitOk;
  }
  std::printf("%s: %llu problem(s), %llu intact record(s)\n", path.c_str(),
              static_cast<unsigned long long>(r.problem_count),
              static_cast<unsigned long long>(r.valid_records));
  for (const auto& p : r.problems) {
    std::printf("  file offset %llu: %s\n", static_cast<unsigned long long>(p.offset),
                p.reason.c_str());
  }
  if (r.problem_count > r.problems.size()) {
    std::printf("  ... and %llu more\n",
                static_cast<unsigned long long>(r.problem_count - r.problems.size()));
  }
  std::printf(
      "damaged entries are skipped (their kernels recompile); the next save rewrites "
      "the file\n");
  return kExitMismatch;
}

int run_clear(const CacheArgs& args, const std::string& path) {
  Result<CacheVerifyReport> report = RuntimeCache::verify_file(path);
  if (!report.ok()) return fail(args, report.status());
  if (report->exists && !report->compatible) {
    return fail(args,
                invalid_argument("'" + path + "' is not a runtime cache this kiln can read (" +
                                 report->problems[0].reason +
                                 "); not touching it: delete it yourself if it is a cache"));
  }
  uint64_t entries = 0, bytes = 0;
  if (report->exists) {
    Result<std::shared_ptr<RuntimeCache>> opened =
        RuntimeCache::open(path, {.max_bytes = UINT64_MAX});
    if (!opened.ok()) return fail(args, opened.status());
    CacheStats s = (*opened)->stats();
    entries = s.entries;
    bytes = s.bytes;
    if (Status st = (*opened)->clear(); !st.ok()) return fail(args, st);
  }
  if (args.json) {
    print_json(
        {{"status", "ok"}, {"path", path}, {"removed_entries", entries}, {"freed_bytes", bytes}});
  } else if (!report->exists) {
    std::printf("%s: no cache file, nothing to clear\n", path.c_str());
  } else {
    std::printf("%s: cleared %llu entries (%s)\n", path.c_str(),
                static_cast<unsigned long long>(entries), format_bytes(bytes).c_str());
  }
  return kExitOk;
}

}  // namespace

CLI::App* add_cache_command(CLI::App& app, CacheArgs& args) {
  CLI::App* cmd = app.add_subcommand("cache", "Inspect, verify or clear a runtime kernel cache");
  cmd->require_subcommand(1);
  cmd->footer(kCacheFooter);
  struct Action {
    const char* name;
    const char* help;
  };
  for (Action a : {Action{"info", "Show entries, bytes, per-arch counts and hit statistics"},
                   Action{"verify", "Check every record; exit 1 listing any that are damaged"},
                   Action{"clear", "Remove every entry (the file stays, empty)"}}) {
    CLI::App* sub = cmd->add_subcommand(a.name, a.help);
    sub->add_option("path", args.path, "The cache file (default: the runtime_cache setting)");
    sub->add_flag("--json", args.json, "Print a JSON object on stdout instead of text");
    sub->footer(kCacheFooter);
    std::string name = a.name;
    sub->callback([&args, name] { args.action = name; });
  }
  add_cache_warm_command(*cmd, args, kCacheFooter);
  return cmd;
}

int run_cache(const CacheArgs& args) {
  Result<std::string> path = resolve_path(args);
  if (!path.ok()) return fail(args, path.status());
  if (args.action == "info") return run_info(args, *path);
  if (args.action == "verify") return run_verify(args, *path);
  if (args.action == "clear") return run_clear(args, *path);
  if (args.action == "warm") return run_cache_warm(args, *path);
  print_error("no cache action given; expected info, verify, clear or warm");
  return kExitBadInput;
}

}  // namespace kiln::cli
