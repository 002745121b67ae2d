// Sizes a file or a tensor declares that no machine could hold must fail with a clear Status
// before anything that large is allocated (and never abort), on every path that reads them:
// the ONNX importer (initializer dims), the engine reader (constant dims and sizes) and the CPU
// kernels whose output shape comes from input values at run time.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "format/engine_test_util.h"
#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/test_util.h"

namespace kiln {
namespace {

namespace ot = onnx::testing;
constexpr int64_t kHuge = 1'000'000'000'000;  // 1e12

bool mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

// An initializer claiming 1e12 x 1e12 floats but holding 4 bytes: rejected by comparing the
// data present with what the dims need, never by trying to allocate 4e24 bytes.
TEST(HugeDeclaredSizesTest, OnnxInitializerClaimingTeraElementsIsRejected) {
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{kHuge, kHuge}, std::vector<int64_t>{kHuge}, {1 << 30, 1 << 30, 1 << 30}}) {
    ::onnx::ModelProto m = ot::make_model(17);
    ot::add_input(m, "x", 1, {1});
    ot::add_output(m, "y", 1, {1});
    auto* t = m.mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(::onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(4, '\0'));
    ot::add_node(m, "Add", {"x", "w"}, {"y"}, "add");
    Result<ir::Graph> g = ot::import_model(m);
    ASSERT_FALSE(g.ok()) << dims_to_string(dims);
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidData) << g.status().to_string();
    EXPECT_TRUE(mentions(g.status(), "'w'")) << g.status().to_string();
  }
}

// The same claim through typed fields (float_data) instead of raw_data.
TEST(HugeDeclaredSizesTest, OnnxTypedInitializerClaimingTeraElementsIsRejected) {
  ::onnx::ModelProto m = ot::make_model(17);
  ot::add_input(m, "x", 1, {1});
  ot::add_output(m, "y", 1, {1});
  ot::add_initializer_f32(m, "w", {kHuge, kHuge}, {1.f});
  ot::add_node(m, "Add", {"x", "w"}, {"y"}, "add");
  Result<ir::Graph> g = ot::import_model(m);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidData) << g.status().to_string();
}

// An engine file whose constant claims a huge shape (checksums kept valid, so only the decoder
// can catch it): a Status naming the file offset, no allocation of the claimed size.
TEST(HugeDeclaredSizesTest, EngineConstantClaimingHugeDimsIsRejected) {
  using namespace format::testing;
  format::EngineModel m;
  m.header.name = "huge";
  ir::Graph& g = m.graph;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({3, 5, 7}));
  g.inputs.push_back(x);
  int c = g.add_constant("c", patterned(DType::kF32, {3, 5, 7}, 1));
  int y = g.add_value("y", DType::kF32, ir::Shape::of({3, 5, 7}));
  ir::Node add;
  add.name = "add";
  add.op = "Add";
  add.inputs = {x, c};
  add.outputs = {y};
  g.add_node(add);
  g.outputs.push_back(y);
  m.inputs.push_back({"x", x, DType::kF32, ir::Shape::of({3, 5, 7}), {3, 5, 7}, {3, 5, 7}, {3, 5, 7}});
  m.outputs.push_back({"y", y, DType::kF32, ir::Shape::of({3, 5, 7}), {}, {}, {}});
  Result<std::vector<uint8_t>> bytes = format::engine_serialize(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();

  // The constant's dims are written as three little-endian i64 after a u32 count: find them.
  uint8_t pattern[28] = {};
  put_le(pattern, 3, 4);
  put_le(pattern + 4, 3, 8);
  put_le(pattern + 12, 5, 8);
  put_le(pattern + 20, 7, 8);
  std::vector<size_t> hits;
  for (size_t i = 0; i + sizeof pattern <= bytes->size(); ++i)
    if (std::memcmp(bytes->data() + i, pattern, sizeof pattern) == 0) hits.push_back(i);
  ASSERT_FALSE(hits.empty());
  int rejected = 0;
  for (size_t at : hits) {
    for (uint64_t d : {uint64_t(kHuge), uint64_t{1} << 62, ~uint64_t{0} >> 1}) {
      std::vector<uint8_t> f = *bytes;
      put_le(&f[at + 4], d, 8);
      put_le(&f[at + 12], d, 8);
      fix_checksums(f);
      Result<format::EngineModel> r = format::engine_parse(f, nullptr);
      if (!r.ok()) {
        ++rejected;
        EXPECT_EQ(r.status().code(), StatusCode::kInvalidData) << r.status().to_string();
      }
    }
  }
  // The binding shape and the value shape hold the same pattern; the constant's copy must fail.
  EXPECT_GE(rejected, 3);
}

