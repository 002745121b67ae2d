// Shape inference against the truth: every ONNX conformance case and every shared model is
// imported, constant-folded and shape-inferred, then run node by node on the CPU backend with its
// test_data_set inputs. Every value's inferred dtype, rank and known dims must equal what the
// kernels produce, and every symbolic dim must stand for one size per run (a symbol of a graph
// input is bound by the input's actual size; "4*a*b" is the product). Run four ways: with the
// model's declared value_info kept (merging must not contradict), with every declaration of
// an intermediate or output value dropped (coverage then measures inference alone), then also
// with the parameters conformance cases take as inputs frozen into constants, and after the
// fusion passes (kiln.FusedElementwise, fused epilogues).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/util/testdata.h"
#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"
#include "format/engine_file.h"
#include "ir/op_registry.h"
#include "ir/shape_inference.h"
#include "kiln/builder.h"
#include "onnx/importer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

struct Coverage {
  size_t cases = 0, ran = 0;
  size_t outputs = 0, outputs_full = 0;  // graph outputs; fully inferred: every dim known or a symbol
  size_t values = 0, values_full = 0, values_rank = 0;
  std::map<std::string, size_t> unresolved_ops;  // producers of values not fully inferred
  std::vector<std::string> unresolved_cases;     // cases with a graph output not fully inferred
};

