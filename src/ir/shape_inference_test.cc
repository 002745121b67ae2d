#include "ir/shape_inference.h"

#include <gtest/gtest.h>

#include <limits>

#include "ir/op_registry.h"

namespace kiln::ir {
namespace {

Dim K(int64_t v) { return Dim::known(v); }
Dim S(const char* s) { return Dim::named(s); }
Shape sh(std::vector<Dim> d) { return Shape{true, std::move(d)}; }

// A graph under construction: inputs with shapes, nodes, constants.
struct G {
  Graph g;
  int input(const std::string& name, Shape s, DType t = DType::kF32) {
    int id = g.add_value(name, t, std::move(s));
    g.inputs.push_back(id);
    return id;
  }
  int i64(const std::string& name, std::vector<int64_t> v) {
    return g.add_constant(name, Tensor::from_vector(DType::kI64, {static_cast<int64_t>(v.size())}, v));
  }
  int f32(const std::string& name, std::vector<float> v) {
    return g.add_constant(name, Tensor::from_vector(DType::kF32, {static_cast<int64_t>(v.size())}, v));
  }
  // One node with `nout` fresh outputs; returns the first output's id.
  int node(const std::string& op, std::vector<int> in, Attributes attrs = {}, int nout = 1) {
    Node n;
    n.name = op + std::to_string(g.nodes.size());
    n.op = op;
    n.inputs = std::move(in);
    n.attrs = std::move(attrs);
    int first = -1;
    for (int k = 0; k < nout; ++k) {
      int id = g.add_value(n.name + "_out" + std::to_string(k));
      if (first < 0) first = id;
      n.outputs.push_back(id);
    }
    g.add_node(std::move(n));
    return first;
  }
  Status infer(int out_id) {
    g.outputs = {out_id};
    return infer_shapes(g, &stats);
  }
  const Shape& shape(int id) const { return g.values[static_cast<size_t>(id)].shape; }
  DType dtype(int id) const { return g.values[static_cast<size_t>(id)].dtype; }
  InferStats stats;
};

Attributes ints_attr(const std::string& name, std::vector<int64_t> v) {
  Attributes a;
  a.set_ints(name, std::move(v));
  return a;
}

TEST(ShapeInferenceTest, BroadcastKeepsSymbols) {
  G t;
  int a = t.input("a", sh({S("batch"), K(1), K(4)}));
  int b = t.input("b", sh({S("batch"), S("seq"), K(1)}));
  int c = t.input("c", sh({K(4)}));
  int ab = t.node("Add", {a, b});
  int abc = t.node("Mul", {ab, c});
  ASSERT_TRUE(t.infer(abc).ok());
  EXPECT_EQ(t.shape(ab), sh({S("batch"), S("seq"), K(4)}));
  EXPECT_EQ(t.shape(abc), sh({S("batch"), S("seq"), K(4)}));
  EXPECT_EQ(t.dtype(abc), DType::kF32);
}

TEST(ShapeInferenceTest, BroadcastOfDifferentSymbolsIsUnknown) {
  G t;
  int a = t.input("a", sh({S("n"), K(3)}));
  int b = t.input("b", sh({S("m"), K(3)}));
  int y = t.node("Sub", {a, b});
  ASSERT_TRUE(t.infer(y).ok());
  EXPECT_EQ(t.shape(y), sh({Dim{}, K(3)}));
}

TEST(ShapeInferenceTest, BroadcastOfSymbolAgainstKnownSizeTakesTheSize) {
  G t;
  int a = t.input("a", sh({S("n"), K(3)}));
  int b = t.input("b", sh({K(5), K(1)}));
  int y = t.node("Equal", {a, b});
  ASSERT_TRUE(t.infer(y).ok());
  EXPECT_EQ(t.shape(y), sh({K(5), K(3)}));
  EXPECT_EQ(t.dtype(y), DType::kBool);
}

TEST(ShapeInferenceTest, BroadcastConflictIsAnErrorNamingTheNode) {
  G t;
  int a = t.input("a", sh({K(2), K(3)}));
  int b = t.input("b", sh({K(4)}));
  int y = t.node("Add", {a, b});
  Status s = t.infer(y);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Add0"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("[2, 3]"), std::string::npos) << s.to_string();
}

TEST(ShapeInferenceTest, MatMulAndGemm) {
  G t;
  int x = t.input("x", sh({S("batch"), S("seq"), K(64)}));
  int w = t.input("w", sh({K(64), K(256)}));
  int y = t.node("MatMul", {x, w});
  int v = t.input("v", sh({K(256)}));
  int z = t.node("MatMul", {y, v});
  int a = t.input("a", sh({S("n"), K(8)}));
  int b = t.input("b", sh({K(16), K(8)}));
  Attributes tb;
  tb.set_int("transB", 1);
  int g = t.node("Gemm", {a, b}, tb);
  ASSERT_TRUE(t.infer(z).ok());
  EXPECT_EQ(t.shape(y), sh({S("batch"), S("seq"), K(256)}));
  EXPECT_EQ(t.shape(z), sh({S("batch"), S("seq")}));
  EXPECT_EQ(t.shape(g), sh({S("n"), K(16)}));
}

TEST(ShapeInferenceTest, MatMulInnerMismatchIsAnError) {
  G t;
  int x = t.input("x", sh({K(2), K(3)}));
  int w = t.input("w", sh({K(4), K(5)}));
  EXPECT_FALSE(t.infer(t.node("MatMul", {x, w})).ok());
}

TEST(ShapeInferenceTest, ConvFormulaKeepsBatchSymbol) {
  G t;
  int x = t.input("x", sh({S("batch"), K(3), K(224), K(224)}));
  int w = t.input("w", sh({K(16), K(3), K(3), K(3)}));
  Attributes a;
  a.set_ints("strides", {2, 2});
  a.set_ints("pads", {1, 1, 1, 1});
  int y = t.node("Conv", {x, w}, a);
  Attributes p;
  p.set_ints("kernel_shape", {3, 3});
  p.set_ints("strides", {2, 2});
  p.set_int("ceil_mode", 1);
  int m = t.node("MaxPool", {y}, p, 2);
  int gp = t.node("GlobalAveragePool", {m});
  ASSERT_TRUE(t.infer(gp).ok());
  EXPECT_EQ(t.shape(y), sh({S("batch"), K(16), K(112), K(112)}));  // (224 + 2 - 3) / 2 + 1
  EXPECT_EQ(t.shape(m), sh({S("batch"), K(16), K(56), K(56)}));    // ceil((112 - 3) / 2) + 1
  EXPECT_EQ(t.dtype(m + 1), DType::kI64);                          // Indices
  EXPECT_EQ(t.shape(gp), sh({S("batch"), K(16), K(1), K(1)}));
}

TEST(ShapeInferenceTest, ConvSamePaddingKeepsSymbolicSpatialDimsAtStrideOne) {
  G t;
  int x = t.input("x", sh({K(1), K(3), S("h"), S("w")}));
  int w = t.input("w", sh({K(8), K(3), K(3), K(3)}));
  Attributes a;
  a.set_string("auto_pad", "SAME_UPPER");
  int y = t.node("Conv", {x, w}, a);
  ASSERT_TRUE(t.infer(y).ok());
  EXPECT_EQ(t.shape(y), sh({K(1), K(8), S("h"), S("w")}));
}

TEST(ShapeInferenceTest, ReshapeCopiesZerosAndComputesMinusOne) {
  G t;
  int x = t.input("x", sh({S("batch"), S("seq"), K(256)}));
  int y = t.node("Reshape", {x, t.i64("s1", {0, 0, 4, -1})});
  int z = t.node("Reshape", {x, t.i64("s2", {-1, 256})});
  int u = t.node("Reshape", {t.input("c", sh({K(2), K(3), K(4)})), t.i64("s3", {4, -1})});
  int v = t.node("Reshape", {x, t.i64("s4", {0, -1})});
  ASSERT_TRUE(t.infer(v).ok());
  EXPECT_EQ(t.shape(y), sh({S("batch"), S("seq"), K(4), K(64)}));
  EXPECT_EQ(t.shape(z), sh({S("batch*seq"), K(256)}));
  EXPECT_EQ(t.shape(u), sh({K(4), K(6)}));
  EXPECT_EQ(t.shape(v), sh({S("batch"), S("256*seq")}));
}

TEST(ShapeInferenceTest, ReshapeToAnotherElementCountIsAnError) {
  G t;
  int x = t.input("x", sh({K(2), K(3)}));
  EXPECT_FALSE(t.infer(t.node("Reshape", {x, t.i64("s", {4, 2})})).ok());
  G u;
  int y = u.input("y", sh({K(2), K(3)}));
  EXPECT_FALSE(u.infer(u.node("Reshape", {y, u.i64("s", {-1, -1})})).ok());
  G w;
  int z = w.input("z", sh({K(2), K(3)}));
  EXPECT_FALSE(w.infer(w.node("Reshape", {z, w.i64("s", {4, -1})})).ok());  // 6 / 4
}

TEST(ShapeInferenceTest, ReshapeWithShapeComputedFromShapeOps) {
  // The transformer idiom: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1, 4, 64])).
  G t;
  int x = t.input("x", sh({S("batch"), S("seq"), K(256)}));
  int shp = t.node("Shape", {x});
  int b = t.node("Gather", {shp, t.g.add_constant("zero", Tensor::from_vector(DType::kI64, {}, std::vector<int64_t>{0}))});
  int bu = t.node("Unsqueeze", {b, t.i64("ax", {0})});
  int target = t.node("Concat", {bu, t.i64("rest", {-1, 4, 64})}, [] {
    Attributes a;
    a.set_int("axis", 0);
    return a;
  }());
  int y = t.node("Reshape", {x, target});
  int perm = t.node("Transpose", {y}, ints_attr("perm", {0, 2, 1, 3}));
  ASSERT_TRUE(t.infer(perm).ok());
  EXPECT_EQ(t.shape(shp), sh({K(3)}));
  EXPECT_EQ(t.shape(b), sh({}));
  EXPECT_EQ(t.shape(target), sh({K(4)}));
  EXPECT_EQ(t.shape(y), sh({S("batch"), S("seq"), K(4), K(64)}));
  EXPECT_EQ(t.shape(perm), sh({S("batch"), K(4), S("seq"), K(64)}));
}

TEST(ShapeInferenceTest, ConcatSumsKnownAndKeepsLoneSymbol) {
  G t;
  int a = t.input("a", sh({S("n"), K(2)}));
  int b = t.input("b", sh({S("n"), K(3)}));
  Attributes ax;
  ax.set_int("axis", 1);
  int y = t.node("Concat", {a, b}, ax);
  int c = t.input("c", sh({S("n"), K(2)}));
  int z = t.node("Concat", {a, c}, Attributes{});
  ASSERT_TRUE(t.infer(z).ok());
  EXPECT_EQ(t.shape(y), sh({S("n"), K(5)}));
  EXPECT_EQ(t.shape(z), sh({Dim{}, K(2)}));
}

TEST(ShapeInferenceTest, SliceSqueezeUnsqueezeFlattenTransposeExpandTilePad) {
  G t;
  int x = t.input("x", sh({S("batch"), K(10), K(6)}));
  int sl = t.node("Slice", {x, t.i64("st", {1, -4}), t.i64("en", {std::numeric_limits<int64_t>::max(), 100}),
                            t.i64("ax", {1, 2}), t.i64("sp", {3, 1})});
  int un = t.node("Unsqueeze", {sl, t.i64("ua", {0, -1})});
  int sq = t.node("Squeeze", {un, t.i64("sa", {0})});
  int fl = t.node("Flatten", {x});
  int tr = t.node("Transpose", {x});
  int ex = t.node("Expand", {t.input("e", sh({K(1), K(6)})), t.i64("es", {3, 1, 1})});
  int ti = t.node("Tile", {x, t.i64("rep", {1, 2, 3})});
  int pa = t.node("Pad", {x, t.i64("pads", {0, 1, 2, 0, 3, 4})});
  ASSERT_TRUE(t.infer(pa).ok());
  EXPECT_EQ(t.shape(sl), sh({S("batch"), K(3), K(4)}));  // 1, 4, 7 / 2..5
  EXPECT_EQ(t.shape(un), sh({K(1), S("batch"), K(3), K(4), K(1)}));
  EXPECT_EQ(t.shape(sq), sh({S("batch"), K(3), K(4), K(1)}));
  EXPECT_EQ(t.shape(fl), sh({S("batch"), K(60)}));
  EXPECT_EQ(t.shape(tr), sh({K(6), K(10), S("batch")}));
  EXPECT_EQ(t.shape(ex), sh({K(3), K(1), K(6)}));
  EXPECT_EQ(t.shape(ti), sh({S("batch"), K(20), K(18)}));
  EXPECT_EQ(t.shape(pa), sh({S("batch"), K(14), K(12)}));
}

TEST(ShapeInferenceTest, ReductionsGatherSplitAndShapeDtype) {
  G t;
  int x = t.input("x", sh({S("n"), K(4), K(6)}));
  Attributes keep0;
  keep0.set_int("keepdims", 0);
  int r = t.node("ReduceMean", {x, t.i64("axes", {-1})});
  int r0 = t.node("ReduceSum", {x, t.i64("axes2", {1})}, keep0);
  int all = t.node("ReduceMax", {x}, keep0);
  int am = t.node("ArgMax", {x}, ints_attr("unused", {}));
  int ga = t.node("Gather", {x, t.input("idx", sh({K(2), K(5)}), DType::kI64)}, [] {
    Attributes a;
    a.set_int("axis", 1);
    return a;
  }());
  Attributes sa;
  sa.set_int("axis", 2);
  int sp = t.node("Split", {x, t.i64("split", {1, 5})}, sa, 2);
  int ev = t.node("Split", {x}, [] {
    Attributes a;
    a.set_int("axis", 1);
    a.set_int("num_outputs", 3);
    return a;
  }(), 3);
  int shp = t.node("Shape", {x});
  ASSERT_TRUE(t.infer(shp).ok());
  EXPECT_EQ(t.shape(r), sh({S("n"), K(4), K(1)}));
  EXPECT_EQ(t.shape(r0), sh({S("n"), K(6)}));
  EXPECT_EQ(t.shape(all), sh({}));
  EXPECT_EQ(t.shape(am), sh({K(1), K(4), K(6)}));
  EXPECT_EQ(t.dtype(am), DType::kI64);
  EXPECT_EQ(t.shape(ga), sh({S("n"), K(2), K(5), K(6)}));
  EXPECT_EQ(t.shape(sp), sh({S("n"), K(4), K(1)}));
  EXPECT_EQ(t.shape(sp + 1), sh({S("n"), K(4), K(5)}));
  EXPECT_EQ(t.shape(ev), sh({S("n"), K(2), K(6)}));
  EXPECT_EQ(t.shape(ev + 2), sh({S("n"), K(0), K(6)}));  // chunks of ceil(4/3) = 2: 2, 2, 0
  EXPECT_EQ(t.shape(shp), sh({K(3)}));
  EXPECT_EQ(t.dtype(shp), DType::kI64);
}

TEST(ShapeInferenceTest, CastWhereResizeLayerNorm) {
  G t;
  int x = t.input("x", sh({S("n"), K(3), K(8), K(8)}));
  Attributes to;
  to.set_int("to", static_cast<int64_t>(DType::kF16));
  int c = t.node("Cast", {x}, to);
  int cond = t.input("cond", sh({K(8)}), DType::kBool);
  int w = t.node("Where", {cond, x, t.f32("zero", {0.f})});
  int rs = t.node("Resize", {x, kNoValue, t.f32("scales", {1.f, 1.f, 2.f, 0.5f})});
  int ln = t.node("LayerNormalization", {x, t.f32("gamma", std::vector<float>(8, 1.f))}, [] {
    Attributes a;
    a.set_int("axis", -2);
    return a;
  }(), 3);
  ASSERT_TRUE(t.infer(ln).ok());
  EXPECT_EQ(t.dtype(c), DType::kF16);
  EXPECT_EQ(t.shape(w), sh({S("n"), K(3), K(8), K(8)}));
  EXPECT_EQ(t.shape(rs), sh({S("n"), K(3), K(16), K(4)}));
  EXPECT_EQ(t.shape(ln), sh({S("n"), K(3), K(8), K(8)}));
  EXPECT_EQ(t.shape(ln + 1), sh({S("n"), K(3), K(1), K(1)}));
  EXPECT_EQ(t.dtype(ln + 2), DType::kF32);
}

TEST(ShapeInferenceTest, DeclaredShapesMergeAndContradictionsAreErrors) {
  G t;
  int x = t.input("x", sh({S("n"), K(4)}));
  int y = t.node("Relu", {x});
  t.g.values[static_cast<size_t>(y)].shape = sh({Dim{}, Dim{}});
  int z = t.node("Relu", {y});
  t.g.values[static_cast<size_t>(z)].shape = sh({S("rows"), Dim{}});
  ASSERT_TRUE(t.infer(z).ok());
  EXPECT_EQ(t.shape(y), sh({S("n"), K(4)}));      // inference knows more
  EXPECT_EQ(t.shape(z), sh({S("rows"), K(4)}));   // the declared symbol name is kept

  G u;
  int a = u.input("a", sh({K(2), K(4)}));
  int b = u.node("Relu", {a});
  u.g.values[static_cast<size_t>(b)].shape = sh({K(2), K(5)});
  Status s = u.infer(b);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Relu0"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("[2, 5]"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("[2, 4]"), std::string::npos) << s.to_string();
}

TEST(ShapeInferenceTest, UnknownOpsLeaveDeclaredShapesAndAreCounted) {
  G t;
  int x = t.input("x", sh({K(2)}));
  int y = t.node("com.example.Custom", {x});
  t.g.values[static_cast<size_t>(y)].shape = sh({K(7)});
  int z = t.node("Relu", {y});
  ASSERT_TRUE(t.infer(z).ok());
  EXPECT_EQ(t.shape(z), sh({K(7)}));
  ASSERT_EQ(t.stats.unknown_ops, std::vector<std::string>{"com.example.Custom"});
  EXPECT_EQ(t.stats.values, 2u);
  EXPECT_EQ(t.stats.fully_known, 2u);
}

TEST(ShapeInferenceTest, ArityIsChecked) {
  G t;
  int x = t.input("x", sh({K(2)}));
  Status s = t.infer(t.node("Add", {x}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("takes 2"), std::string::npos) << s.to_string();
}

TEST(ShapeInferenceTest, HostileShapesGiveErrorsOrUnknownsNeverOverflow) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  G t;
  int x = t.input("x", sh({K(big), K(big), K(3)}));
  int fl = t.node("Flatten", {x}, [] {
    Attributes a;
    a.set_int("axis", 2);
    return a;
  }());
  int ti = t.node("Tile", {x, t.i64("rep", {2, 1, 1})});
  int pa = t.node("Pad", {x, t.i64("pads", {big, 0, 0, big, 0, 0})});
  int sl = t.node("Slice", {x, t.i64("st", {std::numeric_limits<int64_t>::min()}), t.i64("en", {big}),
                            t.i64("ax", {0}), t.i64("sp", {std::numeric_limits<int64_t>::min()})});
  int rs = t.node("Reshape", {x, t.i64("s", {-1, 3})});
  int w = t.input("w", sh({K(1), K(1), K(big)}));
  Attributes pads;
  pads.set_ints("pads", {big, big});
  int cv = t.node("Conv", {t.input("cx", sh({K(1), K(1), K(big)})), w}, pads);
  ASSERT_TRUE(t.infer(cv).ok());
  EXPECT_EQ(t.shape(fl), sh({Dim{}, K(3)}));
  EXPECT_EQ(t.shape(ti).dims[0], Dim{});
  EXPECT_EQ(t.shape(pa).dims[0], Dim{});
  EXPECT_EQ(t.shape(sl).dims[0], K(0));  // backwards from 0
  EXPECT_EQ(t.shape(rs).dims[0], Dim{});
  EXPECT_TRUE(t.shape(cv).rank_known);

  G u;  // rank mismatches and bad axes: errors, not crashes
  int a = u.input("a", sh({K(2), K(3)}));
  EXPECT_FALSE(u.infer(u.node("Concat", {a, u.input("b", sh({K(2)}))})).ok());
  G v;
  int c = v.input("c", sh({K(2), K(3)}));
  EXPECT_FALSE(v.infer(v.node("Transpose", {c}, ints_attr("perm", {0, 0}))).ok());
  G w2;
  int d = w2.input("d", sh({K(2), K(3)}));
  EXPECT_FALSE(w2.infer(w2.node("Squeeze", {d, w2.i64("ax", {5})})).ok());
  G w3;
  int e = w3.input("e", sh({}));
  EXPECT_FALSE(w3.infer(w3.node("Conv", {e, w3.input("f", sh({K(1)}))})).ok());
}

TEST(ShapeInferenceTest, FusedElementwiseBroadcastsInputsAndLiteralRanks) {
  G t;
  int a = t.input("a", sh({S("n"), K(4)}));
  int b = t.input("b", sh({K(4)}));
  Attributes p;  // Add(a, b) * Literal(2, rank 3) > Literal(0, rank 0) -> bool [1, n, 4]
  Attribute ops;
  ops.kind = Attribute::Kind::kStrings;
  ops.strings = {"Add", "Literal", "Mul", "Literal", "Greater"};
  p.set("ops", ops);
  p.set_ints("dtypes", {1, 1, 1, 1, static_cast<int64_t>(DType::kBool)});
  p.set_floats("params", {2.0, 3.0, 0.0, 0.0});
  int y = t.node("kiln.FusedElementwise", {a, b}, p);
  ASSERT_TRUE(t.infer(y).ok());
  EXPECT_EQ(t.shape(y), sh({K(1), S("n"), K(4)}));
  EXPECT_EQ(t.dtype(y), DType::kBool);
}

TEST(ShapeInferenceTest, HundredThousandNodeChainIsOnePass) {
  G t;
  int x = t.input("x", sh({S("n"), K(3)}));
  for (int i = 0; i < 100000; ++i) x = t.node(i % 2 ? "Neg" : "Relu", {x});
  ASSERT_TRUE(t.infer(x).ok());
  EXPECT_EQ(t.shape(x), sh({S("n"), K(3)}));
  EXPECT_EQ(t.stats.symbolic, 100000u);
}

TEST(OpRegistryTest, LookupAndUnknownOps) {
  const OpSchema* add = find_op_schema("Add");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->min_inputs, 2);
  EXPECT_EQ(add->max_inputs, 2);
  EXPECT_EQ(find_op_schema("NoSuchOp"), nullptr);
  EXPECT_NE(find_op_schema("kiln.FusedElementwise"), nullptr);
  std::span<const OpSchema> all = op_schemas();
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].op, all[i].op);
  for (const OpSchema& s : all) {
    EXPECT_NE(s.infer, nullptr) << s.op;
    EXPECT_LE(s.min_inputs, s.max_inputs) << s.op;
    EXPECT_LE(s.min_outputs, s.max_outputs) << s.op;
  }
}

}  // namespace
}  // namespace kiln::ir
