"""How a sketch is stored in a Blender scene, and the stroke-level operations that keep it consistent.

Everything lives in ID custom properties so that a saved file keeps its meaning without the add-on:

- a sketch is a collection with `multisketch_sketch = 1`, its canvas size in pixels and its source SVG;
- its child collections with `multisketch_object = 1` are the animated objects, each holding one
  Grease Pencil object; strokes in no object live in a Grease Pencil object directly in the sketch
  collection (the background);
- a sketch and every Grease Pencil object made by the add-on carry a stable `multisketch_id`, so that
  a running job finds them again whatever the user renames;
- every Grease Pencil object made by the add-on maps canvas pixels (x, y down) to its local XZ plane
  by `X = k*x - cx, Z = -k*y - cz` (`multisketch_canvas = [k, cx, cz]`) and lists, per stroke of its
  rest drawing, the index of the SVG `<path>` the stroke came from (`multisketch_source_strokes`).

The rest drawing is the first frame of the layer `REST_LAYER`: the strokes as drawn, never animated.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Literal

import bpy
import numpy as np
from mathutils import Matrix

SKETCH_KEY = "multisketch_sketch"
CANVAS_SIZE_KEY = "multisketch_canvas_size"
SOURCE_KEY = "multisketch_source"
OBJECT_KEY = "multisketch_object"
CANVAS_KEY = "multisketch_canvas"
SOURCE_STROKES_KEY = "multisketch_source_strokes"
ID_KEY = "multisketch_id"
REST_LAYER = "sketch"

# How `foreach_get`/`foreach_set` reads each attribute type: (property, values per element, numpy type).
_ATTRIBUTE_IO: dict[str, tuple[str, int, np.dtype]] = {
    "FLOAT": ("value", 1, np.dtype(np.float32)),
    "INT": ("value", 1, np.dtype(np.int32)),
    "INT8": ("value", 1, np.dtype(np.int32)),
    "BOOLEAN": ("value", 1, np.dtype(bool)),
    "FLOAT_VECTOR": ("vector", 3, np.dtype(np.float32)),
    "FLOAT2": ("vector", 2, np.dtype(np.float32)),
    "FLOAT_COLOR": ("color", 4, np.dtype(np.float32)),
    "BYTE_COLOR": ("color", 4, np.dtype(np.float32)),
    "INT32_2D": ("value", 2, np.dtype(np.int32)),
    "INT16_2D": ("value", 2, np.dtype(np.int32)),
    "QUATERNION": ("value", 4, np.dtype(np.float32)),
    "FLOAT4X4": ("value", 16, np.dtype(np.float32)),
}
# Values that make a stroke visible where an attribute is missing (a new attribute starts at zero).
_DEFAULTS = {"radius": 0.01, "opacity": 1.0, "fill_opacity": 1.0}
CurveType = Literal["CATMULL_ROM", "POLY", "BEZIER", "NURBS"]
CURVE_TYPES: tuple[CurveType, ...] = ("CATMULL_ROM", "POLY", "BEZIER", "NURBS")  # `curve_type` values 0 to 3
_SELECTION_PREFIX = ".selection"


# --- Finding the parts of a sketch --------------------------------------------------------------


def sketch_collections(scene: bpy.types.Scene) -> list[bpy.types.Collection]:
    """Every sketch in the scene, by name."""
    found = {c.name: c for c in scene.collection.children_recursive if c.get(SKETCH_KEY)}
    return [found[name] for name in sorted(found)]


def stroke_count(ob: bpy.types.Object | None) -> int:
    """How many strokes the object's rest drawing holds (0 for no object or no drawing)."""
    drawing = rest_drawing(ob) if ob is not None else None
    return 0 if drawing is None else len(drawing.curve_offsets) - 1


def chosen_sketch(context: bpy.types.Context) -> tuple[bpy.types.Collection | None, str]:
    """The sketch the user means, or None and what to do: the sidebar's choice, else the active object's or
    collection's sketch, else the scene's only one. The sidebar, the grouping tools and Animate all ask here, so
    with several sketches in a file they never work on different ones."""
    sketches = sketch_collections(context.scene)
    settings = getattr(context.scene, "multisketch", None)  # None while the add-on's settings are unregistered
    chosen = settings.sketch if settings is not None else None
    for candidate in (chosen, getattr(context, "active_object", None), getattr(context, "collection", None)):
        sketch = sketch_of(candidate)
        if sketch is not None and sketch in sketches:
            return sketch, ""
    if len(sketches) == 1:
        return sketches[0], ""
    if not sketches:
        return None, "the scene has no sketch: import one first (MultiSketch > Import SVG)"
    names = ", ".join(f"'{sketch.name}'" for sketch in sketches)
    return None, f"the scene holds several sketches ({names}): choose one in the MultiSketch sidebar"


