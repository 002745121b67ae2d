// Deep and cyclic graphs: a 100,000-node chain imports, builds and runs without recursion
// blowing the stack; a cycle (in the ONNX graph, through a model function, or in the IR) is
// rejected with a Status naming where, never a hang or a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/test_util.h"

namespace kiln {
namespace {

namespace ot = onnx::testing;

constexpr int kChain = 100'000;

// x -> Relu -> Neg -> Relu -> Neg ... (kChain nodes), listed in reverse order so the importer
// has to sort it.
::onnx::ModelProto chain_model() {
  ::onnx::ModelProto m = ot::make_model(17);
  ot::add_input(m, "x", 1, {2, 3});
  ot::add_output(m, "v" + std::to_string(kChain), 1, {2, 3});
  for (int i = kChain; i >= 1; --i)
    ot::add_node(m, i % 2 ? "Relu" : "Neg", {"v" + std::to_string(i - 1)}, {"v" + std::to_string(i)},
                 "n" + std::to_string(i));
  m.mutable_graph()->mutable_node(kChain - 1)->set_input(0, "x");  // node n1 reads x
  return m;
}

TEST(DeepGraphTest, HundredThousandNodeChainImportsBuildsAndRuns) {
  ::onnx::ModelProto m = chain_model();
  std::string bytes;
  ASSERT_TRUE(m.SerializeToString(&bytes));
  Result<ir::Graph> g = onnx::import_bytes(bytes, "");
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(g->nodes.size(), static_cast<size_t>(kChain));
  EXPECT_TRUE(g->validate().ok());

  Result<std::vector<uint8_t>> engine_bytes = build_engine_from_bytes(bytes, "", BuildOptions{});
  ASSERT_TRUE(engine_bytes.ok()) << engine_bytes.status().to_string();
  auto engine = Engine::load_from_memory(std::move(engine_bytes).value());
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  std::vector<float> xv = {-2.f, -0.5f, 0.f, 0.25f, 1.f, 3.f};
  std::vector<Tensor> in{Tensor::from_vector(DType::kF32, {2, 3}, xv)};
  auto out = (*engine)->run(in);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  // Relu then Neg, 50,000 times: the first pair gives -relu(x), every later pair gives 0 for it.
  const float* y = (*out)[0].data_as<const float>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(y[i], 0.f) << i;
}

TEST(CyclicGraphTest, OnnxCycleIsRejected) {
  ::onnx::ModelProto m = ot::make_model(17);
  ot::add_input(m, "x", 1, {2});
  ot::add_output(m, "b", 1, {2});
  ot::add_node(m, "Add", {"x", "b"}, {"a"}, "add");
  ot::add_node(m, "Relu", {"a"}, {"b"}, "relu");
  Result<ir::Graph> g = ot::import_model(m);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidData) << g.status().to_string();
  std::string bytes;
  m.SerializeToString(&bytes);
  EXPECT_FALSE(build_engine_from_bytes(bytes, "", BuildOptions{}).ok());
}

TEST(CyclicGraphTest, OnnxSelfLoopIsRejected) {
  ::onnx::ModelProto m = ot::make_model(17);
  ot::add_input(m, "x", 1, {2});
  ot::add_output(m, "y", 1, {2});
  ot::add_node(m, "Add", {"x", "y"}, {"y"}, "self");
  Result<ir::Graph> g = ot::import_model(m);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidData) << g.status().to_string();
}

