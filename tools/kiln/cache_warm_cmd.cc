// `kiln cache warm ENGINE... --arch sm_90 [--arch sm_100 ...] --cache PATH`: compile every kernel
// the engines need for the named GPUs into a runtime cache, without a GPU (runtime/cache_warm.h).
#include <cstdio>

#include "cache_cmd.h"
#include "cli_common.h"
#include "progress.h"
#include "kiln/runtime_cache.h"
#include "runtime/cache_warm.h"

namespace kiln::cli {

void add_cache_warm_command(CLI::App& cache_cmd, CacheArgs& args, const char* footer) {
  CLI::App* sub = cache_cmd.add_subcommand(
      "warm", "Compile every kernel the engines need for the named GPUs into the cache (no GPU needed)");
  sub->add_option("engines", args.engines, "Engine files")->required();
  sub->add_option("--arch", args.archs, "Target GPU architecture, e.g. sm_90 (repeatable)")->required();
  sub->add_option("--cache", args.path, "The cache file (default: the runtime_cache setting)");
  sub->add_flag("--generic-only", args.generic_only,
                "Only the generic kernels, not the variants specialised for each profile's opt shape");
  sub->add_option("--threads", args.threads, "Parallel compiles (default: one per hardware thread)");
  sub->add_flag("!--no-progress", args.progress, "No progress bar");
  sub->add_flag("--json", args.json, "Print a JSON object on stdout instead of text");
  sub->footer(footer);
  sub->callback([&args] { args.action = "warm"; });
}

int run_cache_warm(const CacheArgs& args, const std::string& path) {
  auto fail = [&](const Status& s) {
    if (args.json) print_json({{"status", "error"}, {"error", status_json(s)}});
    return report_error(s);
  };
  CacheWarmOptions options;
  for (const std::string& a : args.archs) {
    Result<int> sm = parse_sm(a);
    if (!sm.ok()) return fail(sm.status());
    options.sms.push_back(*sm);
  }
  options.specialized = !args.generic_only;
  options.threads = args.threads;
  ProgressReporter progress(args.progress && !args.json);
  options.progress = [&](uint64_t done, uint64_t total) {
    progress.update("compiling " + std::to_string(total) + " kernels",
                    total ? static_cast<double>(done) / static_cast<double>(total) : 1.0);
  };
  Result<std::shared_ptr<RuntimeCache>> cache = RuntimeCache::open(path);
  if (!cache.ok()) return fail(cache.status());
  Result<CacheWarmReport> r = cache_warm(args.engines, **cache, options);
  progress.finish();
  if (!r.ok()) return fail(r.status());
  Status saved = (*cache)->save();
  if (!saved.ok()) return fail(saved);
  const double per_second = r->seconds > 0 ? static_cast<double>(r->kernels) / r->seconds : 0;
  const double compiled_per_second = r->seconds > 0 ? static_cast<double>(r->compiled) / r->seconds : 0;
  const bool ok = r->failed == 0;
  if (args.json) {
    print_json({{"status", ok ? "ok" : "failed"},
                {"path", (*cache)->path()},
                {"engines", r->engines},
                {"kernels", r->kernels},
                {"specialized_kernels", r->specializable},
                {"compiled", r->compiled},
                {"already_cached", r->hits},
                {"failed", r->failed},
                {"errors", r->errors},
                {"per_arch", r->per_arch},
                {"seconds", r->seconds},
                {"kernels_per_second", per_second},
                {"compiled_per_second", compiled_per_second},
                {"cache_entries", (*cache)->stats().entries}});
  } else {
    std::string archs;
    for (const auto& [arch, n] : r->per_arch) archs += (archs.empty() ? "" : ", ") + arch;
    std::printf("%llu kernels for %s (%llu specialised) from %llu engine(s): %llu compiled, %llu already "
                "cached, %llu failed\n",
                static_cast<unsigned long long>(r->kernels), archs.c_str(),
                static_cast<unsigned long long>(r->specializable), static_cast<unsigned long long>(r->engines),
                static_cast<unsigned long long>(r->compiled), static_cast<unsigned long long>(r->hits),
                static_cast<unsigned long long>(r->failed));
    std::printf("%.2f s, %.1f kernels/s (%.1f compiled/s); saved %s (%llu entries)\n", r->seconds, per_second,
                compiled_per_second, (*cache)->path().c_str(),
                static_cast<unsigned long long>((*cache)->stats().entries));
    for (const std::string& e : r->errors) print_error(e);
  }
  return ok ? kExitOk : kExitMismatch;
}

}  // namespace kiln::cli
