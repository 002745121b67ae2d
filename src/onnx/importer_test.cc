// Graph-level import: bindings, declared types, names, model checks and hostile input.
#include "onnx/importer.h"

#include <gtest/gtest.h>

#include "onnx/test_util.h"

namespace kiln::onnx {
namespace {

using namespace testing;  // NOLINT
using ::onnx::TensorProto;

::onnx::ModelProto relu_model(int opset = 14) {
  ::onnx::ModelProto m = make_model(opset);
  add_input(m, "x", TensorProto::FLOAT, {-1, 3}, {"batch", ""});
  add_node(m, "Relu", {"x"}, {"y"}, "relu");
  add_output(m, "y", TensorProto::FLOAT, {-1, 3});
  return m;
}

TEST(ImporterTest, BindingsTypesAndSymbolicDims) {
  Result<ir::Graph> g = import_model(relu_model());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  ASSERT_EQ(g->inputs.size(), 1u);
  const ir::Value& x = g->values[g->inputs[0]];
  EXPECT_EQ(x.name, "x");
  EXPECT_EQ(x.dtype, DType::kF32);
  ASSERT_TRUE(x.shape.rank_known);
  EXPECT_EQ(x.shape.dims[0], ir::Dim::named("batch"));
  EXPECT_EQ(x.shape.dims[1], ir::Dim::known(3));
  const ir::Value& y = g->values[g->outputs.at(0)];
  EXPECT_EQ(y.name, "y");
  EXPECT_EQ(y.dtype, DType::kF32);
  EXPECT_FALSE(y.shape.dims[0].is_known());
  ASSERT_EQ(g->nodes.size(), 1u);
  EXPECT_EQ(g->nodes[0].name, "relu");
}

TEST(ImporterTest, InitializersListedAsInputsAreConstants) {
  ::onnx::ModelProto m = make_model(6, 3);
  add_input(m, "x", TensorProto::FLOAT, {2});
  add_input(m, "w", TensorProto::FLOAT, {2});
  add_initializer_f32(m, "w", {2}, {1.f, 2.f});
  add_node(m, "Add", {"x", "w"}, {"y"});
  add_output(m, "y");
  Result<ir::Graph> g = import_model(m);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  ASSERT_EQ(g->inputs.size(), 1u);
  EXPECT_EQ(g->values[g->inputs[0]].name, "x");
  int w = *g->find_value("w");
  ASSERT_GE(g->values[w].constant, 0);
  EXPECT_EQ(g->constants[g->values[w].constant].data_as<float>()[1], 2.f);
  EXPECT_EQ(g->nodes[0].name, "Add_0");  // generated from op and index
}

TEST(ImporterTest, NodesAreTopologicallySortedAndOmittedOutputsAreNoValue) {
  ::onnx::ModelProto m = make_model(13);
  add_input(m, "x", TensorProto::FLOAT, {4});
  add_node(m, "Relu", {"mid"}, {"y"}, "second");
  auto* drop = add_node(m, "Dropout", {"x"}, {"mid", ""}, "first");
  (void)drop;
  add_output(m, "y");
  Result<ir::Graph> g = import_model(m);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  ASSERT_EQ(g->nodes.size(), 2u);
  EXPECT_EQ(g->nodes[0].name, "first");
  EXPECT_EQ(g->nodes[0].outputs.size(), 2u);
  EXPECT_EQ(g->nodes[0].outputs[1], ir::kNoValue);
  EXPECT_EQ(g->nodes[1].name, "second");
}

TEST(ImporterTest, ValueInfoTypesIntermediateValues) {
  ::onnx::ModelProto m = relu_model();
  add_node(m, "Neg", {"y"}, {"z"});
  add_output(m, "z");
  add_value_info(m.mutable_graph()->add_value_info(), "y", TensorProto::FLOAT, {-1, 3}, {"n"});
  Result<ir::Graph> g = import_model(m);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  // Graph outputs' declarations win over value_info.
  const ir::Value& y = g->values[*g->find_value("y")];
  EXPECT_EQ(y.dtype, DType::kF32);
  EXPECT_EQ(y.shape.dims.size(), 2u);
}

TEST(ImporterTest, UnknownOpNamesNodeOpsetAndSupportedList) {
  ::onnx::ModelProto m = make_model(9);
  add_input(m, "x", TensorProto::FLOAT, {1});
  add_node(m, "Foo", {"x"}, {"y"}, "n3");
  add_output(m, "y");
  Status s = import_model(m).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("node 'n3' (Foo, opset 9): op Foo is not supported by kiln (supported: Abs,"),
            std::string::npos) << s.message();
}

TEST(ImporterTest, OpTooNewForTheOpsetIsUnsupported) {
  ::onnx::ModelProto m = make_model(17);
  add_input(m, "x", TensorProto::FLOAT, {1});
  add_node(m, "Gelu", {"x"}, {"y"}, "g");
  add_output(m, "y");
  Status s = import_model(m).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("opset 20"), std::string::npos) << s.message();
}

