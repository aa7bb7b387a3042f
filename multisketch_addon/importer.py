"""Import an SVG sketch as Grease Pencil strokes, split into the sketch's objects, with an exact canvas mapping.

Blender's own importer (`wm.grease_pencil_import_svg`, built on nanosvg) draws the strokes; this module
then works out which imported stroke came from which SVG element, so that each object (from a stroke
table or from `<g id>` groups) gets its own Grease Pencil object and every object knows the exact
canvas <-> object-space mapping.

The importer scales to millimetres and recentres on the bounds of the curves inflated by their width,
so the mapping is not known in advance. It is fitted instead: a small reader below walks the SVG the
way nanosvg does (which elements draw, sub-paths, groups, transforms) and finds the on-curve points of
every sub-path in canvas pixels; they must match the imported points under one scale and offset.

Canvas pixels are the user units of the root `viewBox` with its top-left corner at (0, 0), the same
coordinates the engine reads; stroke indices count `<path>` elements in document order, outside
`<defs>` and other containers that are never drawn, as the engine does.
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import bpy
import numpy as np
from bpy.props import StringProperty

from . import scene_model
from .contract import errors, tables

Point = tuple[float, float]
Matrix = tuple[float, float, float, float, float, float]  # SVG's (a, b, c, d, e, f)
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

# Containers whose content the engine never counts as strokes (nanosvg skips only <defs>).
UNRENDERED = {"defs", "clipPath", "mask", "marker", "pattern", "symbol", "style", "metadata", "title", "desc"}
OTHER_SHAPES = {"rect", "circle", "ellipse", "line", "polyline", "polygon"}
UNITS_PX = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}
MAX_BREADCRUMB = 5  # nanosvg remembers this many nested groups for layer names
FIT_TOLERANCE_PX = 1e-3

_NUMBER = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(?:[eE](?![mx])([+-]?\d*))?")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_LENGTH = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z%]*)\s*$")
_TRANSFORM = re.compile(r"(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)")
_ARGUMENTS = {"M": 2, "L": 2, "T": 2, "H": 1, "V": 1, "Q": 4, "S": 4, "C": 6, "A": 7, "Z": 0}


# --- Reading the SVG as nanosvg does ---------------------------------------------------------


@dataclass
class SubPath:
    """One imported stroke: its on-curve points in canvas pixels.

    `complete` says the points match the imported stroke's points one to one; an arc breaks that (the
    importer splits it into several Beziers), leaving only the first and last points comparable.
    """

    anchors: list[Point]
    complete: bool = True


@dataclass
class Shape:
    """An SVG element that the importer turns into strokes."""

    path_index: int  # its place among the sketch's <path> strokes, -1 for other shapes
    layer: str  # the Grease Pencil layer Blender puts it in
    group: str | None  # the id of the outermost <g id> around it
    subpaths: list[SubPath] = field(default_factory=list)  # in document order (the importer reverses them)


@dataclass
class SvgSketch:
    shapes: list[Shape]
    path_count: int
    canvas_size: tuple[float, float]

    def groups(self) -> dict[str, list[int]]:
        """Stroke indices per `<g id>` group, in document order."""
        found: dict[str, list[int]] = {}
        for shape in self.shapes:
            if shape.group is not None and shape.path_index >= 0:
                found.setdefault(shape.group, []).append(shape.path_index)
        return found


def read_svg(path: Path) -> SvgSketch:
    """Every shape Blender's importer will draw, in document order; UserError when it is not an SVG."""
    if not path.is_file():
        raise errors.UserError(f"No SVG file at '{path}': check the file name")
    try:
        events = list(ElementTree.iterparse(str(path), events=("start", "end")))
    except ElementTree.ParseError as exc:
        raise errors.UserError(f"'{path.name}' is not an SVG file: it is not well-formed XML ({exc})") from None
    except OSError as exc:
        raise errors.UserError(f"Cannot read '{path}': {exc.strerror or exc}") from None
    root = events[0][1]
    if _local_name(root.tag) != "svg":
        raise errors.UserError(f"'{path.name}' is not an SVG file: its root element is <{_local_name(root.tag)}>")
    width, height, origin = _canvas(root, path)
    shapes, path_count = _shapes(events, origin)
    return SvgSketch(shapes, path_count, (width, height))


