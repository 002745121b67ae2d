"""kiln's Python package on a CUDA GPU with torch: CUDA tensors in and out, the caller's stream,
a torchvision model compiled from torch.nn.Module, half engines, and enable_cudagraphs.

Needs torch with a CUDA device (skipped otherwise, with the reason); the device machine runs it
(`PYTHONPATH=build/python python3 -m pytest tests/python/test_gpu.py`). No test data needed.
"""
import math

import pytest

torch = pytest.importorskip("torch", reason="test_gpu.py needs torch")
if not torch.cuda.is_available():
    pytest.skip("test_gpu.py needs a CUDA device (torch.cuda.is_available() is False)",
                allow_module_level=True)

import kiln  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def _rel(got, want):
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


def _mlp(width=64, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.GELU(),
                               torch.nn.Linear(width, width)).eval()


@pytest.fixture(scope="module")
def mlp_pair():
    """(torch module on CUDA, kiln module) for x: [batch in 1..16, 64]."""
    model = _mlp()
    x = torch.randn(4, 64)
    mod = kiln.compile(model, example_inputs=(x,), shapes={"input_0": ((1, 64), (4, 64), (16, 64))})
    return model.cuda(), mod


def test_cuda_tensors_in_and_out(mlp_pair):
    model, mod = mlp_pair
    x = torch.randn(4, 64, device="cuda")
    y = mod(x)
    assert isinstance(y, torch.Tensor)
    assert y.device == x.device, "kiln returns tensors on the input's device"
    assert y.dtype == torch.float32 and y.shape == (4, 64)
    with torch.no_grad():
        assert _rel(y, model(x)) < 1e-4
    # Zero-copy on the way in: kiln read the caller's buffer (a later in-place change shows up).
    x.mul_(2)
    with torch.no_grad():
        assert _rel(mod(x), model(x)) < 1e-4


def test_caller_stream_is_honoured(mlp_pair):
    model, mod = mlp_pair
    stream = torch.cuda.Stream()
    x = torch.empty(8, 64, device="cuda")
    with torch.cuda.stream(stream):
        torch.cuda._sleep(50_000_000)  # keep the caller's stream busy
        x.normal_()                    # the input is written on that stream, after the sleep
        y = mod(x)                     # kiln must read x after it is written
        y2 = y * 1                     # and torch work on the stream must see kiln's output
    stream.synchronize()
    with torch.no_grad():
        want = model(x)
    assert _rel(y, want) < 1e-4
    assert _rel(y2, want) < 1e-4


@pytest.mark.parametrize("precision,tol", [("fp16", 3e-2), ("bf16", 1e-1)])
def test_half_engine_on_cuda(precision, tol):
    model = _mlp(256, seed=1)
    x = torch.randn(8, 256)
    mod = kiln.compile(model, example_inputs=(x,), precision=precision)
    assert mod.info["precision"] == precision
    assert mod.inputs[0]["dtype"] == "f32" and mod.outputs[0]["dtype"] == "f32"
    y = mod(x.cuda())
    assert y.dtype == torch.float32
    with torch.no_grad():
        assert _rel(y, model(x)) < tol


def _two_module_pipeline():
    a, b = _mlp(64, seed=2), _mlp(64, seed=3)
    x = torch.randn(4, 64)
    ka = kiln.compile(a, example_inputs=(x,))
    kb = kiln.compile(b, example_inputs=(x,))

    def pipeline(t):
        return kb(torch.relu(ka(t)) * 0.5)

    def reference(t):
        with torch.no_grad():
            return b.cuda()(torch.relu(a.cuda()(t)) * 0.5)
    return pipeline, reference


def test_enable_cudagraphs_two_kiln_modules_and_a_torch_op():
    pipeline, reference = _two_module_pipeline()
    graphed = kiln.runtime.enable_cudagraphs(pipeline)
    for _ in range(3):  # capture once, then replay with new input values
        x = torch.randn(4, 64, device="cuda")
        y = graphed(x)
        assert _rel(y, reference(x)) < 1e-4
    assert graphed.num_graphs == 1


def test_enable_cudagraphs_refuses_lazy_dynamic_module(mlp_pair):
    _, mod = mlp_pair  # dynamic batch
    graphed = kiln.runtime.enable_cudagraphs(lambda t: mod(t) + 1)
    with kiln.runtime.dynamic_shapes_kernel_strategy("lazy"):
        with pytest.raises(kiln.UnavailableError, match="lazy"):
            graphed(torch.randn(4, 64, device="cuda"))
    with kiln.runtime.dynamic_shapes_kernel_strategy("eager"):
        x = torch.randn(4, 64, device="cuda")
        assert math.isfinite(float(graphed(x).sum()))


def test_load_prepares_torchs_current_device(tmp_path, mlp_pair):
    # PyTorch has initialised CUDA (the fixtures ran on it): kiln.load opens kiln's CUDA backend on
    # PyTorch's device first; the module then runs there as usual.
    torch.cuda.init()
    model, mod = mlp_pair
    path = tmp_path / "mlp.kiln"
    mod.save(path)
    loaded = kiln.load(path)
    kiln.prepare_backend("cuda", torch.cuda.current_device())  # again: a no-op
    x = torch.randn(4, 64, device="cuda")
    torch.testing.assert_close(loaded(x), mod(x))
    torch.testing.assert_close(loaded(x), model(x), rtol=1e-4, atol=1e-5)


def test_resnet18_from_torch_module():
    torchvision = pytest.importorskip("torchvision", reason="needs torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 224, 224)
    mod = kiln.compile(model, example_inputs=(x,))
    xc = x.cuda()
    y = mod(xc)
    assert y.is_cuda and y.shape == (2, 1000)
    with torch.no_grad():
        want = model.cuda()(xc)
    assert _rel(y, want) < 1e-3
