"""A known-answer prior: it wants every object exactly where a motion plan puts it.

With it the whole optimizer (motion networks, schedule, rendering, checkpoints) can be checked end to end
against an answer known in advance, with no diffusion model. The plan is a `trajectories.tsv`: a box per
object per frame. An object's planned motion is the shift of its box centre and the scaling of its box size
relative to the first box, applied about the object's centre (the mean of its rest control points).

The loss compares the ink of the video with the ink of the target video over a pyramid of ever blurrier,
smaller copies: the sharp levels pin strokes down to a fraction of a pixel, the blurry ones still see a
stroke that is tens of pixels away from its planned place and pull it there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..protocol import JobSpec
from ..render import canvas_to_render, render
from ..sketch import Sketch
from ..tables import read_trajectories
from . import Prior

LEVEL_GAIN = 4.0  # each coarser level counts this much more: its ink is spread over 4 times the area
SMALLEST_LEVEL = 4  # px: the coarsest pyramid level is the last one at least this big
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # blur before each halving, as in a Gaussian pyramid


@dataclass
class PlannedMotion:
    """An object's planned motion over the job's frames: p -> center + diag(scale_f) (p - center) + translate_f."""

    center: np.ndarray  # (2,) canvas px, mean of the object's rest control points
    translate: np.ndarray  # (F, 2) canvas px
    scale: np.ndarray  # (F, 2)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Rest points (..., 2) at every frame: (F, ..., 2)."""
        shape = (len(self.translate),) + (1,) * (points.ndim - 1) + (2,)
        return self.center + self.scale.reshape(shape) * (points - self.center) + self.translate.reshape(shape)


def _resample(values: np.ndarray, frames: int) -> np.ndarray:
    """Linear resampling of (P, D) values from P planned frames to `frames`, first and last kept."""
    where = np.linspace(0.0, len(values) - 1, frames)
    return np.stack([np.interp(where, np.arange(len(values)), column) for column in values.T], axis=1)


def plan_motions(spec: JobSpec, sketch: Sketch) -> dict[str, PlannedMotion]:
    """Every object of the job with its planned motion; those without a plan, and static ones, stand still.

    UserError when the plan cannot be read or names an object the job does not have.
    """
    if not spec.target_plan:
        raise UserError("the target prior needs a motion plan: pass --target-plan trajectories.tsv")
    plan = read_trajectories(Path(spec.target_plan))
    names = [obj.name for obj in spec.objects]
    unknown = [name for name in plan if name not in names]
    if unknown:
        raise UserError(
            f"the motion plan {spec.target_plan} names object(s) {', '.join(map(repr, unknown))} that the job does "
            f"not have (its objects: {', '.join(map(repr, names)) or 'none'})"
        )
    motions = {}
    for obj in spec.objects:
        center = np.concatenate([chain for index in obj.strokes for chain in sketch.strokes[index].subpaths]).mean(0)
        translate, scale = np.zeros((spec.frames, 2)), np.ones((spec.frames, 2))
        if obj.name in plan and not obj.static:
            boxes = _resample(np.asarray(plan[obj.name], dtype=np.float64), spec.frames)
            centres, sizes = boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:]
            translate, scale = centres - centres[0], sizes / sizes[0]
        motions[obj.name] = PlannedMotion(center, translate, scale)
    return motions


def ink_pyramid(video: torch.Tensor) -> list[torch.Tensor]:
    """Ink (1 - brightness) of a video (F, 3, H, W), blurred and halved level by level down to a few pixels."""
    ink = 1.0 - video.mean(dim=1, keepdim=True)
    kernel = torch.tensor(_BINOMIAL, dtype=ink.dtype, device=ink.device)
    kernel = kernel / kernel.sum()
    levels = []
    while True:
        ink = F.conv2d(F.pad(ink, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
        ink = F.conv2d(F.pad(ink, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))
        levels.append(ink)
        if min(ink.shape[-2:]) < 2 * SMALLEST_LEVEL:
            return levels
        ink = F.avg_pool2d(ink, 2)


def pyramid_distance(levels: Sequence[torch.Tensor], wanted: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over levels of the mean squared ink difference, coarser levels weighted up by LEVEL_GAIN each."""
    pairs = enumerate(zip(levels, wanted, strict=True))
    return torch.stack([F.mse_loss(mine, theirs) * LEVEL_GAIN**depth for depth, (mine, theirs) in pairs]).sum()


class TargetPrior(Prior):
    """Pulls each shown object toward its planned place; its loss is zero exactly there."""

    name = "target"

    def __init__(self, spec: JobSpec, sketch: Sketch, device: torch.device) -> None:
        self.spec = spec
        self.sketch = sketch
        self.device = device
        self.motions = plan_motions(spec, sketch)
        in_objects = {index for obj in spec.objects for index in obj.strokes}
        self.background = [index for index in range(len(sketch.strokes)) if index not in in_objects]

    def _target_video(self, names: Sequence[str], background: bool) -> torch.Tensor:
        """The planned video of these objects (and the background strokes, unmoved), rendered as the job renders."""
        by_name = {obj.name: obj for obj in self.spec.objects}
        segments, widths = [], []
        for name in names:
            strokes = by_name[name].strokes
            segments.append(self.motions[name].apply(self.sketch.segments(strokes)))
            widths.append(self.sketch.segment_widths(strokes))
        if background and self.background:
            still = self.sketch.segments(self.background)
            segments.append(np.broadcast_to(still, (self.spec.frames, *still.shape)))
            widths.append(self.sketch.segment_widths(self.background))
        scale, offset_x, offset_y = canvas_to_render(self.sketch.width, self.sketch.height, self.spec.size)
        placed = np.concatenate(segments, axis=1) * scale + np.array([offset_x, offset_y])
        with torch.no_grad():
            return render(
                torch.tensor(placed, dtype=torch.float32, device=self.device),
                torch.tensor(np.concatenate(widths) * scale, dtype=torch.float32, device=self.device),
                self.spec.size,
            )

    def condition(self, prompt: str, objects: Sequence[str]) -> list[list[torch.Tensor]]:
        """Ink pyramids of the target videos this stage may show (the prompt plays no part).

        A stage of one object shows it alone; the joint stage shows every object and the background. With a
        single moving object both stages name just that object, so both targets are kept and the loss takes the
        one that matches what the video shows.
        """
        if len(objects) > 1:
            targets = [self._target_video([obj.name for obj in self.spec.objects], background=True)]
        elif len(self.spec.moving_objects()) > 1:
            targets = [self._target_video(objects, background=False)]
        else:
            targets = [
                self._target_video(objects, background=False),
                self._target_video([obj.name for obj in self.spec.objects], background=True),
            ]
        return [ink_pyramid(video) for video in targets]

    def loss(self, video: torch.Tensor, condition: object, guidance: float, generator: torch.Generator) -> torch.Tensor:
        """Sum over pyramid levels of the mean squared ink difference to the closest target (guidance unused)."""
        assert isinstance(condition, list), "condition() of this prior gives target pyramids"
        levels = ink_pyramid(video.to(self.device))
        return torch.stack([pyramid_distance(levels, target) for target in condition]).min()
