// The shared test data (models/<name>/model.onnx with test_data_set_K/{input,output}_N.pb, as
// onnx's model zoo lays it out) for tests on the host and on the GPU, and the comparisons the
// model tests make against its reference outputs. Test-only: failures to read a file are
// reported through gtest (EXPECT), so a test that goes on sees what was read and fails.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::test {

// The folder the shared test data is unpacked in: $KILN_TESTDATA when set and not empty (test
// binaries may run on another machine than the one that built them), else the build's
// KILN_TESTDATA_DIR.
std::filesystem::path testdata_dir();

// testdata_dir()/models/<name>: the folder holding model.onnx and its test_data_set_K folders.
std::filesystem::path model_dir(const std::string& name);

// The names of the shared models (the folders under testdata_dir()/models holding a model.onnx),
// sorted. When there are none it returns {"missing_test_data"}, so that a suite instantiated over
// it fails on a missing folder instead of silently running no test.
std::vector<std::string> shared_model_names();
// Every folder under `root` that holds a model.onnx (ONNX backend-test layout), sorted; empty
// when `root` does not exist.
std::vector<std::filesystem::path> model_case_dirs(const std::filesystem::path& root);

// <dir>/<prefix>_0.pb, <prefix>_1.pb, ... up to the first index with no file. A file that does
// not parse fails the test (EXPECT) and ends the list there.
std::vector<Tensor> read_tensors(const std::filesystem::path& dir, const std::string& prefix);

// <model_dir>/test_data_set_<k>.
std::filesystem::path data_set_dir(const std::filesystem::path& model_dir, int k);

struct DataSet {
  std::vector<Tensor> inputs;   // input_N.pb
  std::vector<Tensor> outputs;  // output_N.pb: the reference outputs
};

// One data set (read_tensors of its inputs and outputs).
DataSet read_data_set(const std::filesystem::path& set_dir);

// Every data set of a model folder: test_data_set_0, 1, ... up to the first missing one.
std::vector<DataSet> read_data_sets(const std::filesystem::path& model_dir);

// Build options with one shape profile per graph input of <model_dir>/model.onnx that covers
// every data set: min and max over the sets per dimension, opt the first set's shape. With one
// set the shapes are static. Fails when the model does not import, `sets` is empty, or a set's
// inputs do not match the graph's inputs in number or rank.
Result<BuildOptions> shape_profiles(const std::filesystem::path& model_dir,
                                    const std::vector<DataSet>& sets);

// The engine of <model_dir>/model.onnx at fp32 built with `inputs`' shapes as its only shapes.
Result<std::vector<uint8_t>> build_static_engine(const std::filesystem::path& model_dir,
                                                 const std::vector<Tensor>& inputs);

// How far `got` is from `want` with an absolute and relative tolerance.
struct Closeness {
  // max over elements of |got - want| - (atol + rtol * |want|): <= 0 when every element is
  // within tolerance. NaN matches NaN; NaN against a number counts as 1 (out of tolerance).
  double violation = 0;
  double max_abs = 0;  // max |got - want| over the elements that are not both NaN
};

// Compares two host tensors element by element as doubles (f32, f64, f16, bf16, i64, i32, i8,
// u8, bool). A dtype or dims mismatch, or another dtype, gives an infinite violation.
Closeness closeness(const Tensor& got, const Tensor& want, double rtol, double atol);

// Checks one host output against its reference output as the model tests do: the same dtype
// and dims, f32 within `rtol` and `atol`, i64 exact (the shared models' output types); another
// dtype fails. Failures are EXPECTs that name `where` and the max abs error. Returns the
// closeness (infinite on a dtype or dims mismatch).
Closeness expect_close_to_reference(const Tensor& got, const Tensor& want, double rtol,
                                    double atol, const std::string& where);

}  // namespace kiln::test
