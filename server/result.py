"""The animation a job produces: per object, read from the trained networks, and as the `result.json` document.

Everything here is in canvas px: the motion networks work in motion units (server/schedule.py, MOTION_CANVAS),
and the extraction converts back, so what the result says is what the user's sketch moves by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import protocol
from .motion import Motion, ObjectMotion
from .protocol import JobSpec
from .sketch import Sketch

if TYPE_CHECKING:
    from .schedule import ObjectLayout


@dataclass
class ObjectAnimation:
    """One object's result, everything in canvas px; static objects have identity frames and their rest points."""

    strokes: list[int]
    static: bool
    center: np.ndarray  # (2,) mean of the rest control points
    translate: np.ndarray  # (F, 2)
    rotate: np.ndarray  # (F,)
    shear: np.ndarray  # (F, 2)
    scale: np.ndarray  # (F, 2)
    matrix: np.ndarray  # (F, 2, 2)
    points: list[list[list[np.ndarray]]]  # [frame][stroke][sub-path] -> (3k+1, 2)


def extract_animation(
    spec: JobSpec, layouts: dict[str, ObjectLayout], motions: dict[str, ObjectMotion], motion_units: float
) -> dict[str, ObjectAnimation]:
    """Every object of the spec (static ones with identity frames), in canvas px, regrouped per stroke."""
    result = {}
    frames = spec.frames
    for obj in spec.objects:
        layout = layouts[obj.name]
        center = layout.rest_points.mean(axis=0) if len(layout.rest_points) else np.zeros(2)
        if obj.name in motions:
            with torch.no_grad():
                motion: Motion = motions[obj.name]()
            values = {
                key: getattr(motion, key).double().cpu().numpy()
                for key in ("points", "translate", "rotate", "shear", "scale", "matrix")
            }
            values["points"] = values["points"] / motion_units
            values["translate"] = values["translate"] / motion_units
        else:
            values = {
                "points": np.broadcast_to(layout.rest_points, (frames, *layout.rest_points.shape)),
                "translate": np.zeros((frames, 2)),
                "rotate": np.zeros(frames),
                "shear": np.zeros((frames, 2)),
                "scale": np.ones((frames, 2)),
                "matrix": np.broadcast_to(np.identity(2), (frames, 2, 2)).copy(),
            }
        result[obj.name] = ObjectAnimation(
            strokes=list(obj.strokes),
            static=obj.static,
            center=center,
            translate=values["translate"],
            rotate=values["rotate"],
            shear=values["shear"],
            scale=values["scale"],
            matrix=values["matrix"],
            points=[layout.regroup(np.array(values["points"][f])) for f in range(frames)],
        )
    return result


def background_strokes(spec: JobSpec, sketch: Sketch) -> list[int]:
    """Strokes in no object: drawn in every frame, never moved."""
    owned = {index for obj in spec.objects for index in obj.strokes}
    return [index for index in range(len(sketch.strokes)) if index not in owned]


def build_result(spec: JobSpec, sketch: Sketch, animation: dict[str, ObjectAnimation]) -> dict[str, Any]:
    """The `result.json` document (schema in docs/job-format.md)."""
    objects = {}
    for obj in spec.objects:
        anim = animation[obj.name]
        frames = []
        for frame in range(spec.frames):
            frames.append(
                {
                    "translate": anim.translate[frame].tolist(),
                    "rotate": float(anim.rotate[frame]),
                    "shear": anim.shear[frame].tolist(),
                    "scale": anim.scale[frame].tolist(),
                    "matrix": anim.matrix[frame].tolist(),
                    "points": [[chain.tolist() for chain in stroke] for stroke in anim.points[frame]],
                }
            )
        objects[obj.name] = {
            "static": anim.static,
            "strokes": list(anim.strokes),
            "center": anim.center.tolist(),
            "frames": frames,
        }
    return {
        "version": protocol.PROTOCOL_VERSION,
        "canvas": [sketch.width, sketch.height],
        "frames": spec.frames,
        "fps": protocol.FPS,
        "stroke_count": len(sketch.strokes),
        "background": background_strokes(spec, sketch),
        "objects": objects,
    }
