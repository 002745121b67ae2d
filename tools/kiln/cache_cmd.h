// `kiln cache info|verify|clear [PATH]`: look after a runtime cache file (kiln/runtime_cache.h);
// `kiln cache warm ENGINE... --arch sm_90 --cache PATH`: fill one without a GPU (cache_warm_cmd.cc).
// Registered like the other subcommands (commands.h): add_cache_command before parsing, then
// run_cache if it was chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace kiln::cli {

struct CacheArgs {
  std::string action;  // "info", "verify", "clear" or "warm": set while parsing
  std::string path;    // empty: the runtime_cache setting in effect (KILN_RUNTIME_CACHE, per-user)
  bool json = false;
  // warm only
  std::vector<std::string> engines = {};
  std::vector<std::string> archs = {};  // "sm_90", ...
  bool generic_only = false;
  int threads = 0;
  bool progress = true;
};
CLI::App* add_cache_command(CLI::App& app, CacheArgs& args);
int run_cache(const CacheArgs& args);

// The warm action (cache_warm_cmd.cc).
void add_cache_warm_command(CLI::App& cache_cmd, CacheArgs& args, const char* footer);
int run_cache_warm(const CacheArgs& args, const std::string& path);

}  // namespace kiln::cli