TEST(ImporterTest, ModelLevelChecks) {
  ::onnx::ModelProto old_ir = relu_model();
  old_ir.set_ir_version(2);
  EXPECT_EQ(import_model(old_ir).status().code(), StatusCode::kUnsupported);
  ::onnx::ModelProto new_ir = relu_model();
  new_ir.set_ir_version(15);
  EXPECT_EQ(import_model(new_ir).status().code(), StatusCode::kUnsupported);
  Status too_new = import_model(relu_model(kMaxOpset + 1)).status();
  EXPECT_EQ(too_new.code(), StatusCode::kUnsupported);
  EXPECT_NE(too_new.message().find("opset 29"), std::string::npos);
  ::onnx::ModelProto ai_onnx = relu_model();
  ai_onnx.mutable_opset_import(0)->set_domain("ai.onnx");
  EXPECT_TRUE(import_model(ai_onnx).ok());
  ::onnx::ModelProto no_opset = relu_model();
  no_opset.clear_opset_import();
  EXPECT_EQ(import_model(no_opset).status().code(), StatusCode::kInvalidData);
}

TEST(ImporterTest, CustomDomainIsUnsupported) {
  ::onnx::ModelProto m = relu_model();
  m.mutable_graph()->mutable_node(0)->set_domain("com.microsoft");
  auto* imp = m.add_opset_import();
  imp->set_domain("com.microsoft");
  imp->set_version(1);
  Status s = import_model(m).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("com.microsoft"), std::string::npos);
}

TEST(ImporterTest, ModelFunctionsAreInlined) {
  ::onnx::ModelProto m = make_model(18);
  auto* imp = m.add_opset_import();
  imp->set_domain("local");
  imp->set_version(1);
  auto* f = m.add_functions();
  f->set_name("AddScaled");
  f->set_domain("local");
  f->add_input("a");
  f->add_input("b");
  f->add_output("out");
  f->add_attribute("alpha");
  auto* fi = f->add_opset_import();
  fi->set_domain("");
  fi->set_version(18);
  auto* n1 = f->add_node();
  n1->set_op_type("Add");
  n1->add_input("a");
  n1->add_input("b");
  n1->add_output("sum");
  auto* n2 = f->add_node();
  n2->set_op_type("LeakyRelu");
  n2->add_input("sum");
  n2->add_output("out");
  auto* ref = n2->add_attribute();
  ref->set_name("alpha");
  ref->set_type(::onnx::AttributeProto::FLOAT);
  ref->set_ref_attr_name("alpha");
  add_input(m, "x", TensorProto::FLOAT, {2});
  add_input(m, "sum", TensorProto::FLOAT, {2});  // clashes with the function's inner name
  auto* call = add_node(m, "AddScaled", {"x", "sum"}, {"y"}, "call");
  call->set_domain("local");
  set_float(call, "alpha", 0.5f);
  add_output(m, "y");
  Result<ir::Graph> g = import_model(m);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  ASSERT_EQ(g->nodes.size(), 2u);
  EXPECT_EQ(g->nodes[0].op, "Add");
  EXPECT_EQ(g->values[g->nodes[0].inputs[1]].name, "sum");  // the graph input, not the inner value
  EXPECT_NE(g->values[g->nodes[0].outputs[0]].name, "sum");
  EXPECT_EQ(g->nodes[1].op, "LeakyRelu");
  EXPECT_FLOAT_EQ(g->nodes[1].attrs.get_float("alpha", 0), 0.5f);
  EXPECT_EQ(g->values[g->nodes[1].outputs[0]].name, "y");
}

TEST(ImporterTest, RecursiveFunctionsAreRefused) {
  ::onnx::ModelProto m = make_model(18);
  auto* f = m.add_functions();
  f->set_name("Loop");
  f->set_domain("local");
  f->add_input("a");
  f->add_output("b");
  auto* n = f->add_node();
  n->set_op_type("Loop");
  n->set_domain("local");
  n->add_input("a");
  n->add_output("b");
  add_input(m, "x", TensorProto::FLOAT, {1});
  add_node(m, "Loop", {"x"}, {"y"})->set_domain("local");
  add_output(m, "y");
  EXPECT_EQ(import_model(m).status().code(), StatusCode::kUnsupported);
}

