"""Motion predictors of one object: a local displacement field and a per-frame global affine.

Live-Sketch's parametrisation (final point = c + A_f (p - c) + d_f + local_f(p), with its output scales)
on networks whose size does not depend on the number of control points: every point is encoded from its
rest position alone, every frame has a learned code, and one shared MLP maps (point code, frame code) to
an offset. Live-Sketch's flatten-everything MLP instead grows with frames x points (51 M parameters for
16 strokes). Its defects are not carried over: the scale has its own head, there is no unused embedding,
and there is no dropout (dropout would make a resumed run differ from an uninterrupted one).

Two settings of the job shape the split into global and local motion: whether the local offsets may carry an
affine part (without it, rigid motion is the global predictor's alone, the part a user edits as transform
keyframes), and how much the global heads are amplified so that the global motion can travel at Live-Sketch's
tiny global learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .protocol import HEAD_GAINS

WIDTH = 128
FREQUENCY_BANDS = 6

# Live-Sketch's output scales: pixels of translation, radians of rotation, shear and scale per unit of head output.
TRANSLATION_SCALE = 1.0
ROTATION_SCALE = 0.01
SHEAR_SCALE = 0.1
SCALE_SCALE = 0.05

# The global learning rate is tiny (1e-4). With it, Adam moves each weight by about 0.02 over a few hundred
# steps, which at the scales above moves an object by a pixel or two. The heads' last layers can therefore be
# amplified (the job's `head_gains`, defaults in server/protocol.py): same output at initialisation, `gain` times
# faster under Adam. Adam's step has a fixed size only while the gradient keeps its sign, so a gain speeds up a
# consistent pull far more than noise, but it speeds up noise too: SDS gradients are mostly noise.

# With `remove_local_affine` the local offsets lose their affine part (their least-squares fit by a + B (p - c)),
# which then belongs to the global predictor alone. Otherwise the two predictors can trade motion back and forth
# unseen, e.g. an object translated by 20 px globally and by -20 px locally, which makes no sense in a
# hand-editable result. The ridge keeps the fit defined for an object whose points all lie on one line.
AFFINE_RIDGE = 1e-6


@dataclass
class Motion:
    """One object's animation, every tensor per frame; `points` in canvas px."""

    points: torch.Tensor  # (F, P, 2) final control points
    translate: torch.Tensor  # (F, 2) px
    rotate: torch.Tensor  # (F,) radians, positive turns clockwise on screen (y down)
    shear: torch.Tensor  # (F, 2) (shear_x, shear_y)
    scale: torch.Tensor  # (F, 2) (scale_x, scale_y)
    matrix: torch.Tensor  # (F, 2, 2) A_f = R(rotate) . [[1, shear_y], [shear_x, 1]] . diag(scale)


class AmplifiedLinear(nn.Linear):
    """A linear layer whose output is multiplied by `gain` and whose initial weights are divided by it.

    It starts exactly where a plain layer would, but Adam (whose steps have a fixed size in parameter space)
    moves its output `gain` times faster: a learning-rate boost for one layer that keeps the optimizer's
    settings as they are.
    """

    def __init__(self, in_features: int, out_features: int, gain: float) -> None:
        super().__init__(in_features, out_features)
        self.gain = gain
        with torch.no_grad():
            self.weight /= gain
            self.bias /= gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * super().forward(x)


def _block(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, out_features), nn.LayerNorm(out_features), nn.LeakyReLU())


def sinusoidal_codes(count: int, width: int) -> torch.Tensor:
    """Transformer-style codes of the indices 0..count-1: neighbouring frames start with similar codes."""
    index = torch.arange(count, dtype=torch.float32)[:, None]
    rates = 10000.0 ** (-torch.arange(0, width, 2, dtype=torch.float32) / width)
    return torch.cat([torch.sin(index * rates), torch.cos(index * rates)], dim=1)


def position_features(relative: torch.Tensor, bands: int = FREQUENCY_BANDS) -> torch.Tensor:
    """Fourier features of rest positions already normalised to about [-1, 1]: (P, 2) -> (P, 2 + 4 * bands)."""
    frequencies = math.pi * 2.0 ** torch.arange(bands, dtype=relative.dtype, device=relative.device)
    angles = (relative[:, :, None] * frequencies).flatten(1)
    return torch.cat([relative, torch.sin(angles), torch.cos(angles)], dim=1)


class PointEncoder(nn.Sequential):
    """Rest-position features of one point -> its code; shared by all points, so its size is fixed."""

    def __init__(self, in_features: int, width: int) -> None:
        super().__init__(_block(in_features, width), nn.Linear(width, width))


