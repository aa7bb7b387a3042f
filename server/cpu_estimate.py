"""How long the real model would take on this CPU, said before a job of days starts rather than found out after.

The cost of one SDS pass of ModelScope at 24 frames and 256 px, counted from its configs: about 34 TFLOP
(the VAE encoder's forward and backward about 20, the UNet's guided forward about 15). It grows with the
frames and the rendered pixels. The CPU's speed is measured here with a short matrix product, which a
convolution network does not beat, so the estimate is a lower bound.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .protocol import DEFAULT_MODEL
from .schedule import Stage

TFLOP_PER_PASS = 34.0  # ModelScope, one SDS pass at REFERENCE_FRAMES frames of REFERENCE_SIZE px
REFERENCE_FRAMES, REFERENCE_SIZE = 24, 256
MODELSCOPE_UNET_WIDTHS = [320, 640, 1280, 1280]  # block_out_channels of its UNet: what tells it from a small model
LONG_CPU_JOB_S = 600  # a CPU job estimated to take longer is worth a word before it starts
_MATRIX = 1024  # side of the timed matrix product: 2.1 GFLOP, a few tenths of a second on a laptop core


def cpu_flops(repeats: int = 3) -> float:
    """FLOP per second of an fp32 matrix product on this CPU, the best of `repeats`."""
    a, b = torch.randn(_MATRIX, _MATRIX), torch.randn(_MATRIX, _MATRIX)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * _MATRIX**3 / max(best, 1e-9)


def modelscope_seconds(stages: list[Stage], steps: int, frames: int, size: int, flops: float) -> float:
    """At least how long the whole job takes with ModelScope at `flops`: two passes a step where global
    motion trains (local and global), one elsewhere."""
    passes = sum(steps * (2 if stage.train_global else 1) for stage in stages)
    per_pass = TFLOP_PER_PASS * 1e12 * (frames / REFERENCE_FRAMES) * (size / REFERENCE_SIZE) ** 2
    return passes * per_pass / flops


def is_full_modelscope(model: str) -> bool:
    """Whether `model` (a hub id or a local folder) is ModelScope at full size, not a small test model of its layout."""
    if model == DEFAULT_MODEL:
        return True
    try:
        config = json.loads((Path(model) / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("block_out_channels") == MODELSCOPE_UNET_WIDTHS