def sketch_of(id_data: bpy.types.ID | None) -> bpy.types.Collection | None:
    """The sketch that a collection (the sketch or one of its objects) or a Grease Pencil object belongs to."""
    if isinstance(id_data, bpy.types.Object):
        for collection in id_data.users_collection:
            sketch = sketch_of(collection)
            if sketch is not None:
                return sketch
        return None
    if not isinstance(id_data, bpy.types.Collection):
        return None
    if id_data.get(SKETCH_KEY):
        return id_data
    if id_data.get(OBJECT_KEY):
        for sketch in bpy.data.collections:
            if sketch.get(SKETCH_KEY) and id_data.name in sketch.children:
                return sketch
    return None


def stable_id(block: bpy.types.ID) -> str:
    """The block's stable id, made on first use: names change (the user renames), the id stays."""
    value = block.get(ID_KEY)
    if not isinstance(value, str) or not value:
        value = uuid.uuid4().hex
        block[ID_KEY] = value
    return value


def find_by_stable_id(blocks: Iterable[bpy.types.ID], value: str, name: str) -> bpy.types.ID | None:
    """The block with this id; of several (a duplicate copies the id), the one still called `name`.

    A job folder written before ids existed has none: then the name alone.
    """
    blocks = list(blocks)
    if not value:
        found = [block for block in blocks if block.name == name]
    else:
        found = [block for block in blocks if block.get(ID_KEY) == value]
        if len(found) > 1:
            found = [block for block in found if block.name == name]
    return found[0] if len(found) == 1 else None


def find_sketch(value: str, name: str) -> bpy.types.Collection | None:
    """The sketch with this id (see `find_by_stable_id`)."""
    found = find_by_stable_id((c for c in bpy.data.collections if c.get(SKETCH_KEY)), value, name)
    return found if isinstance(found, bpy.types.Collection) else None


def object_collections(sketch: bpy.types.Collection) -> list[bpy.types.Collection]:
    """The sketch's animated objects, by name."""
    return sorted((c for c in sketch.children if c.get(OBJECT_KEY)), key=lambda c: c.name)


def drawing_object(collection: bpy.types.Collection) -> bpy.types.Object | None:
    """The Grease Pencil object directly in a collection (one made by the add-on first)."""
    drawings = [ob for ob in collection.objects if ob.type == "GREASEPENCIL"]
    drawings.sort(key=lambda ob: (ob.get(CANVAS_KEY) is None, ob.name))
    return drawings[0] if drawings else None


def background_object(sketch: bpy.types.Collection) -> bpy.types.Object | None:
    """The Grease Pencil object holding the strokes that belong to no object."""
    return drawing_object(sketch)


def drawing_objects(sketch: bpy.types.Collection) -> list[bpy.types.Object]:
    """The background (when there is one), then each object's Grease Pencil object."""
    found = [background_object(sketch)] + [drawing_object(c) for c in object_collections(sketch)]
    return [ob for ob in found if ob is not None]


def canvas_size(sketch: bpy.types.Collection) -> tuple[float, float]:
    width, height = sketch[CANVAS_SIZE_KEY]
    return float(width), float(height)


# --- Canvas pixels <-> object space -------------------------------------------------------------


def canvas_to_local(ob: bpy.types.Object, xy: Sequence[Sequence[float]]) -> list[tuple[float, float, float]]:
    """Canvas pixels (x right, y down) to the object's local space (the drawing lies in its XZ plane)."""
    k, cx, cz = (float(v) for v in ob[CANVAS_KEY])
    return [(k * x - cx, 0.0, -k * y - cz) for x, y in xy]


