// `kiln bench`: per-call latency and throughput of an engine on random inputs.
#include <chrono>
#include <cstdio>

#include "bench_inputs.h"
#include "bench_runner.h"
#include "bench_stats.h"
#include "cli_common.h"
#include "commands.h"
#include "kiln/engine.h"
#include "progress.h"

namespace kiln::cli {
namespace {

constexpr const char* kBenchFooter = R"(
Inputs are random with a fixed seed (--seed): floating-point values uniform in [-1, 1), integer
inputs 0 or 1, at each input's profile opt shape (kiln inspect shows the profiles). --batch N
sets the first dim of every input whose first dim is dynamic; --shape NAME:DIMS sets one input's
shape and wins over --batch.

The first call is timed on its own: it creates the execution context (and, on cuda, JIT-compiles
or loads kernels). Then each thread runs --warmup calls, and the threads measure together until
at least --iterations calls and at least --min-time seconds are done (at most 10 million calls).
A call's latency is the wall time of Engine::run. On cuda the inputs start on the host and the
outputs come back to it, so every call is synchronous and its time includes those copies.
With --threads N, N threads call the one engine concurrently; latencies are per call and the
throughput is all threads' calls per second. Progress goes to stderr after the first second.

Runtime settings flags are per-call settings (the highest layer); what each setting resolved to
and where it came from (flag, environment, default, builtin) is printed, and is in --json.

Examples:
  kiln bench model.kiln
  kiln bench model.kiln --batch 8 --iterations 200 --min-time 2
  kiln bench model.kiln --shape x:1x3x224x224 --threads 4 --json
  kiln bench model.kiln --backend cuda --cuda-graph-strategy whole_graph_capture
  KILN_KERNEL_SPECIALIZATION=eager kiln bench model.kiln --backend cuda --runtime-cache none

Exit codes: 0 ok, 2 bad usage or bad input (corrupt engine, shape outside the profile, invalid
setting name), 3 engine uses something this kiln cannot run.)";

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

nlohmann::json stats_json(const EngineStats& s) {
  return {{"calls", s.calls},
          {"contexts_created", s.contexts_created},
          {"contexts_reused", s.contexts_reused},
          {"contexts_evicted", s.contexts_evicted},
          {"calls_per_context", s.calls_per_context},
          {"backend_counters", s.backend_counters}};
}

nlohmann::json latency_json(const LatencySummary& l) {
  return {{"count", l.count},  {"median", l.median_ms}, {"p90", l.p90_ms},
          {"p99", l.p99_ms},   {"min", l.min_ms},       {"max", l.max_ms},
          {"mean", l.mean_ms}, {"stddev", l.stddev_ms}};
}

// Latencies can be microseconds: "3.69 us", "0.412 ms", "12.3 ms".
std::string latency_text(double ms) {
  if (ms >= 0.1) return format_ms(ms);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g us", ms * 1000);
  return buf;
}

std::string rate_text(double per_s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, per_s >= 100 ? "%.0f" : "%.3g", per_s);
  return buf;
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchArgs& args) {
  CLI::App* cmd = app.add_subcommand("bench", "Measure an engine's latency and throughput");
  cmd->add_option("engine", args.engine, "The engine file (from kiln build)")->required();
  cmd->add_option("--backend", args.backend, "Backend to run on")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--device", args.device, "Device index for the cuda backend")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--batch", args.batch, "First dim of every input whose first dim is dynamic")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--shape", args.shapes,
                  "An input's shape as NAME:DIMS, like x:8x3x224x224 (repeatable)");
  cmd->add_option("--warmup", args.warmup, "Unmeasured calls per thread before measuring")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cmd->add_option("--iterations", args.iterations, "Measure at least N calls (all threads)")
      ->check(CLI::Range(int64_t{1}, kMaxMeasuredCalls))
      ->capture_default_str();
  cmd->add_option("--min-time", args.min_time_s, "Measure for at least this many seconds")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  cmd->add_option("--threads", args.threads, "Threads calling the engine concurrently")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--seed", args.seed, "Seed of the random inputs")->capture_default_str();
  cmd->add_flag("--json", args.json, "Print a JSON object on stdout instead of text");
  add_settings_flags(cmd, args.settings);
  cmd->footer(kBenchFooter);
  return cmd;
}

