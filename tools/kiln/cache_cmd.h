// `kiln cache info|verify|clear [PATH]`: look after a runtime cache file (kiln/runtime_cache.h).
// Registered like the other subcommands (commands.h): add_cache_command before parsing, then
// run_cache if it was chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace kiln::cli {

struct CacheArgs {
  std::string action;  // "info", "verify" or "clear": set while parsing
  std::string path;    // empty: the runtime_cache setting in effect (KILN_RUNTIME_CACHE, per-user)
  bool json = false;
};
CLI::App* add_cache_command(CLI::App& app, CacheArgs& args);
int run_cache(const CacheArgs& args);

}  // namespace kiln::cli
