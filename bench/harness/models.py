"""The benchmark models (issue #5 and #9), built with random weights from a fixed seed.

Each Config is one (model, batch) row. Nothing is downloaded: torchvision models are built with
weights=None and initialised from the seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Tuple

import torch
from torch import nn

SEED = 20261127


class MLP(nn.Module):
    """4x Linear(1024, 1024) + GELU."""

    def __init__(self, width: int = 1024, layers: int = 4):
        super().__init__()
        mods = []
        for _ in range(layers):
            mods += [nn.Linear(width, width), nn.GELU()]
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer written with plain ops (exports to MatMul, Softmax,
    LayerNormalization, Gelu-as-Erf: no fused native kernels that ONNX cannot express)."""

    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ff)
        self.ff2 = nn.Linear(ff, d)
        self.norm2 = nn.LayerNorm(d)
        self.act = nn.GELU()

    def forward(self, x):
        b, s, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).reshape(b, s, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        att = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d // h)), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, s, d)
        x = self.norm1(x + self.proj(y))
        return self.norm2(x + self.ff2(self.act(self.ff1(x))))


class Encoder(nn.Module):
    def __init__(self, layers: int, d: int, heads: int):
        super().__init__()
        self.layers = nn.Sequential(*[EncoderLayer(d, heads, 4 * d) for _ in range(layers)])

    def forward(self, x):
        return self.layers(x)


def _torchvision(name: str) -> nn.Module:
    import torchvision
    return getattr(torchvision.models, name)(weights=None)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    make: Callable[[], nn.Module]
    sample_shape: Callable[[int], Tuple[int, ...]]   # batch -> input shape
    batches: Tuple[int, ...]                          # the rows: batch 1 and a large batch
    quick_batches: Tuple[int, ...]
    description: str


MODELS = {
    "mlp": ModelSpec("mlp", MLP, lambda b: (b, 1024), (1, 64), (1, 64),
                     "4x Linear 1024 + GELU"),
    "resnet18": ModelSpec("resnet18", lambda: _torchvision("resnet18"),
                          lambda b: (b, 3, 224, 224), (1, 32), (1, 32), "torchvision resnet18"),
    "encoder_l4_d256": ModelSpec("encoder_l4_d256", lambda: Encoder(4, 256, 4),
                                 lambda b: (b, 128, 256), (1,), (1,),
                                 "4-layer d=256 encoder, seq 128"),
    "encoder_l12_d768": ModelSpec("encoder_l12_d768", lambda: Encoder(12, 768, 12),
                                  lambda b: (b, 128, 768), (8,), (8,),
                                  "12-layer d=768 encoder, seq 128"),
    "mobilenet_v3_small": ModelSpec("mobilenet_v3_small", lambda: _torchvision("mobilenet_v3_small"),
                                    lambda b: (b, 3, 224, 224), (1, 32), (1, 32),
                                    "torchvision mobilenet_v3_small"),
}

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Relative L2 error ||kiln - torch_fp32|| / ||torch_fp32|| allowed per precision (METHOD.md:
# f32 lands far under 1e-3; half types between 1e-3 and a few 1e-2 over deep models).
TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2, "bf16": 1e-1}


def build(spec: ModelSpec) -> nn.Module:
    """The model in eval mode, f32, on the CPU, weights drawn from SEED."""
    torch.manual_seed(SEED)
    model = spec.make().eval()
    # BatchNorm running stats away from the identity, so normalisation is really exercised.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def sample(spec: ModelSpec, batch: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(SEED + seed)
    return torch.randn(spec.sample_shape(batch), generator=g)


def relative_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    got = got.detach().double().cpu()
    want = want.detach().double().cpu()
    if not torch.isfinite(got).all():
        return math.inf
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


def resolve(names: List[str]) -> List[ModelSpec]:
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; expected some of {sorted(MODELS)}")
    return [MODELS[n] for n in names]
