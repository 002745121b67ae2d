// `kiln run`: run an engine on inputs from files, compare with reference outputs, save outputs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "cli_common.h"
#include "commands.h"
#include "compare.h"
#include "core/half.h"
#include "inputs.h"
#include "kiln/engine.h"
#include "kiln/runtime.h"
#include "npy.h"

namespace kiln::cli {
namespace {

constexpr const char* kRunFooter = R"(
Inputs come from --data DIR (DIR/input_<i>.pb, ONNX TensorProto files: each goes to the input its
proto names, else to input i) and from --input NAME=FILE (.npy or .pb), which wins over DIR.
When DIR also has output_<i>.pb, output i is compared with it element-wise
(|actual - expected| <= atol + rtol * |expected|, NaN equals NaN, same shape and dtype) and the
last line is "PASS max_abs_err=... max_rel_err=..." or "FAIL output 'NAME': ..." naming the
worst element.

Examples:
  kiln run model.kiln --data test_data_set_0
  kiln run model.kiln --input x=x.npy --save-outputs out/
  kiln run model.kiln --data test_data_set_0 --iterations 20 --json
  kiln run model.kiln --data test_data_set_0 --cuda-graph-strategy whole_graph_capture
  KILN_RUNTIME_CACHE=none kiln run model.kiln --data test_data_set_0 --backend cuda

Runtime settings flags are per-call settings (the highest layer); the run prints what each
setting resolved to and where it came from (flag, environment, default, builtin), also in --json.
On the cpu backend they are accepted and shown but do not change results.

Exit codes: 0 ran (and matched), 1 outputs differ, 2 bad usage or bad input (unknown or missing
input, wrong dtype or shape, shape outside the engine's profile, corrupt engine file),
3 engine uses something this kiln cannot run.)";

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// bf16 has no numpy dtype: saved outputs widen it to f32, which is exact. The copy is twice the
// output's size, so allocation can fail: a Status, not an abort (Tensor::zeros).
Result<Tensor> savable(const Tensor& t) {
  if (t.dtype() != DType::kBF16) return t;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(DType::kF32, t.dims()));
  const uint16_t* src = t.data_as<const uint16_t>();
  float* dst = out.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = bf16_to_f32(src[i]);
  return out;
}

struct Timings {
  double load_ms = 0, inputs_ms = 0, first_ms = 0, median_ms = 0, min_ms = 0;
  int iterations = 0;
};

}  // namespace

CLI::App* add_run_command(CLI::App& app, RunArgs& args) {
  CLI::App* cmd = app.add_subcommand("run", "Run an engine, compare with reference outputs");
  cmd->add_option("engine", args.engine, "The engine file (from kiln build)")->required();
  cmd->add_option("--data", args.data_dir,
                  "Test-data folder with input_<i>.pb and optionally output_<i>.pb");
  cmd->add_option("--input", args.inputs, "An input as NAME=FILE, FILE .npy or .pb (repeatable)");
  cmd->add_option("--backend", args.backend, "Backend to run on")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--device", args.device, "Device index for the cuda backend")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--rtol", args.rtol, "Relative tolerance of the comparison")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--atol", args.atol, "Absolute tolerance of the comparison")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--save-outputs", args.save_outputs,
                  "Folder to write every output to, as <name>.npy (created if missing)");
  cmd->add_option("--iterations", args.iterations,
                  "Run N times; report the median and minimum time per run")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_flag("--json", args.json, "Print a JSON object on stdout instead of text");
  add_settings_flags(cmd, args.settings);
  cmd->footer(kRunFooter);
  return cmd;
}

