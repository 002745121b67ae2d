// Internals of runtime-settings resolution shared by settings_env.cc, settings_resolve.cc and
// their tests. Not part of the public API.
#pragma once

#include <string>

#include "kiln/runtime.h"

namespace kiln::internal {

// What the environment contributed, read once: the KILN_* variables (layer 5) and the built-in
// runtime cache path derived from $XDG_CACHE_HOME / $HOME (layer 6).
struct EnvironmentSnapshot {
  RuntimeSettings settings;
  // The per-user cache file, or none when neither $XDG_CACHE_HOME nor a home folder is known.
  RuntimeCacheSetting builtin_runtime_cache;
};

// Reads the environment now. Each invalid KILN_* value is logged as a warning naming the
// variable, the valid values and the default used instead; an empty variable counts as unset.
// Every call reads and reports afresh: the resolver calls it once per process.
EnvironmentSnapshot read_runtime_environment();

// Layers 4 to 6 combined into every-field-set settings with their sources.
ResolvedSettings resolve_base_settings(const RuntimeSettings& defaults,
                                       const EnvironmentSnapshot& env);

// For tests: re-reads the environment as at first use and publishes it to every thread (their
// next resolution sees it). Process defaults are kept.
void reload_runtime_environment_for_testing();

// For tests: how many times the resolver has read the environment in this process.
int runtime_environment_read_count();

}  // namespace kiln::internal