TEST(ImporterTest, SubgraphAttributesAreUnsupported) {
  ::onnx::ModelProto m = make_model(13);
  add_input(m, "x", TensorProto::FLOAT, {1});
  auto* n = add_node(m, "Identity", {"x"}, {"y"}, "id");
  auto* a = n->add_attribute();
  a->set_name("body");
  a->set_type(::onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name("sub");
  add_output(m, "y");
  Status s = import_model(m).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("'body'"), std::string::npos);
}

TEST(ImporterTest, BrokenGraphsAreInvalidData) {
  ::onnx::ModelProto dangling = relu_model();
  dangling.mutable_graph()->mutable_node(0)->set_input(0, "nowhere");
  EXPECT_EQ(import_model(dangling).status().code(), StatusCode::kInvalidData);

  ::onnx::ModelProto twice = relu_model();
  add_node(twice, "Neg", {"x"}, {"y"});
  EXPECT_EQ(import_model(twice).status().code(), StatusCode::kInvalidData);

  ::onnx::ModelProto cycle = make_model(13);
  add_input(cycle, "x", TensorProto::FLOAT, {1});
  add_node(cycle, "Add", {"x", "b"}, {"a"});
  add_node(cycle, "Neg", {"a"}, {"b"});
  add_output(cycle, "b");
  EXPECT_EQ(import_model(cycle).status().code(), StatusCode::kInvalidData);

  ::onnx::ModelProto no_output = relu_model();
  add_output(no_output, "ghost");
  EXPECT_EQ(import_model(no_output).status().code(), StatusCode::kInvalidData);

  ::onnx::ModelProto shadow = relu_model();
  add_initializer_f32(shadow, "y", {1}, {0.f});
  EXPECT_EQ(import_model(shadow).status().code(), StatusCode::kInvalidData);
}

TEST(ImporterTest, NonTensorAndStringInputsAreUnsupported) {
  ::onnx::ModelProto seq = relu_model();
  auto* vi = seq.mutable_graph()->mutable_input(0);
  vi->mutable_type()->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type()->set_elem_type(1);
  EXPECT_EQ(import_model(seq).status().code(), StatusCode::kUnsupported);
  ::onnx::ModelProto str = relu_model();
  str.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(
      TensorProto::STRING);
  EXPECT_EQ(import_model(str).status().code(), StatusCode::kUnsupported);
}

TEST(ImporterTest, TruncatedModelBytesAreRejected) {
  ::onnx::ModelProto m = relu_model();
  add_initializer_f32(m, "unused", {4}, {1, 2, 3, 4});
  std::string bytes;
  m.SerializeToString(&bytes);
  ASSERT_TRUE(import_bytes(bytes, "").ok());
  int failures = 0;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    Result<ir::Graph> g = import_bytes(std::string_view(bytes).substr(0, cut), "");
    if (!g.ok()) {
      ++failures;
      EXPECT_NE(g.status().code(), StatusCode::kInternal) << g.status().to_string();
    }
  }
  EXPECT_GT(failures, static_cast<int>(bytes.size()) / 2);
  EXPECT_EQ(import_bytes("not a protobuf at all \xff\xff", "").status().code(), StatusCode::kInvalidData);
}

TEST(ImporterTest, HugeDimsInAnInitializerAreRejected) {
  ::onnx::ModelProto m = relu_model();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("huge");
  t->set_data_type(TensorProto::FLOAT);
  t->add_dims(int64_t{1} << 31);
  t->add_dims(int64_t{1} << 31);
  t->set_raw_data(std::string(16, '\0'));
  Status s = import_model(m).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidData);
  EXPECT_NE(s.message().find("huge"), std::string::npos) << s.message();
}

TEST(ImporterTest, SupportedOpsTableIsSortedWithSaneRanges) {
  const auto& ops = supported_ops();
  ASSERT_FALSE(ops.empty());
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_GE(ops[i].min_version, 1) << ops[i].op;
    EXPECT_LE(ops[i].min_version, ops[i].max_version) << ops[i].op;
    EXPECT_LE(ops[i].max_version, kMaxOpset) << ops[i].op;
    if (i) {
      EXPECT_LT(ops[i - 1].op, ops[i].op);
    }
  }
}

}  // namespace
}  // namespace kiln::onnx
