"""The learned known-answer prior: it loads as ModelScope does, a toy job runs at the model's own settings, and
SDS with it moves a sketch it never saw as the prompt says.

The full grid (every motion phrase, many sketches, against Live-Sketch's motion model) is scripts/bench_sds.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from server import protocol
from server.cli import main
from server.priors.modelscope import ModelScopePrior
from server.priors.toy import MOTIONS, caption, load_toy_prior
from tests.conftest import MULTIOBJECT, SINGLEOBJECT, needs_shared_sketches

CPU = torch.device("cpu")


def test_the_toy_model_is_a_modelscope_layout_model_and_loads_by_either_name() -> None:
    settings = protocol.toy_settings()
    toy = load_toy_prior(CPU, settings["size"])
    same = ModelScopePrior.load(str(protocol.TOY_MODEL_FOLDER), CPU, settings["size"])
    assert type(toy.unet).__name__ == "UNet3DConditionModel" and type(toy.vae).__name__ == "AutoencoderKL"
    assert toy.unet.state_dict().keys() == same.unet.state_dict().keys()
    assert all(torch.equal(value, same.unet.state_dict()[key]) for key, value in toy.unet.state_dict().items())
    weights = sum(f.stat().st_size for f in protocol.TOY_MODEL_FOLDER.rglob("*.safetensors"))
    assert weights < 20 * 2**20, "the committed weights must stay small enough for the repository"


def test_every_caption_of_the_vocabulary_gets_its_own_embedding() -> None:
    prior = load_toy_prior(CPU, protocol.toy_settings()["size"])
    embeddings = [prior.condition(caption(("ball", motion)), ["ball"])[1] for motion in MOTIONS]
    for i in range(len(embeddings)):
        for j in range(i):
            assert not torch.allclose(embeddings[i], embeddings[j], atol=1e-3)


def test_a_toy_job_runs_at_the_frames_and_size_the_model_was_trained_for(tmp_path: Path) -> None:
    out = tmp_path / "job"
    argv = ["animate", str(MULTIOBJECT / "cat11" / "sketch.svg"), "--prompt", caption(("cat", "moves left")),
            "--out", str(out), "--prior", "toy", "--steps", "2", "--device", "cpu", "--progress", "none"]  # fmt: skip
    assert main(argv) == protocol.EXIT_OK
    result = protocol.load_result(out / protocol.RESULT)
    assert result["frames"] == protocol.toy_settings()["frames"]
    assert protocol.JobSpec.load(out / protocol.JOB_SPEC).size == protocol.toy_settings()["size"]


def _centres(result: dict) -> np.ndarray:
    """The mean of the object's control points in every frame (F, 2), px."""
    frames = result["objects"]["sketch"]["frames"]
    return np.array([np.concatenate([np.asarray(c) for s in f["points"] for c in s]).mean(axis=0) for f in frames])


@needs_shared_sketches
@pytest.mark.parametrize("stated", ["moves right", "stays still"])
def test_sds_with_the_learned_prior_moves_an_unseen_sketch_as_prompted(tmp_path: Path, stated: str) -> None:
    out = tmp_path / "job"
    argv = ["animate", str(SINGLEOBJECT / "penguin_scaled1.svg"), "--prompt", caption(("sketch", stated)),
            "--out", str(out), "--prior", "toy", "--steps", "40", "--device", "cpu", "--progress", "none"]  # fmt: skip
    assert main(argv) == protocol.EXIT_OK
    moves = _centres(protocol.load_result(out / protocol.RESULT))
    moves -= moves[0]
    if stated == "moves right":
        right, down = moves[-1]
        assert right > 10.0 and right > abs(down), f"the penguin went {moves[-1]} px, not right"
    else:
        assert np.linalg.norm(moves, axis=1).max() < 1.0, f"the penguin left its place: {moves.round(2)} px"
