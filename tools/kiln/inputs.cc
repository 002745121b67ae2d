#include "inputs.h"

#include <charconv>
#include <filesystem>
#include <map>

#include "cli_common.h"
#include "npy.h"
#include "onnx/importer.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string binding_list(const std::vector<BindingInfo>& bindings) {
  std::string out;
  for (const BindingInfo& b : bindings) {
    out += out.empty() ? "" : ", ";
    out += "'" + b.name + "' (" + std::string(dtype_name(b.dtype)) + ")";
  }
  return out.empty() ? "none" : out;
}

int binding_index(const std::vector<BindingInfo>& bindings, const std::string& name) {
  for (size_t i = 0; i < bindings.size(); ++i)
    if (bindings[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace

Result<Tensor> read_tensor_any(const std::string& path, std::string* name) {
  if (name) name->clear();
  if (ends_with(path, ".npy")) return npy_read(path);
  if (ends_with(path, ".pb")) return onnx::read_tensor_file(path, name);
  return invalid_argument("cannot tell the format of '" + path +
                          "': input files must end in .npy (NumPy) or .pb (ONNX TensorProto)");
}

Result<std::vector<std::string>> list_indexed_files(const std::string& dir,
                                                    const std::string& prefix) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return not_found("data folder '" + dir + "' does not exist or is not a folder");
  std::map<int, std::string> found;
  fs::directory_iterator it(dir, ec), end;
  if (ec) return io_error("cannot list '" + dir + "': " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return io_error("cannot list '" + dir + "': " + ec.message());
    std::string file = it->path().filename().string();
    if (file.size() <= prefix.size() + 3 || file.compare(0, prefix.size(), prefix) != 0 ||
        !ends_with(file, ".pb"))
      continue;
    std::string_view digits(file.data() + prefix.size(), file.size() - prefix.size() - 3);
    int index = -1;
    auto [ptr, err] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (err != std::errc() || ptr != digits.data() + digits.size() || index < 0) continue;
    found[index] = it->path().string();
  }
  std::vector<std::string> files;
  for (const auto& [index, path] : found) {
    if (index != static_cast<int>(files.size()))
      return invalid_data("data folder '" + dir + "' has " + prefix + std::to_string(index) +
                          ".pb but no " + prefix + std::to_string(files.size()) +
                          ".pb: files must be numbered from 0 without gaps");
    files.push_back(path);
  }
  return files;
}

Result<GatheredInputs> gather_inputs(const std::vector<BindingInfo>& bindings,
                                     const std::string& data_dir,
                                     const std::vector<std::string>& input_args) {
  GatheredInputs g;
  g.tensors.resize(bindings.size());
  g.sources.resize(bindings.size());
  std::vector<bool> from_arg(bindings.size(), false);

  for (const std::string& arg : input_args) {
    KILN_ASSIGN_OR_RETURN(auto kv, parse_key_value(arg, "--input"));
    int idx = binding_index(bindings, kv.first);
    if (idx < 0)
      return invalid_argument("--input names '" + kv.first +
                              "', which is not an input of the engine; its inputs are " +
                              binding_list(bindings));
    if (from_arg[idx]) return invalid_argument("--input gives '" + kv.first + "' more than once");
    KILN_ASSIGN_OR_RETURN(g.tensors[idx], read_tensor_any(kv.second));
    g.sources[idx] = kv.second;
    from_arg[idx] = true;
  }

  if (!data_dir.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> files, list_indexed_files(data_dir, "input_"));
    if (files.empty() && input_args.empty() && !bindings.empty())
      return invalid_argument("data folder '" + data_dir +
                              "' has no input_<i>.pb files; pass inputs with --input NAME=FILE");
    std::vector<std::string> folder_source(bindings.size());
    for (size_t i = 0; i < files.size(); ++i) {
      std::string name;
      KILN_ASSIGN_OR_RETURN(Tensor t, onnx::read_tensor_file(files[i], &name));
      int idx = binding_index(bindings, name);
      if (idx < 0) {
        if (i >= bindings.size())
          return invalid_argument(files[i] + " (tensor '" + name +
                                  "') matches no input of the engine by name, and the engine "
                                  "has only " +
                                  std::to_string(bindings.size()) +
                                  " inputs: " + binding_list(bindings));
        idx = static_cast<int>(i);
      }
      if (!folder_source[idx].empty())
        return invalid_argument("both " + folder_source[idx] + " and " + files[i] +
                                " map to input '" + bindings[idx].name +
                                "' (by TensorProto name, else by index)");
      folder_source[idx] = files[i];
      if (from_arg[idx]) continue;  // --input wins over the folder
      g.tensors[idx] = std::move(t);
      g.sources[idx] = files[i];
    }
  }

  for (size_t i = 0; i < bindings.size(); ++i) {
    if (g.tensors[i].defined()) continue;
    const BindingInfo& b = bindings[i];
    std::string allowed = b.min.empty()
                              ? "any shape"
                              : "shapes " + dims_to_string(b.min) + " to " + dims_to_string(b.max);
    return invalid_argument("no data for input '" + b.name + "' (" +
                            std::string(dtype_name(b.dtype)) + ", " + allowed + "); pass --input " +
                            b.name + "=FILE.npy" + (data_dir.empty() ? " or --data DIR" : ""));
  }
  return g;
}

Result<std::vector<Tensor>> read_expected_outputs(const std::string& data_dir,
                                                  std::vector<std::string>* files) {
  std::vector<Tensor> out;
  if (data_dir.empty()) return out;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> paths, list_indexed_files(data_dir, "output_"));
  for (const std::string& p : paths) {
    KILN_ASSIGN_OR_RETURN(Tensor t, onnx::read_tensor_file(p, nullptr));
    out.push_back(std::move(t));
  }
  if (files) *files = std::move(paths);
  return out;
}

}  // namespace kiln::cli
