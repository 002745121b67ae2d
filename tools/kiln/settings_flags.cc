#include "settings_flags.h"

#include <algorithm>
#include <filesystem>

namespace kiln::cli {

namespace {

// For `--multi-device-safe-mode model.kiln`, which takes the engine as the flag's optional value:
// the parser's message plus what to do; "" when `value` is not an existing file.
std::string swallowed_file_hint(const std::string& value) {
  std::error_code ec;
  if (value.empty() || !std::filesystem::exists(value, ec)) return "";
  return parse_multi_device_safe_mode(value).status().message() +
         " (the flag's value is optional, so it took the file '" + value +
         "'; put ENGINE before the flag or write --multi-device-safe-mode=true)";
}

}  // namespace

void add_settings_flags(CLI::App* cmd, SettingsFlags& flags) {
  const std::string group = "Runtime settings (per call; override KILN_* and the defaults)";
  cmd->add_option("--cuda-graph-strategy", flags.cuda_graph_strategy,
                  "disabled | whole_graph_capture")
      ->type_name("NAME")
      ->group(group);
  cmd->add_option("--kernel-specialization", flags.kernel_specialization,
                  "Dynamic-shape kernel specialisation: lazy | eager | none")
      ->type_name("NAME")
      ->group(group);
  cmd->add_option("--runtime-cache", flags.runtime_cache,
                  "Runtime kernel cache file, or none for no persistent cache")
      ->type_name("PATH|none")
      ->group(group);
  // An optional value: the flag alone gives "", which settings_from_flags reads as true.
  cmd->add_option("--multi-device-safe-mode", flags.multi_device_safe_mode,
                  "Guards for processes that drive several GPUs (alone: true)")
      ->expected(0, 1)
      ->type_name("[true|false]")
      ->group(group)
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            // Only the swallowed-ENGINE case fails here, before CLI11 reports a missing ENGINE;
            // other invalid values are reported after parsing, like the other flags.
            return parse_multi_device_safe_mode(value).ok() ? "" : swallowed_file_hint(value);
          },
          "", "engine-not-a-value"));
}

Result<RuntimeSettings> settings_from_flags(const SettingsFlags& flags) {
  RuntimeSettings s;
  if (flags.cuda_graph_strategy) {
    KILN_ASSIGN_OR_RETURN(s.cuda_graph_strategy,
                          parse_cuda_graph_strategy(*flags.cuda_graph_strategy));
  }
  if (flags.kernel_specialization) {
    KILN_ASSIGN_OR_RETURN(s.kernel_specialization,
                          parse_kernel_specialization_strategy(*flags.kernel_specialization));
  }
  if (flags.runtime_cache) {
    KILN_ASSIGN_OR_RETURN(s.runtime_cache, parse_runtime_cache(*flags.runtime_cache));
  }
  if (flags.multi_device_safe_mode) {
    const std::string& v =
        flags.multi_device_safe_mode->empty() ? std::string("true") : *flags.multi_device_safe_mode;
    Result<bool> b = parse_multi_device_safe_mode(v);
    if (!b.ok()) {
      std::string hint = swallowed_file_hint(v);
      return hint.empty() ? b.status() : invalid_argument(hint);
    }
    s.multi_device_safe_mode = *b;
  }
  return s;
}

std::string_view cli_source_name(SettingSource source) {
  return source == SettingSource::kCall ? "flag" : to_string(source);
}

namespace {

struct Row {
  std::string_view name;
  std::string value;
  SettingSource source;
};

std::vector<Row> rows(const ResolvedSettings& r) {
  return {
      {kCudaGraphStrategyName, std::string(to_string(r.cuda_graph_strategy)),
       r.sources.cuda_graph_strategy},
      {kKernelSpecializationName, std::string(to_string(r.kernel_specialization)),
       r.sources.kernel_specialization},
      {kRuntimeCacheName, r.runtime_cache.to_string(), r.sources.runtime_cache},
      {kMultiDeviceSafeModeName, r.multi_device_safe_mode ? "true" : "false",
       r.sources.multi_device_safe_mode},
  };
}

}  // namespace

nlohmann::json settings_json(const ResolvedSettings& settings) {
  nlohmann::json j = nlohmann::json::object();
  for (const Row& row : rows(settings))
    j[std::string(row.name)] = {{"value", row.value},
                                {"source", std::string(cli_source_name(row.source))}};
  return j;
}

std::string settings_text(const ResolvedSettings& settings) {
  std::string out = "runtime settings:\n";
  for (const Row& row : rows(settings)) {
    std::string name(row.name);
    name.resize(std::max<size_t>(name.size(), 46), ' ');
    out += "  " + name + " " + row.value + "  (" + std::string(cli_source_name(row.source)) + ")\n";
  }
  return out;
}

}  // namespace kiln::cli