def local_to_canvas(ob: bpy.types.Object, xyz: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """The exact inverse of `canvas_to_local` (the local Y coordinate is ignored)."""
    k, cx, cz = (float(v) for v in ob[CANVAS_KEY])
    return [((p[0] + cx) / k, -(p[2] + cz) / k) for p in xyz]


def source_strokes(ob: bpy.types.Object) -> list[int]:
    """The SVG `<path>` index of each stroke of the rest drawing (-1: a shape that is not a `<path>`)."""
    return [int(i) for i in ob.get(SOURCE_STROKES_KEY, [])]


# --- Drawings and strokes -----------------------------------------------------------------------


def rest_drawing(ob: bpy.types.Object) -> bpy.types.GreasePencilDrawing | None:
    """The drawing that holds the object's original strokes: the first frame of its rest layer."""
    layer = ob.data.layers.get(REST_LAYER) if ob is not None and ob.type == "GREASEPENCIL" else None
    if layer is None or len(layer.frames) == 0:
        return None
    return min(layer.frames, key=lambda frame: frame.frame_number).drawing


def stroke_offsets(drawing: bpy.types.GreasePencilDrawing) -> np.ndarray:
    """Where each stroke's points start, plus the point count at the end (length strokes + 1)."""
    count = len(drawing.strokes)
    if count == 0:  # an empty drawing still reports one offset but has none to read
        return np.zeros(1, np.int32)
    offsets = np.empty(count + 1, np.int32)
    drawing.curve_offsets.foreach_get("value", offsets)
    return offsets


def read_attribute(attribute: bpy.types.Attribute) -> np.ndarray:
    """An attribute's values as an array: one row per element for vector types."""
    prop, width, dtype = _ATTRIBUTE_IO[attribute.data_type]
    values = np.empty(len(attribute.data) * width, dtype)
    attribute.data.foreach_get(prop, values)
    return values.reshape(-1, width) if width > 1 else values


def write_attribute(attribute: bpy.types.Attribute, values: np.ndarray) -> None:
    prop, _, dtype = _ATTRIBUTE_IO[attribute.data_type]
    attribute.data.foreach_set(prop, np.ascontiguousarray(values, dtype).ravel())


def stroke_control_points(
    drawing: bpy.types.GreasePencilDrawing, stroke_index: int
) -> list[tuple[float, float, float]]:
    """A Bezier stroke as the chain p0, c1, c2, p1, c1, c2, ... in object space.

    Segment i runs from point i through its right handle and point i+1's left handle; a cyclic stroke
    has one more segment, from its last point back to its first (3k+1 values, +3 when cyclic).
    """
    offsets = stroke_offsets(drawing)
    start, stop = int(offsets[stroke_index]), int(offsets[stroke_index + 1])
    attributes = drawing.attributes
    position = read_attribute(attributes["position"])[start:stop]
    handles = {}
    for name in ("handle_left", "handle_right"):
        attribute: bpy.types.Attribute | None = attributes.get(name)
        handles[name] = read_attribute(attribute)[start:stop] if attribute is not None else position
    cyclic: bpy.types.Attribute | None = attributes.get("cyclic")
    closed = bool(read_attribute(cyclic)[stroke_index]) if cyclic is not None else False
    count = stop - start
    chain = [position[0]]
    for i in range(count - 1 + closed):
        following = (i + 1) % count
        chain += [handles["handle_right"][i], handles["handle_left"][following], position[following]]
    return [(float(p[0]), float(p[1]), float(p[2])) for p in chain]


def selected_strokes(drawing: bpy.types.GreasePencilDrawing) -> list[int]:
    """Strokes with any point selected; as in Blender, a drawing without selection data is all selected."""
    selection: bpy.types.Attribute | None = drawing.attributes.get(_SELECTION_PREFIX)
    if selection is None:
        return list(range(len(drawing.strokes)))
    flags = read_attribute(selection)
    if selection.domain == "POINT":
        offsets = stroke_offsets(drawing)
        flags = np.array([flags[a:b].any() for a, b in zip(offsets[:-1], offsets[1:], strict=True)], bool)
    return [int(i) for i in np.flatnonzero(flags)]


def deselect_all(drawing: bpy.types.GreasePencilDrawing) -> None:
    """Clear the stroke selection (an absent selection would mean everything is selected)."""
    selections = [a for a in drawing.attributes if a.name.startswith(_SELECTION_PREFIX)]
    for attribute in selections:
        write_attribute(attribute, np.zeros(len(attribute.data), bool))
    if drawing.attributes.get(_SELECTION_PREFIX) is None:
        drawing.attributes.new(_SELECTION_PREFIX, "BOOLEAN", "CURVE")


def append_strokes(
    target: bpy.types.GreasePencilDrawing, source: bpy.types.GreasePencilDrawing, indices: Sequence[int]
) -> None:
    """Copy strokes `indices` of `source` (in that order) to the end of `target`, with every attribute.

    Attributes that only one side has are created on the other, filled with values that keep strokes
    visible. The copies are left unselected.
    """
    if len(indices) == 0:
        return
    strokes = np.asarray(indices, np.int64)
    offsets = stroke_offsets(source)
    sizes = offsets[1:][strokes] - offsets[:-1][strokes]
    points = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in strokes])
    old_strokes = len(target.strokes)
    old_points = int(stroke_offsets(target)[-1])
    target.add_strokes([int(s) for s in sizes])
    new_rows = {"POINT": slice(old_points, None), "CURVE": slice(old_strokes, None)}
    copied = set()
    for attribute in source.attributes:
        if attribute.name.startswith(_SELECTION_PREFIX) or attribute.data_type not in _ATTRIBUTE_IO:
            continue
        values = read_attribute(attribute)[points if attribute.domain == "POINT" else strokes]
        existing: bpy.types.Attribute | None = target.attributes.get(attribute.name)
        if existing is None:
            existing = target.attributes.new(attribute.name, attribute.data_type, attribute.domain)
            _fill_default(existing, slice(None))
        merged = read_attribute(existing)
        merged[new_rows[existing.domain]] = values
        write_attribute(existing, merged)
        copied.add(attribute.name)
    for attribute in target.attributes:
        if attribute.name not in copied and attribute.name in _DEFAULTS:
            _fill_default(attribute, new_rows[attribute.domain])
    refresh_curve_types(target)
    deselect_all(target)
    target.tag_positions_changed()


