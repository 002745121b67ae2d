// Real graphs through the engine format: every model and ONNX conformance case the importer
// accepts must survive serialize -> file -> engine_load_file unchanged, byte-identically.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "format/engine_file.h"
#include "format/engine_test_util.h"
#include "onnx/importer.h"
#include "platform/file.h"

namespace kiln::format {
namespace {

namespace fs = std::filesystem;
using namespace kiln::format::testing;

EngineModel model_of(ir::Graph g, const std::string& name) {
  EngineModel m;
  m.header.name = name;
  m.header.kiln_version = "test";
  auto binding = [&](int id) {
    Binding b;
    b.name = g.values[id].name;
    b.value = id;
    b.dtype = g.values[id].dtype;
    b.shape = g.values[id].shape;
    return b;
  };
  for (int id : g.inputs) {
    Binding b = binding(id);
    if (auto dims = b.shape.concrete()) b.min = b.opt = b.max = *dims;
    m.inputs.push_back(b);
  }
  for (int id : g.outputs) m.outputs.push_back(binding(id));
  m.graph = std::move(g);
  m.metadata["source"] = name;
  return m;
}

std::vector<fs::path> model_files(const fs::path& root) {
  std::vector<fs::path> out;
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename() == "model.onnx") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(EngineOnnxRoundTripTest, ImportedModelsSurviveTheFile) {
  const fs::path data = KILN_TESTDATA_DIR;
  std::vector<fs::path> files = model_files(data / "models");
  ASSERT_FALSE(files.empty()) << "no test models under " << data / "models";
  const size_t num_models = files.size();
  std::vector<fs::path> conformance = model_files(data / "onnx-conformance");
  ASSERT_GT(conformance.size(), 100u) << "conformance data missing under " << data;
  files.insert(files.end(), conformance.begin(), conformance.end());

  std::string tmpl = fs::temp_directory_path().string() + "/kiln_roundtrip_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string path = tmpl + "/engine.kiln";
  int imported = 0, with_weights = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const fs::path& f = files[i];
    auto g = onnx::import_file(f.string());
    if (!g.ok()) continue;  // the importer's own tests judge what it refuses
    SCOPED_TRACE(f.string());
    EngineModel m = model_of(std::move(g).value(), f.parent_path().filename().string());
    auto bytes = engine_serialize(m);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    // Through a real file for the models; in memory for the many small conformance cases
    // (fsync per case would dominate the test's run time).
    Result<EngineModel> loaded = parse(*bytes);
    if (i < num_models) {
      ASSERT_TRUE(platform::write_file_atomic(path, *bytes).ok());
      loaded = engine_load_file(path);
    }
    ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
    expect_models_eq(m, *loaded);
    for (const Tensor& t : loaded->graph.constants) {
      if (t.defined()) {
        ASSERT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
      }
    }
    auto again = engine_serialize(*loaded);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(*bytes, *again) << "re-serialization is not byte-identical";
    ++imported;
    if (!m.graph.constants.empty()) ++with_weights;
  }
  fs::remove_all(tmpl);
  EXPECT_GT(imported, 100);
  EXPECT_GT(with_weights, 4);
}

}  // namespace
}  // namespace kiln::format
