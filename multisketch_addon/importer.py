"""Import an SVG sketch as Grease Pencil strokes, split into the sketch's objects, with an exact canvas mapping.

The strokes are built here from the project's one SVG reader (`server.svg`, the engine's too), not by
Blender's own SVG importer: that importer changes its output between versions (5.2 makes closed
sub-paths cyclic and drops their repeated end point), so matching its strokes back to the SVG broke.
Built from the shared reading, stroke numbering, points and handles are the engine's on every version,
and the canvas mapping is chosen rather than fitted: the canvas centre sits at the object origin and
its longer side is `CANVAS_SIZE_M` wide, in the XZ (front) plane, y down on the canvas being -Z.

Where the sketch goes: at the 3D cursor, as Blender puts anything new (its own Grease Pencil SVG
importer too), upright and facing Front view. A canvas there that would cut through visible objects
(the default cube sits at the cursor of a new file) is moved the shorter way out of them: towards
the viewer of Front view (-Y) or up, `GAP_M` clear, so that nothing hides the strokes.

Each `<path>` sub-path becomes one Bezier stroke whose points and handles are the reader's cubic control
points; a sub-path ended by a closepath becomes a cyclic stroke without the repeated end point. Other
basic shapes (`<rect>`, `<circle>`, ...) are drawn into the background: the engine does not animate them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import bpy
import numpy as np
from bpy.props import StringProperty
from mathutils import Matrix

from . import scene_model, text_fit
from .contract import errors, svg, tables
from .reporting import ReportingOperator

if TYPE_CHECKING:
    from server.svg import Document, SubPath

CANVAS_SIZE_M = 2.0  # the canvas's longer side in Blender units, as wide as the default cube
HANDLE_FREE = 0  # handle_type_left/right value: the handle stays where it is put
DIALOG_WIDTH = 500  # px at UI scale 1: the dialog shown when an SVG is dropped on the viewport
GAP_M = 0.05 * CANVAS_SIZE_M  # between a moved sketch and the objects it was moved clear of
# Object types whose geometry can hide strokes (cameras, lights and empties draw no surface).
SOLID_TYPES = frozenset({"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME", "GREASEPENCIL"})


@dataclass
class _Stroke:
    """One Grease Pencil stroke to draw: an SVG sub-path and where it came from."""

    source: int  # the index of its `<path>` among the sketch's strokes, -1 for another shape
    subpath: SubPath
    width: float  # stroke width in canvas px


def canvas_mapping(width: float, height: float) -> tuple[float, float, float]:
    """k, cx, cz of `X = k*x - cx, Z = -k*y - cz`: the canvas centred on the origin, its longer side CANVAS_SIZE_M."""
    k = CANVAS_SIZE_M / max(width, height)
    return k, k * width / 2, -k * height / 2


def _world_boxes(context: bpy.types.Context) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lowest, highest) world corner of every visible object that could hide a sketch, as evaluated."""
    depsgraph = context.evaluated_depsgraph_get()
    boxes = []
    for ob in context.view_layer.objects:
        if ob.type not in SOLID_TYPES or not ob.visible_get(view_layer=context.view_layer):
            continue
        evaluated = ob.evaluated_get(depsgraph)
        matrix = np.array(evaluated.matrix_world)
        corners = np.array(evaluated.bound_box) @ matrix[:3, :3].T + matrix[:3, 3]
        boxes.append((corners.min(axis=0), corners.max(axis=0)))
    return boxes


def placement(context: bpy.types.Context, width_m: float, height_m: float) -> tuple[float, float, float]:
    """Where a canvas of this size (metres) is centred: the 3D cursor, moved clear of what it would cut through.

    Each step moves the canvas the shorter way out of the boxes it still cuts: in front of them (-Y)
    or onto them (+Z). Y only falls and Z only rises, so a box once cleared stays cleared.
    """
    place = np.array(context.scene.cursor.location, np.float64)
    half_x, half_z = width_m / 2, height_m / 2
    boxes = _world_boxes(context)
    while True:
        cut = [
            (low, high)
            for low, high in boxes
            if low[0] - GAP_M < place[0] + half_x
            and high[0] + GAP_M > place[0] - half_x
            and low[2] - GAP_M < place[2] + half_z
            and high[2] + GAP_M > place[2] - half_z
            and low[1] - GAP_M < place[1] < high[1] + GAP_M
        ]
        if not cut:
            return float(place[0]), float(place[1]), float(place[2])
        front = min(low[1] for low, _ in cut) - GAP_M
        above = max(high[2] for _, high in cut) + GAP_M + half_z
        if place[1] - front <= above - place[2]:
            place[1] = front
        else:
            place[2] = above


