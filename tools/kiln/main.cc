// `kiln`: build, run and inspect engines. Each subcommand lives in its own *_cmd.cc.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>

#include "cache_cmd.h"
#include "cli_common.h"
#include "commands.h"
#include "kiln/version.h"

namespace {

constexpr const char* kMainFooter = R"(
Run 'kiln COMMAND --help' for a command's options and examples.

Examples:
  kiln build model.onnx -o model.kiln --shape x:1x3x224x224:8x3x224x224:32x3x224x224
  kiln inspect model.kiln
  kiln run model.kiln --data test_data_set_0
  kiln bench model.kiln --batch 8 --threads 2

Exit codes: 0 ok, 1 mismatch or failed check, 2 bad usage or bad input, 3 unsupported model.)";

int kiln_main(int argc, char** argv) {
  using namespace kiln::cli;
  CLI::App app("kiln: compile ONNX models into engine files and run them", "kiln");
  app.set_version_flag("--version", "kiln " KILN_VERSION_STRING);
  app.require_subcommand(1);
  app.footer(kMainFooter);

  BuildArgs build_args;
  RunArgs run_args;
  InspectArgs inspect_args;
  CLI::App* build = add_build_command(app, build_args);
  CLI::App* run = add_run_command(app, run_args);
  CLI::App* inspect = add_inspect_command(app, inspect_args);
  BenchArgs bench_args;
  CLI::App* bench = add_bench_command(app, bench_args);
  CacheArgs cache_args;
  CLI::App* cache = add_cache_command(app, cache_args);
  ConformanceArgs conformance_args;
  CLI::App* conformance = add_conformance_command(app, conformance_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0: let CLI11 print them.
    if (e.get_exit_code() == 0) return app.exit(e);
    print_error(e.what());
    std::fprintf(stderr, "run 'kiln --help' or 'kiln COMMAND --help' for usage\n");
    return kExitBadInput;
  }
  if (build->parsed()) return run_build(build_args);
  if (run->parsed()) return run_run(run_args);
  if (inspect->parsed()) return run_inspect(inspect_args);
  if (bench->parsed()) return run_bench(bench_args);
  if (cache->parsed()) return run_cache(cache_args);
  if (conformance->parsed()) return run_conformance(conformance_args);
  print_error("no command given; expected build, run, bench, inspect, cache or conformance");
  return kExitBadInput;
}

}  // namespace

int main(int argc, char** argv) {
  // kiln's own code returns Status; what can still throw here is the standard library (memory).
  try {
    return kiln_main(argc, argv);
  } catch (const std::bad_alloc&) {
    kiln::cli::print_error("out of memory");
  } catch (const std::exception& e) {
    kiln::cli::print_error(std::string("unexpected exception: ") + e.what());
  }
  return kiln::cli::kExitBadInput;
}