int run_bench(const BenchArgs& args) {
  using Clock = std::chrono::steady_clock;
  nlohmann::json j = {{"engine", args.engine}, {"backend", args.backend},
                      {"device", args.device}, {"threads", args.threads},
                      {"seed", args.seed},     {"errors", nlohmann::json::array()}};
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

  auto t0 = Clock::now();
  Result<std::shared_ptr<Engine>> loaded = Engine::load(args.engine);
  if (!loaded.ok()) return fail(loaded.status());
  const Engine& engine = **loaded;
  const double load_ms = ms_since(t0);
  j["engine_name"] = engine.info().name;

  Result<std::vector<Dims>> shapes = bench_shapes(engine.inputs(), args.shapes, args.batch);
  if (!shapes.ok()) return fail(shapes.status());
  Result<std::vector<Tensor>> inputs = random_inputs(engine.inputs(), *shapes, args.seed);
  if (!inputs.ok()) return fail(inputs.status());
  if (Status s = engine.check_inputs(*inputs); !s.ok()) return fail(s);
  nlohmann::json ins = nlohmann::json::array();
  for (size_t i = 0; i < inputs->size(); ++i)
    ins.push_back({{"name", engine.inputs()[i].name},
                   {"dtype", std::string(dtype_name((*inputs)[i].dtype()))},
                   {"shape", (*inputs)[i].dims()}});
  j["inputs"] = ins;

  RunOptions options;
  options.backend = args.backend;
  options.device = args.device;
  options.settings = &*call_settings;
  const ResolvedSettings resolved = engine.resolve_settings(options);
  j["runtime_settings"] = settings_json(resolved);

  // The first call creates the execution context: timed on its own.
  t0 = Clock::now();
  Result<std::vector<Tensor>> first = engine.run(*inputs, options);
  const double first_ms = ms_since(t0);
  if (!first.ok()) return fail(first.status().with_context("running '" + engine.info().name + "'"));

  BenchPlan plan;
  plan.warmup = args.warmup;
  plan.iterations = args.iterations;
  plan.min_time_s = args.min_time_s;
  plan.threads = args.threads;
  Result<BenchMeasurement> m = [&] {
    ProgressReporter bar(true);
    const Clock::time_point bench_start = Clock::now();
    return bench_measure(engine, *inputs, options, plan, [&](std::string_view stage, double f) {
      if (Clock::now() - bench_start >= std::chrono::seconds(1)) bar.update(stage, f);
    });
  }();
  if (!m.ok()) return fail(m.status().with_context("running '" + engine.info().name + "'"));
  const LatencySummary lat = summarize_latencies(m->latencies_ms);
  const EngineStats stats = engine.stats();

  j["load_ms"] = load_ms;
  j["first_call_ms"] = first_ms;
  j["warmup_per_thread"] = args.warmup;
  j["latency_ms"] = latency_json(lat);
  j["measured_s"] = m->wall_s;
  j["throughput_per_s"] = m->throughput_per_s;
  if (args.batch > 0) {
    j["batch"] = args.batch;
    j["samples_per_s"] = m->throughput_per_s * static_cast<double>(args.batch);
  }
  j["synchronous"] = true;  // outputs come back to the host before a call returns
  j["engine_stats"] = stats_json(stats);
  j["status"] = "ok";
  if (args.json) {
    print_json(j);
    return kExitOk;
  }

  std::printf("engine '%s' (%s) on %s", engine.info().name.c_str(), args.engine.c_str(),
              args.backend.c_str());
  if (args.backend == "cuda") std::printf(":%d", args.device);
  std::printf(", %d thread%s\n", args.threads, args.threads == 1 ? "" : "s");
  for (const auto& in : j["inputs"])
    std::printf("  input %-20s %s %s (random, seed %llu)\n", in["name"].get<std::string>().c_str(),
                in["dtype"].get<std::string>().c_str(),
                dims_to_string(in["shape"].get<Dims>()).c_str(),
                static_cast<unsigned long long>(args.seed));
  std::printf("%s", settings_text(resolved).c_str());
  if (args.backend == "cuda")
    std::printf(
        "note: on cuda each call copies its inputs to the device and its outputs back to the "
        "host, so it is synchronous and its time includes the copies\n");
  std::printf("load        %s\n", format_ms(load_ms).c_str());
  std::printf("first call  %s (includes execution-context creation)\n",
              latency_text(first_ms).c_str());
  std::printf("latency     median %s  p90 %s  p99 %s  min %s  mean %s  (%lld calls, %d warmup",
              latency_text(lat.median_ms).c_str(), latency_text(lat.p90_ms).c_str(),
              latency_text(lat.p99_ms).c_str(), latency_text(lat.min_ms).c_str(),
              latency_text(lat.mean_ms).c_str(), static_cast<long long>(lat.count), args.warmup);
  std::printf("%s)\n", args.threads > 1 ? " per thread" : "");
  std::printf("throughput  %s inferences/s", rate_text(m->throughput_per_s).c_str());
  if (args.batch > 0)
    std::printf(" (batch %lld: %s samples/s)", static_cast<long long>(args.batch),
                rate_text(m->throughput_per_s * static_cast<double>(args.batch)).c_str());
  std::printf(" over %.2f s%s\n", m->wall_s, args.threads > 1 ? ", all threads" : "");
  std::printf("engine      %llu calls, %llu context%s created, %llu reused\n",
              static_cast<unsigned long long>(stats.calls),
              static_cast<unsigned long long>(stats.contexts_created),
              stats.contexts_created == 1 ? "" : "s",
              static_cast<unsigned long long>(stats.contexts_reused));
  std::string counters;  // the backend's non-zero counters (CUDA graph captures, replays, ...)
  for (const auto& [name, value] : stats.backend_counters)
    if (value != 0) counters += (counters.empty() ? "" : " ") + name + "=" + std::to_string(value);
  if (!counters.empty()) std::printf("backend     %s\n", counters.c_str());
  return kExitOk;
}

}  // namespace kiln::cli
