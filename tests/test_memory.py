"""GPU memory: which plan a card of each size gets, and that the low-memory mode animates as the standard one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from server.memory import GIB, plan_memory
from server.priors import load_prior, modelscope
from server.protocol import JobSpec
from server.schedule import Optimization
from server.sketch import default_objects, load_svg
from tests.conftest import MULTIOBJECT

PAPER_VIDEO = 24 * 256 * 256  # the paper's 24 frames of 256 px
MODEL_GIB = 3.4  # ModelScope's weights in fp16 (unet, vae, text encoder)
CUDA_CONTEXT_GIB = 0.5


def _free_after_load(card_gib: float) -> int:
    return int((card_gib - MODEL_GIB - CUDA_CONTEXT_GIB) * GIB)


def test_an_8_gb_card_gets_the_low_memory_mode_and_says_why() -> None:
    plan = plan_memory("auto", None, _free_after_load(8), PAPER_VIDEO, moving_objects=3)
    assert plan.mode == "low" and plan.object_batch == 1
    assert plan.reason == (
        "low-memory mode (4.1 GiB free after loading the model, the standard mode needs 7.3): one object at a time"
    )


def test_larger_cards_keep_the_vae_activations_and_run_objects_together_when_they_fit() -> None:
    sixteen = plan_memory("auto", None, _free_after_load(16), PAPER_VIDEO, moving_objects=3)
    large = plan_memory("auto", None, _free_after_load(141), PAPER_VIDEO, moving_objects=3)
    twelve = plan_memory("auto", None, _free_after_load(12), PAPER_VIDEO, moving_objects=3)
    card24 = plan_memory("auto", None, _free_after_load(24), PAPER_VIDEO, moving_objects=3)
    assert (sixteen.mode, sixteen.object_batch, sixteen.vae_checkpointing) == ("standard", 1, False)
    assert (card24.mode, card24.object_batch, card24.vae_checkpointing) == ("standard", 1, False)
    assert (large.mode, large.object_batch, large.vae_checkpointing) == ("standard", 3, False)
    assert (twelve.mode, twelve.object_batch, twelve.vae_checkpointing) == ("standard", 1, True)
    assert "3 object(s) at a time" in large.reason


def test_what_the_user_asks_for_is_kept() -> None:
    assert plan_memory("low", None, _free_after_load(141), PAPER_VIDEO, 3).mode == "low"
    assert plan_memory("standard", 2, _free_after_load(141), PAPER_VIDEO, 3).object_batch == 2
    assert plan_memory("standard", None, _free_after_load(8), PAPER_VIDEO, 3).mode == "standard"
    assert plan_memory("auto", None, None, PAPER_VIDEO, 3).object_batch == 1  # off a GPU: one at a time
    assert plan_memory("auto", 3, None, PAPER_VIDEO, 3).object_batch == 3


def _toy_animation(folder: Path, mode: str) -> tuple[dict, list[int]]:
    """A two-step run of basketball5's objects with the learned toy prior; the frames of every VAE encoder call."""
    sketch = load_svg(MULTIOBJECT / "basketball5" / "sketch.svg")
    spec = JobSpec(sketch="sketch.svg", prompt="the sketch moves up", objects=default_objects(sketch), prior="toy",
                   frames=8, steps=2, size=64)  # fmt: skip
    prior = load_prior(spec, sketch, torch.device("cpu"))
    prior.use_memory_plan(plan_memory(mode, None, None, spec.frames * spec.size**2, 1))
    frames: list[int] = []
    prior.vae.encoder.register_forward_pre_hook(lambda _module, inputs: frames.append(len(inputs[0])))
    optimization = Optimization(spec, sketch, prior, torch.device("cpu"), folder, lambda *a, **k: None, lambda: False)
    return optimization.run(resume=False), frames


def test_the_low_memory_mode_encodes_a_few_frames_at_a_time_and_animates_as_the_standard_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modelscope, "LOW_MEMORY_FRAMES", 3)  # the toy model's 8 frames: chunks of 3, 3 and 2
    standard, standard_frames = _toy_animation(tmp_path / "standard", "standard")
    low, low_frames = _toy_animation(tmp_path / "low", "low")
    assert set(standard_frames) == {8} and set(low_frames) == {3, 2}
    assert len(low_frames) == 2 * 3 * len(standard_frames)  # 3 chunks, each encoded again in the backward pass
    moved = [
        np.concatenate([np.ravel(chain) for stroke in frame for chain in stroke]) for frame in low["sketch"].points
    ]
    kept = [
        np.concatenate([np.ravel(chain) for stroke in frame for chain in stroke]) for frame in standard["sketch"].points
    ]
    assert np.abs(np.array(moved) - np.array(kept)).max() < 0.05  # px: float rounding only
