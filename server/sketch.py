"""SVG sketch -> strokes of cubic Bezier chains in canvas pixels, and the objects a sketch suggests.

The job contract indexes strokes by `<path>` element in document order, so every `<path>` becomes exactly
one stroke, even one without geometry. The reading itself is `server.svg`, which the Blender add-on
shares, so both sides number and place strokes the same; lines, quadratics and arcs come out as cubics,
so the rest of the engine (motion, rendering, results) only ever sees cubic chains. Coordinates are the
user units of the root `viewBox` (its top-left corner at 0, 0): the canvas pixels the job contract and
`result.json` speak in, whatever `width`/`height` the file asks a viewer to display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import svg
from .protocol import ObjectSpec

SINGLE_SKETCH_OBJECT = "sketch"


@dataclass
class Stroke:
    """One `<path>` element: its sub-paths as cubic chains p0, c1, c2, p1, c1, c2, p2, ... (3k+1, 2)."""

    subpaths: list[np.ndarray]
    width: float


@dataclass
class Sketch:
    """A loaded sketch in canvas pixels (x right, y down)."""

    width: float
    height: float
    strokes: list[Stroke]
    groups: dict[str, list[int]] = field(default_factory=dict)
    ignored_shapes: dict[str, int] = field(default_factory=dict)  # e.g. {"rect": 2}: drawn shapes that are not strokes

    def segments(self, indices: Sequence[int]) -> np.ndarray:
        """Every cubic segment of these strokes, in stroke, sub-path and segment order: (S, 4, 2)."""
        pieces = [chain_segments(chain) for index in indices for chain in self.strokes[index].subpaths]
        if not pieces:
            return np.zeros((0, 4, 2))
        return np.concatenate(pieces)

    def segment_widths(self, indices: Sequence[int]) -> np.ndarray:
        """The stroke width of every segment that `segments(indices)` returns, in the same order: (S,)."""
        counts = [
            (self.strokes[index].width, sum(svg.segment_count(chain) for chain in self.strokes[index].subpaths))
            for index in indices
        ]
        return np.array([width for width, count in counts for _ in range(count)], dtype=np.float64)


def chain_segments(chain: np.ndarray) -> np.ndarray:
    """A cubic chain p0, c1, c2, p1, ... (3k+1, 2) as its k segments (k, 4, 2)."""
    return np.stack([chain[3 * i : 3 * i + 4] for i in range(svg.segment_count(chain))])


def load_svg(path: Path) -> Sketch:
    """Read an SVG file into strokes; UserError for anything that is not a usable sketch."""
    document = svg.read_svg(Path(path))
    strokes = [
        Stroke([np.array(subpath.points, dtype=np.float64) for subpath in shape.subpaths], shape.width)
        for shape in document.strokes
    ]
    return Sketch(document.width, document.height, strokes, document.groups(), document.ignored_shapes())


def default_objects(sketch: Sketch) -> list[ObjectSpec]:
    """One object per `<g id>` group that holds strokes; without such groups, the whole sketch as one object."""
    if sketch.groups:
        return [ObjectSpec(name, list(indices)) for name, indices in sketch.groups.items()]
    return [ObjectSpec(SINGLE_SKETCH_OBJECT, list(range(len(sketch.strokes))))]
