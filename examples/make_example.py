#!/usr/bin/env python3
"""Writes examples/tiny_classifier: a small ONNX classifier with one test data set.

The model (opset 17): x[batch, 16] -> Gemm(32) -> Relu -> Gemm(4) -> Softmax, random weights
from a fixed seed. The expected output is computed with onnx's reference evaluator, so the
example checks kiln against an independent implementation. Rerunning gives identical files.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tiny_classifier")


def main():
    rng = np.random.default_rng(20261127)
    w1 = rng.standard_normal((16, 32)).astype(np.float32) * 0.3
    b1 = rng.standard_normal(32).astype(np.float32) * 0.1
    w2 = rng.standard_normal((32, 4)).astype(np.float32) * 0.3
    b2 = rng.standard_normal(4).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(a, n) for a, n in
                     [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="kiln-examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.join(OUT, "test_data_set_0"), exist_ok=True)
    onnx.save(model, os.path.join(OUT, "model.onnx"))
    x = rng.standard_normal((3, 16)).astype(np.float32)
    (probs,) = ReferenceEvaluator(model).run(None, {"x": x})
    for name, arr, fname in [("x", x, "input_0.pb"), ("probs", probs, "output_0.pb")]:
        with open(os.path.join(OUT, "test_data_set_0", fname), "wb") as f:
            f.write(numpy_helper.from_array(arr, name).SerializeToString())
    print("wrote", OUT)


if __name__ == "__main__":
    main()
