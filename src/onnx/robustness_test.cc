// Hostile input: mutated model bytes and mutated model structure give a Status, never a crash
// (run under -DKILN_SANITIZE=address to catch reads past the end).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "onnx/importer.h"
#include "onnx/test_util.h"

namespace kiln::onnx {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> sample_models() {
  std::vector<std::string> out;
  const fs::path root = fs::path(KILN_TESTDATA_DIR) / "onnx-conformance";
  for (const char* c : {"node/test_resize_downsample_scales_linear", "node/test_slice",
                        "node/test_split_equal_parts_1d_opset18", "node/test_constant",
                        "node/test_layer_normalization_2d_axis0", "node/test_clip_default_inbounds",
                        "pytorch-operator/test_operator_add_broadcast",
                        "pytorch-operator/test_operator_pad", "pytorch-converted/test_PReLU_2d",
                        "pytorch-converted/test_BatchNorm2d_eval", "node/test_top_k", "node/test_dropout_default_mask",
                        "node/test_gelu_tanh_2", "node/test_greater_equal_bcast_expanded"}) {
    fs::path p = root / c / "model.onnx";
    if (fs::exists(p)) out.push_back(slurp(p));
  }
  fs::path cnn = fs::path(KILN_TESTDATA_DIR) / "models" / "tiny_cnn" / "model.onnx";
  if (fs::exists(cnn)) out.push_back(slurp(cnn));
  return out;
}

// KILN_ONNX_FUZZ_ITERS scales the iteration counts up for a longer local run.
int iterations(int base) {
  const char* env = std::getenv("KILN_ONNX_FUZZ_ITERS");
  return env ? std::max(1, std::atoi(env)) : base;
}

void expect_clean(const Result<ir::Graph>& g) {
  if (g.ok()) {
    EXPECT_TRUE(g->validate().ok());
  } else {
    EXPECT_NE(g.status().code(), StatusCode::kInternal) << g.status().to_string();
    EXPECT_FALSE(g.status().message().empty());
  }
}

TEST(ImporterRobustnessTest, MutatedBytesNeverCrash) {
  std::vector<std::string> models = sample_models();
  ASSERT_GE(models.size(), 8u);
  std::mt19937_64 rng(12345);
  for (const std::string& model : models) {
    for (int iter = 0, n = iterations(300); iter < n; ++iter) {
      std::string b = model;
      int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits && !b.empty(); ++e) {
        size_t pos = rng() % b.size();
        switch (rng() % 4) {
          case 0: b[pos] = static_cast<char>(rng()); break;
          case 1: b[pos] ^= static_cast<char>(1u << (rng() % 8)); break;
          case 2: b.resize(pos); break;
          case 3: b.insert(pos, 1, static_cast<char>(rng())); break;
        }
      }
      expect_clean(import_bytes(b, ""));
    }
  }
}

// Structural mutations reach the lowerings: well-formed protobuf with hostile values.
void mutate(::onnx::ModelProto& m, std::mt19937_64& rng) {
  auto* g = m.mutable_graph();
  auto pick = [&](int n) { return n > 0 ? static_cast<int>(rng() % static_cast<uint64_t>(n)) : -1; };
  const int64_t wild[] = {-1, 0, 1, 2, 3, -7, int64_t{1} << 31, int64_t{1} << 62, INT64_MAX, INT64_MIN};
  const char* ops[] = {"Slice", "Pad", "Resize", "Upsample", "Split", "Tile", "Clip", "Dropout",
                       "BatchNormalization", "Add", "PRelu", "Softmax", "Cast", "Constant",
                       "TopK", "Squeeze", "Unsqueeze", "ReduceSum", "CastLike", "Reshape"};
  switch (rng() % 9) {
    case 0:
      if (int i = pick(g->node_size()); i >= 0) g->mutable_node(i)->set_op_type(ops[rng() % 20]);
      break;
    case 1:
      m.mutable_opset_import(0)->set_version(1 + static_cast<int64_t>(rng() % 28));
      break;
    case 2:
      if (int i = pick(g->node_size()); i >= 0) {
        auto* n = g->mutable_node(i);
        if (int a = pick(n->attribute_size()); a >= 0) {
          auto* at = n->mutable_attribute(a);
          at->set_type(static_cast<::onnx::AttributeProto::AttributeType>(rng() % 15));
          at->add_ints(wild[rng() % 10]);
          at->set_i(wild[rng() % 10]);
        }
      }
      break;
    case 3:
      if (int i = pick(g->node_size()); i >= 0) {
        auto* n = g->mutable_node(i);
        if (n->input_size() > 0) n->mutable_input()->RemoveLast();
        else n->add_input("");
      }
      break;
    case 4:
      if (int i = pick(g->initializer_size()); i >= 0) {
        auto* t = g->mutable_initializer(i);
        if (t->dims_size() > 0) t->set_dims(pick(t->dims_size()), wild[rng() % 10]);
        else t->add_dims(wild[rng() % 10]);
      }
      break;
    case 5:
      if (int i = pick(g->initializer_size()); i >= 0)
        g->mutable_initializer(i)->set_data_type(static_cast<int32_t>(rng() % 25));
      break;
    case 6:
      if (int i = pick(g->input_size()); i >= 0) {
        auto* shape = g->mutable_input(i)->mutable_type()->mutable_tensor_type()->mutable_shape();
        shape->add_dim()->set_dim_value(wild[rng() % 10]);
      }
      break;
    case 7:
      if (int i = pick(g->node_size()); i >= 0) {
        auto* n = g->mutable_node(i);
        n->add_output(rng() % 2 ? "" : n->input_size() ? n->input(0) : "x");
      }
      break;
    case 8:
      if (int i = pick(g->initializer_size()); i >= 0) {
        auto* t = g->mutable_initializer(i);
        t->set_data_location(::onnx::TensorProto::EXTERNAL);
        auto* kv = t->add_external_data();
        kv->set_key("location");
        kv->set_value(rng() % 2 ? "../../etc/passwd" : "/etc/passwd");
      }
      break;
  }
}

TEST(ImporterRobustnessTest, MutatedStructureNeverCrashes) {
  std::vector<std::string> models = sample_models();
  ASSERT_GE(models.size(), 8u);
  std::mt19937_64 rng(777);
  const std::string base = fs::temp_directory_path().string();
  for (const std::string& bytes : models) {
    ::onnx::ModelProto original;
    ASSERT_TRUE(original.ParseFromString(bytes));
    for (int iter = 0, n = iterations(200); iter < n; ++iter) {
      ::onnx::ModelProto m = original;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) mutate(m, rng);
      expect_clean(testing::import_model(m, base));
    }
  }
}

}  // namespace
}  // namespace kiln::onnx