// A model function that calls itself, directly or through another: the inliner stops at its
// depth limit with a message that says so.
TEST(CyclicGraphTest, RecursiveModelFunctionsAreRejected) {
  for (bool mutual : {false, true}) {
    ::onnx::ModelProto m = ot::make_model(17);
    auto* imp = m.add_opset_import();
    imp->set_domain("custom");
    imp->set_version(1);
    ot::add_input(m, "x", 1, {2});
    ot::add_output(m, "y", 1, {2});
    auto* call = ot::add_node(m, "F", {"x"}, {"y"}, "call");
    call->set_domain("custom");
    for (const char* name : {"F", "G"}) {
      auto* f = m.add_functions();
      f->set_name(name);
      f->set_domain("custom");
      f->add_input("i");
      f->add_output("o");
      auto* fi = f->add_opset_import();
      fi->set_domain("");
      fi->set_version(17);
      auto* ci = f->add_opset_import();
      ci->set_domain("custom");
      ci->set_version(1);
      auto* n = f->add_node();
      n->set_op_type(mutual && std::string(name) == "F" ? "G" : "F");
      n->set_domain("custom");
      n->add_input("i");
      n->add_output("o");
    }
    Result<ir::Graph> g = ot::import_model(m);
    ASSERT_FALSE(g.ok()) << (mutual ? "mutual" : "direct");
    EXPECT_NE(g.status().message().find("recursive"), std::string::npos) << g.status().to_string();
  }
}

// A function that calls itself twice at every level would inline 2^32 nodes before the depth
// limit: the node bound stops it first, quickly.
TEST(CyclicGraphTest, ExponentiallyExpandingFunctionIsBounded) {
  ::onnx::ModelProto m = ot::make_model(17);
  auto* imp = m.add_opset_import();
  imp->set_domain("custom");
  imp->set_version(1);
  ot::add_input(m, "x", 1, {2});
  ot::add_output(m, "y", 1, {2});
  auto* call = ot::add_node(m, "F", {"x"}, {"y"}, "call");
  call->set_domain("custom");
  auto* f = m.add_functions();
  f->set_name("F");
  f->set_domain("custom");
  f->add_input("i");
  f->add_output("o");
  for (const char* d : {"", "custom"}) {
    auto* oi = f->add_opset_import();
    oi->set_domain(d);
    oi->set_version(*d ? 1 : 17);
  }
  for (const char* out : {"t", "o"}) {
    auto* n = f->add_node();
    n->set_op_type("F");
    n->set_domain("custom");
    n->add_input(std::string(out) == "t" ? "i" : "t");
    n->add_output(out);
  }
  Result<ir::Graph> g = ot::import_model(m);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(g.status().code() == StatusCode::kResourceExhausted ||
              g.status().code() == StatusCode::kUnsupported)
      << g.status().to_string();
}

// The IR itself: a 100,000-node ring is found by topo_sort (iteratively) and by validate.
TEST(CyclicGraphTest, IrRingOfHundredThousandNodesIsFound) {
  ir::Graph g;
  std::vector<int> v;
  for (int i = 0; i < kChain; ++i) v.push_back(g.add_value("v" + std::to_string(i), DType::kF32));
  for (int i = 0; i < kChain; ++i) {
    ir::Node n;
    n.name = "n" + std::to_string(i);
    n.op = "Relu";
    n.inputs = {v[static_cast<size_t>(i)]};
    n.outputs = {v[static_cast<size_t>((i + 1) % kChain)]};
    g.add_node(std::move(n));
  }
  g.outputs.push_back(v[0]);
  EXPECT_FALSE(g.validate().ok());
  Status s = g.topo_sort();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cycle"), std::string::npos) << s.to_string();
}

// And a 100,000-node chain in reverse order sorts without recursion.
TEST(DeepGraphTest, IrChainInReverseOrderSorts) {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32);
  g.inputs.push_back(x);
  std::vector<int> v{x};
  for (int i = 1; i <= kChain; ++i) v.push_back(g.add_value("v" + std::to_string(i), DType::kF32));
  std::vector<ir::Node> nodes;
  for (int i = kChain; i >= 1; --i) {
    ir::Node n;
    n.name = "n" + std::to_string(i);
    n.op = "Relu";
    n.inputs = {v[static_cast<size_t>(i - 1)]};
    n.outputs = {v[static_cast<size_t>(i)]};
    g.add_node(std::move(n));
  }
  g.outputs.push_back(v.back());
  EXPECT_FALSE(g.validate().ok());  // not in topological order yet
  ASSERT_TRUE(g.topo_sort().ok());
  EXPECT_TRUE(g.validate().ok());
  EXPECT_EQ(g.nodes.front().name, "n1");
}

}  // namespace
}  // namespace kiln
