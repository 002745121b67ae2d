// The subcommands of `kiln`. Each registers its options on the CLI11 app (add_*_command) and then,
// if the user chose it, runs (run_*) and returns the process exit code (cli_common.h). Option
// values live in the Args structs, which must outlive parsing.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "settings_flags.h"

namespace kiln::cli {

struct BuildArgs {
  std::string model;
  std::string output;
  std::vector<std::string> shapes;  // NAME:MIN:OPT:MAX or NAME:DIMS
  std::string precision = "fp32";
  std::string name;
  int opt_level = 3;
  std::vector<std::string> metadata;  // KEY=VALUE
  bool json = false;
};
CLI::App* add_build_command(CLI::App& app, BuildArgs& args);
int run_build(const BuildArgs& args);

struct RunArgs {
  std::string engine;
  std::string data_dir;
  std::vector<std::string> inputs;  // NAME=FILE
  std::string backend = "cpu";
  int device = 0;
  double rtol = 1e-3;
  double atol = 1e-4;
  std::string save_outputs;
  int iterations = 1;
  bool json = false;
  SettingsFlags settings;
};
CLI::App* add_run_command(CLI::App& app, RunArgs& args);
int run_run(const RunArgs& args);

struct BenchArgs {
  std::string engine;
  std::string backend = "cpu";
  int device = 0;
  std::vector<std::string> shapes;  // NAME:DIMS
  int64_t batch = 0;                // 0: the profiles' opt shapes
  int warmup = 10;                  // calls per thread before measuring
  int64_t iterations = 50;          // at least this many measured calls, all threads together
  double min_time_s = 1.0;          // and at least this long
  int threads = 1;
  uint64_t seed = 0;
  bool json = false;
  SettingsFlags settings;
};
CLI::App* add_bench_command(CLI::App& app, BenchArgs& args);
int run_bench(const BenchArgs& args);

struct InspectArgs {
  std::string engine;
  bool json = false;
};
CLI::App* add_inspect_command(CLI::App& app, InspectArgs& args);
int run_inspect(const InspectArgs& args);

struct ConformanceArgs {
  std::string dir;
  std::string backend = "cpu";
  std::string report;
  std::string filter;
  int jobs = 0;
  std::string expected_unsupported;
  bool verbose = false;
};
CLI::App* add_conformance_command(CLI::App& app, ConformanceArgs& args);
int run_conformance(const ConformanceArgs& args);

}  // namespace kiln::cli
