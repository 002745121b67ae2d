// Old op versions lower to the canonical (newest-semantics) form.
#include <gtest/gtest.h>

#include "onnx/importer.h"
#include "onnx/test_util.h"

namespace kiln::onnx {
namespace {

using namespace testing;  // NOLINT
using ::onnx::TensorProto;

// A one-node model: x (f32, `dims`) -> op -> y.
::onnx::ModelProto unary(int opset, const std::string& op, const std::vector<int64_t>& dims,
                         ::onnx::NodeProto** node) {
  ::onnx::ModelProto m = make_model(opset, 3);
  add_input(m, "x", TensorProto::FLOAT, dims);
  *node = add_node(m, op, {"x"}, {"y"}, "n");
  add_output(m, "y");
  return m;
}

ir::Graph must_import(const ::onnx::ModelProto& m) {
  Result<ir::Graph> g = import_model(m);
  EXPECT_TRUE(g.ok()) << g.status().to_string();
  return g.ok() ? std::move(g).value() : ir::Graph();
}

TEST(LoweringTest, Slice1AttributesBecomeInputs) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto m = unary(9, "Slice", {4, 5}, &n);
  set_ints(n, "starts", {1, 0});
  set_ints(n, "ends", {3, -1});
  set_ints(n, "axes", {0, 1});
  ir::Graph g = must_import(m);
  const ir::Node* s = find_op(g, "Slice");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->inputs.size(), 4u);
  EXPECT_EQ(const_i64(g, s->inputs[1]), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(const_i64(g, s->inputs[2]), (std::vector<int64_t>{3, -1}));
  EXPECT_EQ(const_i64(g, s->inputs[3]), (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(s->attrs.all().empty());
}

TEST(LoweringTest, Slice1WithoutStartsIsInvalid) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto m = unary(9, "Slice", {4}, &n);
  set_ints(n, "ends", {3});
  Status s = import_model(m).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidData);
  EXPECT_NE(s.message().find("node 'n' (Slice-1, opset 9)"), std::string::npos) << s.message();
}

TEST(LoweringTest, SoftmaxBefore13CoercesTo2D) {
  ::onnx::NodeProto* n;
  ir::Graph g11 = must_import(unary(11, "Softmax", {2, 3, 4}, &n));
  const ir::Node* s = find_op(g11, "Softmax");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->attrs.get_int("axis", -99), 1);
  EXPECT_EQ(s->attrs.get_int("coerce_2d", 0), 1);

  ::onnx::ModelProto m = unary(11, "LogSoftmax", {2, 3, 4}, &n);
  set_int(n, "axis", 2);
  ir::Graph g = must_import(m);
  EXPECT_EQ(find_op(g, "LogSoftmax")->attrs.get_int("axis", 0), 2);
  EXPECT_EQ(find_op(g, "LogSoftmax")->attrs.get_int("coerce_2d", 0), 1);

  ir::Graph g13 = must_import(unary(13, "Softmax", {2, 3}, &n));
  EXPECT_FALSE(find_op(g13, "Softmax")->attrs.has("coerce_2d"));
  EXPECT_FALSE(find_op(g13, "Softmax")->attrs.has("axis"));
}

TEST(LoweringTest, Add6BroadcastWithAxisUnsqueezesB) {
  ::onnx::ModelProto m = make_model(6, 3);
  add_input(m, "a", TensorProto::FLOAT, {2, 3, 4, 5});
  add_input(m, "b", TensorProto::FLOAT, {3});
  auto* n = add_node(m, "Add", {"a", "b"}, {"c"}, "add");
  set_int(n, "broadcast", 1);
  set_int(n, "axis", 1);
  add_output(m, "c");
  ir::Graph g = must_import(m);
  const ir::Node* u = find_op(g, "Unsqueeze");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(g.values[u->inputs[0]].name, "b");
  EXPECT_EQ(const_i64(g, u->inputs[1]), (std::vector<int64_t>{1, 2}));  // b -> [3, 1, 1]
  const ir::Node* add = find_op(g, "Add");
  EXPECT_EQ(add->inputs[1], u->outputs[0]);
  EXPECT_FALSE(add->attrs.has("broadcast"));
  EXPECT_FALSE(add->attrs.has("axis"));
}