def refresh_curve_types(drawing: bpy.types.GreasePencilDrawing) -> None:
    """Make Blender draw each stroke as its `curve_type` attribute says.

    Blender draws from a cache of the curve types that writing the attribute as data does not update:
    Bezier strokes copied that way show as polylines through their points until the file is reloaded.
    `set_types` updates the cache, on 5.0 as on 5.3.
    """
    attribute: bpy.types.Attribute | None = drawing.attributes.get("curve_type")
    if attribute is None or len(attribute.data) == 0:
        return
    types = read_attribute(attribute)
    for value in np.unique(types):
        indices = [int(i) for i in np.flatnonzero(types == value)]
        drawing.set_types(type=CURVE_TYPES[int(value)], indices=indices)


def _fill_default(attribute: bpy.types.Attribute, rows: slice) -> None:
    if attribute.name not in _DEFAULTS:
        return
    values = read_attribute(attribute)
    values[rows] = _DEFAULTS[attribute.name]
    write_attribute(attribute, values)


def remove_strokes(drawing: bpy.types.GreasePencilDrawing, indices: Iterable[int]) -> None:
    indices = sorted(set(int(i) for i in indices))
    if indices:
        drawing.remove_strokes(indices=indices)
        drawing.tag_positions_changed()


def new_drawing_object(
    name: str,
    collection: bpy.types.Collection,
    canvas: Sequence[float],
    materials: Iterable[bpy.types.Material],
    frame_number: int,
    matrix_world: Matrix | None = None,
) -> bpy.types.Object:
    """An empty Grease Pencil object with a rest layer, in `collection`, placed by `matrix_world`.

    It shares `materials` (in that order, so that copied strokes keep their material index), the
    canvas mapping of the sketch and, given the matrix of one of the sketch's objects, its place:
    strokes keep their local coordinates when they move between objects, so the objects must sit
    where the sketch sits or the strokes would jump.
    """
    data = bpy.data.grease_pencils.new(name)
    for material in materials:
        data.materials.append(material)
    layer = data.layers.new(REST_LAYER)
    deselect_all(layer.frames.new(frame_number).drawing)
    ob = bpy.data.objects.new(name, data)
    ob[CANVAS_KEY] = [float(v) for v in canvas]
    ob[SOURCE_STROKES_KEY] = []
    stable_id(ob)
    if matrix_world is not None:
        ob.matrix_world = matrix_world
    collection.objects.link(ob)
    return ob


def move_strokes(source: bpy.types.Object, indices: Sequence[int], target: bpy.types.Object) -> None:
    """Move rest-drawing strokes from one Grease Pencil object of a sketch to another (appended in order)."""
    if source == target or not indices:
        return
    source_drawing, target_drawing = rest_drawing(source), rest_drawing(target)
    _adopt_materials(source, target)
    origin = source_strokes(source)
    append_strokes(target_drawing, source_drawing, indices)
    _remap_materials(source, target, target_drawing, len(indices))
    target[SOURCE_STROKES_KEY] = source_strokes(target) + [origin[i] for i in indices]
    remove_strokes(source_drawing, indices)
    moved = set(indices)
    source[SOURCE_STROKES_KEY] = [index for i, index in enumerate(origin) if i not in moved]


def _adopt_materials(source: bpy.types.Object, target: bpy.types.Object) -> None:
    for material in source.data.materials:
        if material is not None and material.name not in target.data.materials:
            target.data.materials.append(material)


def _remap_materials(
    source: bpy.types.Object, target: bpy.types.Object, drawing: bpy.types.GreasePencilDrawing, count: int
) -> None:
    """Point the last `count` strokes' material indices at the same materials in the target's slots."""
    attribute: bpy.types.Attribute | None = drawing.attributes.get("material_index")
    if attribute is None or count == 0:
        return
    slots = list(target.data.materials)
    remap = np.array(
        [slots.index(m) if m in slots else 0 for m in source.data.materials] or [0],
        np.int32,
    )
    values = read_attribute(attribute)
    values[-count:] = remap[np.clip(values[-count:], 0, len(remap) - 1)]
    write_attribute(attribute, values)