int run_run(const RunArgs& args) {
  using Clock = std::chrono::steady_clock;
  nlohmann::json j = {{"engine", args.engine},
                      {"backend", args.backend},
                      {"device", args.device},
                      {"errors", nlohmann::json::array()}};
  auto fail = [&](const Status& s) {
    if (args.json) {
      j["status"] = "error";
      j["errors"].push_back(status_json(s));
      print_json(j);
    }
    return report_error(s);
  };

  // Flags first: a bad setting name is bad usage, whatever the engine.
  Result<RuntimeSettings> call_settings = settings_from_flags(args.settings);
  if (!call_settings.ok()) return fail(call_settings.status());

  Timings tm;
  auto t0 = Clock::now();
  Result<std::shared_ptr<Engine>> loaded = Engine::load(args.engine);
  if (!loaded.ok()) return fail(loaded.status());
  const Engine& engine = **loaded;
  tm.load_ms = ms_since(t0);

  t0 = Clock::now();
  if (args.data_dir.empty() && args.inputs.empty() && !engine.inputs().empty())
    return fail(invalid_argument("no inputs given: pass --data DIR or --input NAME=FILE"));
  Result<GatheredInputs> gathered = gather_inputs(engine.inputs(), args.data_dir, args.inputs);
  if (!gathered.ok()) return fail(gathered.status());
  if (Status s = engine.check_inputs(gathered->tensors); !s.ok()) return fail(s);
  std::vector<std::string> expected_files;
  Result<std::vector<Tensor>> expected = read_expected_outputs(args.data_dir, &expected_files);
  if (!expected.ok()) return fail(expected.status());
  tm.inputs_ms = ms_since(t0);

  RunOptions options;
  options.backend = args.backend;
  options.device = args.device;
  options.settings = &*call_settings;
  // What the runs below resolve to: nothing changes the settings in between on this thread.
  ResolvedSettings settings = engine.resolve_settings(options);
  j["runtime_settings"] = settings_json(settings);
  std::vector<double> times;
  times.reserve(static_cast<size_t>(args.iterations));
  std::vector<Tensor> outputs;
  for (int i = 0; i < args.iterations; ++i) {
    t0 = Clock::now();
    Result<std::vector<Tensor>> r = engine.run(gathered->tensors, options);
    times.push_back(ms_since(t0));
    if (!r.ok()) return fail(r.status().with_context("running '" + engine.info().name + "'"));
    outputs = std::move(r).value();
  }
  tm.iterations = args.iterations;
  tm.first_ms = times.front();
  std::sort(times.begin(), times.end());
  tm.min_ms = times.front();
  tm.median_ms = times.size() % 2 ? times[times.size() / 2]
                                  : (times[times.size() / 2 - 1] + times[times.size() / 2]) / 2;
  j["timings"] = {{"load_ms", tm.load_ms},         {"inputs_ms", tm.inputs_ms},
                  {"iterations", tm.iterations},   {"first_run_ms", tm.first_ms},
                  {"median_run_ms", tm.median_ms}, {"min_run_ms", tm.min_ms}};

  for (const Tensor& t : outputs)
    if (t.device().type != DeviceType::kCpu)
      return fail(internal_error("the " + args.backend + " backend returned an output on " +
                                 t.device().to_string() + "; kiln run expects host outputs"));

  // Compare by index.
  const auto& out_bindings = engine.outputs();
  nlohmann::json outs = nlohmann::json::array();
  Tolerance tol{args.rtol, args.atol};
  bool compared = !expected->empty();
  double max_abs = 0, max_rel = 0;
  std::string fail_line;
  if (expected->size() > outputs.size())
    fail_line = "FAIL " + args.data_dir + " has " + std::to_string(expected->size()) +
                " reference outputs but the engine has " + std::to_string(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string name = i < out_bindings.size() ? out_bindings[i].name : std::to_string(i);
    nlohmann::json o = {{"name", name},
                        {"dtype", std::string(dtype_name(outputs[i].dtype()))},
                        {"shape", outputs[i].dims()}};
    if (i < expected->size()) {
      CompareResult c = compare_tensors(outputs[i], (*expected)[i], tol);
      o["reference"] = expected_files[i];
      o["match"] = c.ok;
      o["max_abs_err"] = c.max_abs_err;
      o["max_rel_err"] = c.max_rel_err;
      if (!c.ok) o["mismatch"] = c.message;
      max_abs = std::max(max_abs, c.max_abs_err);
      max_rel = std::max(max_rel, c.max_rel_err);
      if (!c.ok && fail_line.empty()) fail_line = "FAIL output '" + name + "': " + c.message;
    }
    outs.push_back(std::move(o));
  }
  j["outputs"] = outs;

  if (!args.save_outputs.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(args.save_outputs, ec);
    if (ec)
      return fail(io_error("cannot create --save-outputs folder '" + args.save_outputs +
                           "': " + ec.message()));
    std::set<std::string> used;  // two names may sanitise alike ("a/b", "a:b"): keep both
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::string stem = safe_file_name(j["outputs"][i]["name"].get<std::string>());
      if (!used.insert(stem).second) {
        stem += "_" + std::to_string(i);
        used.insert(stem);
      }
      std::string file = (std::filesystem::path(args.save_outputs) / (stem + ".npy")).string();
      Result<Tensor> out = savable(outputs[i]);
      if (!out.ok()) return fail(out.status());
      if (Status s = npy_write(file, *out); !s.ok()) return fail(s);
      j["outputs"][i]["saved"] = file;
    }
  }

  std::string result_line;
  int code = kExitOk;
  if (compared) {
    j["tolerance"] = {{"rtol", args.rtol}, {"atol", args.atol}};
    j["max_abs_err"] = max_abs;
    j["max_rel_err"] = max_rel;
    if (fail_line.empty()) {
      result_line =
          "PASS max_abs_err=" + format_number(max_abs) + " max_rel_err=" + format_number(max_rel);
    } else {
      result_line = fail_line;
      code = kExitMismatch;
      j["errors"].push_back(
          {{"code", "mismatch"}, {"message", fail_line.substr(5)}, {"exit_code", kExitMismatch}});
    }
  }
  j["status"] = !compared ? "ok" : code == kExitOk ? "pass" : "fail";
  // The backend's counters (cuda: kernels compiled, runtime-cache hits and misses, generic and
  // specialised launches, specialisations, swaps, CUDA graphs).
  j["backend_counters"] = (*loaded)->stats().backend_counters;
  if (args.json) {
    print_json(j);
    return code;
  }
  if (!compared)
    for (const auto& o : j["outputs"])
      std::printf("output '%s': %s %s\n", o["name"].get<std::string>().c_str(),
                  o["dtype"].get<std::string>().c_str(),
                  dims_to_string(o["shape"].get<Dims>()).c_str());
  if (!args.save_outputs.empty())
    std::printf("saved %zu outputs to %s\n", outputs.size(), args.save_outputs.c_str());
  std::printf("%s", settings_text(settings).c_str());
  if (tm.iterations == 1)
    std::printf("run on %s: %s (includes context creation); load %s\n", args.backend.c_str(),
                format_ms(tm.first_ms).c_str(), format_ms(tm.load_ms).c_str());
  else
    std::printf(
        "run on %s, %d iterations: median %s, min %s, first %s (includes context "
        "creation); load %s\n",
        args.backend.c_str(), tm.iterations, format_ms(tm.median_ms).c_str(),
        format_ms(tm.min_ms).c_str(), format_ms(tm.first_ms).c_str(),
        format_ms(tm.load_ms).c_str());
  if (!result_line.empty()) std::printf("%s\n", result_line.c_str());
  return code;
}

}  // namespace kiln::cli