TEST(LoweringTest, Mul6BroadcastSuffixNeedsNoRewrite) {
  ::onnx::ModelProto m = make_model(6, 3);
  add_input(m, "a", TensorProto::FLOAT, {2, 3});
  add_input(m, "b", TensorProto::FLOAT, {3});
  auto* n = add_node(m, "Mul", {"a", "b"}, {"c"});
  set_int(n, "broadcast", 1);
  add_output(m, "c");
  ir::Graph g = must_import(m);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_TRUE(g.nodes[0].attrs.all().empty());
}

TEST(LoweringTest, Sub6BroadcastWithUnknownRanksUnsqueezesAtRunTime) {
  ::onnx::ModelProto m = make_model(6, 3);
  m.mutable_graph()->add_input()->set_name("a");  // no declared type
  m.mutable_graph()->add_input()->set_name("b");
  auto* n = add_node(m, "Sub", {"a", "b"}, {"c"}, "sub");
  set_int(n, "broadcast", 1);
  set_int(n, "axis", 0);
  add_output(m, "c");
  ir::Graph g = must_import(m);
  const ir::Node* range = find_op(g, "Range");
  ASSERT_NE(range, nullptr);
  const ir::Node* u = find_op(g, "Unsqueeze");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->inputs[1], range->outputs[0]);
  ASSERT_NE(find_node(g, "sub"), nullptr);
  EXPECT_EQ(find_node(g, "sub")->op, "Sub");
  EXPECT_EQ(find_node(g, "sub")->inputs[1], u->outputs[0]);
}

TEST(LoweringTest, Upsample9BecomesResizeAsymmetricFloor) {
  ::onnx::ModelProto m = make_model(9, 4);
  add_input(m, "x", TensorProto::FLOAT, {1, 1, 2, 2});
  add_input(m, "scales", TensorProto::FLOAT, {4});
  add_node(m, "Upsample", {"x", "scales"}, {"y"}, "up");
  add_output(m, "y");
  ir::Graph g = must_import(m);
  ASSERT_EQ(g.nodes.size(), 1u);
  const ir::Node& r = g.nodes[0];
  EXPECT_EQ(r.op, "Resize");
  ASSERT_EQ(r.inputs.size(), 3u);
  EXPECT_EQ(r.inputs[1], ir::kNoValue);  // roi
  EXPECT_EQ(g.values[r.inputs[2]].name, "scales");
  EXPECT_EQ(r.attrs.get_string("mode", ""), "nearest");
  EXPECT_EQ(r.attrs.get_string("coordinate_transformation_mode", ""), "asymmetric");
  EXPECT_EQ(r.attrs.get_string("nearest_mode", ""), "floor");
}

TEST(LoweringTest, Upsample7ScalesAttributeBecomesConstantAndLinearStaysLinear) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto m = unary(7, "Upsample", {1, 1, 2, 2}, &n);
  set_floats(n, "scales", {1.f, 1.f, 2.f, 3.f});
  set_string(n, "mode", "linear");
  ir::Graph g = must_import(m);
  const ir::Node& r = g.nodes.at(0);
  EXPECT_EQ(r.op, "Resize");
  const ir::Value& s = g.values[r.inputs.at(2)];
  ASSERT_GE(s.constant, 0);
  const Tensor& t = g.constants[s.constant];
  EXPECT_EQ(t.dtype(), DType::kF32);
  EXPECT_EQ(t.data_as<float>()[3], 3.f);
  EXPECT_EQ(r.attrs.get_string("mode", ""), "linear");
  EXPECT_EQ(r.attrs.get_string("coordinate_transformation_mode", ""), "asymmetric");
  EXPECT_FALSE(r.attrs.has("nearest_mode"));
}

TEST(LoweringTest, Upsample1BilinearAndDeprecatedUpsample10) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto m = unary(6, "Upsample", {1, 1, 2, 2}, &n);
  set_float(n, "height_scale", 2.f);
  set_float(n, "width_scale", 3.f);
  set_string(n, "mode", "bilinear");
  ir::Graph g = must_import(m);
  const ir::Node& r = g.nodes.at(0);
  EXPECT_EQ(r.attrs.get_string("mode", ""), "linear");
  const Tensor& t = g.constants[g.values[r.inputs.at(2)].constant];
  EXPECT_EQ(t.data_as<float>()[2], 2.f);
  EXPECT_EQ(t.data_as<float>()[3], 3.f);

  ::onnx::ModelProto m10 = make_model(10);
  add_input(m10, "x", TensorProto::FLOAT, {1, 1, 2, 2});
  add_input(m10, "s", TensorProto::FLOAT, {4});
  add_node(m10, "Upsample", {"x", "s"}, {"y"});
  add_output(m10, "y");
  EXPECT_EQ(import_model(m10).status().code(), StatusCode::kUnsupported);
}