def _shapes(events: Sequence[tuple[str, Any]], origin: Point) -> tuple[list[Shape], int]:
    """Mirror of nanosvg's parser state: an attribute stack (id, transform) and the group breadcrumb."""
    attributes: list[tuple[str, Matrix]] = [("", (1.0, 0.0, 0.0, 1.0, -origin[0], -origin[1]))]
    breadcrumb: list[str] = []
    group_ids: list[str | None] = []
    in_defs = in_unrendered = 0
    path_index = 0
    shapes: list[Shape] = []
    for event, element in events:
        name = _local_name(element.tag)
        if event == "end":
            if name == "g":
                if breadcrumb:
                    breadcrumb.pop()
                if len(attributes) > 1:
                    attributes.pop()
                if not in_defs:
                    group_ids.pop()
            in_defs -= name == "defs"
            in_unrendered -= name in UNRENDERED
            continue
        counted = name == "path" and not in_unrendered
        in_defs += name == "defs"
        in_unrendered += name in UNRENDERED
        if counted:
            path_index += 1
        if in_defs:
            continue
        own_id, matrix = _element_attributes(element, attributes[-1])
        if name == "svg":
            attributes[-1] = (own_id, matrix)
        elif name == "g":
            attributes.append((own_id, matrix))
            if len(breadcrumb) < MAX_BREADCRUMB:
                breadcrumb.append(own_id)
            outer = next((g for g in group_ids if g is not None), None)
            group_ids.append(element.get("id") if outer is None and element.get("id") else None)
        elif name == "path" or name in OTHER_SHAPES:
            shape = Shape(
                path_index=path_index - 1 if counted else -1,
                layer=breadcrumb[0] if breadcrumb else own_id,
                group=next((g for g in group_ids if g is not None), None),
            )
            shape.subpaths = (
                _path_subpaths(element.get("d", ""), matrix) if name == "path" else _other_subpaths(element)
            )
            if shape.subpaths:
                shapes.append(shape)
    _name_layers(shapes)
    return shapes, path_index


def _element_attributes(element: ElementTree.Element, inherited: tuple[str, Matrix]) -> tuple[str, Matrix]:
    own_id, matrix = inherited
    if element.get("id") is not None:
        own_id = element.get("id", "")[:63]
    if element.get("transform"):
        matrix = _multiply(matrix, _parse_transform(element.get("transform", "")))
    return own_id, matrix


def _name_layers(shapes: list[Shape]) -> None:
    """Blender names a layer after the id it found, or `Layer_NNN` counting changes of layer."""
    previous, counter = "*", 0
    for shape in shapes:
        named = shape.layer or f"Layer_{counter:03d}"
        if named != previous:
            counter += 1
            named = shape.layer or f"Layer_{counter:03d}"
            previous = named
        shape.layer = named


def _canvas(root: ElementTree.Element, path: Path) -> tuple[float, float, Point]:
    """Canvas size and the user-unit point at its top-left: the viewBox, else width/height in px."""
    view_box = root.get("viewBox")
    if view_box is not None:
        values = [float(v) for v in _FLOAT.findall(view_box)]
        if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
            raise errors.UserError(f"'{path.name}': viewBox {view_box!r} must be 'min-x min-y width height'")
        return values[2], values[3], (values[0], values[1])
    sizes = []
    for attribute in ("width", "height"):
        match = _LENGTH.match(root.get(attribute, ""))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in UNITS_PX or float(match.group(1)) <= 0:
            raise errors.UserError(
                f"'{path.name}' has neither a viewBox nor an absolute {attribute}, so its canvas size is unknown: "
                'add viewBox="0 0 W H" to its <svg> element (e.g. 0 0 256 256)'
            )
        sizes.append(float(match.group(1)) * UNITS_PX[unit])
    return sizes[0], sizes[1], (0.0, 0.0)


def _parse_transform(text: str) -> Matrix:
    matrix = IDENTITY
    for kind, argument_text in _TRANSFORM.findall(text):
        a = [float(v) for v in _FLOAT.findall(argument_text)]
        if kind == "matrix" and len(a) == 6:
            step = (a[0], a[1], a[2], a[3], a[4], a[5])
        elif kind == "translate" and a:
            step = (1.0, 0.0, 0.0, 1.0, a[0], a[1] if len(a) > 1 else 0.0)
        elif kind == "scale" and a:
            step = (a[0], 0.0, 0.0, a[1] if len(a) > 1 else a[0], 0.0, 0.0)
        elif kind == "rotate" and a:
            cos, sin = math.cos(math.radians(a[0])), math.sin(math.radians(a[0]))
            cx, cy = (a[1], a[2]) if len(a) > 2 else (0.0, 0.0)
            step = (cos, sin, -sin, cos, cx - cos * cx + sin * cy, cy - sin * cx - cos * cy)
        elif kind == "skewX" and a:
            step = (1.0, 0.0, math.tan(math.radians(a[0])), 1.0, 0.0, 0.0)
        elif kind == "skewY" and a:
            step = (1.0, math.tan(math.radians(a[0])), 0.0, 1.0, 0.0, 0.0)
        else:
            continue
        matrix = _multiply(matrix, step)
    return matrix


