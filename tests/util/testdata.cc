#include "tests/util/testdata.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <system_error>

#include "core/half.h"
#include "onnx/importer.h"

namespace kiln::test {

namespace fs = std::filesystem;

fs::path testdata_dir() {
  const char* env = std::getenv("KILN_TESTDATA");
  return fs::path(env && *env ? env : KILN_TESTDATA_DIR);
}

fs::path model_dir(const std::string& name) { return testdata_dir() / "models" / name; }

std::vector<std::string> shared_model_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(testdata_dir() / "models", ec))
    if (fs::exists(e.path() / "model.onnx")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  if (names.empty()) names.push_back("missing_test_data");
  return names;
}

std::vector<Tensor> read_tensors(const fs::path& dir, const std::string& prefix) {
  std::vector<Tensor> out;
  for (int i = 0;; ++i) {
    const fs::path p = dir / (prefix + "_" + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    Result<Tensor> t = onnx::read_tensor_file(p.string());
    EXPECT_TRUE(t.ok()) << p << ": " << t.status().to_string();
    if (!t.ok()) break;
    out.push_back(std::move(t).value());
  }
  return out;
}

fs::path data_set_dir(const fs::path& model_dir, int k) {
  return model_dir / ("test_data_set_" + std::to_string(k));
}

DataSet read_data_set(const fs::path& set_dir) {
  return DataSet{read_tensors(set_dir, "input"), read_tensors(set_dir, "output")};
}

std::vector<DataSet> read_data_sets(const fs::path& model_dir) {
  std::vector<DataSet> sets;
  for (int k = 0; fs::exists(data_set_dir(model_dir, k)); ++k)
    sets.push_back(read_data_set(data_set_dir(model_dir, k)));
  return sets;
}

Result<BuildOptions> shape_profiles(const fs::path& model_dir, const std::vector<DataSet>& sets) {
  if (sets.empty())
    return invalid_argument("shape_profiles: no data set for " + model_dir.string());
  KILN_ASSIGN_OR_RETURN(ir::Graph g, onnx::import_file((model_dir / "model.onnx").string()));
  const std::vector<Tensor>& first = sets[0].inputs;
  BuildOptions options;
  for (size_t i = 0; i < first.size(); ++i) {
    if (i >= g.inputs.size())
      return invalid_argument("shape_profiles: data set has " + std::to_string(first.size()) +
                              " inputs, " + model_dir.string() + " has " +
                              std::to_string(g.inputs.size()));
    ShapeProfile p{g.values[g.inputs[i]].name, first[i].dims(), first[i].dims(), first[i].dims()};
    for (const DataSet& set : sets) {
      if (i >= set.inputs.size() || set.inputs[i].dims().size() != p.min.size())
        return invalid_argument("shape_profiles: data sets of " + model_dir.string() +
                                " differ in inputs or ranks at input " + std::to_string(i));
      for (size_t d = 0; d < p.min.size(); ++d) {
        p.min[d] = std::min(p.min[d], set.inputs[i].dims()[d]);
        p.max[d] = std::max(p.max[d], set.inputs[i].dims()[d]);
      }
    }
    options.shapes.push_back(std::move(p));
  }
  return options;
}

Result<std::vector<uint8_t>> build_static_engine(const fs::path& model_dir,
                                                 const std::vector<Tensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(BuildOptions options, shape_profiles(model_dir, {DataSet{inputs, {}}}));
  return build_engine((model_dir / "model.onnx").string(), options);
}

namespace {

// Element `i` of a host tensor as a double; NaN for a dtype it does not read.
double element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kF32: return t.data_as<const float>()[i];
    case DType::kF64: return t.data_as<const double>()[i];
    case DType::kF16: return f16_to_f32(t.data_as<const uint16_t>()[i]);
    case DType::kBF16: return bf16_to_f32(t.data_as<const uint16_t>()[i]);
    case DType::kI64: return static_cast<double>(t.data_as<const int64_t>()[i]);
    case DType::kI32: return t.data_as<const int32_t>()[i];
    case DType::kI8: return t.data_as<const int8_t>()[i];
    case DType::kU8:
    case DType::kBool: return t.data_as<const uint8_t>()[i];
    default: return std::nan("");
  }
}

bool readable(DType dt) {
  switch (dt) {
    case DType::kF32: case DType::kF64: case DType::kF16: case DType::kBF16: case DType::kI64:
    case DType::kI32: case DType::kI8: case DType::kU8: case DType::kBool: return true;
    default: return false;
  }
}

}  // namespace

Closeness closeness(const Tensor& got, const Tensor& want, double rtol, double atol) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (got.dtype() != want.dtype() || got.dims() != want.dims() || !readable(want.dtype()))
    return Closeness{kInf, kInf};
  Closeness c;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double a = element(got, i), b = element(want, i);
    if (std::isnan(a) && std::isnan(b)) continue;
    if (a == b) continue;  // also equal infinities
    const double err = std::fabs(a - b);
    if (std::isnan(err)) {  // NaN against a number
      c.violation = std::max(c.violation, 1.0);
      continue;
    }
    c.max_abs = std::max(c.max_abs, err);
    c.violation = std::max(c.violation, err - (atol + rtol * std::fabs(b)));
  }
  return c;
}

Closeness expect_close_to_reference(const Tensor& got, const Tensor& want, double rtol,
                                    double atol, const std::string& where) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(got.dtype(), want.dtype()) << where;
  EXPECT_EQ(got.dims(), want.dims()) << where;
  if (got.dtype() != want.dtype() || got.dims() != want.dims()) return Closeness{kInf, kInf};
  Closeness c;
  if (want.dtype() == DType::kF32) {
    c = closeness(got, want, rtol, atol);
  } else if (want.dtype() == DType::kI64) {
    c = closeness(got, want, 0, 0);
  } else {
    ADD_FAILURE() << where << ": unexpected output dtype " << dtype_name(want.dtype());
    return Closeness{kInf, kInf};
  }
  EXPECT_LE(c.violation, 0) << where << " max_abs_err " << c.max_abs;
  return c;
}

std::vector<std::filesystem::path> model_case_dirs(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::exists(root)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().filename() == "model.onnx") out.push_back(e.path().parent_path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace kiln::test