std::vector<Tensor> read_inputs(const fs::path& set) {
  std::vector<Tensor> out;
  for (int i = 0;; ++i) {
    fs::path p = set / ("input_" + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    Result<Tensor> t = onnx::read_tensor_file(p.string());
    if (!t.ok()) break;
    out.push_back(std::move(t).value());
  }
  return out;
}

bool fully_inferred(const ir::Shape& s) {
  if (!s.rank_known) return false;
  for (const ir::Dim& d : s.dims)
    if (!d.is_known() && d.symbol.empty()) return false;
  return true;
}

// Checks `actual` against the inferred facts of value `v`; binds symbols on first sight.
void check_value(const std::string& where, const ir::Value& v, const Tensor& actual,
                 std::map<std::string, int64_t>* bindings) {
  if (v.dtype != DType::kUndefined) {
    EXPECT_EQ(dtype_name(v.dtype), dtype_name(actual.dtype())) << where << ": dtype of '" << v.name << "'";
  }
  if (!v.shape.rank_known) return;
  ASSERT_EQ(v.shape.dims.size(), actual.dims().size())
      << where << ": rank of '" << v.name << "': inferred " << v.shape.to_string() << ", actual "
      << dims_to_string(actual.dims());
  for (size_t i = 0; i < v.shape.dims.size(); ++i) {
    const ir::Dim& d = v.shape.dims[i];
    const int64_t got = actual.dims()[i];
    if (d.is_known()) {
      EXPECT_EQ(d.value, got) << where << ": '" << v.name << "' inferred " << v.shape.to_string()
                              << ", actual " << dims_to_string(actual.dims());
      continue;
    }
    if (d.symbol.empty()) continue;
    auto it = bindings->find(d.symbol);
    if (it == bindings->end()) {
      // A product of bound symbols is checked as the product.
      int64_t product = 1;
      bool bound = true;
      size_t start = 0;
      while (start <= d.symbol.size()) {
        size_t star = d.symbol.find('*', start);
        if (star == std::string::npos) star = d.symbol.size();
        const std::string part = d.symbol.substr(start, star - start);
        auto f = bindings->find(part);
        if (f != bindings->end()) product *= f->second;
        else if (!part.empty() && part.find_first_not_of("0123456789") == std::string::npos) product *= std::stoll(part);
        else bound = false;
        start = star + 1;
      }
      if (bound && d.symbol.find('*') != std::string::npos) {
        EXPECT_EQ(product, got) << where << ": '" << v.name << "' dim " << d.symbol;
      } else {
        (*bindings)[d.symbol] = got;
      }
      continue;
    }
    EXPECT_EQ(it->second, got) << where << ": '" << v.name << "' " << v.shape.to_string() << " dim "
                               << i << " is symbol " << d.symbol << " = " << it->second
                               << " elsewhere, actual " << dims_to_string(actual.dims());
  }
}

enum class Mode { kDeclared, kStripped, kFrozen, kFused };

// Parameters that conformance cases pass as graph inputs (Reshape shapes, Reduce axes, Resize
// scales, TopK k, ...) but real models store as initializers: small integer vectors, and whatever
// feeds a Resize parameter or a Range.
bool is_parameter(const ir::Graph& g, int id, const Tensor& t) {
  if (t.rank() <= 1 && t.numel() <= 64 && !dtype_is_float(t.dtype()) && t.dtype() != DType::kBool) return true;
  for (const ir::Node& n : g.nodes)
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (((n.op == "Resize" && k > 0) || n.op == "Range") && n.inputs[k] == id) return true;
  return false;
}

void run_case(const fs::path& dir, Mode mode, Coverage* cov) {
  ++cov->cases;
  Result<ir::Graph> imported = onnx::import_file((dir / "model.onnx").string());
  if (!imported.ok()) return;  // unsupported models: the conformance suite accounts for them
  ir::Graph g = std::move(imported).value();
  const char* names[] = {" (declared)", " (stripped)", " (stripped, parameters frozen)",
                         " (stripped, epilogues and elementwise chains fused)"};
  const std::string where = dir.filename().string() + names[static_cast<int>(mode)];
  std::vector<std::vector<Tensor>> sets;
  for (int k = 0; fs::exists(dir / ("test_data_set_" + std::to_string(k))); ++k)
    sets.push_back(read_inputs(dir / ("test_data_set_" + std::to_string(k))));
  if (sets.empty() || sets[0].size() != g.inputs.size()) return;
  if (mode == Mode::kFrozen) {
    std::vector<int> kept;
    std::vector<Tensor> kept_first;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const int id = g.inputs[i];
      if (is_parameter(g, id, sets[0][i])) {
        g.values[static_cast<size_t>(id)].constant = static_cast<int>(g.constants.size());
        g.values[static_cast<size_t>(id)].shape = ir::Shape::of(sets[0][i].dims());
        g.constants.push_back(sets[0][i]);
      } else {
        kept.push_back(id);
        kept_first.push_back(sets[0][i]);
      }
    }
    g.inputs = kept;
    sets = {kept_first};  // other sets may hold other parameters
  }
  ASSERT_TRUE(compiler::fold_constants(g, size_t{64} << 20, nullptr).ok()) << where;
  if (mode == Mode::kFused) {
    Status s = compiler::fuse_epilogues(g, nullptr);
    ASSERT_TRUE(s.ok()) << where << ": " << s.to_string();
    s = compiler::fuse_elementwise(g, nullptr);
    ASSERT_TRUE(s.ok()) << where << ": " << s.to_string();
  }
  g.prune();
  if (mode != Mode::kDeclared) {
    std::vector<char> is_input(g.values.size(), 0);
    for (int id : g.inputs) is_input[static_cast<size_t>(id)] = 1;
    for (size_t i = 0; i < g.values.size(); ++i)
      if (!is_input[i] && g.values[i].constant < 0)
        g.values[i] = ir::Value{g.values[i].name, DType::kUndefined, {}, g.values[i].producer, -1};
  }
  Status inferred = ir::infer_shapes(g, nullptr);
  ASSERT_TRUE(inferred.ok()) << where << ": " << inferred.to_string();

  for (size_t set = 0; set < sets.size(); ++set) {
    const std::vector<Tensor>& inputs = sets[set];
    if (inputs.size() != g.inputs.size()) return;
    std::vector<Tensor> vals(g.values.size());
    std::map<std::string, int64_t> bindings;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const ir::Value& v = g.values[static_cast<size_t>(g.inputs[i])];
      vals[static_cast<size_t>(g.inputs[i])] = inputs[i];
      if (v.shape.rank_known && v.shape.dims.size() == inputs[i].dims().size())
        for (size_t d = 0; d < v.shape.dims.size(); ++d)
          if (!v.shape.dims[d].symbol.empty()) bindings.emplace(v.shape.dims[d].symbol, inputs[i].dims()[d]);
    }
    for (size_t i = 0; i < g.values.size(); ++i)
      if (g.values[i].constant >= 0) vals[i] = g.constants[static_cast<size_t>(g.values[i].constant)];
    const bool count = set == 0;
    for (const ir::Node& n : g.nodes) {
      std::vector<Tensor> in, out(n.outputs.size());
      for (int id : n.inputs) in.push_back(id == ir::kNoValue ? Tensor() : vals[static_cast<size_t>(id)]);
      if (!cpu::run_node(n, in, out).ok()) return;  // the run fails the same way at execution
      for (size_t k = 0; k < n.outputs.size(); ++k) {
        const int id = n.outputs[k];
        if (id == ir::kNoValue || !out[k].defined()) continue;
        const ir::Value& v = g.values[static_cast<size_t>(id)];
        check_value(where + " set " + std::to_string(set) + " node '" + n.name + "' (" + n.op + ")", v,
                    out[k], &bindings);
        if (::testing::Test::HasFatalFailure()) return;
        if (count) {
          ++cov->values;
          cov->values_rank += v.shape.rank_known;
          if (fully_inferred(v.shape)) ++cov->values_full;
          else ++cov->unresolved_ops[n.op];
        }
        vals[static_cast<size_t>(id)] = std::move(out[k]);
      }
    }
    if (!count) continue;
    ++cov->ran;
    for (int id : g.outputs) {
      ++cov->outputs;
      const bool full = fully_inferred(g.values[static_cast<size_t>(id)].shape);
      cov->outputs_full += full;
      if (!full) cov->unresolved_cases.push_back(dir.filename().string());
    }
  }
}

