// `kiln conformance DIR`: runs an ONNX backend-test folder through build -> engine -> run -> compare.
#include <cstdio>
#include <fstream>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "progress.h"
#include "tools/conformance/conformance.h"

namespace kiln::cli {

CLI::App* add_conformance_command(CLI::App& app, ConformanceArgs& args) {
  CLI::App* cmd = app.add_subcommand("conformance", "Run an ONNX backend-test-style suite and check every case");
  cmd->add_option("DIR", args.dir, "Folder of cases (each a folder with model.onnx and test_data_set_K/)")
      ->required();
  cmd->add_option("--backend", args.backend, "Backend to run on: cpu or cuda")->capture_default_str();
  cmd->add_option("--report", args.report, "Write a JSON report (status, message and errors per case) here");
  cmd->add_option("--filter", args.filter, "Only cases whose name (e.g. node/test_abs) matches this regex");
  cmd->add_option("--jobs,-j", args.jobs, "Cases to run at once (default: the number of cores)");
  cmd->add_option("--expected-unsupported", args.expected_unsupported,
                  "File listing cases to skip, one per line: CASE REASON (default: "
                  "tests/conformance/expected_unsupported.txt of the source tree, if present)");
  cmd->add_flag("--verbose,-v", args.verbose, "Print every failing case's message");
  cmd->footer(R"(
Each case's engine is built with a shape profile spanning its data sets, run on the backend, and
compared per output dtype (f32: rtol 1e-3 atol 1e-5; f16: rtol 1e-2 atol 1e-3; integers exact).
A case on the expected-unsupported list is skipped with its reason; if it passes anyway, the run
says so, so the list can shrink. Ends with 'N passed, N failed, N skipped'.
Exit codes: 0 when no case failed, 1 when some failed, 2 bad usage.

Example:
  kiln conformance build/testdata/onnx-conformance --report conformance.json)");
  return cmd;
}

int run_conformance(const ConformanceArgs& args) {
  conformance::Options opt;
  opt.backend = args.backend;
  opt.filter = args.filter;
  opt.jobs = args.jobs > 0 ? args.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  opt.expected_unsupported_file = args.expected_unsupported;
#ifdef KILN_SOURCE_DIR_FOR_CLI
  if (opt.expected_unsupported_file.empty()) {
    std::string def = KILN_SOURCE_DIR_FOR_CLI "/tests/conformance/expected_unsupported.txt";
    if (std::ifstream(def)) opt.expected_unsupported_file = def;
  }
#endif
  ProgressReporter progress(true);
  opt.progress = [&](size_t done, size_t total) {
    progress.update("conformance " + std::to_string(done) + "/" + std::to_string(total),
                    static_cast<double>(done) / static_cast<double>(total));
  };
  Result<conformance::Report> report = conformance::run(args.dir, opt);
  progress.finish();
  if (!report.ok()) return report_error(report.status());
  for (const auto& c : report->cases) {
    if (c.status == conformance::CaseStatus::kFailed)
      std::printf("FAIL %s%s%s\n", c.name.c_str(), args.verbose ? ": " : "", args.verbose ? c.message.c_str() : "");
    if (c.listed_but_passed)
      std::printf("NOW PASSES %s (remove it from the expected-unsupported list)\n", c.name.c_str());
  }
  for (const auto& [folder, n] : report->per_folder)
    std::printf("%-20s %zu passed, %zu failed, %zu skipped\n", folder.c_str(), n[0], n[1], n[2]);
  std::printf("wall time %.1f s on %d jobs\n", report->seconds, opt.jobs);
  if (!args.report.empty()) {
    std::ofstream f(args.report);
    f << report->to_json() << "\n";
    if (!f) return report_error(io_error("cannot write report '" + args.report + "'"));
  }
  std::printf("%zu passed, %zu failed, %zu skipped\n", report->passed, report->failed, report->skipped);
  return report->failed ? kExitMismatch : kExitOk;
}

}  // namespace kiln::cli
