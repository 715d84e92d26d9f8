"""How initial scales, forward multipliers and per-parameter Adam learning rates depend on width.

- sp: standard (GPT-2) parametrization; one learning rate for every parameter.
- mup: maximal update parametrization for Adam (Yang et al. 2022, Table 3), relative to a base
  width m0: with m = d_model / m0, hidden matrices start at std / sqrt(m) and learn at lr / m, the
  (tied) readout is multiplied by 1 / m, attention scores by 1 / d_head. At d_model = m0 only the
  attention scale differs from sp.
- u-mup: unit-scaled muP (Blake et al. 2024): every weight starts at unit variance, each op has
  a scale-free multiplier (1 / sqrt(fan_in) for hidden matrices, 1 / fan_in for the readout,
  1 / d_head for attention), residual adds keep the stream at unit scale, and Adam learning
  rates are lr / sqrt(fan_in) for hidden matrices and lr for vectors and the embedding.

The token embedding is tied to the readout; like mup's shared readout (MuSharedReadout) it
follows the embedding's rules, constant init and learning rate, and the readout multiplier
carries the width scaling. The rules scale width only: depth follows the shape rule and is not
transferred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..choices import Choice, Registry

PARAMETRIZATIONS: Registry[Parametrization] = Registry("parametrization")
SP_STD = 0.02
GELU_RMS = 0.652  # RMS of gelu(z) for z ~ N(0, 1): u-mup divides it out to keep the MLP unit-scaled


@dataclass(frozen=True)
class Rules:
    embed_std: float
    pos_std: float
    hidden_std: dict[str, float]
    """Initial std of each block matrix: qkv, out, up, down."""
    hidden_mult: dict[str, float]
    """Forward multiplier of each block matrix."""
    embed_mult: float
    readout_mult: float
    attn_scale: float
    gelu_mult: float
    unit_residual: bool
    """u-mup: residual adds weighted so the stream stays at unit variance."""
    lr_scale: dict[str, float]
    """Learning-rate multiplier by parameter kind: qkv, out, up, down, embedding, vector."""


@dataclass(frozen=True)
class Parametrization(Choice):
    registry: ClassVar[Registry[Parametrization]] = PARAMETRIZATIONS

    def rules(self, d_model: int, d_ff: int, n_layers: int, d_head: int) -> Rules:
        raise NotImplementedError


def _fan_in(d_model: int, d_ff: int) -> dict[str, int]:
    return {"qkv": d_model, "out": d_model, "up": d_model, "down": d_ff}


def _depth_scale(n_layers: int) -> float:
    return 1 / math.sqrt(2 * n_layers)  # GPT-2: residual outputs scaled down with depth


@PARAMETRIZATIONS.register("sp")
@dataclass(frozen=True)
class SP(Parametrization):
    def rules(self, d_model, d_ff, n_layers, d_head):
        kinds, depth = _fan_in(d_model, d_ff), _depth_scale(n_layers)
        return Rules(
            embed_std=SP_STD,
            pos_std=SP_STD / 2,
            hidden_std={"qkv": SP_STD, "up": SP_STD, "out": SP_STD * depth, "down": SP_STD * depth},
            hidden_mult=dict.fromkeys(kinds, 1.0),
            embed_mult=1.0,
            readout_mult=1.0,
            attn_scale=1 / math.sqrt(d_head),
            gelu_mult=1.0,
            unit_residual=False,
            lr_scale={**dict.fromkeys(kinds, 1.0), "embedding": 1.0, "vector": 1.0},
        )


@PARAMETRIZATIONS.register("mup")
@dataclass(frozen=True)
class MuP(Parametrization):
    base_width: int
    """The d_model at which muP's init and learning rates equal the standard ones."""

    def rules(self, d_model, d_ff, n_layers, d_head):
        kinds, depth = _fan_in(d_model, d_ff), _depth_scale(n_layers)
        m = d_model / self.base_width
        std = SP_STD / math.sqrt(m)
        return Rules(
            embed_std=SP_STD,
            pos_std=SP_STD / 2,
            hidden_std={"qkv": std, "up": std, "out": std * depth, "down": std * depth},
            hidden_mult=dict.fromkeys(kinds, 1.0),
            embed_mult=1.0,
            readout_mult=1 / m,
            attn_scale=1 / d_head,
            gelu_mult=1.0,
            unit_residual=False,
            lr_scale={**dict.fromkeys(kinds, 1 / m), "embedding": 1.0, "vector": 1.0},
        )


@PARAMETRIZATIONS.register("u-mup")
@dataclass(frozen=True)
class UMuP(Parametrization):
    def rules(self, d_model, d_ff, n_layers, d_head):
        fan_in = _fan_in(d_model, d_ff)
        return Rules(
            embed_std=1.0,
            pos_std=1.0,
            hidden_std=dict.fromkeys(fan_in, 1.0),
            hidden_mult={k: 1 / math.sqrt(f) for k, f in fan_in.items()},
            embed_mult=1 / math.sqrt(2),  # token + position embeddings: two unit-variance terms
            readout_mult=1 / d_model,
            attn_scale=1 / d_head,
            gelu_mult=1 / GELU_RMS,
            unit_residual=True,
            lr_scale={**{k: 1 / math.sqrt(f) for k, f in fan_in.items()}, "embedding": 1.0, "vector": 1.0},
        )


def param_kind(path: tuple) -> str:
    """The kind of the parameter at an nnx state path, e.g. ('blocks', 0, 'qkv', 'kernel') -> 'qkv'."""
    if path[0] in ("embed", "pos"):
        return "embedding"
    if path[-1] == "kernel":
        return str(path[-2])
    return "vector"  # LayerNorm scales and biases
