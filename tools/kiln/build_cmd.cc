// `kiln build`: ONNX model -> engine file.
#include <chrono>
#include <cstdio>
#include <set>

#include "cli_common.h"
#include "commands.h"
#include "kiln/builder.h"
#include "platform/file.h"
#include "progress.h"

namespace kiln::cli {
namespace {

constexpr const char* kBuildFooter = R"(
Dynamic dims (like a batch or sequence length) accept a range of sizes given per input with
--shape NAME:MIN:OPT:MAX: the engine accepts any shape between MIN and MAX and is tuned for OPT.
Inputs with dynamic dims and no --shape get the default profile 1:1:4096 for those dims; the
resolved profile of every input is printed. NAME:DIMS fixes an input's shape.

Examples:
  kiln build model.onnx -o model.kiln
  kiln build model.onnx -o model.kiln --shape x:1x3x224x224:8x3x224x224:32x3x224x224
  kiln build encoder.onnx -o enc.kiln --shape ids:1x1:1x128:8x512 --shape mask:1x1:1x128:8x512
  kiln build model.onnx -o model.kiln --precision fp16 --name resnet --metadata owner=vision

Exit codes: 0 built, 2 bad usage or bad model file, 3 model uses something kiln cannot handle.)";

Status make_options(const BuildArgs& args, BuildOptions* opts) {
  std::set<std::string> seen;
  for (const std::string& spec : args.shapes) {
    KILN_ASSIGN_OR_RETURN(ShapeProfile p, parse_shape_spec(spec));
    if (!seen.insert(p.input).second)
      return invalid_argument("--shape gives input '" + p.input + "' more than once");
    opts->shapes.push_back(std::move(p));
  }
  KILN_ASSIGN_OR_RETURN(opts->precision, precision_parse(args.precision));
  opts->name = args.name;
  opts->optimization_level = args.opt_level;
  for (const std::string& kv : args.metadata) {
    KILN_ASSIGN_OR_RETURN(auto pair, parse_key_value(kv, "--metadata"));
    if (!opts->metadata.emplace(pair.first, pair.second).second)
      return invalid_argument("--metadata gives key '" + pair.first + "' more than once");
  }
  return Status();
}

// "min [1, 3]  opt [8, 3]  max [32, 3]"
std::string profile_text(const ShapeProfile& p) {
  return "min " + dims_to_string(p.min) + "  opt " + dims_to_string(p.opt) + "  max " +
         dims_to_string(p.max);
}

int fail(const BuildArgs& args, const Status& status) {
  if (args.json) print_json({{"status", "error"}, {"error", status_json(status)}});
  return report_error(status);
}

}  // namespace

CLI::App* add_build_command(CLI::App& app, BuildArgs& args) {
  CLI::App* cmd = app.add_subcommand("build", "Compile an ONNX model into an engine file");
  cmd->add_option("model", args.model, "The ONNX model (external data is read from its folder)")
      ->required();
  cmd->add_option("-o,--output", args.output,
                  "Where to write the engine file (replaced atomically)")
      ->required();
  cmd->add_option("--shape", args.shapes,
                  "Shape profile of an input: NAME:MIN:OPT:MAX or NAME:DIMS, dims like "
                  "1x3x224x224 (repeatable)");
  cmd->add_option("--precision", args.precision, "Precision the engine may compute in")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--name", args.name, "Engine name (default: the model's file or folder name)");
  cmd->add_option("--opt-level", args.opt_level, "Optimisation level: 0 = no passes, 3 = all")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  cmd->add_option("--metadata", args.metadata,
                  "Free-form KEY=VALUE stored in the engine and shown by kiln inspect "
                  "(repeatable)");
  cmd->add_flag("--json", args.json, "Print a JSON object on stdout instead of text");
  cmd->footer(kBuildFooter);
  return cmd;
}

int run_build(const BuildArgs& args) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  BuildOptions opts;
  if (Status s = make_options(args, &opts); !s.ok()) return fail(args, s);

  BuildReport report;
  Result<std::vector<uint8_t>> bytes = [&] {
    ProgressReporter progress(true);
    return build_engine(
        args.model, opts, [&](std::string_view stage, double f) { progress.update(stage, f); },
        &report);
  }();
  if (!bytes.ok()) return fail(args, bytes.status());
  if (Status s = platform::write_file_atomic(args.output, *bytes); !s.ok()) return fail(args, s);
  double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();

  std::set<std::string> defaulted(report.defaulted_inputs.begin(), report.defaulted_inputs.end());
  if (args.json) {
    nlohmann::json inputs = nlohmann::json::array();
    for (const ShapeProfile& p : report.resolved_shapes)
      inputs.push_back({{"name", p.input},
                        {"min", p.min},
                        {"opt", p.opt},
                        {"max", p.max},
                        {"defaulted", defaulted.count(p.input) > 0}});
    print_json({{"status", "ok"},
                {"model", args.model},
                {"engine", args.output},
                {"engine_bytes", bytes->size()},
                {"precision", args.precision},
                {"optimization_level", args.opt_level},
                {"inputs", inputs},
                {"nodes_before", report.nodes_before},
                {"nodes_after", report.nodes_after},
                {"wall_s", wall_s}});
    return kExitOk;
  }
  std::printf("inputs of %s:\n", args.model.c_str());
  for (const ShapeProfile& p : report.resolved_shapes)
    std::printf("  %-20s %s%s\n", p.input.c_str(), profile_text(p).c_str(),
                defaulted.count(p.input) ? "  (default profile)" : "");
  if (!defaulted.empty())
    std::printf(
        "note: dynamic dims without --shape got the default profile %lld:%lld:%lld"
        " \u2014 pass --shape NAME:MIN:OPT:MAX to narrow it\n",
        static_cast<long long>(kDefaultDynamicMin), static_cast<long long>(kDefaultDynamicOpt),
        static_cast<long long>(kDefaultDynamicMax));
  std::printf("wrote %s (%s, %zu nodes, %zu before optimisation) in %.2f s\n", args.output.c_str(),
              format_bytes(bytes->size()).c_str(), report.nodes_after, report.nodes_before, wall_s);
  return kExitOk;
}

}  // namespace kiln::cli
