"""The one SVG reader of the project: drawn elements as cubic Bezier chains in canvas pixels.

The engine (`server.sketch`) and the Blender add-on (`multisketch_addon.importer`) both read sketches
through this module, so a stroke has the same number and the same control points on both sides and
in every Blender version. It is pure Python (standard library only): Blender's Python has neither
svgpathtools nor torch, and the add-on must not depend on what Blender's own SVG importer does.

Canvas pixels are the user units of the root `viewBox` with its top-left corner at (0, 0), whatever
`width`/`height` the file asks a viewer to display. Strokes are the `<path>` elements in document
order, outside `<defs>` and other containers that are never drawn; every `<path>` is one stroke, even
one without geometry, because the job contract numbers strokes that way. Lines, quadratics and arcs
become cubics (lines and quadratics exactly, arcs within `ARC_TOLERANCE` px). Other basic shapes
(`<rect>`, `<circle>`, ...) are read too, as shapes that are not strokes. `path_element` writes a stroke back
as such a `<path>`, for the add-on's job sketch and the engine's frames alike.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol
from .errors import UserError

Point = tuple[float, float]
Matrix = tuple[float, float, float, float, float, float]  # SVG's (a, b, c, d, e, f): x' = a x + c y + e
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

DEFAULT_STROKE_WIDTH = 1.0  # the SVG initial value of `stroke-width`
ARC_TOLERANCE = 0.01  # px: the largest distance allowed between an arc and its cubic approximation
# Limits that keep absurd input from failing late or deep: canvas sizes and coordinates (after transforms, px)
# beyond MAX_COORDINATE, and elements nested deeper than MAX_NESTING, are refused with a message.
MAX_COORDINATE = protocol.MAX_COORDINATE
MAX_NESTING = 100
# Far beyond any hand-drawn sketch (the largest of the shared sets has 270 segments), and small enough that
# reading, optimizing and writing stay within ordinary memory: a 1,000,000-segment file once took 22 GB.
MAX_FILE_BYTES = 20 * 2**20
MAX_STROKES = 10_000
MAX_SEGMENTS = 50_000
TOO_BIG = "far more than a sketch to animate; simplify it (e.g. Inkscape's Path > Simplify)"
# Basic shapes with a geometry of their own; read, but they are not strokes of the job contract.
BASIC_SHAPES = ("rect", "circle", "ellipse", "line", "polyline", "polygon")
# Elements that draw but have no curves to read: counted so that callers can warn.
OTHER_DRAWN = ("text", "use", "image")
# Containers whose content is never drawn directly.
UNRENDERED = ("defs", "clipPath", "mask", "marker", "pattern", "symbol", "style", "metadata", "title", "desc")
# CSS absolute length units in px (96 dpi).
UNITS_PX = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0, "q": 96 / 101.6}

_LENGTH = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z%]*)\s*$")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PATH_TOKEN = re.compile(r"\s*,?\s*(?:([MmZzLlHhVvCcSsQqTtAa])|([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")
_FLAG = re.compile(r"\s*,?\s*([01])")
_TRANSFORM = re.compile(r"\s*,?\s*(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^()]*)\)")
_TRANSFORM_ARGUMENTS = {"matrix": (6,), "translate": (1, 2), "scale": (1, 2), "rotate": (1, 3), "skewX": (1,),
                        "skewY": (1,)}  # fmt: skip
_ARGUMENTS = {"M": 2, "L": 2, "T": 2, "H": 1, "V": 1, "Q": 4, "S": 4, "C": 6, "A": 7, "Z": 0}


@dataclass
class SubPath:
    """One continuous run of cubic segments: control points p0, c1, c2, p1, c1, c2, p2, ... (3k+1)."""

    points: list[Point]
    closed: bool = False  # ended by a closepath: the last point is exactly the first


def segment_count(chain: Sized) -> int:
    """How many cubic segments a chain of control points p0, c1, c2, p1, ... holds: k of 3k+1 points."""
    return (len(chain) - 1) // 3


@dataclass
class Shape:
    """A drawn element: a `<path>` (a stroke) or a basic shape, with its sub-paths in canvas px."""

    element: str
    subpaths: list[SubPath]
    width: float  # stroke width in canvas px
    group: str | None  # the id of the outermost `<g id>` around it


@dataclass
class Document:
    """A read SVG: canvas size and every drawn element in document order."""

    width: float
    height: float
    shapes: list[Shape]
    other_drawn: dict[str, int] = field(default_factory=dict)  # e.g. {"text": 1}: drawn, but no curves to read

    @property
    def strokes(self) -> list[Shape]:
        """The `<path>` elements: stroke i of the job contract is `strokes[i]`."""
        return [shape for shape in self.shapes if shape.element == "path"]

    def groups(self) -> dict[str, list[int]]:
        """Stroke indices per outermost `<g id>` group, in document order."""
        found: dict[str, list[int]] = {}
        for index, stroke in enumerate(self.strokes):
            if stroke.group is not None:
                found.setdefault(stroke.group, []).append(index)
        return found

    def ignored_shapes(self) -> dict[str, int]:
        """Drawn elements that are not strokes, counted by element name."""
        counts = dict(self.other_drawn)
        for shape in self.shapes:
            if shape.element != "path":
                counts[shape.element] = counts.get(shape.element, 0) + 1
        return counts


def read_svg(path: Path) -> Document:
    """Read an SVG sketch; UserError, saying what to fix, for anything that is not a usable sketch."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no sketch at {path}: check the file name")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an SVG sketch")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"the sketch {path} is over {MAX_FILE_BYTES // 2**20} MB: simplify it before animating")
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the sketch {path}: {exc.strerror or exc}") from None
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
    document = _read_document(root, path)
    if not document.strokes:
        found = ", ".join(f"{count} <{name}>" for name, count in document.ignored_shapes().items())
        hint = f" (it has {found}; convert them to paths, e.g. Inkscape's Path > Object to Path)" if found else ""
        raise UserError(f"the sketch {path} has no <path> strokes{hint}")
    return document


@dataclass
class _Context:
    """What an element inherits from its ancestors."""

    transform: Matrix  # element user units -> canvas px
    stroke_width: str | None  # the inherited `stroke-width` value, unparsed
    group: str | None


def _read_document(root: ElementTree.Element, path: Path) -> Document:
    width, height, origin = _canvas(root, path)
    if not all(map(protocol.is_coordinate, (width, height, *origin))):
        raise UserError(f"{path}: the canvas (viewBox, width, height) is beyond {MAX_COORDINATE:g} px")
    diagonal = math.hypot(width, height) / math.sqrt(2)  # what `%` stroke widths are relative to
    shapes: list[Shape] = []
    segments = 0
    index = 0  # the stroke index of the next <path>: counted as they come (recounting made 10,000 paths take 5 s)
    other_drawn: dict[str, int] = {}
    start = _Context((1.0, 0.0, 0.0, 1.0, -origin[0], -origin[1]), None, None)
    for element, context in _walk(root, start, path):
        name = _local_name(element.tag)
        if name in OTHER_DRAWN:
            other_drawn[name] = other_drawn.get(name, 0) + 1
            continue
        where = f"stroke {index} (<path> number {index + 1}) of {path}" if name == "path" else f"a <{name}> of {path}"
        stretch = _largest_stretch(context.transform)
        if not (math.isfinite(stretch) and stretch <= MAX_COORDINATE and all(map(math.isfinite, context.transform))):
            raise UserError(f"{where}: its transform stretches it beyond {MAX_COORDINATE:g} times")
        tolerance = ARC_TOLERANCE / max(stretch, 1e-12)
        if name == "path":
            local = parse_path(element.get("d", ""), tolerance, where, MAX_SEGMENTS - segments)
        else:
            local = _basic_shape(element, name, tolerance)
        subpaths = [SubPath([_apply(context.transform, p) for p in sub.points], sub.closed) for sub in local]
        if not all(protocol.is_coordinate(v) for sub in subpaths for p in sub.points for v in p):
            raise UserError(f"{where}: its coordinates (after transforms) reach beyond {MAX_COORDINATE:g} px")
        width_px = _length_scale(context.transform) * _parse_length(
            context.stroke_width, diagonal, where, "stroke-width"
        )
        if not (math.isfinite(width_px) and 0 <= width_px <= MAX_COORDINATE):
            raise UserError(f"{where}: its stroke width (after transforms) must be from 0 to {MAX_COORDINATE:g} px")
        shapes.append(Shape(name, subpaths, width_px, context.group))
        index += name == "path"
        segments += sum(segment_count(sub.points) for sub in subpaths)
        if len(shapes) > MAX_STROKES or segments > MAX_SEGMENTS:
            raise UserError(
                f"the sketch {path} has over {MAX_STROKES:,} strokes or {MAX_SEGMENTS:,} curve segments: {TOO_BIG}"
            )
    return Document(width, height, shapes, other_drawn)


def _walk(
    element: ElementTree.Element, inherited: _Context, path: Path, depth: int = 0
) -> Iterator[tuple[ElementTree.Element, _Context]]:
    """Drawn elements in document order, each with its accumulated transform, stroke width and group."""
    if depth > MAX_NESTING:
        raise UserError(f"{path}: elements are nested more than {MAX_NESTING} deep; flatten the groups")
    try:
        local = parse_transform(element.get("transform", ""))
    except ValueError as exc:
        raise UserError(f"{path}: a transform attribute cannot be read ({exc})") from None
    name = _local_name(element.tag)
    own_width = _style(element).get("stroke-width", element.get("stroke-width"))
    group = inherited.group
    if group is None and name == "g" and element.get("id"):
        group = element.get("id")
    context = _Context(
        multiply(inherited.transform, local),
        own_width if own_width not in (None, "inherit") else inherited.stroke_width,
        group,
    )
    if name == "path" or name in BASIC_SHAPES or name in OTHER_DRAWN:
        yield element, context
        return
    for child in element:
        if isinstance(child.tag, str) and _local_name(child.tag) not in UNRENDERED:
            yield from _walk(child, context, path, depth + 1)


def _canvas(root: ElementTree.Element, path: Path) -> tuple[float, float, Point]:
    """Canvas size and the user-unit point at its top-left: the viewBox, else width/height (in px)."""
    view_box = root.get("viewBox")
    if view_box is not None:
        values = [float(v) for v in _NUMBER.findall(view_box)]
        if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
            raise UserError(f"{path}: viewBox {view_box!r} must be 'min-x min-y width height' with a positive size")
        return values[2], values[3], (values[0], values[1])
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
    return sizes[0], sizes[1], (0.0, 0.0)


# --- Path data ----------------------------------------------------------------------------------


def _path_tokens(d: str, where: str) -> Iterator[str | float]:
    """Commands (letters) and numbers of path data; an arc's flags may be written without separators."""
    position, command, count = 0, "", 0
    end = len(d.rstrip(" \t\r\n,"))
    while position < end:
        if command in ("A", "a") and count % 7 in (3, 4):
            flag = _FLAG.match(d, position)
            if flag is None:
                raise UserError(f"{where} has invalid path data {d[:60]!r}: an arc flag must be 0 or 1")
            position, count = flag.end(), count + 1
            yield float(flag.group(1))
            continue
        match = _PATH_TOKEN.match(d, position)
        if match is None:
            raise UserError(f"{where} has invalid path data {d[:60]!r}: cannot read {d[position : position + 10]!r}")
        position = match.end()
        if match.group(1):
            command, count = match.group(1), 0
            yield command
        else:
            count += 1
            yield float(match.group(2))


def parse_path(
    d: str, arc_tolerance: float = ARC_TOLERANCE, where: str = "the path", max_segments: int = MAX_SEGMENTS
) -> list[SubPath]:
    """Path data as cubic chains, one per sub-path that draws (a lone moveto draws nothing).

    A closepath ends its sub-path with a line back to the start (none when already there); drawing on
    without a moveto starts a new sub-path at that start, as SVG says. More than `max_segments` segments are
    refused as soon as they are read, so a giant path costs no more memory than a sketch.
    """
    subpaths: list[SubPath] = []
    segments = 0
    points: list[Point] = []
    current = start = (0.0, 0.0)
    last_control: Point | None = None  # the previous segment's last control point, for S and T
    previous = ""
    command = ""
    arguments: list[float] = []

    def finish(closed: bool) -> None:
        nonlocal points
        if len(points) > 1:
            subpaths.append(SubPath(points, closed))
        points = []

    def add(segment: tuple[Point, Point, Point]) -> None:
        nonlocal segments
        segments += 1
        if segments > max_segments:
            raise UserError(f"{where} takes the sketch over {MAX_SEGMENTS:,} curve segments: {TOO_BIG}")
        if not points:
            points.append(current)
        points.extend(segment)

    def invalid(reason: str) -> UserError:
        return UserError(f"{where} has invalid path data {d[:60]!r}: {reason}")

    for token in _path_tokens(d, where):
        if isinstance(token, str):
            if arguments:
                raise invalid(f"'{command}' needs {_ARGUMENTS[command.upper()]} numbers, got {len(arguments)}")
            if not command and token not in "Mm":
                raise invalid("it must start with a moveto (M)")
            command = token
            if command in "Zz":
                if points and current != start:
                    add(_line(current, start))
                finish(True)
                current, last_control, previous = start, None, "Z"
            continue
        if not command:
            raise invalid("it must start with a moveto (M)")
        if command in "Zz":
            raise invalid("a closepath (Z) takes no numbers")
        arguments.append(token)
        upper = command.upper()
        if len(arguments) < _ARGUMENTS[upper]:
            continue
        relative = command.islower()
        base = current if relative else (0.0, 0.0)
        a = arguments

        def at(i: int, base: Point = base, a: list[float] = a) -> Point:
            return (base[0] + a[i], base[1] + a[i + 1])

        control: Point | None = None
        if upper == "M":
            finish(False)
            current = start = at(0)
            command = "l" if relative else "L"  # further pairs are lines
        elif upper in "LHV":
            if upper == "H":
                end = (base[0] + a[0], current[1])
            elif upper == "V":
                end = (current[0], base[1] + a[0])
            else:
                end = at(0)
            add(_line(current, end))
            current = end
        elif upper in "CS":
            if upper == "C":
                first, control, end = at(0), at(2), at(4)
            else:
                first = _reflect(last_control, current) if previous in ("C", "S") else current
                control, end = at(0), at(2)
            add((first, control, end))
            current = end
        elif upper in "QT":
            if upper == "Q":
                control_q, end = at(0), at(2)
            else:
                control_q = _reflect(last_control, current) if previous in ("Q", "T") else current
                end = at(0)
            add(_quadratic(current, control_q, end))
            control, current = control_q, end
        else:  # A
            end = at(5)
            for segment in _arc(current, a[0], a[1], a[2], a[3] != 0, a[4] != 0, end, arc_tolerance):
                add(segment)
            current = end
        last_control, previous, arguments = control, upper, []
    if arguments:
        raise invalid(f"'{command}' needs {_ARGUMENTS[command.upper()]} numbers, got {len(arguments)}")
    finish(False)
    return subpaths


def _reflect(point: Point | None, about: Point) -> Point:
    if point is None:
        return about
    return (2 * about[0] - point[0], 2 * about[1] - point[1])


def _line(start: Point, end: Point) -> tuple[Point, Point, Point]:
    """A straight segment as the exact cubic with its controls at the thirds."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    return (start[0] + dx / 3, start[1] + dy / 3), (start[0] + 2 * dx / 3, start[1] + 2 * dy / 3), end


def _quadratic(start: Point, control: Point, end: Point) -> tuple[Point, Point, Point]:
    """Exact degree elevation of a quadratic Bezier."""
    return (
        (start[0] + 2 * (control[0] - start[0]) / 3, start[1] + 2 * (control[1] - start[1]) / 3),
        (end[0] + 2 * (control[0] - end[0]) / 3, end[1] + 2 * (control[1] - end[1]) / 3),
        end,
    )


def _arc(
    start: Point, rx: float, ry: float, rotation: float, large: bool, sweep: bool, end: Point, tolerance: float
) -> list[tuple[Point, Point, Point]]:
    """An elliptical arc (SVG endpoint form) as cubics, split until each is within `tolerance` of it.

    As SVG says: no segment when the arc ends where it starts, a line when a radius is zero, and
    radii too small to reach the end point are scaled up until they do.
    """
    if start == end:
        return []
    rx, ry = abs(rx), abs(ry)
    if rx == 0 or ry == 0:
        return [_line(start, end)]
    phi = math.radians(rotation % 360)
    cos, sin = math.cos(phi), math.sin(phi)
    hx, hy = (start[0] - end[0]) / 2, (start[1] - end[1]) / 2
    x1, y1 = cos * hx + sin * hy, -sin * hx + cos * hy
    excess = (x1 / rx) ** 2 + (y1 / ry) ** 2
    if excess > 1:
        rx, ry = rx * math.sqrt(excess), ry * math.sqrt(excess)
    numerator = max(rx**2 * ry**2 - rx**2 * y1**2 - ry**2 * x1**2, 0.0)
    factor = math.sqrt(numerator / (rx**2 * y1**2 + ry**2 * x1**2))
    if large == sweep:
        factor = -factor
    cx1, cy1 = factor * rx * y1 / ry, -factor * ry * x1 / rx
    centre = (cos * cx1 - sin * cy1 + (start[0] + end[0]) / 2, sin * cx1 + cos * cy1 + (start[1] + end[1]) / 2)
    theta = math.atan2((y1 - cy1) / ry, (x1 - cx1) / rx)
    delta = math.atan2((-y1 - cy1) / ry, (-x1 - cx1) / rx) - theta
    if sweep and delta < 0:
        delta += 2 * math.pi
    elif not sweep and delta > 0:
        delta -= 2 * math.pi

    def point(angle: float) -> Point:
        x, y = rx * math.cos(angle), ry * math.sin(angle)
        return (centre[0] + cos * x - sin * y, centre[1] + sin * x + cos * y)

    def derivative(angle: float) -> Point:
        x, y = -rx * math.sin(angle), ry * math.cos(angle)
        return (cos * x - sin * y, sin * x + cos * y)

    pieces = max(1, math.ceil(abs(delta) / (math.pi / 2) - 1e-9))
    while True:
        step = delta / pieces
        k = 4 / 3 * math.tan(step / 4)
        cubics = []
        error = 0.0
        for i in range(pieces):
            a0, a1 = theta + i * step, theta + (i + 1) * step
            p0, p3 = (start if i == 0 else point(a0)), (end if i == pieces - 1 else point(a1))
            d0, d1 = derivative(a0), derivative(a1)
            cubic = (p0, (p0[0] + k * d0[0], p0[1] + k * d0[1]), (p3[0] - k * d1[0], p3[1] - k * d1[1]), p3)
            cubics.append(cubic[1:])
            for j in range(1, 16):
                t = j / 16
                error = max(error, math.dist(_bezier(cubic, t), point(a0 + t * step)))
        if error <= tolerance or pieces >= 1024:
            return cubics
        pieces *= 2


def _bezier(cubic: tuple[Point, Point, Point, Point], t: float) -> Point:
    s = 1 - t
    w = (s * s * s, 3 * s * s * t, 3 * s * t * t, t * t * t)
    return (
        sum(wi * p[0] for wi, p in zip(w, cubic, strict=True)),
        sum(wi * p[1] for wi, p in zip(w, cubic, strict=True)),
    )


# --- Basic shapes -------------------------------------------------------------------------------


def _basic_shape(element: ElementTree.Element, name: str, tolerance: float) -> list[SubPath]:
    """`<rect>`, `<circle>`, `<ellipse>`, `<line>`, `<polyline>`, `<polygon>` as the paths SVG defines them to be."""

    def number(attribute: str, default: float = 0.0) -> float:
        match = _NUMBER.match(element.get(attribute, "").strip())
        return float(match.group(0)) if match else default

    if name == "line":
        d = f"M {number('x1')} {number('y1')} L {number('x2')} {number('y2')}"
    elif name in ("polyline", "polygon"):
        values = [float(v) for v in _NUMBER.findall(element.get("points", ""))]
        pairs = [f"{values[i]} {values[i + 1]}" for i in range(0, len(values) - 1, 2)]
        if len(pairs) < 2:
            return []
        d = "M " + " L ".join(pairs) + (" Z" if name == "polygon" else "")
    elif name in ("circle", "ellipse"):
        cx, cy = number("cx"), number("cy")
        rx, ry = (number("r"), number("r")) if name == "circle" else (number("rx"), number("ry"))
        if rx <= 0 or ry <= 0:
            return []
        d = f"M {cx + rx} {cy} A {rx} {ry} 0 0 1 {cx - rx} {cy} A {rx} {ry} 0 0 1 {cx + rx} {cy} Z"
    else:
        x, y, w, h = number("x"), number("y"), number("width"), number("height")
        if w <= 0 or h <= 0:
            return []
        rx, ry = number("rx", -1.0), number("ry", -1.0)
        rx, ry = (ry if rx < 0 else rx), (rx if ry < 0 else ry)
        rx, ry = min(max(rx, 0.0), w / 2), min(max(ry, 0.0), h / 2)
        if rx == 0 or ry == 0:
            d = f"M {x} {y} H {x + w} V {y + h} H {x} Z"
        else:
            d = (
                f"M {x + rx} {y} H {x + w - rx} A {rx} {ry} 0 0 1 {x + w} {y + ry} V {y + h - ry} "
                f"A {rx} {ry} 0 0 1 {x + w - rx} {y + h} H {x + rx} A {rx} {ry} 0 0 1 {x} {y + h - ry} "
                f"V {y + ry} A {rx} {ry} 0 0 1 {x + rx} {y} Z"
            )
    return parse_path(d, tolerance, f"a <{name}>")


# --- Transforms, lengths, styles ----------------------------------------------------------------


def parse_transform(text: str) -> Matrix:
    """A `transform` attribute as one matrix; ValueError for anything that is not a transform list."""
    matrix, position = IDENTITY, 0
    while text[position:].strip(" \t\r\n,"):
        match = _TRANSFORM.match(text, position)
        if match is None:
            raise ValueError(f"cannot read {text[position : position + 20]!r}")
        kind, argument_text = match.groups()
        a = [float(v) for v in _NUMBER.findall(argument_text)]
        if len(a) not in _TRANSFORM_ARGUMENTS[kind] or _NUMBER.sub("", argument_text).strip(" \t\r\n,"):
            raise ValueError(
                f"{kind}({argument_text}) needs {' or '.join(map(str, _TRANSFORM_ARGUMENTS[kind]))} numbers"
            )
        if kind == "matrix":
            step = (a[0], a[1], a[2], a[3], a[4], a[5])
        elif kind == "translate":
            step = (1.0, 0.0, 0.0, 1.0, a[0], a[1] if len(a) > 1 else 0.0)
        elif kind == "scale":
            step = (a[0], 0.0, 0.0, a[1] if len(a) > 1 else a[0], 0.0, 0.0)
        elif kind == "rotate":
            cos, sin = math.cos(math.radians(a[0])), math.sin(math.radians(a[0]))
            cx, cy = (a[1], a[2]) if len(a) > 2 else (0.0, 0.0)
            step = (cos, sin, -sin, cos, cx - cos * cx + sin * cy, cy - sin * cx - cos * cy)
        elif kind == "skewX":
            step = (1.0, 0.0, math.tan(math.radians(a[0])), 1.0, 0.0, 0.0)
        else:
            step = (1.0, math.tan(math.radians(a[0])), 0.0, 1.0, 0.0, 0.0)
        matrix = multiply(matrix, step)
        position = match.end()
    return matrix


def multiply(m: Matrix, n: Matrix) -> Matrix:
    """m . n: n applies first."""
    return (
        m[0] * n[0] + m[2] * n[1],
        m[1] * n[0] + m[3] * n[1],
        m[0] * n[2] + m[2] * n[3],
        m[1] * n[2] + m[3] * n[3],
        m[0] * n[4] + m[2] * n[5] + m[4],
        m[1] * n[4] + m[3] * n[5] + m[5],
    )


def _apply(m: Matrix, p: Point) -> Point:
    return (m[0] * p[0] + m[2] * p[1] + m[4], m[1] * p[0] + m[3] * p[1] + m[5])


def _length_scale(m: Matrix) -> float:
    """How much a transform scales lengths (exact for uniform scale, the area mean otherwise)."""
    return math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))


def _largest_stretch(m: Matrix) -> float:
    """The transform's largest singular value: how far a unit step can move at most."""
    a, b, c, d = m[0], m[1], m[2], m[3]
    trace = a * a + b * b + c * c + d * d
    spread = math.sqrt((a * a + b * b - c * c - d * d) ** 2 + 4 * (a * c + b * d) ** 2)
    return math.sqrt((trace + spread) / 2)


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


# --- Writing ------------------------------------------------------------------------------------


def path_element(chains: Iterable[Sequence[Sequence[float]]], width: str, number: Callable[[float], str]) -> str:
    """One stroke as a `<path>` of black, round-ended lines without fill: each chain p0, c1, c2, p1, ... becomes
    "M p0 C c1 c2 p1 ...", every coordinate written by `number`; `width` is the stroke width as written."""
    commands = []
    for chain in chains:
        commands.append(f"M {number(chain[0][0])} {number(chain[0][1])}")
        for k in range(segment_count(chain)):
            commands.append("C " + " ".join(f"{number(x)} {number(y)}" for x, y in chain[3 * k + 1 : 3 * k + 4]))
    return (
        f'<path d="{" ".join(commands)}" fill="none" stroke="black" stroke-width="{width}" '
        'stroke-linecap="round" stroke-linejoin="round"/>'
    )