def _multiply(m: Matrix, n: Matrix) -> Matrix:
    """m . n: apply n first."""
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


def _path_items(d: str) -> Iterator[tuple[str, float]]:
    """nanosvg's tokens of path data: ("", value) for a number, (letter, 0.0) for a command.

    An arc's two flags are read as single characters, so "a5 5 0 0110 10" has flags 0 and 1.
    """
    position, command, count = 0, "", 0
    while True:
        while position < len(d) and (d[position].isspace() or d[position] == ","):
            position += 1
        if position >= len(d):
            return
        char = d[position]
        if command in ("A", "a") and count % 7 in (3, 4) and char.isdigit():
            position, count = position + 1, count + 1
            yield "", float(char)
        elif char in "+-." or char.isdigit():
            match = _NUMBER.match(d, position)
            sign, whole, fraction, exponent = match.groups() if match else ("", "", "", "")
            position = match.end() if match else position + 1
            text = f"{sign}{whole or '0'}.{fraction or '0'}"
            if exponent and exponent.lstrip("+-"):
                text += f"e{exponent}"
            count += 1
            yield "", float(text)
        else:
            position, command, count = position + 1, char, 0
            yield char, 0.0


def _path_subpaths(d: str, matrix: Matrix) -> list[SubPath]:
    """The sub-paths nanosvg keeps (at least one segment), with their on-curve points, in canvas px."""
    found: list[SubPath] = []
    anchors: list[Point] = []
    complete, started = True, False
    command, arguments = "", list[float]()
    current = (0.0, 0.0)

    def commit(closed: bool) -> None:
        if len(anchors) >= 2:  # nanosvg closes with a line back to the start, even from the start itself
            points = anchors + [anchors[0]] if closed else anchors
            found.append(SubPath([_apply(matrix, p) for p in points], complete))

    for letter, value in _path_items(d):
        if letter:
            command, arguments = letter, []
            if letter in "Mm":
                commit(False)
                anchors, complete = [], True
            elif not started:
                command = ""  # nothing draws before the first moveto
            if command in ("Z", "z"):
                if anchors:
                    current = anchors[0]
                    commit(True)
                anchors, complete = [current], True
            if command.upper() not in _ARGUMENTS:
                command = ""
            continue
        if not command or _ARGUMENTS[command.upper()] == 0:
            continue
        arguments.append(value)
        upper = command.upper()
        if len(arguments) < _ARGUMENTS[upper]:
            continue
        base = (0.0, 0.0) if command.isupper() else current
        if upper == "H":
            end = (base[0] + arguments[0], current[1])
        elif upper == "V":
            end = (current[0], base[1] + arguments[0])
        else:
            end = (base[0] + arguments[-2], base[1] + arguments[-1])
        if upper == "M":
            anchors[-1:] = [end]  # a moveto replaces the pending start point
            command, started = ("L" if command == "M" else "l"), True
        else:
            if upper == "A" and math.dist(current, end) >= 1e-6 and min(map(abs, arguments[:2])) >= 1e-6:
                complete = False  # the importer splits a curved arc into several Beziers
            anchors.append(end)
        current, arguments = end, []
    commit(False)
    return found


def _other_subpaths(element: ElementTree.Element) -> list[SubPath]:
    """Rect, circle, ellipse, line and poly shapes: one stroke each when they have an extent."""
    name = _local_name(element.tag)

    def number(attribute: str) -> float:
        match = _FLOAT.match(element.get(attribute, "").strip())
        return float(match.group(0)) if match else 0.0

    if name == "rect":
        drawn = number("width") != 0 and number("height") != 0
    elif name == "circle":
        drawn = number("r") != 0
    elif name == "ellipse":
        drawn = number("rx") != 0 and number("ry") != 0
    elif name == "line":
        drawn = True
    else:
        drawn = len(_FLOAT.findall(element.get("points", ""))) >= 4
    return [SubPath([], complete=False)] if drawn else []


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


# --- From Blender's import to the sketch's data model ----------------------------------------


@dataclass
class _ImportedStroke:
    drawing: bpy.types.GreasePencilDrawing
    index: int  # in its drawing
    path_index: int
    subpath: SubPath


