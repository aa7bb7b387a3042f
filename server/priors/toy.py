"""The learned known-answer prior: a small text-to-video model of ModelScope's layout, trained in this project.

It was trained (scripts/train_toy_prior.py) on synthetic sketch clips whose motion its captions state in a
small vocabulary ("the ball moves up", "the box turns clockwise"), so unlike the random `tiny` model it has a
real score: SDS with it must move a sketch the way the prompt says. It is loaded by exactly the code that loads
ModelScope (diffusers layout, UNet3D, AutoencoderKL, CLIP text encoder and tokenizer, DDIM schedule), which is
what makes it a check of the whole SDS path. The weights ship inside the engine (`toy_model/`, with the settings
file that `protocol.toy_settings` reads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..protocol import TOY_MODEL_FOLDER
from .modelscope import ModelScopePrior


@dataclass(frozen=True)
class StatedMotion:
    """What a motion phrase means over one clip: the shift, scale factor and turn from first to last frame."""

    shift: tuple[float, float]  # fraction of the canvas, x right, y down
    scale: float  # size at the last frame / size at the first
    turn_degrees: float  # positive turns clockwise on screen (y down)


# Amplitudes over one clip; the training data draws each between 0.75 and 1.25 times these.
SHIFT = 0.25
GROWTH = 1.6
TURN = 60.0
MOTIONS = {
    "moves left": StatedMotion((-SHIFT, 0.0), 1.0, 0.0),
    "moves right": StatedMotion((SHIFT, 0.0), 1.0, 0.0),
    "moves up": StatedMotion((0.0, -SHIFT), 1.0, 0.0),
    "moves down": StatedMotion((0.0, SHIFT), 1.0, 0.0),
    "grows": StatedMotion((0.0, 0.0), GROWTH, 0.0),
    "shrinks": StatedMotion((0.0, 0.0), 1.0 / GROWTH, 0.0),
    "turns clockwise": StatedMotion((0.0, 0.0), 1.0, TURN),
    "turns counter-clockwise": StatedMotion((0.0, 0.0), 1.0, -TURN),
    "stays still": StatedMotion((0.0, 0.0), 1.0, 0.0),
}


def caption(*named_motions: tuple[str, str]) -> str:
    """The caption the model was trained on: caption(("ball", "moves up")) -> "the ball moves up"."""
    return " and ".join(f"the {name} {motion}" for name, motion in named_motions)


def load_toy_prior(device: torch.device, size: int) -> ModelScopePrior:
    """The committed model, through the loader the real ModelScope model uses."""
    return ModelScopePrior.load(str(TOY_MODEL_FOLDER), device, size, name="toy")