std::vector<fs::path> case_dirs(const fs::path& root) { return kiln::test::model_case_dirs(root); }

void report(const char* what, const Coverage& c) {
  std::printf("[shape coverage] %s: %zu cases, %zu ran; graph outputs fully inferred %zu/%zu (%.1f%%); "
              "all values fully inferred %zu/%zu (%.1f%%), rank known %zu/%zu\n",
              what, c.cases, c.ran, c.outputs_full, c.outputs, 100.0 * c.outputs_full / std::max<size_t>(1, c.outputs),
              c.values_full, c.values, 100.0 * c.values_full / std::max<size_t>(1, c.values), c.values_rank, c.values);
  std::string ops;
  for (const auto& [op, n] : c.unresolved_ops) ops += " " + op + ":" + std::to_string(n);
  std::printf("[shape coverage] %s: values not fully inferred, by producer:%s\n", what, ops.c_str());
}

TEST(ShapeInferenceModelTest, ConformanceCasesMatchCpuResults) {
  const std::vector<fs::path> dirs = case_dirs(fs::path(KILN_TESTDATA_DIR) / "onnx-conformance");
  ASSERT_GT(dirs.size(), 900u) << "conformance data not unpacked under " << KILN_TESTDATA_DIR;
  for (Mode mode : {Mode::kDeclared, Mode::kStripped, Mode::kFrozen, Mode::kFused}) {
    Coverage cov;
    for (const fs::path& d : dirs) {
      run_case(d, mode, &cov);
      if (HasFatalFailure()) return;
    }
    const char* what[] = {"conformance, declared kept", "conformance, declared stripped",
                          "conformance, stripped, parameters frozen", "conformance, stripped, fused"};
    report(what[static_cast<int>(mode)], cov);
    EXPECT_GT(cov.ran, 900u);
    if (mode == Mode::kDeclared) {
      EXPECT_EQ(cov.outputs_full, cov.outputs);
    }
    if (mode == Mode::kStripped) {
      EXPECT_GE(cov.outputs_full * 100, cov.outputs * 70);
    }
    if (mode == Mode::kFrozen) {
      EXPECT_GE(cov.outputs_full * 100, cov.outputs * 99) << "graph outputs fully inferred";
      EXPECT_GE(cov.values_full * 100, cov.values * 99) << "values fully inferred";
      std::string cases;
      for (const std::string& c : cov.unresolved_cases) cases += " " + c;
      std::printf("[shape coverage] outputs not fully inferred with parameters frozen:%s\n", cases.c_str());
    }
  }
}

