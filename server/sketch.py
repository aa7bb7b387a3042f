"""SVG sketch -> strokes of cubic Bezier chains in canvas pixels, and the objects a sketch suggests.

The job contract indexes strokes by `<path>` element in document order, so every `<path>` becomes exactly
one stroke, even one without geometry. Lines, quadratics and arcs are turned into cubics here so that the
rest of the engine (motion, rendering, results) only ever sees cubic chains. Coordinates come out in the
user units of the root `viewBox` (its top-left corner at 0, 0): these are the canvas pixels the job
contract and `result.json` speak in, whatever `width`/`height` the file asks a viewer to display.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from svgpathtools import Arc, CubicBezier, Line, QuadraticBezier
from svgpathtools import Path as SvgPath
from svgpathtools.parser import parse_transform

from .errors import UserError
from .protocol import ObjectSpec

DEFAULT_STROKE_WIDTH = 1.0  # the SVG initial value of `stroke-width`
ARC_TOLERANCE = 0.01  # px: the largest distance allowed between an arc and its cubic approximation
SINGLE_SKETCH_OBJECT = "sketch"

# Elements that draw but are not `<path>`: skipped as strokes, counted so that the caller can warn.
OTHER_SHAPES = ("rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "use", "image")
# Containers whose content is never drawn directly.
UNRENDERED = ("defs", "clipPath", "mask", "marker", "pattern", "symbol", "style", "metadata", "title", "desc")
# CSS absolute length units in px (96 dpi).
UNITS_PX = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0, "q": 96 / 101.6}
_LENGTH = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z%]*)\s*$")
_NUMBERS = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MOVETO = re.compile(r"(?=[Mm])")


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
        pieces = [_chain_segments(chain) for index in indices for chain in self.strokes[index].subpaths]
        if not pieces:
            return np.zeros((0, 4, 2))
        return np.concatenate(pieces)

    def segment_widths(self, indices: Sequence[int]) -> np.ndarray:
        """The stroke width of every segment that `segments(indices)` returns, in the same order: (S,)."""
        counts = [
            (self.strokes[index].width, sum((len(chain) - 1) // 3 for chain in self.strokes[index].subpaths))
            for index in indices
        ]
        return np.array([width for width, count in counts for _ in range(count)], dtype=np.float64)


def _chain_segments(chain: np.ndarray) -> np.ndarray:
    count = (len(chain) - 1) // 3
    return np.stack([chain[3 * i : 3 * i + 4] for i in range(count)])


def load_svg(path: Path) -> Sketch:
    """Read an SVG file into strokes; UserError for anything that is not a usable sketch."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no sketch at {path}: check the file name")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an SVG sketch")
    data = path.read_bytes()
    if not data.strip():
        raise UserError(f"the sketch {path} is empty: save or export the SVG again")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        line, column = exc.position
        raise UserError(
            f"the sketch {path} is not well-formed XML (line {line}, column {column}): "
            "is it a complete SVG file? Open it in a browser or Inkscape and save it again"
        ) from None
    if _local_name(root.tag) != "svg":
        raise UserError(f"{path} is not an SVG: its root element is <{_local_name(root.tag)}>, expected <svg>")
    return _read_document(root, path)


def default_objects(sketch: Sketch) -> list[ObjectSpec]:
    """One object per `<g id>` group that holds strokes; without such groups, the whole sketch as one object."""
    if sketch.groups:
        return [ObjectSpec(name, list(indices)) for name, indices in sketch.groups.items()]
    return [ObjectSpec(SINGLE_SKETCH_OBJECT, list(range(len(sketch.strokes))))]


@dataclass
class _Context:
    """What an element inherits from its ancestors."""

    transform: np.ndarray  # 3x3, element user units -> canvas px
    stroke_width: str | None  # the inherited `stroke-width` value, unparsed
    group: str | None  # id of the outermost `<g id>` around it


def _read_document(root: ElementTree.Element, path: Path) -> Sketch:
    width, height, origin = _canvas(root, path)
    to_canvas = np.identity(3)
    to_canvas[:2, 2] = -origin
    strokes: list[Stroke] = []
    groups: dict[str, list[int]] = {}
    ignored: dict[str, int] = {}
    diagonal = math.hypot(width, height) / math.sqrt(2)  # what `%` stroke widths are relative to
    for element, context in _walk(root, _Context(to_canvas, None, None), path):
        name = _local_name(element.tag)
        if name != "path":
            ignored[name] = ignored.get(name, 0) + 1
            continue
        index = len(strokes)
        where = f"stroke {index} (<path> number {index + 1}) of {path}"
        arc_tolerance = ARC_TOLERANCE / max(np.linalg.norm(context.transform[:2, :2], 2), 1e-12)
        chains = _cubic_chains(element.get("d", ""), arc_tolerance, where)
        subpaths = [_apply(context.transform, chain) for chain in chains]
        local_width = _parse_length(context.stroke_width, diagonal, where, "stroke-width")
        strokes.append(Stroke(subpaths, local_width * _length_scale(context.transform)))
        if context.group is not None:
            groups.setdefault(context.group, []).append(index)
    if not strokes:
        found = ", ".join(f"{count} <{name}>" for name, count in ignored.items())
        hint = f" (it has {found}; convert them to paths, e.g. Inkscape's Path > Object to Path)" if found else ""
        raise UserError(f"the sketch {path} has no <path> strokes{hint}")
    return Sketch(width, height, strokes, groups, ignored)


