// The ONNX conformance runner: builds, runs and checks every case of an ONNX backend-test-style
// folder (case/model.onnx, case/test_data_set_K/{input,output}_N.pb) on one backend.
//
// Used by `kiln conformance` and by CTest. Thread-safe: cases run on `jobs` threads.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::conformance {

// Per-dtype comparison tolerances, stated in one place: |got - want| <= atol + rtol * |want|.
struct Tolerance {
  double rtol = 0, atol = 0;
};
Tolerance tolerance_for(DType dtype);

// Compares one output; ok, or kMismatch naming `what` and the worst element.
Status compare_tensors(const Tensor& got, const Tensor& want, const std::string& what, Tolerance tol,
                       double* max_abs_err = nullptr, double* max_rel_err = nullptr);

enum class CaseStatus { kPassed, kFailed, kSkipped };

struct CaseResult {
  std::string name;       // "node/test_abs"
  CaseStatus status = CaseStatus::kFailed;
  std::string message;    // error or skip reason
  double max_abs_err = 0, max_rel_err = 0;
  bool listed_but_passed = false;  // on the expected-unsupported list, yet passes
};

struct Options {
  std::string backend = "cpu";
  std::string filter;            // ECMAScript regex on the case name; empty = all
  int jobs = 1;
  std::string expected_unsupported_file;  // lines "case  reason"; '#' comments
  std::function<void(size_t done, size_t total)> progress;
};

struct Report {
  std::vector<CaseResult> cases;
  size_t passed = 0, failed = 0, skipped = 0;
  std::map<std::string, std::array<size_t, 3>> per_folder;  // folder -> passed, failed, skipped
  double seconds = 0;
  std::string to_json() const;
};

// Finds every case under `root` (folders holding a model.onnx), sorted by name.
Result<std::vector<std::string>> find_cases(const std::string& root);

Result<Report> run(const std::string& root, const Options& options);

// Runs one case folder; never returns an error Status: failures are in the result.
CaseResult run_case(const std::string& case_dir, const std::string& name, const std::string& backend);

}  // namespace kiln::conformance
