// The runtime-settings flags shared by `kiln run` and `kiln bench` (include/kiln/runtime.h;
// docs/runtime_modes.md, "From the command line").
//
// The flags become the per-call settings (RunOptions::settings, the highest layer). Their values
// are parsed only by runtime.h's parse_* functions, after CLI11 has split the command line, so an
// unknown name gives exactly the parser's message (which lists the valid values) and exit code 2.
// Printing maps the `call` source to `flag`: on the command line, the call's settings are the
// flags.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/runtime.h"
#include "kiln/status.h"

namespace kiln::cli {

// The flags as typed; nullopt when not given.
struct SettingsFlags {
  std::optional<std::string> cuda_graph_strategy;     // --cuda-graph-strategy NAME
  std::optional<std::string> kernel_specialization;   // --kernel-specialization NAME
  std::optional<std::string> runtime_cache;           // --runtime-cache PATH|none
  std::optional<std::string> multi_device_safe_mode;  // --multi-device-safe-mode [true|false]
};

// Registers the four flags on `cmd` under an "Runtime settings" group. `flags` must outlive
// parsing. --multi-device-safe-mode alone means true.
void add_settings_flags(CLI::App* cmd, SettingsFlags& flags);

// The per-call RuntimeSettings the flags give (fields of absent flags unset). kInvalidArgument
// with the parser's message for an invalid value, e.g.
//   invalid cuda_graph_strategy 'whole'; expected disabled|whole_graph_capture
Result<RuntimeSettings> settings_from_flags(const SettingsFlags& flags);

// The source name the CLI shows: "flag" for SettingSource::kCall, else to_string(source).
std::string_view cli_source_name(SettingSource source);

// {"cuda_graph_strategy": {"value": "disabled", "source": "builtin"}, ...}: one entry per setting,
// keyed by its runtime.h name, sources as cli_source_name gives them.
nlohmann::json settings_json(const ResolvedSettings& settings);

// The human-readable block both commands print: a header line and one indented line per setting,
//   runtime settings:
//     cuda_graph_strategy                            whole_graph_capture  (flag)
// ending in a newline.
std::string settings_text(const ResolvedSettings& settings);

}  // namespace kiln::cli
