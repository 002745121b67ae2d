// Gathering `kiln run`'s input tensors and reference outputs from files.
//
// Inputs come from a test-data folder (DIR/input_<i>.pb, ONNX TensorProto files as in the ONNX
// backend tests) and from --input NAME=FILE arguments (.npy or .pb), which win over the folder.
// A folder file goes to the binding its TensorProto names when that name is a binding, else to
// the binding at index i. Reference outputs are DIR/output_<i>.pb, matched by index.
// Every failure is kInvalidArgument / kNotFound / kInvalidData (CLI exit 2) naming the file, the
// binding and what to do. Thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

#include "kiln/engine.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cli {

// Reads a tensor from a .npy or .pb (TensorProto) file, chosen by extension. `name` (may be
// null) receives the TensorProto's name, or "" for .npy.
Result<Tensor> read_tensor_any(const std::string& path, std::string* name = nullptr);

// The files DIR/<prefix><i>.pb for i = 0, 1, ..., in index order. Gaps (input_1.pb without
// input_0.pb) are kInvalidData; a missing folder is kNotFound; no matching files gives {}.
Result<std::vector<std::string>> list_indexed_files(const std::string& dir,
                                                    const std::string& prefix);

struct GatheredInputs {
  std::vector<Tensor> tensors;       // one per binding, in binding order
  std::vector<std::string> sources;  // the file each came from
};

// Collects one tensor per input binding from `data_dir` (may be empty: no folder) and
// `input_args` ("NAME=FILE" strings). Errors name the unknown or missing binding and list the
// engine's inputs. Dtype, rank and profile are left to Engine::check_inputs.
Result<GatheredInputs> gather_inputs(const std::vector<BindingInfo>& bindings,
                                     const std::string& data_dir,
                                     const std::vector<std::string>& input_args);

// The reference outputs DIR/output_<i>.pb, in index order ({} when there are none); `files`
// (may be null) receives their paths.
Result<std::vector<Tensor>> read_expected_outputs(const std::string& data_dir,
                                                  std::vector<std::string>* files);

}  // namespace kiln::cli