def _match_strokes(imported: bpy.types.Object, sketch: SvgSketch) -> list[_ImportedStroke]:
    """Each imported stroke with the SVG shape and sub-path it came from, in document order."""
    by_layer: dict[str, list[Shape]] = {}
    for shape in sketch.shapes:
        by_layer.setdefault(shape.layer, []).append(shape)
    strokes: list[_ImportedStroke] = []
    for layer_name, shapes in by_layer.items():
        layer = imported.data.layers.get(layer_name)
        drawing = layer.frames[0].drawing if layer is not None and len(layer.frames) else None
        expected = sum(len(shape.subpaths) for shape in shapes)
        found = len(drawing.strokes) if drawing is not None else 0
        if found != expected:
            raise errors.UserError(
                f"Blender's SVG importer made {found} strokes in layer '{layer_name}' where {expected} were "
                "expected: the file uses SVG features MultiSketch cannot follow; simplify it (e.g. Inkscape's "
                "Path > Object to Path) and import again"
            )
        first = 0
        for shape in shapes:
            count = len(shape.subpaths)
            for k, subpath in enumerate(shape.subpaths):  # stored in reverse order in the drawing
                strokes.append(_ImportedStroke(drawing, first + count - 1 - k, shape.path_index, subpath))
            first += count
    strokes.sort(key=lambda s: (s.path_index < 0, s.path_index))
    return strokes


def fit_canvas(strokes: list[_ImportedStroke]) -> tuple[float, float, float]:
    """k, cx, cz with X = k*x - cx and Z = -k*y - cz, fitted to every comparable point; UserError when
    no single scale and offset reproduces the import exactly (e.g. a viewBox scaled differently in x and y)."""
    canvas, local = [], []
    positions = {}
    for stroke in strokes:
        if not stroke.subpath.anchors:
            continue
        key = stroke.drawing.as_pointer()
        if key not in positions:
            positions[key] = (
                scene_model.read_attribute(stroke.drawing.attributes["position"]).astype(np.float64),
                scene_model.stroke_offsets(stroke.drawing),
            )
        position, offsets = positions[key]
        points = position[offsets[stroke.index] : offsets[stroke.index + 1]]
        anchors = stroke.subpath.anchors
        pairs = list(range(len(points))) if stroke.subpath.complete and len(anchors) == len(points) else [0, -1]
        canvas += [anchors[i] for i in pairs]
        local += [points[i] for i in pairs]
    xy, xyz = np.array(canvas, np.float64).reshape(-1, 2), np.array(local, np.float64).reshape(-1, 3)
    target = np.stack([xyz[:, 0], -xyz[:, 2]], axis=1)  # (X, -Z) = k * (x, y) + (-cx, cz)
    centred = xy - xy.mean(axis=0)
    spread = float((centred**2).sum())
    if spread < 1e-12:
        raise errors.UserError("The sketch's strokes have no extent: there is nothing to draw")
    k = float((centred * (target - target.mean(axis=0))).sum() / spread)
    cx = k * xy[:, 0].mean() - target[:, 0].mean()
    cz = target[:, 1].mean() - k * xy[:, 1].mean()
    residual = np.abs(target - (k * xy + [-cx, cz])).max() / abs(k)
    extent = float(np.ptp(xy, axis=0).max())
    if residual > max(FIT_TOLERANCE_PX, 1e-6 * extent):
        raise errors.UserError(
            f"Cannot map this SVG's canvas exactly (points off by up to {residual:.3g} px): its viewBox "
            "probably scales x and y differently; give the <svg> a width and height of the viewBox's proportions"
        )
    return k, cx, cz


def _objects(sketch: SvgSketch, objects_file: str) -> dict[str, list[int]]:
    """Object name -> stroke indices, from the stroke table or else from `<g id>` groups."""
    if objects_file:
        path = Path(bpy.path.abspath(objects_file))
        if not path.is_file():
            raise errors.UserError(f"No stroke table at '{path}': check the objects file name")
        return tables.read_stroke_table(path, stroke_count=sketch.path_count)
    return sketch.groups()


class _NewData:
    """Data-blocks created since construction, to delete if the import fails halfway."""

    KINDS = ("objects", "grease_pencils", "materials", "collections")

    def __init__(self) -> None:
        self.before = {kind: set(getattr(bpy.data, kind)) for kind in self.KINDS}

    def remove(self) -> None:
        for kind in self.KINDS:
            blocks = getattr(bpy.data, kind)
            for block in [b for b in blocks if b not in self.before[kind]]:
                blocks.remove(block)