// ONNX model: shape input (i64) -> op -> output. Returns the loaded engine.
std::shared_ptr<Engine> shape_driven_engine(const std::string& op, int64_t rank) {
  ::onnx::ModelProto m = ot::make_model(17);
  ot::add_input(m, "s", 7, {rank});
  ot::add_output(m, "y");
  if (op == "ConstantOfShape") {
    ot::add_node(m, "ConstantOfShape", {"s"}, {"y"}, "cos");
  } else if (op == "Expand") {
    ot::add_initializer_f32(m, "one", {1}, {1.f});
    ot::add_node(m, "Expand", {"one", "s"}, {"y"}, "expand");
  } else if (op == "Tile") {
    ot::add_initializer_f32(m, "block", std::vector<int64_t>(rank, 1), {2.f});
    ot::add_node(m, "Tile", {"block", "s"}, {"y"}, "tile");
  } else if (op == "Reshape") {
    ot::add_initializer_f32(m, "data", {2, 3}, {1, 2, 3, 4, 5, 6});
    ot::add_node(m, "Reshape", {"data", "s"}, {"y"}, "reshape");
  }
  std::string bytes;
  m.SerializeToString(&bytes);
  BuildOptions o;
  o.shapes.push_back({"s", {rank}, {rank}, {rank}});
  Result<std::vector<uint8_t>> e = build_engine_from_bytes(bytes, "", o);
  EXPECT_TRUE(e.ok()) << op << ": " << e.status().to_string();
  if (!e.ok()) return nullptr;
  auto engine = Engine::load_from_memory(std::move(e).value());
  EXPECT_TRUE(engine.ok()) << engine.status().to_string();
  return engine.ok() ? *engine : nullptr;
}

// Run-time shapes asking for 1e15 elements and more: each op fails with a Status naming the node
// (resource exhausted, or invalid for a shape that overflows), before allocating.
TEST(HugeDeclaredSizesTest, RuntimeShapeDrivenOpsRefuseHugeOutputs) {
  const std::vector<std::vector<int64_t>> shapes = {
      {1'000'000, 1'000'000, 1'000},           // 1e15 elements
      {kHuge, kHuge, kHuge},                   // overflows 64 bits
      {int64_t{1} << 62, int64_t{1} << 62, 4}  // overflows 64 bits
  };
  for (const char* op : {"ConstantOfShape", "Expand", "Tile"}) {
    std::shared_ptr<Engine> engine = shape_driven_engine(op, 3);
    ASSERT_NE(engine, nullptr) << op;
    for (const auto& s : shapes) {
      std::vector<Tensor> in{Tensor::from_vector(DType::kI64, {3}, s)};
      Result<std::vector<Tensor>> out = engine->run(in);
      ASSERT_FALSE(out.ok()) << op << " " << dims_to_string(s);
      const Status& st = out.status();
      EXPECT_TRUE(st.code() == StatusCode::kResourceExhausted ||
                  st.code() == StatusCode::kInvalidArgument)
          << op << ": " << st.to_string();
      EXPECT_TRUE(mentions(st, op)) << st.to_string();
    }
  }
  // Reshape never allocates: a huge target shape is an element-count mismatch.
  std::shared_ptr<Engine> reshape = shape_driven_engine("Reshape", 3);
  ASSERT_NE(reshape, nullptr);
  for (const auto& s : shapes) {
    std::vector<Tensor> in{Tensor::from_vector(DType::kI64, {3}, s)};
    Result<std::vector<Tensor>> out = reshape->run(in);
    ASSERT_FALSE(out.ok()) << dims_to_string(s);
    EXPECT_TRUE(mentions(out.status(), "Reshape")) << out.status().to_string();
  }
}

// Range asked for ~1e15 elements (float and integer), the same.
TEST(HugeDeclaredSizesTest, RuntimeRangeRefusesHugeOutputs) {
  for (int elem : {1, 7}) {
    ::onnx::ModelProto m = ot::make_model(17);
    for (const char* n : {"start", "limit", "delta"}) ot::add_input(m, n, elem, {});
    ot::add_output(m, "y");
    ot::add_node(m, "Range", {"start", "limit", "delta"}, {"y"}, "range");
    std::string bytes;
    m.SerializeToString(&bytes);
    Result<std::vector<uint8_t>> e = build_engine_from_bytes(bytes, "", BuildOptions{});
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    auto engine = Engine::load_from_memory(std::move(e).value());
    ASSERT_TRUE(engine.ok());
    std::vector<Tensor> in;
    if (elem == 1) {
      for (float v : {0.f, 1e15f, 1.f}) in.push_back(Tensor::from_vector(DType::kF32, {}, std::vector<float>{v}));
    } else {
      for (int64_t v : {int64_t{0}, int64_t{1'000'000'000'000'000}, int64_t{1}})
        in.push_back(Tensor::from_vector(DType::kI64, {}, std::vector<int64_t>{v}));
    }
    Result<std::vector<Tensor>> out = (*engine)->run(in);
    ASSERT_FALSE(out.ok());
    EXPECT_TRUE(mentions(out.status(), "Range")) << out.status().to_string();
  }
}

}  // namespace
}  // namespace kiln