TEST(LoweringTest, Resize10AndEmptyResize11Inputs) {
  ::onnx::ModelProto m = make_model(10);
  add_input(m, "x", TensorProto::FLOAT, {1, 1, 2, 2});
  add_input(m, "scales", TensorProto::FLOAT, {4});
  add_node(m, "Resize", {"x", "scales"}, {"y"});
  add_output(m, "y");
  ir::Graph g = must_import(m);
  EXPECT_EQ(g.nodes[0].inputs.size(), 3u);
  EXPECT_EQ(g.nodes[0].attrs.get_string("nearest_mode", ""), "floor");

  // Constant downsampling scales round up, as onnxruntime's Resize-10 does.
  ::onnx::ModelProto down = make_model(10);
  add_input(down, "x", TensorProto::FLOAT, {1, 1, 4, 6});
  add_initializer_f32(down, "scales", {4}, {1.f, 1.f, 0.6f, 0.7f});
  add_node(down, "Resize", {"x", "scales"}, {"y"});
  add_output(down, "y");
  EXPECT_EQ(must_import(down).nodes[0].attrs.get_string("nearest_mode", ""), "ceil");

  ::onnx::ModelProto m11 = make_model(11);
  add_input(m11, "x", TensorProto::FLOAT, {1, 1, 2, 2});
  add_input(m11, "sizes", TensorProto::INT64, {4});
  add_initializer_f32(m11, "roi", {0}, {});
  add_initializer_f32(m11, "scales", {0}, {});
  add_node(m11, "Resize", {"x", "roi", "scales", "sizes"}, {"y"});
  add_output(m11, "y");
  ir::Graph g11 = must_import(m11);
  const ir::Node& r = g11.nodes[0];
  ASSERT_EQ(r.inputs.size(), 4u);
  EXPECT_EQ(r.inputs[1], ir::kNoValue);
  EXPECT_EQ(r.inputs[2], ir::kNoValue);
  EXPECT_EQ(g11.values[r.inputs[3]].name, "sizes");
}

TEST(LoweringTest, Clip6BoundsBecomeInputsOfTheInputDtype) {
  ::onnx::ModelProto m = make_model(6, 3);
  add_input(m, "x", TensorProto::DOUBLE, {3});
  auto* n = add_node(m, "Clip", {"x"}, {"y"});
  set_float(n, "max", 6.f);
  add_output(m, "y");
  ir::Graph g = must_import(m);
  const ir::Node& c = g.nodes.at(0);
  ASSERT_EQ(c.inputs.size(), 3u);
  EXPECT_EQ(c.inputs[1], ir::kNoValue);
  const Tensor& hi = g.constants[g.values[c.inputs[2]].constant];
  EXPECT_EQ(hi.dtype(), DType::kF64);
  EXPECT_EQ(hi.rank(), 0);
  EXPECT_EQ(hi.data_as<double>()[0], 6.0);
}