def _walk(
    element: ElementTree.Element, inherited: _Context, path: Path
) -> Iterator[tuple[ElementTree.Element, _Context]]:
    """Drawn elements in document order, each with its accumulated transform, stroke width and group."""
    try:
        local = parse_transform(element.get("transform"), strict=True)
    except ValueError as exc:
        raise UserError(f"{path}: a transform attribute cannot be read ({exc})") from None
    name = _local_name(element.tag)
    own_width = _style(element).get("stroke-width", element.get("stroke-width"))
    group = inherited.group
    if group is None and name == "g" and element.get("id"):
        group = element.get("id")
    context = _Context(
        inherited.transform @ local,
        own_width if own_width not in (None, "inherit") else inherited.stroke_width,
        group,
    )
    if name == "path" or name in OTHER_SHAPES:
        yield element, context
        return
    for child in element:
        if isinstance(child.tag, str) and _local_name(child.tag) not in UNRENDERED:
            yield from _walk(child, context, path)


def _canvas(root: ElementTree.Element, path: Path) -> tuple[float, float, np.ndarray]:
    """Canvas size and the user-unit point at its top-left: the viewBox, else width/height (in px)."""
    view_box = root.get("viewBox")
    if view_box is not None:
        values = [float(v) for v in _NUMBERS.findall(view_box)]
        if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
            raise UserError(f"{path}: viewBox {view_box!r} must be 'min-x min-y width height' with a positive size")
        return values[2], values[3], np.array(values[:2])
    sizes = []
    for attribute in ("width", "height"):
        text = root.get(attribute)
        if text is None or text.strip().endswith("%"):
            raise UserError(
                f"{path}: the <svg> has neither a viewBox nor an absolute {attribute}, so its canvas size is "
                'unknown: add viewBox="0 0 W H" (e.g. 0 0 256 256)'
            )
        size = _parse_length(text, 0.0, f"the <svg> element of {path}", attribute)
        if size <= 0:
            raise UserError(f"{path}: the <svg> {attribute} must be positive (got {text!r})")
        sizes.append(size)
    return sizes[0], sizes[1], np.zeros(2)


def _cubic_chains(d: str, arc_tolerance: float, where: str) -> list[np.ndarray]:
    """Each `M` sub-path of a path's data as one cubic chain, in the element's own user units."""
    chains = []
    current = 0j
    for piece in _MOVETO.split(d.strip()):
        if not piece.strip():
            continue
        try:
            subpath = SvgPath(piece, current_pos=current)
        except (ValueError, IndexError, AssertionError) as exc:
            reason = str(exc) or "an arc ends where it starts"
            raise UserError(f"{where} has invalid path data {d[:60]!r}: {reason}") from None
        if len(subpath) == 0:
            current = _moveto_target(piece, current)
            continue
        cubics = [cubic for segment in subpath for cubic in _cubics(segment, arc_tolerance)]
        chains.append(_points([cubics[0][0]] + [point for cubic in cubics for point in cubic[1:]]))
        current = subpath.end
    return chains


def _moveto_target(piece: str, current: complex) -> complex:
    """Where a sub-path made of a lone moveto leaves the pen."""
    x, y = (float(v) for v in _NUMBERS.findall(piece)[:2])
    return complex(x, y) + (current if piece.lstrip().startswith("m") else 0)


def _cubics(segment: Line | QuadraticBezier | CubicBezier | Arc, arc_tolerance: float) -> list[tuple[complex, ...]]:
    """Exact degree elevation for lines and quadratics; arcs split until every piece is within tolerance."""
    if isinstance(segment, CubicBezier):
        return [segment.bpoints()]
    if isinstance(segment, Line):
        start, end = segment.bpoints()
        return [(start, start + (end - start) / 3, start + 2 * (end - start) / 3, end)]
    if isinstance(segment, QuadraticBezier):
        start, control, end = segment.bpoints()
        return [(start, start + 2 * (control - start) / 3, end + 2 * (control - end) / 3, end)]
    return _arc_cubics(segment, arc_tolerance)


def _arc_cubics(arc: Arc, tolerance: float) -> list[tuple[complex, ...]]:
    pieces = max(1, math.ceil(abs(arc.delta) / 90))
    samples = np.linspace(0, 1, 33)
    while True:
        cubics = [cubic.bpoints() for cubic in arc.as_cubic_curves(pieces)]
        error = max(
            np.abs(CubicBezier(*bpoints).points(samples) - arc.point(start + samples / pieces)).max()
            for start, bpoints in zip(np.arange(pieces) / pieces, cubics, strict=True)
        )
        if error <= tolerance or pieces >= 1024:
            return cubics
        pieces *= 2


def _points(points: Sequence[complex]) -> np.ndarray:
    return np.array([[point.real, point.imag] for point in points], dtype=np.float64)


def _apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ transform[:2, :2].T + transform[:2, 2]


def _length_scale(transform: np.ndarray) -> float:
    """How much the transform scales lengths (exact for uniform scale, the area mean otherwise)."""
    return math.sqrt(abs(np.linalg.det(transform[:2, :2])))


def _parse_length(text: str | None, percent_of: float, where: str, what: str) -> float:
    if text is None:
        return DEFAULT_STROKE_WIDTH
    match = _LENGTH.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit not in UNITS_PX and unit != "%"):
        raise UserError(f"{where}: {what} {text!r} is not a length in px, pt, pc, mm, cm, in or %")
    value = float(match.group(1))
    return value * percent_of / 100 if unit == "%" else value * UNITS_PX[unit]


def _style(element: ElementTree.Element) -> dict[str, str]:
    """The declarations of an inline `style` attribute."""
    declarations = {}
    for item in element.get("style", "").split(";"):
        name, colon, value = item.partition(":")
        if colon:
            declarations[name.strip()] = value.strip()
    return declarations


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]
