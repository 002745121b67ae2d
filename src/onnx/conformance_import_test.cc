// Every model and conformance case in the test data imports, and every test_data_set tensor reads
// back with the dtype and shape the model declares for that binding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/util/testdata.h"
#include "onnx/importer.h"

namespace kiln::onnx {
namespace {

namespace fs = std::filesystem;

const fs::path kTestData = KILN_TESTDATA_DIR;

// Cases that are out of scope for an inference importer, with the reason.
const std::map<std::string, std::string> kExpectedUnsupported = {
    {"test_batchnorm_epsilon_training_mode", "BatchNormalization training_mode=1"},
    {"test_batchnorm_example_training_mode", "BatchNormalization training_mode=1"},
};

std::vector<fs::path> case_dirs(const fs::path& root) { return kiln::test::model_case_dirs(root); }

std::vector<fs::path> sorted_pb(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<int, fs::path>> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && e.path().extension() == ".pb")
      files.emplace_back(std::stoi(n.substr(prefix.size())), e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<fs::path> out;
  for (auto& f : files) out.push_back(f.second);
  return out;
}

// Checks test_data_set_*/{input,output}_N.pb against the graph's bindings.
void check_data_sets(const fs::path& dir, const ir::Graph& g, int* tensors_read) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_directory() || e.path().filename().string().rfind("test_data_set_", 0) != 0) continue;
    for (const char* kind : {"input_", "output_"}) {
      const std::vector<int>& ids = std::string(kind) == "input_" ? g.inputs : g.outputs;
      std::vector<fs::path> files = sorted_pb(e.path(), kind);
      EXPECT_EQ(files.size(), ids.size()) << e.path() << " " << kind;
      for (size_t i = 0; i < files.size() && i < ids.size(); ++i) {
        std::string name;
        Result<Tensor> t = read_tensor_file(files[i].string(), &name);
        ASSERT_TRUE(t.ok()) << files[i] << ": " << t.status().to_string();
        ++*tensors_read;
        const ir::Value& v = g.values[ids[i]];
        if (v.dtype != DType::kUndefined) {
          EXPECT_EQ(t->dtype(), v.dtype) << files[i] << " vs binding '" << v.name << "'";
        }
        if (v.shape.rank_known) {
          ASSERT_EQ(t->rank(), static_cast<int64_t>(v.shape.dims.size())) << files[i];
          for (size_t d = 0; d < v.shape.dims.size(); ++d) {
            if (v.shape.dims[d].is_known()) {
              EXPECT_EQ(t->dim(d), v.shape.dims[d].value) << files[i];
            }
          }
        }
      }
    }
  }
}

void import_all(const fs::path& root, size_t min_cases) {
  std::vector<fs::path> dirs = case_dirs(root);
  ASSERT_GE(dirs.size(), min_cases) << "test data missing under " << root;
  int imported = 0;
  int tensors = 0;
  std::set<std::string> unsupported_seen;
  for (const fs::path& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const std::string name = dir.filename().string();
    Result<ir::Graph> g = import_file((dir / "model.onnx").string());
    if (kExpectedUnsupported.count(name)) {
      ASSERT_FALSE(g.ok()) << name << " was expected to be unsupported";
      EXPECT_EQ(g.status().code(), StatusCode::kUnsupported) << g.status().to_string();
      unsupported_seen.insert(name);
      continue;
    }
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    EXPECT_TRUE(g->validate().ok());
    EXPECT_FALSE(g->outputs.empty());
    ++imported;
    check_data_sets(dir, *g, &tensors);
  }
  std::printf("%s: %d imported, %d tensors read\n", root.string().c_str(), imported, tensors);
  EXPECT_GT(imported, 0);
  EXPECT_GT(tensors, 0);
}

TEST(ConformanceImportTest, EveryNodeCaseImports) {
  import_all(kTestData / "onnx-conformance" / "node", 800);
}

TEST(ConformanceImportTest, EveryPytorchAndSimpleCaseImports) {
  import_all(kTestData / "onnx-conformance" / "pytorch-converted", 70);
  import_all(kTestData / "onnx-conformance" / "pytorch-operator", 30);
  import_all(kTestData / "onnx-conformance" / "simple", 6);
}

TEST(ConformanceImportTest, EveryModelImportsWithExternalData) {
  import_all(kTestData / "models", 4);
  // The external-data models really load their weights.
  Result<ir::Graph> g = import_file((kTestData / "models" / "encoder_L4_d256" / "model.onnx").string());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  size_t bytes = 0;
  for (const Tensor& t : g->constants) bytes += t.nbytes();
  EXPECT_GE(bytes, fs::file_size(kTestData / "models" / "encoder_L4_d256" / "model.onnx.data"));
}

// The "ops" list of MANIFEST.json, read with a minimal scan (no JSON library in this layer).
std::vector<std::string> manifest_ops() {
  std::ifstream f(kTestData / "onnx-conformance" / "MANIFEST.json");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> ops;
  size_t start = text.find("\"ops\"");
  if (start == std::string::npos) return ops;
  start = text.find('[', start);
  size_t end = text.find(']', start);
  for (size_t q = text.find('"', start); q < end; q = text.find('"', q)) {
    size_t close = text.find('"', q + 1);
    ops.push_back(text.substr(q + 1, close - q - 1));
    q = close + 1;
  }
  return ops;
}

TEST(ConformanceImportTest, EveryManifestOpIsSupportedAtEveryOpset) {
  std::vector<std::string> ops = manifest_ops();
  ASSERT_EQ(ops.size(), 97u);
  std::map<std::string, OpSupport> table;
  for (const OpSupport& s : supported_ops()) table[s.op] = s;
  for (const std::string& op : ops) {
    auto it = table.find(op);
    ASSERT_NE(it, table.end()) << op;
    EXPECT_EQ(it->second.max_version, kMaxOpset) << op;
  }
  EXPECT_TRUE(table.count("Upsample"));
  EXPECT_TRUE(table.count("CastLike"));
}

}  // namespace
}  // namespace kiln::onnx