TEST(LoweringTest, Pad2PadsAndValueBecomeInputs) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto m = unary(2, "Pad", {2, 2}, &n);
  set_ints(n, "pads", {0, 1, 0, 1});
  set_float(n, "value", 1.5f);
  set_string(n, "mode", "constant");
  ir::Graph g = must_import(m);
  const ir::Node& p = g.nodes.at(0);
  ASSERT_EQ(p.inputs.size(), 3u);
  EXPECT_EQ(const_i64(g, p.inputs[1]), (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_EQ(g.constants[g.values[p.inputs[2]].constant].data_as<float>()[0], 1.5f);
  EXPECT_EQ(p.attrs.get_string("mode", ""), "constant");

  ::onnx::ModelProto m1 = unary(1, "Pad", {2}, &n);
  set_ints(n, "paddings", {1, 2});
  ir::Graph g1 = must_import(m1);
  EXPECT_EQ(const_i64(g1, g1.nodes.at(0).inputs.at(1)), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(g1.nodes.at(0).inputs.size(), 2u);  // value 0 is the default: no input
}

TEST(LoweringTest, ReduceAxesMoveToInputsAtTheRightOpset) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto m = unary(13, "ReduceMean", {2, 3}, &n);
  set_ints(n, "axes", {1});
  set_int(n, "keepdims", 0);
  ir::Graph g = must_import(m);
  EXPECT_EQ(const_i64(g, g.nodes[0].inputs.at(1)), (std::vector<int64_t>{1}));
  EXPECT_EQ(g.nodes[0].attrs.get_int("keepdims", 1), 0);

  ::onnx::ModelProto all = unary(11, "ReduceSum", {2, 3}, &n);  // no axes: reduce everything
  EXPECT_EQ(must_import(all).nodes[0].inputs.size(), 1u);
}

TEST(LoweringTest, ShapeParameterAttributesBecomeInputs) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto r = unary(4, "Reshape", {2, 3}, &n);
  set_ints(n, "shape", {3, -1});
  ir::Graph gr = must_import(r);
  EXPECT_EQ(const_i64(gr, gr.nodes[0].inputs.at(1)), (std::vector<int64_t>{3, -1}));

  ::onnx::ModelProto u = unary(11, "Unsqueeze", {3}, &n);
  set_ints(n, "axes", {0});
  ir::Graph gu = must_import(u);
  EXPECT_EQ(const_i64(gu, gu.nodes[0].inputs.at(1)), (std::vector<int64_t>{0}));

  ::onnx::ModelProto s = unary(11, "Squeeze", {1, 3}, &n);
  ir::Graph gs = must_import(s);
  EXPECT_EQ(gs.nodes[0].inputs.size(), 1u);  // no axes: squeeze every 1

  ::onnx::ModelProto t = unary(9, "TopK", {5}, &n);
  set_int(n, "k", 2);
  t.mutable_graph()->mutable_node(0)->add_output("idx");
  ir::Graph gt = must_import(t);
  EXPECT_EQ(const_i64(gt, gt.nodes[0].inputs.at(1)), (std::vector<int64_t>{2}));
  EXPECT_EQ(gt.nodes[0].outputs.size(), 2u);
}

TEST(LoweringTest, SplitAttributeBecomesInputOrNumOutputs) {
  ::onnx::ModelProto m = make_model(11);
  add_input(m, "x", TensorProto::FLOAT, {6});
  auto* n = add_node(m, "Split", {"x"}, {"a", "b"});
  set_ints(n, "split", {2, 4});
  add_output(m, "a");
  add_output(m, "b");
  ir::Graph g = must_import(m);
  EXPECT_EQ(const_i64(g, g.nodes[0].inputs.at(1)), (std::vector<int64_t>{2, 4}));
  EXPECT_FALSE(g.nodes[0].attrs.has("num_outputs"));

  ::onnx::ModelProto even = make_model(13);
  add_input(even, "x", TensorProto::FLOAT, {6});
  add_node(even, "Split", {"x"}, {"a", "b", "c"});
  add_output(even, "a");
  ir::Graph ge = must_import(even);
  EXPECT_EQ(ge.nodes[0].inputs.size(), 1u);
  EXPECT_EQ(ge.nodes[0].attrs.get_int("num_outputs", 0), 3);
}

TEST(LoweringTest, Tile1BecomesRepeatsStaticallyOrAtRunTime) {
  ::onnx::ModelProto m = make_model(5, 3);
  add_input(m, "x", TensorProto::FLOAT, {2, 3});
  auto* tiles = m.mutable_graph()->add_initializer();
  tiles->set_name("tiles");
  tiles->set_data_type(TensorProto::INT64);
  tiles->add_int64_data(4);
  auto* axis = m.mutable_graph()->add_initializer();
  axis->set_name("axis");
  axis->set_data_type(TensorProto::INT64);
  axis->add_int64_data(1);
  add_node(m, "Tile", {"x", "tiles", "axis"}, {"y"});
  add_output(m, "y");
  ir::Graph g = must_import(m);
  const ir::Node* t = find_op(g, "Tile");
  ASSERT_EQ(t->inputs.size(), 2u);
  EXPECT_EQ(const_i64(g, t->inputs[1]), (std::vector<int64_t>{1, 4}));

  ::onnx::ModelProto dyn = make_model(5, 3);
  add_input(dyn, "x", TensorProto::FLOAT, {2, 3});
  add_input(dyn, "tiles", TensorProto::INT64, {});
  add_input(dyn, "axis", TensorProto::INT64, {});
  add_node(dyn, "Tile", {"x", "tiles", "axis"}, {"y"});
  add_output(dyn, "y");
  ir::Graph gd = must_import(dyn);
  const ir::Node* w = find_op(gd, "Where");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(find_op(gd, "Tile")->inputs.at(1), w->outputs[0]);
}