def _strokes(document: Document) -> list[_Stroke]:
    """Every sub-path of the document: the `<path>` strokes in order, then the other shapes."""
    strokes: list[_Stroke] = []
    others: list[_Stroke] = []
    index = 0
    for shape in document.shapes:
        is_path = shape.element == "path"
        found = strokes if is_path else others
        found += [_Stroke(index if is_path else -1, subpath, shape.width) for subpath in shape.subpaths]
        index += is_path
    return strokes + others


def _objects(document: Document, objects_file: str) -> dict[str, list[int]]:
    """Object name -> stroke indices, from the stroke table or else from `<g id>` groups."""
    if objects_file:
        path = Path(bpy.path.abspath(objects_file))
        if not path.is_file():
            raise errors.UserError(f"No stroke table at '{path}': check the objects file name")
        return tables.read_stroke_table(path, stroke_count=len(document.strokes))
    return document.groups()


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
    document = svg.read_svg(path)
    objects = _objects(document, objects_file)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    created = _NewData()
    try:
        collection = _build_sketch(context, path, document, objects)
    except BaseException:
        created.remove()
        raise
    return collection


def _build_sketch(
    context: bpy.types.Context, path: Path, document: Document, objects: dict[str, list[int]]
) -> bpy.types.Collection:
    canvas = canvas_mapping(document.width, document.height)
    k = canvas[0]
    place = Matrix.Translation(placement(context, k * document.width, k * document.height))
    owner = {index: name for name, indices in objects.items() for index in indices}
    strokes = _strokes(document)

    collection = bpy.data.collections.new(path.stem)
    collection[scene_model.SKETCH_KEY] = 1
    collection[scene_model.CANVAS_SIZE_KEY] = [document.width, document.height]
    collection[scene_model.SOURCE_KEY] = str(path)
    scene_model.stable_id(collection)
    _parent_collection(context).children.link(collection)

    ink = bpy.data.materials.new(f"{path.stem} ink")
    bpy.data.materials.create_gpencil_data(ink)  # black strokes, as the sketches are
    frame = context.scene.frame_start
    made = []
    for name in [*objects, None]:
        mine = [s for s in strokes if owner.get(s.source) == name]
        if name is None and not mine:
            continue
        if name is None:
            home, label = collection, f"{path.stem} background"
        else:
            home = bpy.data.collections.new(name)
            home[scene_model.OBJECT_KEY] = 1
            collection.children.link(home)
            label = name
        ob = scene_model.new_drawing_object(label, home, canvas, [ink], frame, place)
        _draw(scene_model.rest_drawing(ob), mine, canvas)
        ob[scene_model.SOURCE_STROKES_KEY] = [s.source for s in mine]
        made.append(ob)

    context.view_layer.update()  # the view layer learns of the new objects: only then can they be selected
    for ob in context.view_layer.objects:
        ob.select_set(ob in made)
    context.view_layer.objects.active = made[0]
    return collection


def _draw(drawing: bpy.types.GreasePencilDrawing, strokes: list[_Stroke], canvas: tuple[float, float, float]) -> None:
    """Add `strokes` to an empty drawing as Bezier strokes with free handles, in canvas order.

    Segment i of a stroke runs from point i through its right handle and point i+1's left handle;
    a cyclic stroke's last segment closes from its last point back to its first.
    """
    if not strokes:
        return
    k, cx, cz = canvas
    positions, lefts, rights, radii, sizes, cyclic = [], [], [], [], [], []
    for stroke in strokes:
        chain = np.asarray(stroke.subpath.points, np.float64)
        anchors, after, before = chain[0::3], chain[1::3], chain[2::3]  # after: right handles, before: left
        closed = stroke.subpath.closed and len(anchors) > 2
        if closed:  # the last anchor is the first again: the closing segment ends on point 0
            anchors, left = anchors[:-1], np.concatenate([before[-1:], before[:-1]])
            right = after
        else:
            left = np.concatenate([anchors[:1], before])
            right = np.concatenate([after, anchors[-1:]])
        positions.append(anchors)
        lefts.append(left)
        rights.append(right)
        radii.append(np.full(len(anchors), 0.5 * stroke.width * k))
        sizes.append(len(anchors))
        cyclic.append(closed)

    def local(xy: list[np.ndarray]) -> np.ndarray:
        canvas_xy = np.concatenate(xy)
        return np.stack([k * canvas_xy[:, 0] - cx, np.zeros(len(canvas_xy)), -k * canvas_xy[:, 1] - cz], axis=1)

    drawing.add_strokes(sizes)
    count = sum(sizes)
    attributes = drawing.attributes
    point_values = {
        "position": local(positions),
        "handle_left": local(lefts),
        "handle_right": local(rights),
        "handle_type_left": np.full(count, HANDLE_FREE),
        "handle_type_right": np.full(count, HANDLE_FREE),
        "radius": np.concatenate(radii),
        "opacity": np.ones(count),
    }
    kinds: dict[Literal["FLOAT_VECTOR", "INT8", "FLOAT"], tuple[str, ...]] = {
        "FLOAT_VECTOR": ("position", "handle_left", "handle_right"),
        "INT8": ("handle_type_left", "handle_type_right"),
        "FLOAT": ("radius", "opacity"),
    }
    for data_type, names in kinds.items():
        for name in names:
            attribute = attributes.get(name) or attributes.new(name, data_type, "POINT")
            scene_model.write_attribute(attribute, point_values[name])
    flags = attributes.get("cyclic") or attributes.new("cyclic", "BOOLEAN", "CURVE")
    scene_model.write_attribute(flags, np.array(cyclic, bool))
    drawing.set_types(type="BEZIER")
    drawing.tag_positions_changed()


