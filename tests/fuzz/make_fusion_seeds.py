#!/usr/bin/env python3
"""Writes small ONNX models with the patterns kiln's fusion passes rewrite, as fuzz seeds.

  make_fusion_seeds.py OUT_DIR

Patterns: elementwise chains (Gelu written out, a chain with a Where and a Cast, integer and
boolean ops), MatMul+Add (becomes MatMul with a bias input), MatMul+Add+Relu and Gemm+Relu
(kiln_activation), Conv+BatchNormalization+Relu (folded, then kiln_activation on the Conv),
attention with a residual (kiln_trans_b, kiln_alpha, MatMul's residual input). Each is
a few hundred bytes, so libFuzzer mutates the graph rather than the weights. tools/fuzz.sh also
builds engines from them (fp32 and fp16), which hold kiln.FusedElementwise nodes.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(name, nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def seeds():
    rng = np.random.default_rng(7)
    w = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.5
    out = {}
    # Gelu (erf form), written out: Div, Erf, Add, Mul, Mul.
    out["gelu_chain"] = model("gelu_chain", [
        helper.make_node("Div", ["x", "s2"], ["a"]),
        helper.make_node("Erf", ["a"], ["b"]),
        helper.make_node("Add", ["b", "one"], ["c"]),
        helper.make_node("Mul", ["x", "c"], ["d"]),
        helper.make_node("Mul", ["d", "half"], ["y"]),
    ], [vi("x", F, ["n", 8])], [vi("y", F, ["n", 8])],
        [const("s2", np.float32(1.4142135)), const("one", np.float32(1)),
         const("half", np.float32(0.5))])
    # Broadcast chain with a comparison, Where, Cast, Clip and a second input.
    out["where_cast_chain"] = model("where_cast_chain", [
        helper.make_node("Mul", ["x", "z"], ["a"]),
        helper.make_node("Greater", ["a", "zero"], ["m"]),
        helper.make_node("Neg", ["a"], ["na"]),
        helper.make_node("Where", ["m", "a", "na"], ["b"]),
        helper.make_node("Clip", ["b", "lo", "hi"], ["c"]),
        helper.make_node("Cast", ["c"], ["d"], to=TensorProto.FLOAT16),
        helper.make_node("Sigmoid", ["d"], ["e"]),
        helper.make_node("Cast", ["e"], ["y"], to=F),
    ], [vi("x", F, [2, 1, 4]), vi("z", F, [3, 1])], [vi("y", F, [2, 3, 4])],
        [const("zero", np.float32(0)), const("lo", np.float32(-1)), const("hi", np.float32(2))])
    # Integer and boolean chain.
    out["int_chain"] = model("int_chain", [
        helper.make_node("Add", ["i", "j"], ["a"]),
        helper.make_node("Mod", ["a", "three"], ["b"]),
        helper.make_node("Abs", ["b"], ["c"]),
        helper.make_node("Equal", ["c", "j"], ["e"]),
        helper.make_node("Not", ["e"], ["y"]),
    ], [vi("i", TensorProto.INT32, [4]), vi("j", TensorProto.INT32, [4])],
        [vi("y", TensorProto.BOOL, [4])], [const("three", np.int32(3))])
    # MatMul + Add (bias input), then Relu (kiln_activation); and one ending in tanh Gelu.
    out["matmul_add_relu"] = model("matmul_add_relu", [
        helper.make_node("MatMul", ["x", "w"], ["a"]),
        helper.make_node("Add", ["a", "b"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
    ], [vi("x", F, ["n", 6])], [vi("y", F, ["n", 5])], [const("w", w(6, 5)), const("b", w(5))])
    out["matmul_add_gelu"] = model("matmul_add_gelu", [
        helper.make_node("MatMul", ["x", "w"], ["a"]),
        helper.make_node("Add", ["b", "a"], ["c"]),
        helper.make_node("Gelu", ["c"], ["y"], approximate="tanh"),
    ], [vi("x", F, [2, 3, 4])], [vi("y", F, [2, 3, 4])], [const("w", w(4, 4)), const("b", w(4))],
        opset=20)
    out["matmul_add"] = model("matmul_add", [
        helper.make_node("MatMul", ["x", "w"], ["a"]),
        helper.make_node("Add", ["a", "b"], ["y"]),
    ], [vi("x", F, [3, 4])], [vi("y", F, [3, 2])], [const("w", w(4, 2)), const("b", w(2))])
    out["gemm_relu"] = model("gemm_relu", [
        helper.make_node("Gemm", ["x", "w", "b"], ["a"], transB=1, alpha=0.5),
        helper.make_node("Relu", ["a"], ["y"]),
    ], [vi("x", F, [2, 4])], [vi("y", F, [2, 3])], [const("w", w(3, 4)), const("b", w(3))])
    # Conv + BatchNormalization + Relu (BN folded into the Conv, Relu its epilogue).
    out["conv_bn_relu"] = model("conv_bn_relu", [
        helper.make_node("Conv", ["x", "cw"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "g", "be", "mu", "var"], ["c"], epsilon=1e-5),
        helper.make_node("Relu", ["c"], ["y"]),
    ], [vi("x", F, [1, 2, 5, 5])], [vi("y", F, [1, 3, 5, 5])],
        [const("cw", w(3, 2, 3, 3)), const("g", w(3)), const("be", w(3)), const("mu", w(3)),
         const("var", np.abs(w(3)) + 0.5)])
    out["conv_bias_bn_relu_add"] = model("conv_bias_bn_relu_add", [
        helper.make_node("Conv", ["x", "cw", "cb"], ["a"]),
        helper.make_node("BatchNormalization", ["a", "g", "be", "mu", "var"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Mul", ["r", "r"], ["m"]),
        helper.make_node("Add", ["m", "r"], ["y"]),
    ], [vi("x", F, ["n", 2, 4, 4])], [vi("y", F, ["n", 2, 4, 4])],
        [const("cw", w(2, 2, 1, 1)), const("cb", w(2)), const("g", w(2)), const("be", w(2)),
         const("mu", w(2)), const("var", np.abs(w(2)) + 0.5)])
    # Attention scores and a residual: Transpose (last two axes) into MatMul (kiln_trans_b), a
    # scalar Mul (kiln_alpha), MatMul + Add(bias) + Add(residual, a 4th MatMul input); the batch
    # dim is symbolic, so the residual's dims match by name.
    out["attention_residual"] = model("attention_residual", [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["p"]),
        helper.make_node("Softmax", ["p"], ["a"], axis=-1),
        helper.make_node("MatMul", ["a", "k"], ["c"]),
        helper.make_node("MatMul", ["c", "w"], ["o"]),
        helper.make_node("Add", ["o", "b"], ["ob"]),
        helper.make_node("Add", ["q", "ob"], ["y"]),
    ], [vi("q", F, ["n", 2, 3, 4]), vi("k", F, ["n", 2, 3, 4])], [vi("y", F, ["n", 2, 3, 4])],
        [const("scale", np.float32(0.5)), const("w", w(4, 4)), const("b", w(4))])
    return out


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    for name, m in seeds().items():
        onnx.checker.check_model(m)
        with open(os.path.join(d, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())


if __name__ == "__main__":
    main()