TEST(LoweringTest, CastNamesAndCastLike) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto m = unary(5, "Cast", {2}, &n);
  set_string(n, "to", "INT64");
  ir::Graph g = must_import(m);
  EXPECT_EQ(g.nodes[0].attrs.get_int("to", 0), static_cast<int64_t>(DType::kI64));

  ::onnx::ModelProto bad = unary(13, "Cast", {2}, &n);
  set_int(n, "to", TensorProto::STRING);
  EXPECT_EQ(import_model(bad).status().code(), StatusCode::kUnsupported);

  ::onnx::ModelProto like = make_model(15);
  add_input(like, "x", TensorProto::FLOAT, {2});
  add_input(like, "t", TensorProto::FLOAT16, {1});
  add_node(like, "CastLike", {"x", "t"}, {"y"});
  add_output(like, "y");
  ir::Graph gl = must_import(like);
  EXPECT_EQ(gl.nodes[0].op, "Cast");
  EXPECT_EQ(gl.nodes[0].inputs.size(), 1u);
  EXPECT_EQ(gl.nodes[0].attrs.get_int("to", 0), static_cast<int64_t>(DType::kF16));
}

TEST(LoweringTest, ConstantNodesBecomeConstantValues) {
  ::onnx::ModelProto m = make_model(13);
  add_input(m, "x", TensorProto::INT64, {3});
  auto* c = add_node(m, "Constant", {}, {"k"});
  set_ints(c, "value_ints", {5, 6, 7});
  auto* f = add_node(m, "Constant", {}, {"f"});
  set_float(f, "value_float", 2.5f);
  add_node(m, "Add", {"x", "k"}, {"y"});
  add_output(m, "y");
  add_output(m, "f");
  ir::Graph g = must_import(m);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(const_i64(g, g.nodes[0].inputs[1]), (std::vector<int64_t>{5, 6, 7}));
  const ir::Value& fv = g.values[g.outputs[1]];
  ASSERT_GE(fv.constant, 0);
  EXPECT_EQ(g.constants[fv.constant].rank(), 0);
  EXPECT_EQ(g.constants[fv.constant].data_as<float>()[0], 2.5f);

  ::onnx::ModelProto s = make_model(13);
  set_string(add_node(s, "Constant", {}, {"k"}), "value_string", "hi");
  add_output(s, "k");
  EXPECT_EQ(import_model(s).status().code(), StatusCode::kUnsupported);
}

TEST(LoweringTest, DropoutRatioAndLegacyMask) {
  ::onnx::ModelProto m = make_model(7, 3);
  add_input(m, "x", TensorProto::FLOAT, {4});
  auto* n = add_node(m, "Dropout", {"x"}, {"y", "mask"}, "drop");
  set_float(n, "ratio", 0.25f);
  add_output(m, "y");
  add_output(m, "mask");
  ir::Graph g = must_import(m);
  const ir::Node* d = find_op(g, "Dropout");
  ASSERT_EQ(d->inputs.size(), 2u);
  EXPECT_EQ(g.constants[g.values[d->inputs[1]].constant].data_as<float>()[0], 0.25f);
  const ir::Node* cast = find_op(g, "Cast");  // bool mask -> float mask of Dropout-7
  ASSERT_NE(cast, nullptr);
  EXPECT_EQ(cast->inputs[0], d->outputs[1]);
  EXPECT_EQ(g.values[cast->outputs[0]].name, "mask");
  EXPECT_EQ(cast->attrs.get_int("to", 0), static_cast<int64_t>(DType::kF32));
}