def path_lines(path: str, width_px: float) -> list[str]:
    """`path` broken after its separators into lines that each fit `width_px`, to read it whole."""
    return text_fit.fitted_lines(path, width_px, breaks="/\\")


def _parent_collection(context: bpy.types.Context) -> bpy.types.Collection:
    """The active collection, unless it is part of a sketch (sketches do not nest)."""
    active = context.view_layer.active_layer_collection.collection
    if scene_model.sketch_of(active) is not None:
        return context.scene.collection
    return active


class MULTISKETCH_OT_import_svg(ReportingOperator):
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
        if self.filepath:  # dropped onto the viewport: only the stroke table is left to choose
            return set(context.window_manager.invoke_props_dialog(self, width=DIALOG_WIDTH))
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def draw(self, context: bpy.types.Context) -> None:
        """The stroke table's field on a line of its own, and its whole path below it where the field is too
        narrow: the file browser's side panel (about 250 px) cuts a 45-character path to "/home/al..._kite/objects.tsv".
        """
        layout = self.layout
        layout.label(text="Objects File (optional stroke table)")
        layout.prop(self, "objects_file", text="")
        if not self.objects_file:
            return
        in_browser = context.area is not None and context.area.type == "FILE_BROWSER"
        width = text_fit.region_width(context, 250) if in_browser else DIALOG_WIDTH * text_fit.ui_scale(context)
        room = width - 2 * text_fit.UNIT * text_fit.ui_scale(context)  # less the folder icon and the padding
        lines = path_lines(bpy.path.abspath(self.objects_file), room)
        if len(lines) > 1:
            column = layout.column(align=True)
            for line in lines:
                column.label(text=line)

    def act(self, context: bpy.types.Context) -> str:
        sketch = import_sketch(context, self.filepath, self.objects_file)
        _frame_views(context)
        count = len(scene_model.object_collections(sketch))
        return f"Imported '{sketch.name}' with {count} object{'s' * (count != 1)}"


def _frame_views(context: bpy.types.Context) -> None:
    """Zoom the window's 3D Viewports onto the imported sketch (selected), as one expects after an import."""
    window = context.window
    for area in window.screen.areas if window is not None else ():
        region = next((r for r in area.regions if r.type == "WINDOW"), None)
        if area.type == "VIEW_3D" and region is not None:
            with context.temp_override(window=window, area=area, region=region):
                bpy.ops.view3d.view_selected()


class MULTISKETCH_FH_svg(bpy.types.FileHandler):
    """An SVG dropped onto a 3D Viewport imports as a sketch."""

    bl_idname = "MULTISKETCH_FH_svg"
    bl_label = "MultiSketch Sketch"
    bl_import_operator = MULTISKETCH_OT_import_svg.bl_idname
    bl_file_extensions = ".svg"

    @classmethod
    def poll_drop(cls, context: bpy.types.Context) -> bool:
        return context.area is not None and context.area.type == "VIEW_3D"


def _import_menu_entry(menu: bpy.types.Menu, _context: bpy.types.Context) -> None:
    menu.layout.operator(MULTISKETCH_OT_import_svg.bl_idname, text="MultiSketch Sketch (.svg)")


CLASSES = (MULTISKETCH_OT_import_svg, MULTISKETCH_FH_svg)


# The stubs type menu entries as taking the context alone; Blender passes the menu too.
def register() -> None:
    bpy.types.TOPBAR_MT_file_import.append(_import_menu_entry)  # type: ignore[arg-type]


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(_import_menu_entry)  # type: ignore[arg-type]