class LocalMotion(nn.Module):
    """Per-point, per-frame offsets in px: a displacement field over the object's rest shape."""

    def __init__(self, frames: int, in_features: int, width: int = WIDTH) -> None:
        super().__init__()
        self.point_encoder = PointEncoder(in_features, width)
        self.frame_codes = nn.Parameter(sinusoidal_codes(frames, width))
        self.body = nn.Sequential(
            nn.LayerNorm(width), nn.LeakyReLU(), _block(width, width), _block(width, width), nn.Linear(width, 2)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (P, in_features) -> offsets (F, P, 2)."""
        codes = self.point_encoder(features)[None] + self.frame_codes[:, None]
        return self.body(codes)


class GlobalMotion(nn.Module):
    """Per-frame affine parameters from the frame's code and a code of the whole object (mean over its points)."""

    def __init__(self, frames: int, in_features: int, gains: dict[str, float], width: int = WIDTH) -> None:
        super().__init__()
        self.point_encoder = PointEncoder(in_features, width)
        self.frame_codes = nn.Parameter(sinusoidal_codes(frames, width))
        self.trunk = nn.Sequential(nn.LayerNorm(width), nn.LeakyReLU(), _block(width, width), _block(width, width))
        self.translation = nn.Sequential(
            _block(width, width),
            _block(width, width),
            _block(width, width),
            AmplifiedLinear(width, 2, gains["translation"]),
        )
        self.rotation = nn.Sequential(_block(width, width), AmplifiedLinear(width, 1, gains["rotation"]))
        self.shear = nn.Sequential(_block(width, width), AmplifiedLinear(width, 2, gains["shear"]))
        self.scale = nn.Sequential(_block(width, width), AmplifiedLinear(width, 2, gains["scale"]))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """features (P, in_features) -> head outputs: translation (F, 2), rotation (F,), shear (F, 2), scale (F, 2)."""
        object_code = self.point_encoder(features).mean(dim=0)
        shared = self.trunk(self.frame_codes + object_code)
        return self.translation(shared), self.rotation(shared)[:, 0], self.shear(shared), self.scale(shared)


def affine_matrix(rotate: torch.Tensor, shear: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A = R(rotate) . [[1, shear_y], [shear_x, 1]] . diag(scale_x, scale_y), batched over frames: (F, 2, 2)."""
    cos, sin = torch.cos(rotate), torch.sin(rotate)
    shear_x, shear_y = shear.unbind(-1)
    scale_x, scale_y = scale.unbind(-1)
    row0 = torch.stack([(cos - sin * shear_x) * scale_x, (cos * shear_y - sin) * scale_y], dim=-1)
    row1 = torch.stack([(sin + cos * shear_x) * scale_x, (sin * shear_y + cos) * scale_y], dim=-1)
    return torch.stack([row0, row1], dim=-2)


class ObjectMotion(nn.Module):
    """One moving object: `local` predicts per-point offsets, `global_motion` a per-frame affine about its centre.

    The centre is the mean of the object's rest control points. The two predictors share no parameter, so each
    can be trained or frozen on its own. At initialisation the motion is near identity (offsets of a fraction of
    a pixel, rotations of a few thousandths of a radian), as in Live-Sketch.
    """

    def __init__(
        self,
        rest_points: torch.Tensor,
        frames: int,
        gains: dict[str, float] = HEAD_GAINS,
        remove_local_affine: bool = True,
    ) -> None:
        super().__init__()
        self.remove_local_affine = remove_local_affine
        rest_points = torch.as_tensor(rest_points, dtype=torch.float32)
        center = rest_points.mean(dim=0)
        relative = rest_points - center
        extent = relative.abs().max().clamp(min=1.0)
        features = position_features(relative / extent)
        self.register_buffer("rest_points", rest_points, persistent=False)
        self.register_buffer("center", center, persistent=False)
        self.register_buffer("features", features, persistent=False)
        basis = torch.cat([torch.ones_like(relative[:, :1]), relative / extent], dim=1)  # (P, 3): 1, x, y
        gram = basis.T @ basis + AFFINE_RIDGE * torch.eye(3)
        self.register_buffer("affine_basis", basis, persistent=False)
        self.register_buffer("affine_fit", torch.linalg.solve(gram, basis.T), persistent=False)
        self.local = LocalMotion(frames, features.shape[1])
        self.global_motion = GlobalMotion(frames, features.shape[1], gains)

    def forward(self) -> Motion:
        translation, rotation, shear, scale = self.global_motion(self.features)
        translate = TRANSLATION_SCALE * translation
        rotate = ROTATION_SCALE * rotation
        shear = SHEAR_SCALE * shear
        scale = 1.0 + SCALE_SCALE * scale
        matrix = affine_matrix(rotate, shear, scale)
        relative = self.rest_points - self.center
        moved = torch.einsum("fij,pj->fpi", matrix, relative) + (self.center + translate)[:, None]
        offsets = self.local(self.features)
        if self.remove_local_affine:
            offsets = offsets - self.affine_basis @ (self.affine_fit @ offsets)
        else:  # the offsets' common shift is global motion: shown as such, the points stay where they are
            shift = offsets.mean(dim=1)
            translate, moved, offsets = translate + shift, moved + shift[:, None], offsets - shift[:, None]
        points = moved + offsets
        return Motion(points=points, translate=translate, rotate=rotate, shear=shear, scale=scale, matrix=matrix)
