#include "kiln/builder.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string_view>

#include "compiler/passes.h"
#include "format/engine_file.h"
#include "ir/shape_inference.h"
#include "kiln/version.h"
#include "onnx/importer.h"

namespace kiln {

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kFp16: return "fp16";
    case Precision::kBf16: return "bf16";
  }
  return "invalid";
}

Result<Precision> precision_parse(std::string_view name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "fp16") return Precision::kFp16;
  if (name == "bf16") return Precision::kBf16;
  return invalid_argument("invalid precision '" + std::string(name) + "'; expected fp32|fp16|bf16");
}

namespace {

constexpr size_t kMaxFoldBytes = size_t{64} << 20;

// Resolves the shape profile of every graph input: the caller's, or a default for dynamic dims.
Status resolve_profiles(const ir::Graph& g, const BuildOptions& options,
                        std::vector<format::Binding>* bindings, BuildReport* report) {
  std::map<std::string, const ShapeProfile*> given;
  for (const ShapeProfile& p : options.shapes) {
    if (!g.find_value(p.input) ||
        std::find(g.inputs.begin(), g.inputs.end(), *g.find_value(p.input)) == g.inputs.end()) {
      std::string names;
      for (int id : g.inputs) names += (names.empty() ? "" : ", ") + g.values[id].name;
      return invalid_argument("--shape names '" + p.input + "', which is not an input of the model (inputs: " +
                              names + ")");
    }
    given[p.input] = &p;
  }
  for (int id : g.inputs) {
    const ir::Value& v = g.values[id];
    format::Binding b;
    b.name = v.name;
    b.value = id;
    b.dtype = v.dtype;
    b.shape = v.shape;
    if (v.dtype == DType::kUndefined)
      return unsupported("input '" + v.name + "' has no declared element type");
    auto it = given.find(v.name);
    if (it != given.end()) {
      const ShapeProfile& p = *it->second;
      size_t rank = p.min.size();
      if (p.opt.size() != rank || p.max.size() != rank)
        return invalid_argument("shape profile of '" + v.name + "': min, opt and max must have the same rank");
      if (v.shape.rank_known && v.shape.dims.size() != rank)
        return invalid_argument("shape profile of '" + v.name + "' has rank " + std::to_string(rank) +
                                " but the input is " + v.shape.to_string());
      for (size_t d = 0; d < rank; ++d) {
        if (p.min[d] < 0 || p.min[d] > p.opt[d] || p.opt[d] > p.max[d])
          return invalid_argument("shape profile of '" + v.name + "': need 0 <= min <= opt <= max in dim " +
                                  std::to_string(d) + ", got " + std::to_string(p.min[d]) + ":" +
                                  std::to_string(p.opt[d]) + ":" + std::to_string(p.max[d]));
        if (v.shape.rank_known && v.shape.dims[d].is_known() &&
            (p.min[d] != v.shape.dims[d].value || p.max[d] != v.shape.dims[d].value))
          return invalid_argument("shape profile of '" + v.name + "' varies dim " + std::to_string(d) +
                                  ", which the model fixes at " + std::to_string(v.shape.dims[d].value));
      }
      b.min = p.min;
      b.opt = p.opt;
      b.max = p.max;
      if (!v.shape.rank_known) {
        b.shape.rank_known = true;
        b.shape.dims.assign(rank, ir::Dim{});
      }
    } else if (v.shape.rank_known) {
      bool dynamic = false;
      for (const ir::Dim& d : v.shape.dims) {
        if (d.is_known()) {
          b.min.push_back(d.value);
          b.opt.push_back(d.value);
          b.max.push_back(d.value);
        } else {
          dynamic = true;
          b.min.push_back(kDefaultDynamicMin);
          b.opt.push_back(kDefaultDynamicOpt);
          b.max.push_back(kDefaultDynamicMax);
        }
      }
      if (dynamic && report) report->defaulted_inputs.push_back(v.name);
    } else {
      return invalid_argument("input '" + v.name + "' has unknown rank: give its shape with --shape " + v.name +
                              ":MIN:OPT:MAX");
    }
    if (report) report->resolved_shapes.push_back(ShapeProfile{b.name, b.min, b.opt, b.max});
    bindings->push_back(std::move(b));
  }
  return Status();
}

Result<std::vector<uint8_t>> build_from_graph(ir::Graph graph, std::string default_name, const BuildOptions& options,
                                              const BuildProgress& progress, BuildReport* report) {
  BuildReport local;
  if (!report) report = &local;
  report->nodes_before = graph.nodes.size();
  format::EngineModel model;
  KILN_RETURN_IF_ERROR(resolve_profiles(graph, options, &model.inputs, report));
  if (progress) progress("optimize", 0.3);
  if (options.optimization_level > 0) {
    // An input whose profile has min == max has one shape: pin it in the graph, so shape
    // inference makes the model's shape arithmetic (Shape -> Gather -> Concat -> Reshape)
    // constant and folding removes it, as if the model had been exported with that shape.
    bool pinned = false;
    for (format::Binding& b : model.inputs) {
      if (b.min.empty() || b.min != b.max || b.shape.fully_known()) continue;
      b.shape = ir::Shape::of(b.min);
      graph.values[static_cast<size_t>(b.value)].shape = b.shape;
      pinned = true;
    }
    if (pinned) KILN_RETURN_IF_ERROR(ir::infer_shapes(graph, nullptr));
    compiler::FoldStats fold;
    KILN_RETURN_IF_ERROR(compiler::fold_constants(graph, kMaxFoldBytes, &fold));
    KILN_RETURN_IF_ERROR(compiler::fold_reshape_targets(graph, nullptr));
    KILN_RETURN_IF_ERROR(compiler::fuse_epilogues(graph, nullptr));
    // KILN_FUSE_ATTENTION=0 builds without the pass: a diagnosis knob, to measure the fused
    // kernel against the MatMul -> Softmax -> MatMul it replaces (docs/cuda_backend.md).
    const char* fuse = std::getenv("KILN_FUSE_ATTENTION");
    if (!fuse || std::string_view(fuse) != "0") KILN_RETURN_IF_ERROR(compiler::fuse_attention(graph, nullptr));
  }
  if (options.precision != Precision::kFp32) {
    if (progress) progress("precision", 0.5);
    const DType low = options.precision == Precision::kFp16 ? DType::kF16 : DType::kBF16;
    KILN_RETURN_IF_ERROR(compiler::lower_precision(graph, low, nullptr));
  }
  if (options.optimization_level > 0) KILN_RETURN_IF_ERROR(compiler::fuse_elementwise(graph, nullptr));
  graph.prune();
  KILN_RETURN_IF_ERROR(graph.validate());
  KILN_RETURN_IF_ERROR(ir::infer_shapes(graph, nullptr));  // fills value and output shapes
  report->nodes_after = graph.nodes.size();
  for (int id : graph.outputs) {
    const ir::Value& v = graph.values[id];
    format::Binding b;
    b.name = v.name;
    b.value = id;
    b.dtype = v.dtype;
    b.shape = v.shape;
    model.outputs.push_back(std::move(b));
  }
  model.header.name = options.name.empty() ? std::move(default_name) : options.name;
  model.header.kiln_version = KILN_VERSION_STRING;
  model.header.target_platform = options.target_platform;
  model.header.min_compute_capability = options.min_compute_capability;
  model.header.hardware_compatibility = options.hardware_compatibility;
  model.header.precision = options.precision;
  model.header.allow_tf32 = options.allow_tf32;
  model.header.optimization_level = options.optimization_level;
  model.metadata = options.metadata;
  model.graph = std::move(graph);
  if (progress) progress("serialize", 0.8);
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, format::engine_serialize(model));
  if (progress) progress("done", 1.0);
  return bytes;
}

}  // namespace

Result<std::vector<uint8_t>> build_engine(const std::string& onnx_path, const BuildOptions& options,
                                          const BuildProgress& progress, BuildReport* report) {
  if (progress) progress("import", 0.0);
  KILN_ASSIGN_OR_RETURN(ir::Graph graph, onnx::import_file(onnx_path));
  std::string stem = std::filesystem::path(onnx_path).stem().string();
  if (stem == "model") stem = std::filesystem::path(onnx_path).parent_path().filename().string();
  return build_from_graph(std::move(graph), stem.empty() ? "model" : stem, options, progress, report);
}

Result<std::vector<uint8_t>> build_engine_from_bytes(std::string_view onnx_bytes, const std::string& base_dir,
                                                     const BuildOptions& options, const BuildProgress& progress,
                                                     BuildReport* report) {
  if (progress) progress("import", 0.0);
  KILN_ASSIGN_OR_RETURN(ir::Graph graph, onnx::import_bytes(onnx_bytes, base_dir));
  return build_from_graph(std::move(graph), "model", options, progress, report);
}

}  // namespace kiln