def import_sketch(context: bpy.types.Context, filepath: str, objects_file: str = "") -> bpy.types.Collection:
    """Import an SVG into a new sketch collection; UserError (and nothing left behind) when it cannot."""
    path = Path(bpy.path.abspath(filepath))
    sketch = read_svg(path)
    if not any(shape.path_index >= 0 for shape in sketch.shapes):
        raise errors.UserError(
            f"'{path.name}' has no strokes: MultiSketch animates the <path> elements of an SVG and this file "
            "has none that draws (convert shapes to paths, e.g. Inkscape's Path > Object to Path)"
        )
    objects = _objects(sketch, objects_file)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    created = _NewData()
    try:
        imported = _run_blender_importer(context, path)
        collection = _build_sketch(context, path, sketch, objects, imported)
    except BaseException:
        created.remove()
        raise
    return collection


def _run_blender_importer(context: bpy.types.Context, path: Path) -> bpy.types.Object:
    window = context.window or (context.window_manager.windows[0] if context.window_manager.windows else None)
    area = next((a for a in window.screen.areas if a.type == "VIEW_3D"), None) if window else None
    if area is None:
        raise errors.UserError("Importing an SVG needs a 3D Viewport: open one and try again")
    region = next(r for r in area.regions if r.type == "WINDOW")
    before = set(bpy.data.objects)
    with context.temp_override(window=window, area=area, region=region):
        result = bpy.ops.wm.grease_pencil_import_svg(filepath=str(path))
    new = [ob for ob in bpy.data.objects if ob not in before and ob.type == "GREASEPENCIL"]
    if "FINISHED" not in result or len(new) != 1:
        raise errors.UserError(f"Blender could not read '{path.name}' as an SVG")
    return new[0]


def _build_sketch(
    context: bpy.types.Context,
    path: Path,
    sketch: SvgSketch,
    objects: dict[str, list[int]],
    imported: bpy.types.Object,
) -> bpy.types.Collection:
    strokes = _match_strokes(imported, sketch)
    canvas = fit_canvas(strokes)
    owner = {index: name for name, indices in objects.items() for index in indices}

    collection = bpy.data.collections.new(path.stem)
    collection[scene_model.SKETCH_KEY] = 1
    collection[scene_model.CANVAS_SIZE_KEY] = list(sketch.canvas_size)
    collection[scene_model.SOURCE_KEY] = str(path)
    _parent_collection(context).children.link(collection)

    materials = list(imported.data.materials)
    frame = context.scene.frame_start
    made = []
    for name in [*objects, None]:
        mine = [s for s in strokes if owner.get(s.path_index) == name]
        if name is None and not mine:
            continue
        if name is None:
            home, label = collection, f"{path.stem} background"
        else:
            home = bpy.data.collections.new(name)
            home[scene_model.OBJECT_KEY] = 1
            collection.children.link(home)
            label = name
        ob = scene_model.new_drawing_object(label, home, canvas, materials, frame)
        target = scene_model.rest_drawing(ob)
        for drawing, run in itertools.groupby(mine, key=lambda s: s.drawing):
            scene_model.append_strokes(target, drawing, [s.index for s in run])
        ob[scene_model.SOURCE_STROKES_KEY] = [s.path_index for s in mine]
        made.append(ob)

    for ob in context.view_layer.objects:
        ob.select_set(ob in made)
    context.view_layer.objects.active = made[0]
    data = cast(bpy.types.GreasePencil, imported.data)
    bpy.data.objects.remove(imported)
    bpy.data.grease_pencils.remove(data)
    return collection


def _parent_collection(context: bpy.types.Context) -> bpy.types.Collection:
    """The active collection, unless it is part of a sketch (sketches do not nest)."""
    active = context.view_layer.active_layer_collection.collection
    if scene_model.sketch_of(active) is not None:
        return context.scene.collection
    return active


class MULTISKETCH_OT_import_svg(bpy.types.Operator):
    """Import an SVG sketch as Grease Pencil strokes, one object collection per object"""

    bl_idname = "multisketch.import_svg"
    bl_label = "Import Sketch (SVG)"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="SVG File", description="The sketch to import", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.svg", options={"HIDDEN"})
    objects_file: StringProperty(
        name="Objects File",
        description="Optional stroke table (objects.tsv: name, TAB, 0-based <path> indices) that assigns strokes "
        "to objects; without it, <g id> groups become objects",
        subtype="FILE_PATH",
    )

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            sketch = import_sketch(context, self.filepath, self.objects_file)
        except errors.UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        count = len(scene_model.object_collections(sketch))
        self.report({"INFO"}, f"Imported '{sketch.name}' with {count} object{'s' * (count != 1)}")
        return {"FINISHED"}


CLASSES = (MULTISKETCH_OT_import_svg,)
