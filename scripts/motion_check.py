"""Which way did it move? Measures of a clip's motion (from control points or from pixels) and a verdict per phrase.

Shared by the learned prior's training script (its samples are pixels) and the SDS benchmarks (their results
are control points). A measurement is the shift of the centre, the size ratio and the turn from the first to
the last frame; a verdict says whether that goes the way a motion phrase of `server.priors.toy.MOTIONS` states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# A stated motion counts as done when it reaches this share of the canvas or this size ratio or turn, and beats
# every other component; "stays still" allows at most STILL_PX of shift (px of a 256-px sketch, acceptance's bound).
MIN_SHIFT = 0.02
MIN_LOG_SCALE = math.log(1.05)
MIN_TURN_DEGREES = 5.0
STILL_PX = 1.0
MAX_TURN_PER_FRAME = 30.0  # degrees the pixel tracker looks for between consecutive frames


@dataclass
class Measured:
    """First to last frame: centre shift in px (x right, y down), size ratio, turn in degrees (clockwise > 0)."""

    shift: np.ndarray
    scale: float
    turn_degrees: float
    largest_move_px: float = 0.0  # the farthest any frame's centre gets from the first frame's


def measure_points(points: np.ndarray) -> Measured:
    """From control points (F, P, 2): centroid shift, RMS-radius ratio and the least-squares (Procrustes) turn."""
    centres = points.mean(axis=1)
    first, last = points[0] - centres[0], points[-1] - centres[-1]
    scale = float(np.sqrt((last**2).sum(1).mean() / max((first**2).sum(1).mean(), 1e-12)))
    cross = (first[:, 0] * last[:, 1] - first[:, 1] * last[:, 0]).sum()
    dot = (first * last).sum()
    largest = float(np.linalg.norm(points - points[0], axis=2).mean(axis=1).max())
    return Measured(centres[-1] - centres[0], scale, math.degrees(math.atan2(cross, dot)), largest)


def jitter(points: np.ndarray) -> float:
    """Mean distance between a point's frame-to-frame step and its steady step (last minus first over F-1), px."""
    steps = np.diff(points, axis=0)
    steady = (points[-1] - points[0]) / (len(points) - 1)
    return float(np.linalg.norm(steps - steady, axis=2).mean())


def measure_pixels(video: torch.Tensor) -> Measured:
    """From frames (F, 3, H, W) of dark ink on white: ink centroid, ink spread ratio and the best-matching turns."""
    ink = (1.0 - video.float().mean(dim=1)).clamp(min=0)
    ink = torch.where(ink > 0.1, ink, torch.zeros_like(ink))
    frames, height, width = ink.shape
    ys, xs = _pixel_grid(height, width)
    mass = ink.sum(dim=(1, 2)).clamp(min=1e-6)
    cx, cy = (ink * xs).sum(dim=(1, 2)) / mass, (ink * ys).sum(dim=(1, 2)) / mass
    spread = ((ink * ((xs - cx[:, None, None]) ** 2 + (ys - cy[:, None, None]) ** 2)).sum(dim=(1, 2)) / mass).sqrt()
    scale = float(spread[-1] / spread[0].clamp(min=1e-6))
    # Summed from frame to frame: a first-to-last comparison cannot tell a box turned 60 degrees one way from one
    # turned 30 degrees the other, and a triangle looks the same after 60 degrees either way.
    steps = spread[1:] / spread[:-1].clamp(min=1e-6)
    turn = sum(
        _best_turn(ink[i], ink[i + 1], (float(cx[i]), float(cy[i])), (float(cx[i + 1]), float(cy[i + 1])), float(step))
        for i, step in enumerate(steps)
    )
    shift = np.array([float(cx[-1] - cx[0]), float(cy[-1] - cy[0])])
    moves = torch.stack([cx - cx[0], cy - cy[0]], dim=1).norm(dim=1)
    return Measured(shift, scale, turn, float(moves.max()))


def _pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, columns = torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32)
    return torch.meshgrid(rows, columns, indexing="ij")


def _best_turn(this: torch.Tensor, following: torch.Tensor, this_centre, following_centre, scale: float) -> float:
    """The turn (degrees, -30 to 30) that, with the shift and size ratio, best maps one frame on the next."""
    height, width = this.shape
    angles = torch.deg2rad(torch.arange(-MAX_TURN_PER_FRAME, MAX_TURN_PER_FRAME + 0.5, 1.0))
    ys, xs = _pixel_grid(height, width)
    # For every pixel of the following frame, where it comes from in this one: inverse turn and scale.
    dx, dy = (xs - following_centre[0]) / scale, (ys - following_centre[1]) / scale
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    source_x = cos * dx + sin * dy + this_centre[0]
    source_y = -sin * dx + cos * dy + this_centre[1]
    grid = torch.stack([source_x / (width - 1) * 2 - 1, source_y / (height - 1) * 2 - 1], dim=-1)
    warped = F.grid_sample(this.expand(len(angles), 1, height, width), grid, align_corners=True)[:, 0]
    score = (warped * following).sum(dim=(1, 2))
    return float(torch.rad2deg(angles[score.argmax()]))


def judge(stated: str, measured: Measured, canvas: float, still_px: float = STILL_PX) -> bool:
    """Whether `measured` (px of a canvas `canvas` px wide) goes the way the motion phrase `stated` says.

    "stays still" holds when no frame's centre gets `still_px` from the first and the size and turn hold too.
    """
    from server.priors.toy import MOTIONS

    motion = MOTIONS[stated]
    shift = measured.shift / canvas
    log_scale = math.log(max(measured.scale, 1e-6))
    if stated == "stays still":
        steady = abs(log_scale) < MIN_LOG_SCALE and abs(measured.turn_degrees) < MIN_TURN_DEGREES
        return measured.largest_move_px < still_px and steady
    if motion.shift != (0.0, 0.0):
        direction = np.array(motion.shift) / np.linalg.norm(motion.shift)
        along = float(shift @ direction)
        across = abs(float(shift @ np.array([-direction[1], direction[0]])))
        return along >= MIN_SHIFT and along > across
    if motion.scale != 1.0:
        return log_scale * math.copysign(1.0, math.log(motion.scale)) >= MIN_LOG_SCALE
    return measured.turn_degrees * math.copysign(1.0, motion.turn_degrees) >= MIN_TURN_DEGREES
