"""kiln.compile / kiln.load / Module on the CPU with numpy, and the shared models."""
import os
import pathlib
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import kiln


def _read_set(d: pathlib.Path, prefix: str):
    out = []
    i = 0
    while (d / f"{prefix}_{i}.pb").exists():
        t = onnx.TensorProto()
        t.ParseFromString((d / f"{prefix}_{i}.pb").read_bytes())
        out.append(numpy_helper.to_array(t))
        i += 1
    return out


@pytest.mark.parametrize("model", ["mlp", "tiny_cnn", "encoder_L4_d256", "mobilenet_v3_small"])
def test_shared_models_via_numpy(testdata, model):
    d = testdata / "models" / model
    sets = sorted(d.glob("test_data_set_*"))
    inputs = [_read_set(s, "input") for s in sets]
    expected = [_read_set(s, "output") for s in sets]
    m = onnx.load(str(d / "model.onnx"), load_external_data=False)
    names = [i.name for i in m.graph.input if i.name not in {x.name for x in m.graph.initializer}]
    shapes = {}
    for k, name in enumerate(names):
        dims = [s[k].shape for s in inputs]
        lo = tuple(min(x[j] for x in dims) for j in range(len(dims[0])))
        hi = tuple(max(x[j] for x in dims) for j in range(len(dims[0])))
        shapes[name] = (lo, dims[0], hi)
    mod = kiln.compile(str(d / "model.onnx"), shapes=shapes)
    for ins, outs in zip(inputs, expected):
        got = mod.run(*ins)
        for g, w in zip(got, outs):
            assert isinstance(g, np.ndarray)
            np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)


def test_save_and_load_round_trip(tmp_path, example_model):
    mod = kiln.compile(str(example_model), shapes={"x": ((1, 16), (4, 16), (64, 16))})
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    mod.save(tmp_path / "m.kiln")
    again = kiln.load(tmp_path / "m.kiln")
    np.testing.assert_array_equal(mod(x), again(x))
    assert again.inputs[0]["name"] == "x"


def test_onnx_bytes_input(example_model):
    mod = kiln.compile(example_model.read_bytes(), shapes={"x": (2, 16)})
    assert mod(np.zeros((2, 16), np.float32)).shape == (2, 4)


def test_legacy_keywords_warn_and_are_never_saved(tmp_path, example_model):
    with pytest.warns(DeprecationWarning, match="kiln.runtime.cuda_graph_strategy"):
        mod = kiln.compile(str(example_model), shapes={"x": (2, 16)}, cuda_graph_strategy="whole_graph_capture")
    assert mod.runtime_settings.cuda_graph_strategy == "whole_graph_capture"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = kiln.compile(str(example_model), shapes={"x": (2, 16)})
    mod.save(tmp_path / "a.kiln")
    plain.save(tmp_path / "b.kiln")
    assert (tmp_path / "a.kiln").read_bytes() == (tmp_path / "b.kiln").read_bytes()
    assert kiln.load(tmp_path / "a.kiln").runtime_settings.to_dict() == {}


def test_errors_map_to_exception_classes(tmp_path, example_model):
    with pytest.raises(FileNotFoundError):
        kiln.load(tmp_path / "missing.kiln")
    bad = tmp_path / "bad.kiln"
    bad.write_bytes(b"KILNENG\0" + b"\xff" * 40)
    with pytest.raises(kiln.InvalidEngineError):
        kiln.load(bad)
    mod = kiln.compile(str(example_model), shapes={"x": ((1, 16), (2, 16), (8, 16))})
    with pytest.raises(ValueError, match="input 'x'"):
        mod(np.zeros((2, 16), np.float64))
    with pytest.raises(ValueError, match="outside the engine's profile"):
        mod(np.zeros((9, 16), np.float32))
    with pytest.raises(TypeError):
        kiln.compile(str(example_model), bogus=1)


def test_prepare_backend_errors(tmp_path, example_model):
    kiln.prepare_backend("cpu", 0)
    with pytest.raises(ValueError, match="invalid backend 'tpu'"):
        kiln.prepare_backend("tpu", 0)
    with pytest.raises((kiln.UnavailableError, ValueError)):
        kiln.prepare_backend("cuda", 4096)  # no such GPU here (or none at all)
    # kiln.load prepares PyTorch's CUDA device only when PyTorch has initialised CUDA already:
    # without a GPU it must neither fail nor initialise anything.
    path = tmp_path / "m.kiln"
    kiln.compile(str(example_model), shapes={"x": ((1, 16), (2, 16), (8, 16))}).save(path)
    mod = kiln.load(path)
    assert mod(np.zeros((2, 16), np.float32)).shape[0] == 2


def test_unsupported_model_error(tmp_path):
    from onnx import TensorProto, helper
    node = helper.make_node("NonMaxSuppression", ["a", "b"], ["c"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 1, 4]),
                                       helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 1, 1])],
                          [helper.make_tensor_value_info("c", TensorProto.INT64, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(kiln.UnsupportedModelError, match="NonMaxSuppression"):
        kiln.compile(m.SerializeToString())