TEST(LoweringTest, DropoutWithConstantTrainingModeIsUnsupported) {
  ::onnx::ModelProto m = make_model(13);
  add_input(m, "x", TensorProto::FLOAT, {4});
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("train");
  t->set_data_type(TensorProto::BOOL);
  t->add_int32_data(1);
  add_node(m, "Dropout", {"x", "", "train"}, {"y"});
  add_output(m, "y");
  EXPECT_EQ(import_model(m).status().code(), StatusCode::kUnsupported);
  m.mutable_graph()->mutable_initializer(0)->set_int32_data(0, 0);
  EXPECT_TRUE(import_model(m).ok());
}

TEST(LoweringTest, BatchNormTrainingOutputsAndSpatial) {
  auto bn = [](int opset, bool use_mean) {
    ::onnx::ModelProto m = make_model(opset, 3);
    add_input(m, "x", TensorProto::FLOAT, {1, 2, 3});
    for (const char* p : {"s", "b", "m", "v"}) add_initializer_f32(m, p, {2}, {1.f, 1.f});
    auto* n = add_node(m, "BatchNormalization", {"x", "s", "b", "m", "v"}, {"y", "rm"}, "bn");
    set_int(n, "is_test", 1);
    add_output(m, "y");
    if (use_mean) add_output(m, "rm");
    return m;
  };
  ir::Graph g = must_import(bn(6, false));
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].outputs.size(), 1u);
  EXPECT_FALSE(g.nodes[0].attrs.has("is_test"));
  EXPECT_EQ(import_model(bn(6, true)).status().code(), StatusCode::kUnsupported);

  ::onnx::ModelProto sp = bn(7, false);
  set_int(sp.mutable_graph()->mutable_node(0), "spatial", 0);
  ir::Graph gs = must_import(sp);
  EXPECT_EQ(find_op(gs, "BatchNormalization"), nullptr);
  EXPECT_NE(find_op(gs, "Sqrt"), nullptr);
  EXPECT_EQ(gs.values[gs.nodes.back().outputs[0]].name, "y");
}

TEST(LoweringTest, LegacyAttributesAreDroppedAndDefaultsMadeExplicit) {
  ::onnx::NodeProto* n;
  ::onnx::ModelProto r = unary(1, "Relu", {2}, &n);
  set_ints(n, "consumed_inputs", {0});
  EXPECT_TRUE(must_import(r).nodes[0].attrs.all().empty());

  ::onnx::ModelProto c = make_model(1, 3);
  add_input(c, "a", TensorProto::FLOAT, {2, 1});
  add_input(c, "b", TensorProto::FLOAT, {2, 1});
  add_node(c, "Concat", {"a", "b"}, {"y"});
  add_output(c, "y");
  EXPECT_EQ(must_import(c).nodes[0].attrs.get_int("axis", -1), 1);

  ::onnx::ModelProto s = unary(1, "Selu", {2}, &n);
  EXPECT_NEAR(must_import(s).nodes[0].attrs.get_float("alpha", 0), 1.6732, 1e-6);

  ::onnx::ModelProto gm = make_model(6, 3);
  add_input(gm, "a", TensorProto::FLOAT, {2, 3});
  add_input(gm, "b", TensorProto::FLOAT, {3, 4});
  add_input(gm, "c", TensorProto::FLOAT, {4});
  set_int(add_node(gm, "Gemm", {"a", "b", "c"}, {"y"}), "broadcast", 1);
  add_output(gm, "y");
  EXPECT_FALSE(must_import(gm).nodes[0].attrs.has("broadcast"));
}

TEST(LoweringTest, PRelu6ChannelSlopeIsAlignedToAxis1) {
  ::onnx::ModelProto m = make_model(6, 3);
  add_input(m, "x", TensorProto::FLOAT, {2, 3, 4});
  add_initializer_f32(m, "slope", {3}, {0.1f, 0.2f, 0.3f});
  add_node(m, "PRelu", {"x", "slope"}, {"y"});
  add_output(m, "y");
  ir::Graph g = must_import(m);
  const ir::Node* u = find_op(g, "Unsqueeze");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(const_i64(g, u->inputs[1]), (std::vector<int64_t>{1}));  // slope -> [3, 1]
}

}  // namespace
}  // namespace kiln::onnx
