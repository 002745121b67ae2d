// Op-by-op CUDA vs CPU (label gpu). Each case states op, shapes, dtype and tolerance.
#include "backends/cuda/op_test_util.h"

namespace kiln::cuda::testing {
namespace {

ir::Attributes attrs(std::initializer_list<std::pair<const char*, int64_t>> i,
                     std::initializer_list<std::pair<const char*, double>> f = {}) {
  ir::Attributes a;
  for (auto& [k, v] : i) a.set_int(k, v);
  for (auto& [k, v] : f) a.set_float(k, v);
  return a;
}

OpCase unary(const std::string& op, DType dt, Dims dims, double lo = -3, double hi = 3) {
  OpCase c{op, {}, {random_tensor(dt, dims, lo, hi, 7)}};
  if (dt == DType::kF16 || dt == DType::kBF16) c.rtol = c.atol = dt == DType::kF16 ? 2e-3 : 1e-2;
  else c.rtol = 2e-6, c.atol = 1e-6;
  return c;
}

TEST(CudaOpsTest, UnaryFloat) {
  for (const char* op : {"Relu", "Erf", "Exp", "Tanh", "Sigmoid", "HardSwish", "Abs", "Neg", "Floor", "Ceil",
                         "Round", "Sign", "Softplus", "Softsign", "Sin", "Cos", "Gelu", "Mish", "Elu", "Selu",
                         "LeakyRelu"})
    for (DType dt : {DType::kF32, DType::kF16})
      check_op(unary(op, dt, {3, 17, 5}), std::string(op) + " " + std::string(dtype_name(dt)));
  for (const char* op : {"Sqrt", "Log", "Reciprocal"}) check_op(unary(op, DType::kF32, {4, 33}, 0.1, 5), op);
  OpCase hs = unary("HardSigmoid", DType::kF32, {2, 50});
  hs.attrs = attrs({}, {{"alpha", 1.0 / 6}, {"beta", 0.5}});
  check_op(hs, "HardSigmoid 1/6");
  OpCase gelu = unary("Gelu", DType::kF32, {64});
  gelu.attrs.set_string("approximate", "tanh");
  check_op(gelu, "Gelu tanh");
  check_op(unary("Relu", DType::kF64, {100}), "Relu f64");
  check_op(unary("Erf", DType::kBF16, {100}), "Erf bf16");
  check_op(unary("Neg", DType::kI64, {10, 3}, -50, 50), "Neg i64");
  check_op(unary("Abs", DType::kI32, {10, 3}, -50, 50), "Abs i32");
}

TEST(CudaOpsTest, BinaryBroadcasting) {
  struct Shapes { Dims a, b; const char* what; };
  const Shapes shapes[] = {{{2, 3, 4}, {2, 3, 4}, "same"},
                           {{2, 3, 4}, {1}, "scalar"},
                           {{4, 1, 6}, {5, 1}, "both broadcast"},
                           {{2, 3, 4, 5}, {3, 1, 5}, "inner vector"},
                           {{1}, {7, 9}, "scalar first"}};
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"})
    for (const Shapes& s : shapes) {
      // PRelu's slope broadcasts to X one way only.
      if (std::string(op) == "PRelu" && std::string(s.what) != "same" && std::string(s.what) != "scalar" &&
          std::string(s.what) != "inner vector")
        continue;
      OpCase c{op, {}, {random_tensor(DType::kF32, s.a, -3, 3, 1), random_tensor(DType::kF32, s.b, 0.5, 3, 2)}};
      check_op(c, std::string(op) + " " + s.what);
    }
  OpCase pow{"Pow", {}, {random_tensor(DType::kF32, {3, 8}, 0.5, 2), random_tensor(DType::kF32, {8}, -2, 2)}};
  pow.rtol = 1e-5;
  check_op(pow, "Pow");
  check_op({"Add", {}, {random_tensor(DType::kF16, {4, 1, 6}), random_tensor(DType::kF16, {5, 1})}, {}, 1, 1e-3, 1e-3},
           "Add f16 broadcast");
  check_op({"Add", {}, {random_tensor(DType::kI64, {6, 7}, -100, 100), random_tensor(DType::kI64, {7}, -9, 9)}}, "Add i64");
  check_op({"Mod", {}, {random_tensor(DType::kI32, {6, 7}, -100, 100), random_tensor(DType::kI32, {7}, 1, 9)}}, "Mod i32");
  check_op({"Div", {}, {random_tensor(DType::kI32, {6, 7}, -100, 100), random_tensor(DType::kI32, {7}, 1, 9)}}, "Div i32");
  for (const char* op : {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"})
    check_op({op, {}, {random_tensor(DType::kI64, {5, 6}, -3, 3, 3), random_tensor(DType::kI64, {6}, -3, 3, 4)}}, op);
  for (const char* op : {"And", "Or", "Xor"})
    check_op({op, {}, {random_tensor(DType::kBool, {5, 6}, 0, 1, 3), random_tensor(DType::kBool, {5, 6}, 0, 1, 4)}}, op);
  check_op({"Not", {}, {random_tensor(DType::kBool, {33}, 0, 1)}}, "Not");
  check_op({"Sum", {}, {random_tensor(DType::kF32, {3, 4}), random_tensor(DType::kF32, {4}), random_tensor(DType::kF32, {3, 1})}},
           "Sum of 3");
  check_op({"Mean", {}, {random_tensor(DType::kF32, {3, 4}), random_tensor(DType::kF32, {4})}}, "Mean of 2");
  check_op({"Max", {}, {random_tensor(DType::kF32, {3, 4}, -1, 1, 5), random_tensor(DType::kF32, {4}, -1, 1, 6),
                        random_tensor(DType::kF32, {1}, -1, 1, 7)}},
           "Max of 3");
}

TEST(CudaOpsTest, ClipWhereCastBatchNorm) {
  check_op({"Clip", {}, {random_tensor(DType::kF32, {40}), scalar_f32(-0.5f), scalar_f32(1.25f)}, {false, true, true}},
           "Clip min max");
  check_op({"Clip", {}, {random_tensor(DType::kF32, {40}), Tensor(), scalar_f32(0.25f)}, {false, true, true}}, "Clip max only");
  check_op({"Clip", {}, {random_tensor(DType::kI8, {40}, -100, 100)}}, "Clip i8 no bounds");
  check_op({"Clip", {}, {random_tensor(DType::kI32, {40}, -100, 100), Tensor(),
                         Tensor::from_vector(DType::kI32, {}, std::vector<int32_t>{7})},
            {false, true, true}},
           "Clip i32 max only");
  check_op({"Where", {}, {random_tensor(DType::kBool, {3, 1, 5}, 0, 1), random_tensor(DType::kF32, {4, 5}),
                          random_tensor(DType::kF32, {3, 4, 1})}},
           "Where broadcast");
  check_op({"Where", {}, {random_tensor(DType::kBool, {8}, 0, 1), random_tensor(DType::kF16, {8}), random_tensor(DType::kF16, {8})}},
           "Where f16");
  struct CastCase { DType from, to; };
  for (CastCase cc : {CastCase{DType::kF32, DType::kF16}, {DType::kF16, DType::kF32}, {DType::kF32, DType::kI32},
                      {DType::kI64, DType::kF32}, {DType::kF32, DType::kBool}, {DType::kBool, DType::kF32},
                      {DType::kF32, DType::kBF16}, {DType::kI32, DType::kI64}, {DType::kF64, DType::kF32}}) {
    OpCase c{"Cast", attrs({{"to", static_cast<int64_t>(cc.to)}}), {random_tensor(cc.from, {7, 9}, -20, 20)}};
    check_op(c, "Cast " + std::string(dtype_name(cc.from)) + "->" + std::string(dtype_name(cc.to)));
  }
  OpCase bn{"BatchNormalization", attrs({}, {{"epsilon", 1e-3}}),
            {random_tensor(DType::kF32, {2, 3, 4, 5}), random_tensor(DType::kF32, {3}, 0.5, 2, 2),
             random_tensor(DType::kF32, {3}, -1, 1, 3), random_tensor(DType::kF32, {3}, -1, 1, 4),
             random_tensor(DType::kF32, {3}, 0.5, 2, 5)},
            {false, true, true, true, true}};
  bn.rtol = 1e-5;
  bn.atol = 1e-5;
  check_op(bn, "BatchNormalization");
}

TEST(CudaOpsTest, DataMovement) {
  OpCase tr{"Transpose", {}, {random_tensor(DType::kF32, {2, 3, 4, 5})}};
  tr.attrs.set_ints("perm", {0, 2, 3, 1});
  check_op(tr, "Transpose 0231");
  tr.inputs = {random_tensor(DType::kF16, {6, 7})};
  tr.attrs = {};
  check_op(tr, "Transpose default f16");
  check_op({"Slice", {}, {random_tensor(DType::kF32, {5, 6, 7}), ints({1, -1}), ints({4, -6}), ints({0, 2}), ints({2, -2})},
            {false, true, true, true, true}},
           "Slice steps 2 and -2");
  check_op({"Slice", {}, {random_tensor(DType::kI64, {5, 6}, -9, 9), ints({0, 2}), ints({100, 4})}, {false, true, true}},
           "Slice clamp i64");
  OpCase cat{"Concat", attrs({{"axis", 1}}),
             {random_tensor(DType::kF32, {2, 3, 4}, -1, 1, 1), random_tensor(DType::kF32, {2, 1, 4}, -1, 1, 2),
              random_tensor(DType::kF32, {2, 5, 4}, -1, 1, 3)}};
  check_op(cat, "Concat axis 1");
  OpCase split{"Split", attrs({{"axis", -1}}), {random_tensor(DType::kF32, {3, 10}), ints({3, 7})}, {false, true}, 2};
  check_op(split, "Split 3/7");
  check_op({"Expand", {}, {random_tensor(DType::kF32, {3, 1}), ints({2, 3, 4})}, {false, true}}, "Expand");
  OpCase g0{"Gather", {}, {random_tensor(DType::kF32, {10, 8}), ints({0, 9, -1, 3, 3})}, {true, false}};
  check_op(g0, "Gather axis 0 (embedding)");
  Tensor idx32 = Tensor::from_vector(DType::kI32, {2, 2}, std::vector<int32_t>{1, 0, 2, 1});
  OpCase g1{"Gather", attrs({{"axis", 1}}), {random_tensor(DType::kF16, {3, 4, 5}), idx32}};
  check_op(g1, "Gather axis 1 i32 indices f16");
  check_op({"Reshape", {}, {random_tensor(DType::kF32, {2, 3, 4}), ints({0, -1})}, {false, true}}, "Reshape view");
  check_op({"Flatten", attrs({{"axis", 2}}), {random_tensor(DType::kF32, {2, 3, 4, 5})}}, "Flatten");
  check_op({"Unsqueeze", {}, {random_tensor(DType::kF32, {3, 4}), ints({0, 3})}, {false, true}}, "Unsqueeze");
  check_op({"Squeeze", {}, {random_tensor(DType::kF32, {3, 1, 4}), ints({1})}, {false, true}}, "Squeeze");
  check_op({"Shape", {}, {random_tensor(DType::kF32, {3, 1, 4})}}, "Shape");
}

TEST(CudaOpsTest, Reductions) {
  struct R { const char* op; Dims dims; std::vector<int64_t> axes; int64_t keep; };
  for (const R& r : {R{"ReduceMean", {4, 5, 6}, {1}, 1}, R{"ReduceMean", {4, 5, 300}, {2}, 0},
                     R{"ReduceMean", {4, 5, 6}, {0, 2}, 1}, R{"ReduceSum", {2, 3, 4, 5}, {1, 2}, 0},
                     R{"ReduceMax", {7, 9}, {-1}, 1}, R{"ReduceMin", {7, 9}, {0}, 1}, R{"ReduceProd", {7, 3}, {1}, 1},
                     R{"ReduceL2", {7, 9}, {1}, 1}, R{"ReduceSumSquare", {7, 9}, {0, 1}, 0},
                     R{"ReduceMax", {3, 4000}, {1}, 0}}) {
    OpCase c{r.op, attrs({{"keepdims", r.keep}}), {random_tensor(DType::kF32, r.dims), ints(r.axes)}, {false, true}};
    c.rtol = 1e-5;
    c.atol = 1e-5;
    check_op(c, std::string(r.op) + " " + dims_to_string(r.dims) + " axes " + dims_to_string(r.axes));
  }
  check_op({"ReduceSum", {}, {random_tensor(DType::kI64, {6, 7}, -50, 50), ints({1})}, {false, true}}, "ReduceSum i64");
  check_op({"ReduceMean", {}, {random_tensor(DType::kF32, {3, 4})}, {}, 1, 1e-5, 1e-6}, "ReduceMean all axes");
  check_op({"GlobalAveragePool", {}, {random_tensor(DType::kF32, {2, 3, 7, 7})}, {}, 1, 1e-5, 1e-6}, "GlobalAveragePool");
  check_op({"GlobalMaxPool", {}, {random_tensor(DType::kF32, {2, 3, 5, 4})}}, "GlobalMaxPool");
  for (auto [op, axis, dims] : {std::tuple{"Softmax", int64_t{-1}, Dims{4, 100}}, {"Softmax", 1, Dims{2, 7, 5}},
                                {"LogSoftmax", -1, Dims{3, 2000}}, {"LogSoftmax", 0, Dims{6, 3}}}) {
    OpCase c{op, attrs({{"axis", axis}}), {random_tensor(DType::kF32, dims, -5, 5)}, {}, 1, 1e-5, 1e-6};
    check_op(c, std::string(op) + " axis " + std::to_string(axis));
  }
  check_op({"Softmax", {}, {random_tensor(DType::kF16, {8, 64})}, {}, 1, 2e-3, 1e-3}, "Softmax f16");
  OpCase ln{"LayerNormalization", attrs({{"axis", -1}}, {{"epsilon", 1e-5}}),
            {random_tensor(DType::kF32, {4, 6, 32}), random_tensor(DType::kF32, {32}, 0.5, 1.5, 2),
             random_tensor(DType::kF32, {32}, -1, 1, 3)},
            {false, true, true}, 3, 1e-4, 1e-5};
  check_op(ln, "LayerNormalization with Mean and InvStdDev");
  OpCase ln2{"LayerNormalization", attrs({{"axis", 1}}), {random_tensor(DType::kF32, {3, 4, 5}), random_tensor(DType::kF32, {1, 5})},
             {false, true}, 1, 1e-4, 1e-5};
  check_op(ln2, "LayerNormalization axis 1, broadcast scale, no bias");
  check_op({"LayerNormalization", {}, {random_tensor(DType::kF16, {4, 64}), random_tensor(DType::kF16, {64}), random_tensor(DType::kF16, {64})},
            {false, true, true}, 1, 5e-3, 5e-3},
           "LayerNormalization f16");
}

TEST(CudaOpsTest, MatMulAndGemm) {
  struct M { Dims a, b; const char* what; };
  for (const M& m : {M{{2, 3, 5, 8}, {2, 3, 8, 7}, "batched"}, M{{4, 6, 8}, {8, 5}, "folded batch"},
                     M{{8}, {8, 5}, "vector lhs"}, M{{3, 8}, {8}, "vector rhs"}, M{{2, 1, 5, 8}, {1, 3, 8, 4}, "broadcast batch"},
                     M{{5, 8}, {4, 8, 3}, "shared lhs"}, M{{65, 130}, {130, 33}, "odd sizes"}}) {
    OpCase c{"MatMul", {}, {random_tensor(DType::kF32, m.a, -1, 1, 1), random_tensor(DType::kF32, m.b, -1, 1, 2)}, {}, 1, 1e-4, 1e-5};
    check_op(c, std::string("MatMul ") + m.what);
  }
  check_op({"MatMul", {}, {random_tensor(DType::kF16, {64, 128}, -1, 1), random_tensor(DType::kF16, {128, 32}, -1, 1)}, {}, 1, 1e-2, 2e-2},
           "MatMul f16");
  check_op({"MatMul", {}, {random_tensor(DType::kBF16, {16, 64}, -1, 1), random_tensor(DType::kBF16, {64, 8}, -1, 1)}, {}, 1, 2e-2, 5e-2},
           "MatMul bf16");
  OpCase g1{"Gemm", attrs({{"transB", 1}}),
            {random_tensor(DType::kF32, {6, 16}), random_tensor(DType::kF32, {10, 16}), random_tensor(DType::kF32, {10})},
            {false, true, true}, 1, 1e-4, 1e-5};
  check_op(g1, "Gemm transB bias epilogue");
  OpCase g2{"Gemm", attrs({{"transA", 1}}, {{"alpha", 2.0}, {"beta", 0.5}}),
            {random_tensor(DType::kF32, {16, 6}), random_tensor(DType::kF32, {16, 10}), random_tensor(DType::kF32, {6, 1})},
            {false, true, true}, 1, 1e-4, 1e-5};
  check_op(g2, "Gemm transA alpha beta column C");
  OpCase g3{"Gemm", {}, {random_tensor(DType::kF32, {3, 5}), random_tensor(DType::kF32, {5, 4})}, {false, true}, 1, 1e-4, 1e-5};
  check_op(g3, "Gemm no C");
  OpCase g4{"Gemm", attrs({{"transB", 1}}),
            {random_tensor(DType::kF16, {4, 32}), random_tensor(DType::kF16, {8, 32}), random_tensor(DType::kF16, {8})},
            {false, true, true}, 1, 1e-2, 2e-2};
  check_op(g4, "Gemm f16 bias");
  // Problems too small to fill the GPU: the bridge splits K (kernels/gemm.h), summing in order.
  for (const M& m : {M{{16, 1024}, {1024, 256}, "split K"}, M{{3, 20, 512}, {3, 512, 40}, "batched split K"}}) {
    OpCase c{"MatMul", {}, {random_tensor(DType::kF32, m.a, -1, 1, 1), random_tensor(DType::kF32, m.b, -1, 1, 2)}, {}, 1, 1e-4, 1e-4};
    check_op(c, std::string("MatMul ") + m.what);
  }
  OpCase g5{"Gemm", attrs({{"transA", 1}, {"transB", 1}}, {{"alpha", 0.5}, {"beta", 2.0}}),
            {random_tensor(DType::kF32, {384, 6}), random_tensor(DType::kF32, {10, 384}), random_tensor(DType::kF32, {6, 10})},
            {false, true, true}, 1, 1e-4, 1e-4};
  check_op(g5, "Gemm transA transB alpha beta split K");
  check_op({"MatMul", {}, {random_tensor(DType::kF16, {8, 512}, -1, 1), random_tensor(DType::kF16, {512, 64}, -1, 1)}, {}, 1, 1e-2, 5e-2},
           "MatMul f16 split K");
}

TEST(CudaOpsTest, ConvAndPooling) {
  struct C { Dims x, w; std::vector<int64_t> strides, pads, dil; int64_t group; bool bias; const char* what; };
  for (const C& c : {C{{2, 3, 9, 9}, {4, 3, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1, true, "3x3 pad 1 bias"},
                     C{{1, 3, 10, 11}, {5, 3, 3, 3}, {2, 2}, {0, 1, 1, 0}, {1, 1}, 1, false, "stride 2 asym pads"},
                     C{{2, 8, 6, 6}, {16, 8, 1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1, true, "1x1"},
                     C{{2, 8, 7, 7}, {8, 1, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 8, true, "depthwise"},
                     C{{1, 4, 7, 7}, {6, 2, 3, 3}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 2, false, "group 2"},
                     C{{1, 2, 12, 12}, {3, 2, 3, 3}, {1, 1}, {2, 2, 2, 2}, {2, 2}, 1, true, "dilation 2"},
                     C{{2, 3, 20}, {4, 3, 5}, {2}, {2, 2}, {1}, 1, true, "1-D"}}) {
    OpCase k{"Conv", attrs({{"group", c.group}}), {random_tensor(DType::kF32, c.x, -1, 1, 1), random_tensor(DType::kF32, c.w, -1, 1, 2)},
             {false, true, true}, 1, 1e-4, 1e-5};
    k.attrs.set_ints("strides", c.strides);
    k.attrs.set_ints("pads", c.pads);
    k.attrs.set_ints("dilations", c.dil);
    if (c.bias) k.inputs.push_back(random_tensor(DType::kF32, {c.w[0]}, -1, 1, 3));
    check_op(k, std::string("Conv ") + c.what);
  }
  OpCase h{"Conv", {}, {random_tensor(DType::kF16, {1, 4, 8, 8}, -1, 1), random_tensor(DType::kF16, {8, 4, 3, 3}, -1, 1),
                        random_tensor(DType::kF16, {8}, -1, 1)},
           {false, true, true}, 1, 1e-2, 3e-2};
  check_op(h, "Conv f16");
  struct P { const char* op; Dims x; std::vector<int64_t> k, s, pads; int64_t ceil, include_pad; };
  for (const P& p : {P{"MaxPool", {2, 3, 9, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, 0},
                     P{"MaxPool", {1, 2, 10, 10}, {2, 2}, {2, 2}, {0, 0, 0, 0}, 1, 0},
                     P{"AveragePool", {2, 3, 9, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, 0},
                     P{"AveragePool", {2, 3, 9, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 1, 1},
                     P{"AveragePool", {1, 2, 11}, {4}, {3}, {1, 2}, 1, 0}}) {
    OpCase c{p.op, attrs({{"ceil_mode", p.ceil}, {"count_include_pad", p.include_pad}}), {random_tensor(DType::kF32, p.x)}, {}, 1, 1e-5, 1e-6};
    c.attrs.set_ints("kernel_shape", p.k);
    c.attrs.set_ints("strides", p.s);
    c.attrs.set_ints("pads", p.pads);
    check_op(c, std::string(p.op) + " " + dims_to_string(p.x) + " ceil " + std::to_string(p.ceil));
  }
}

TEST(CudaOpsTest, OpsWithoutCudaKernelFallBackToCpu) {
  OpCase c{"CumSum", {}, {random_tensor(DType::kF32, {4, 6}), ints({1})}, {false, true}};
  c.expect_fallback = true;
  c.rtol = 1e-5;
  c.atol = 1e-5;
  check_op(c, "CumSum (CPU fallback)");
}

}  // namespace
}  // namespace kiln::cuda::testing
