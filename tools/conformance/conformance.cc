#include "tools/conformance/conformance.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/importer.h"

namespace kiln::conformance {

namespace fs = std::filesystem;

Result<std::vector<std::string>> find_cases(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return not_found("conformance folder '" + root + "' does not exist");
  std::vector<std::string> cases;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file() && it->path().filename() == "model.onnx")
      cases.push_back(fs::relative(it->path().parent_path(), root).generic_string());
  }
  if (ec) return io_error("listing '" + root + "': " + ec.message());
  std::sort(cases.begin(), cases.end());
  return cases;
}

namespace {

Result<std::vector<Tensor>> read_tensors(const fs::path& dir, const std::string& prefix) {
  std::vector<Tensor> out;
  for (int i = 0;; ++i) {
    fs::path p = dir / (prefix + "_" + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    KILN_ASSIGN_OR_RETURN(Tensor t, onnx::read_tensor_file(p.string()));
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<fs::path> data_sets(const fs::path& case_dir) {
  std::vector<fs::path> sets;
  for (int k = 0; fs::is_directory(case_dir / ("test_data_set_" + std::to_string(k))); ++k)
    sets.push_back(case_dir / ("test_data_set_" + std::to_string(k)));
  return sets;
}

Status run_case_impl(const fs::path& dir, const std::string& backend, CaseResult* result) {
  std::vector<std::vector<Tensor>> inputs, outputs;
  for (const fs::path& set : data_sets(dir)) {
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> in, read_tensors(set, "input"));
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> out, read_tensors(set, "output"));
    inputs.push_back(std::move(in));
    outputs.push_back(std::move(out));
  }
  if (inputs.empty()) return invalid_data("no test_data_set_* folder");
  KILN_ASSIGN_OR_RETURN(ir::Graph graph, onnx::import_file((dir / "model.onnx").string()));
  // The profile of each input spans every data set's shape.
  BuildOptions options;
  for (size_t i = 0; i < graph.inputs.size() && i < inputs[0].size(); ++i) {
    ShapeProfile p;
    p.input = graph.values[graph.inputs[i]].name;
    p.min = p.opt = p.max = inputs[0][i].dims();
    for (const auto& set : inputs) {
      if (i >= set.size() || set[i].rank() != static_cast<int64_t>(p.min.size()))
        return invalid_data("data sets disagree on input " + std::to_string(i));
      for (size_t d = 0; d < p.min.size(); ++d) {
        p.min[d] = std::min(p.min[d], set[i].dims()[d]);
        p.max[d] = std::max(p.max[d], set[i].dims()[d]);
      }
    }
    options.shapes.push_back(std::move(p));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, build_engine((dir / "model.onnx").string(), options));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, Engine::load_from_memory(std::move(bytes)));
  RunOptions run;
  run.backend = backend;
  for (size_t k = 0; k < inputs.size(); ++k) {
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> got, engine->run(inputs[k], run));
    if (got.size() < outputs[k].size())
      return mismatch("engine produced " + std::to_string(got.size()) + " outputs, expected " +
                      std::to_string(outputs[k].size()));
    for (size_t o = 0; o < outputs[k].size(); ++o) {
      double abs_err = 0, rel_err = 0;
      std::string what = "data set " + std::to_string(k) + " output '" + engine->outputs()[o].name + "'";
      KILN_RETURN_IF_ERROR(compare_tensors(got[o], outputs[k][o], what, tolerance_for(outputs[k][o].dtype()),
                                           &abs_err, &rel_err));
      result->max_abs_err = std::max(result->max_abs_err, abs_err);
      result->max_rel_err = std::max(result->max_rel_err, rel_err);
    }
  }
  return Status();
}

Result<std::map<std::string, std::string>> read_expected_unsupported(const std::string& path) {
  std::map<std::string, std::string> out;
  if (path.empty()) return out;
  std::ifstream f(path);
  if (!f) return not_found("cannot open expected-unsupported list '" + path + "'");
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string name, reason;
    ss >> name;
    std::getline(ss, reason);
    reason.erase(0, reason.find_first_not_of(" \t"));
    if (reason.empty())
      return invalid_argument(path + ":" + std::to_string(lineno) + ": case '" + name + "' has no reason");
    out[name] = reason;
  }
  return out;
}

}  // namespace

CaseResult run_case(const std::string& case_dir, const std::string& name, const std::string& backend) {
  CaseResult r;
  r.name = name;
  Status s = run_case_impl(case_dir, backend, &r);
  r.status = s.ok() ? CaseStatus::kPassed : CaseStatus::kFailed;
  if (!s.ok()) r.message = s.to_string();
  return r;
}

Result<Report> run(const std::string& root, const Options& options) {
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> all, find_cases(root));
  KILN_ASSIGN_OR_RETURN(auto expected, read_expected_unsupported(options.expected_unsupported_file));
  std::vector<std::string> cases;
  try {
    std::regex re(options.filter.empty() ? ".*" : options.filter);
    for (auto& c : all)
      if (std::regex_search(c, re)) cases.push_back(c);
  } catch (const std::regex_error& e) {
    return invalid_argument("invalid --filter regex '" + options.filter + "': " + e.what());
  }
  Report report;
  report.cases.resize(cases.size());
  std::atomic<size_t> next{0}, done{0};
  std::mutex progress_mu;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < cases.size();) {
      CaseResult r = run_case((fs::path(root) / cases[i]).string(), cases[i], options.backend);
      if (auto it = expected.find(cases[i]); it != expected.end()) {
        r.listed_but_passed = r.status == CaseStatus::kPassed;
        if (!r.listed_but_passed) r.message = it->second;
        r.status = CaseStatus::kSkipped;
      }
      report.cases[i] = std::move(r);
      size_t d = done.fetch_add(1) + 1;
      if (options.progress) {
        std::lock_guard<std::mutex> lock(progress_mu);
        options.progress(d, cases.size());
      }
    }
  };
  int jobs = std::max(1, options.jobs);
  std::vector<std::thread> threads;
  for (int j = 1; j < jobs; ++j) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  for (const CaseResult& r : report.cases) {
    std::string folder = r.name.substr(0, r.name.find('/'));
    auto& counts = report.per_folder[folder];
    switch (r.status) {
      case CaseStatus::kPassed: ++report.passed; ++counts[0]; break;
      case CaseStatus::kFailed: ++report.failed; ++counts[1]; break;
      case CaseStatus::kSkipped: ++report.skipped; ++counts[2]; break;
    }
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::string Report::to_json() const {
  nlohmann::json j;
  j["passed"] = passed;
  j["failed"] = failed;
  j["skipped"] = skipped;
  j["seconds"] = seconds;
  for (const auto& [folder, c] : per_folder)
    j["per_folder"][folder] = {{"passed", c[0]}, {"failed", c[1]}, {"skipped", c[2]}};
  j["cases"] = nlohmann::json::array();
  for (const CaseResult& r : cases) {
    const char* st = r.status == CaseStatus::kPassed ? "passed" : r.status == CaseStatus::kFailed ? "failed" : "skipped";
    nlohmann::json c = {{"case", r.name}, {"status", st}, {"max_abs_err", r.max_abs_err}, {"max_rel_err", r.max_rel_err}};
    if (!r.message.empty()) c["message"] = r.message;
    if (r.listed_but_passed) c["listed_but_passed"] = true;
    j["cases"].push_back(std::move(c));
  }
  return j.dump(2);
}

}  // namespace kiln::conformance
