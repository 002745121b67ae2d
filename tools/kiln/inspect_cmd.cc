// `kiln inspect`: what an engine file holds.
#include <algorithm>
#include <cstdio>

#include "cli_common.h"
#include "commands.h"
#include "kiln/engine.h"
#include "runtime/cache_warm.h"

namespace kiln::cli {
namespace {

constexpr const char* kInspectFooter = R"(
Shows the engine's name, format and kiln versions, target platform and minimum compute
capability, precision, every input and output with its dtype, symbolic dims and (inputs) the
accepted shape range, the node count and op histogram, weight bytes and metadata. The whole file
is validated first, so inspect also tells whether an engine is intact.

Examples:
  kiln inspect model.kiln
  kiln inspect model.kiln --json | jq '.inputs[].max'

Exit codes: 0 ok, 2 missing, corrupt or too-new engine file.)";

std::string dims_symbolic(const BindingInfo& b) {
  if (!b.rank_known) return "[?]";
  std::string out = "[";
  for (size_t i = 0; i < b.dims.size(); ++i) out += (i ? ", " : "") + b.dims[i];
  return out + "]";
}

nlohmann::json binding_json(const BindingInfo& b, bool input) {
  nlohmann::json j = {{"name", b.name},
                      {"dtype", std::string(dtype_name(b.dtype))},
                      {"dims", b.dims},
                      {"rank_known", b.rank_known}};
  if (input) {
    j["min"] = b.min;
    j["opt"] = b.opt;
    j["max"] = b.max;
  }
  return j;
}

std::string cc_text(int cc) { return std::to_string(cc / 10) + "." + std::to_string(cc % 10); }

}  // namespace

CLI::App* add_inspect_command(CLI::App& app, InspectArgs& args) {
  CLI::App* cmd = app.add_subcommand("inspect", "Show what an engine file holds");
  cmd->add_option("engine", args.engine, "The engine file")->required();
  cmd->add_flag("--json", args.json, "Print a JSON object on stdout instead of text");
  cmd->footer(kInspectFooter);
  return cmd;
}

int run_inspect(const InspectArgs& args) {
  Result<std::shared_ptr<Engine>> loaded = Engine::load(args.engine);
  if (!loaded.ok()) {
    if (args.json) print_json({{"status", "error"}, {"error", status_json(loaded.status())}});
    return report_error(loaded.status());
  }
  const Engine& engine = **loaded;
  const EngineInfo& info = engine.info();
  const char* hw = info.hardware_compatibility == HardwareCompatibility::kPortable
                       ? "portable"
                       : "arch_specific";
  // The CUDA kernels a run at the opt shape launches, planned host-only (cheap: no GEMMs run).
  Result<KernelInventory> kernels = engine_kernel_inventory(args.engine);
  if (args.json) {
    nlohmann::json inputs = nlohmann::json::array(), outputs = nlohmann::json::array();
    for (const BindingInfo& b : engine.inputs()) inputs.push_back(binding_json(b, true));
    for (const BindingInfo& b : engine.outputs()) outputs.push_back(binding_json(b, false));
    print_json({{"status", "ok"},
                {"engine", args.engine},
                {"name", info.name},
                {"format_version",
                 std::to_string(info.format_major) + "." + std::to_string(info.format_minor)},
                {"kiln_version", info.kiln_version},
                {"target_platform", info.target_platform},
                {"min_compute_capability", info.min_compute_capability},
                {"hardware_compatibility", hw},
                {"precision", std::string(precision_name(info.precision))},
                {"allow_tf32", info.allow_tf32},
                {"inputs", inputs},
                {"outputs", outputs},
                {"node_count", info.node_count},
                {"op_histogram", info.op_histogram},
                {"weight_bytes", info.weight_bytes},
                {"metadata", info.metadata},
                {"cuda_kernels", kernels.ok() ? nlohmann::json{{"kernels", kernels->kernels},
                                                                {"specializable", kernels->specializable},
                                                                {"launches_per_run", kernels->launches},
                                                                {"gemm_bridge_kernels", kernels->gemm_bridges},
                                                                {"gemv_kernels", kernels->gemv_kernels},
                                                                {"gpu_nodes", kernels->gpu_nodes},
                                                                {"host_nodes", kernels->host_nodes},
                                                                {"cpu_fallback_nodes", kernels->fallback_nodes}}
                                              : nlohmann::json{{"error", kernels.status().to_string()}}}});
    return kExitOk;
  }
  std::printf("name              %s\n", info.name.c_str());
  std::printf("format version    %u.%u\n", info.format_major, info.format_minor);
  std::printf("built by kiln     %s\n", info.kiln_version.c_str());
  std::printf("platform          %s, min compute capability %s, %s\n", info.target_platform.c_str(),
              cc_text(info.min_compute_capability).c_str(), hw);
  std::printf("precision         %s%s\n", std::string(precision_name(info.precision)).c_str(),
              info.allow_tf32 ? " (tf32 allowed)" : "");
  std::printf("nodes             %llu\n", static_cast<unsigned long long>(info.node_count));
  std::printf("weights           %s (%llu bytes)\n", format_bytes(info.weight_bytes).c_str(),
              static_cast<unsigned long long>(info.weight_bytes));
  std::printf("inputs\n");
  for (const BindingInfo& b : engine.inputs()) {
    std::printf("  %-20s %-5s %s\n", b.name.c_str(), std::string(dtype_name(b.dtype)).c_str(),
                dims_symbolic(b).c_str());
    if (!b.min.empty())
      std::printf("  %-20s       min %s  opt %s  max %s\n", "", dims_to_string(b.min).c_str(),
                  dims_to_string(b.opt).c_str(), dims_to_string(b.max).c_str());
  }
  std::printf("outputs\n");
  for (const BindingInfo& b : engine.outputs())
    std::printf("  %-20s %-5s %s\n", b.name.c_str(), std::string(dtype_name(b.dtype)).c_str(),
                dims_symbolic(b).c_str());
  std::printf("ops\n");
  int op_width = 20;  // wide enough for kiln's own ops too ("kiln.FusedElementwise")
  for (const auto& [op, count] : info.op_histogram) op_width = std::max(op_width, static_cast<int>(op.size()));
  for (const auto& [op, count] : info.op_histogram)
    std::printf("  %-*s %lld\n", op_width, op.c_str(), static_cast<long long>(count));
  if (kernels.ok()) {
    std::printf("cuda kernels      at the opt shape: %llu generic kernels (%llu of them GEMM kernels for lazy's "
                "first calls, %llu GEMV kernels for one-row GEMMs), %llu specialised variants (shapes baked in), "
                "%llu launches per run besides GEMMs; nodes: %llu gpu, %llu host, %llu cpu fallback\n",
                static_cast<unsigned long long>(kernels->kernels), static_cast<unsigned long long>(kernels->gemm_bridges),
                static_cast<unsigned long long>(kernels->gemv_kernels),
                static_cast<unsigned long long>(kernels->specializable),
                static_cast<unsigned long long>(kernels->launches), static_cast<unsigned long long>(kernels->gpu_nodes),
                static_cast<unsigned long long>(kernels->host_nodes),
                static_cast<unsigned long long>(kernels->fallback_nodes));
  }
  if (!info.metadata.empty()) {
    std::printf("metadata\n");
    for (const auto& [k, v] : info.metadata) std::printf("  %s = %s\n", k.c_str(), v.c_str());
  }
  return kExitOk;
}

}  // namespace kiln::cli