TEST(ShapeInferenceModelTest, SharedModelsMatchCpuResults) {
  const std::vector<fs::path> dirs = case_dirs(fs::path(KILN_TESTDATA_DIR) / "models");
  ASSERT_GE(dirs.size(), 4u);
  for (Mode mode : {Mode::kDeclared, Mode::kStripped, Mode::kFused}) {
    Coverage cov;
    for (const fs::path& d : dirs) {
      run_case(d, mode, &cov);
      if (HasFatalFailure()) return;
    }
    report(mode == Mode::kDeclared ? "models, declared kept"
           : mode == Mode::kStripped ? "models, declared stripped" : "models, stripped, fused", cov);
    EXPECT_EQ(cov.ran, dirs.size());
    EXPECT_EQ(cov.outputs_full, cov.outputs) << "every model output fully inferred (symbols allowed)";
    EXPECT_EQ(cov.values_full, cov.values) << "every value fully inferred (symbols allowed)";
  }
}

// The builder runs shape inference after every other pass (fp32, fp16 and bf16 graphs alike):
// engine files store the inferred shapes, output bindings carry the symbols, builds stay
// byte-identical.
TEST(ShapeInferenceModelTest, EnginesStoreInferredSymbolicShapes) {
  const std::map<std::string, std::string> expected = {{"encoder_L4_d256", "[batch, seq, 256]"},
                                                       {"mlp", "[batch, 10]"},
                                                       {"mobilenet_v3_small", "[batch, 1000]"},
                                                       {"tiny_cnn", "[batch, 10]"}};
  for (const fs::path& dir : case_dirs(fs::path(KILN_TESTDATA_DIR) / "models")) {
    for (Precision p : {Precision::kFp32, Precision::kFp16, Precision::kBf16}) {
      BuildOptions options;
      options.precision = p;
      const std::string what = dir.filename().string() + " " + std::string(precision_name(p));
      Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), options);
      ASSERT_TRUE(bytes.ok()) << what << ": " << bytes.status().to_string();
      Result<std::vector<uint8_t>> again = build_engine((dir / "model.onnx").string(), options);
      ASSERT_TRUE(again.ok());
      EXPECT_TRUE(*bytes == *again) << what << ": builds differ";
      auto owner = std::make_shared<std::vector<uint8_t>>(std::move(bytes).value());
      Result<format::EngineModel> m = format::engine_parse(*owner, owner);
      ASSERT_TRUE(m.ok()) << m.status().to_string();
      ASSERT_EQ(m->outputs.size(), 1u);
      auto it = expected.find(dir.filename().string());
      if (it != expected.end()) {
        EXPECT_EQ(m->outputs[0].shape.to_string(), it->second) << what;
      }
      for (const ir::Node& n : m->graph.nodes)
        for (int id : n.outputs)
          if (id != ir::kNoValue) {
            const ir::Value& v = m->graph.values[static_cast<size_t>(id)];
            EXPECT_TRUE(fully_inferred(v.shape)) << what << ": '" << v.name << "' " << v.shape.to_string();
            EXPECT_NE(v.dtype, DType::kUndefined) << what << ": '" << v.name << "'";
          }
    }
  }
}

TEST(ShapeInferenceModelTest, EveryImportableConformanceCaseStillBuilds) {
  size_t built = 0;
  for (const fs::path& dir : case_dirs(fs::path(KILN_TESTDATA_DIR) / "onnx-conformance")) {
    if (!onnx::import_file((dir / "model.onnx").string()).ok()) continue;
    Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), BuildOptions{});
    // Cases with inputs of unknown rank need --shape; they fail the same way without inference.
    if (!bytes.ok() && bytes.status().message().find("unknown rank") != std::string::npos) continue;
    EXPECT_TRUE(bytes.ok()) << dir.filename() << ": " << bytes.status().to_string();
    built += bytes.ok();
  }
  EXPECT_GT(built, 900u);
}

// Every op the CPU backend implements has a schema (plus the fused op kiln's passes create).
TEST(ShapeInferenceModelTest, RegistryCoversEveryCpuKernel) {
  for (const std::string& op : cpu::kernel_registry().ops())
    EXPECT_NE(ir::find_op_schema(op), nullptr) << op << " has a CPU kernel but no op schema";
  EXPECT_NE(ir::find_op_schema("kiln.FusedElementwise"), nullptr);
}

}  // namespace
}  // namespace kiln
