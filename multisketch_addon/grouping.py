"""Grouping strokes into objects: by hand (selected strokes into a new or an existing object) or suggested.

Every operator moves strokes between the rest drawings of a sketch's Grease Pencil objects with all
their attributes and keeps each object's list of source `<path>` indices in step (scene_model).

The suggestion groups the strokes that belong to no object yet (or, with `replace`, every stroke) by
`stroke_clustering`; each group becomes an object collection ("object 1", ...), which the user
reviews and corrects with the other operators, renames, or removes.
"""

from __future__ import annotations

from typing import cast

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import scene_model
from .contract import errors
from .reporting import ReportingOperator
from .stroke_clustering import suggest_labels

BACKGROUND = "__background__"
SUGGESTED_NAME = "object"
NOTHING_SELECTED = "No strokes selected: select the object's strokes in Edit Mode first"


class GroupingError(errors.UserError):
    """The grouping cannot be done as asked; the message says what to do."""


# --- Moving strokes in the scene ----------------------------------------------------------------


def current_sketch(context: bpy.types.Context) -> bpy.types.Collection:
    """The sketch the grouping tools work on (`scene_model.chosen_sketch`); GroupingError saying how to choose."""
    sketch, why = scene_model.chosen_sketch(context)
    if sketch is None:
        raise GroupingError(why[:1].upper() + why[1:])
    return sketch


def selected_strokes(context: bpy.types.Context, sketch: bpy.types.Collection) -> dict[bpy.types.Object, list[int]]:
    """Selected strokes per Grease Pencil object of the sketch (only objects in Edit Mode, when editing)."""
    candidates = scene_model.drawing_objects(sketch)
    if context.mode == "EDIT_GREASE_PENCIL":
        editing = set(context.objects_in_mode)
        candidates = [ob for ob in candidates if ob in editing]
    found = {}
    for ob in candidates:
        drawing = scene_model.rest_drawing(ob)
        strokes = scene_model.selected_strokes(drawing) if drawing is not None else []
        if strokes:
            found[ob] = strokes
    return found


def new_object(sketch: bpy.types.Collection, name: str, like: bpy.types.Object) -> bpy.types.Object:
    """A new, empty object collection in the sketch, its Grease Pencil object mapped, inked and placed as `like`."""
    collection = bpy.data.collections.new(name.strip() or SUGGESTED_NAME)
    collection[scene_model.OBJECT_KEY] = 1
    sketch.children.link(collection)
    return scene_model.new_drawing_object(
        collection.name,
        collection,
        like[scene_model.CANVAS_KEY],
        like.data.materials,
        _rest_frame(like),
        like.matrix_world.copy(),
    )


def background(sketch: bpy.types.Collection) -> bpy.types.Object:
    """The sketch's background object, made when the sketch has none yet."""
    found = scene_model.background_object(sketch)
    if found is not None:
        return found
    like = scene_model.drawing_objects(sketch)[0]
    return scene_model.new_drawing_object(
        f"{sketch.name} background",
        sketch,
        like[scene_model.CANVAS_KEY],
        like.data.materials,
        _rest_frame(like),
        like.matrix_world.copy(),
    )


def _rest_frame(ob: bpy.types.Object) -> int:
    layer = ob.data.layers[scene_model.REST_LAYER]
    return min(frame.frame_number for frame in layer.frames)


def move_selection(selection: dict[bpy.types.Object, list[int]], target: bpy.types.Object) -> int:
    """Move the selected strokes into `target`; returns how many moved."""
    moved = 0
    for source, strokes in selection.items():
        if source != target:
            scene_model.move_strokes(source, strokes, target)
            moved += len(strokes)
    return moved


def remove_object(collection: bpy.types.Collection) -> None:
    """Give an object's strokes back to the background and delete its collection and Grease Pencil objects."""
    sketch = scene_model.sketch_of(collection)
    drawings = [ob for ob in collection.objects if ob.type == "GREASEPENCIL"]
    strokes = {ob: list(range(len(scene_model.rest_drawing(ob).strokes))) for ob in drawings if _has_rest(ob)}
    if any(strokes.values()):
        move_selection(strokes, background(sketch))
    for ob in drawings:
        data = cast(bpy.types.GreasePencil, ob.data)
        bpy.data.objects.remove(ob)
        if data.users == 0:
            bpy.data.grease_pencils.remove(data)
    bpy.data.collections.remove(collection)


def _has_rest(ob: bpy.types.Object) -> bool:
    return ob.get(scene_model.CANVAS_KEY) is not None and scene_model.rest_drawing(ob) is not None


def suggest_grouping(sketch: bpy.types.Collection, replace: bool = False) -> list[bpy.types.Collection]:
    """Group the background's strokes (all strokes with `replace`) into new object collections."""
    if replace:
        for collection in scene_model.object_collections(sketch):
            remove_object(collection)
    source = scene_model.background_object(sketch)
    drawing = scene_model.rest_drawing(source) if source is not None else None
    if drawing is None or len(drawing.strokes) == 0:
        raise GroupingError(
            "Every stroke already belongs to an object: tick 'Replace' to suggest a grouping of all strokes"
        )
    chains = [
        np.array(scene_model.local_to_canvas(source, scene_model.stroke_control_points(drawing, i)))
        for i in range(len(drawing.strokes))
    ]
    labels = suggest_labels(chains, scene_model.canvas_size(sketch))
    taken = {c.name for c in scene_model.object_collections(sketch)}
    names = (f"{SUGGESTED_NAME} {n}" for n in range(1, 10_000) if f"{SUGGESTED_NAME} {n}" not in taken)
    made = []
    origin = scene_model.source_strokes(source)
    for group in range(labels.max() + 1):
        target = new_object(sketch, next(names), source)
        strokes = [int(i) for i in np.flatnonzero(labels == group)]
        scene_model.append_strokes(scene_model.rest_drawing(target), drawing, strokes)
        target[scene_model.SOURCE_STROKES_KEY] = [origin[i] for i in strokes]
        made.append(target.users_collection[0])
    scene_model.remove_strokes(drawing, range(len(drawing.strokes)))
    source[scene_model.SOURCE_STROKES_KEY] = []
    return made


# --- Operators ----------------------------------------------------------------------------------


class _SketchOperator(ReportingOperator):
    """A grouping step (`act`), offered while the scene holds a sketch."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(scene_model.sketch_collections(context.scene))


class _SelectionOperator(_SketchOperator):
    """A grouping step on the selected strokes: greyed out, saying why, while there are none."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        try:
            sketch = current_sketch(context)
        except GroupingError as exc:
            cls.poll_message_set(str(exc))
            return False
        if not selected_strokes(context, sketch):
            cls.poll_message_set(NOTHING_SELECTED)
            return False
        return True


def _move_into(selection: dict[bpy.types.Object, list[int]], target: bpy.types.Object) -> str:
    moved = move_selection(selection, target)
    return f"Moved {moved} stroke{'s' * (moved != 1)} into '{target.users_collection[0].name}'"


class MULTISKETCH_OT_new_object(_SelectionOperator):
    """Move the selected strokes into a new object (a collection of the sketch)"""

    bl_idname = "multisketch.new_object"
    bl_label = "New Object from Selection"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(name="Name", description="Name of the new object", default=SUGGESTED_NAME)

    def act(self, context: bpy.types.Context) -> str:
        sketch = current_sketch(context)
        selection = selected_strokes(context, sketch)  # never empty: see the poll
        return _move_into(selection, new_object(sketch, self.name, next(iter(selection))))


def _target_items(_self: bpy.types.Operator, context: bpy.types.Context) -> list[tuple[str, str, str]]:
    try:
        sketch = current_sketch(context)
    except GroupingError:
        return _ITEMS_CACHE
    _ITEMS_CACHE[:] = [(BACKGROUND, "Background", "Strokes that belong to no object (never move)")] + [
        (c.name, c.name, f"The object '{c.name}'") for c in scene_model.object_collections(sketch)
    ]
    return _ITEMS_CACHE


# Blender keeps pointers to the strings of a dynamic enum: they must outlive the callback.
_ITEMS_CACHE: list[tuple[str, str, str]] = [(BACKGROUND, "Background", "Strokes that belong to no object")]


class MULTISKETCH_OT_assign_to_object(_SelectionOperator):
    """Move the selected strokes into an existing object, or back to the background"""

    bl_idname = "multisketch.assign_to_object"
    bl_label = "Assign Selection to Object"
    bl_options = {"REGISTER", "UNDO"}
    bl_property = "target"

    target: EnumProperty(name="Object", description="Where the selected strokes go", items=_target_items)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        context.window_manager.invoke_search_popup(self)
        return {"RUNNING_MODAL"}

    def act(self, context: bpy.types.Context) -> str:
        sketch = current_sketch(context)
        selection = selected_strokes(context, sketch)  # never empty: see the poll
        if self.target == BACKGROUND:
            return _move_into(selection, background(sketch))
        collection = next((c for c in scene_model.object_collections(sketch) if c.name == self.target), None)
        target = scene_model.drawing_object(collection) if collection is not None else None
        if target is None or not _has_rest(target):
            raise GroupingError(f"'{self.target}' is not an object of the sketch '{sketch.name}'")
        return _move_into(selection, target)


class MULTISKETCH_OT_suggest_grouping(_SketchOperator):
    """Suggest objects: strokes that touch or nearly touch become one object collection each, to review"""

    bl_idname = "multisketch.suggest_grouping"
    bl_label = "Suggest Grouping"
    bl_options = {"REGISTER", "UNDO"}

    replace: BoolProperty(
        name="Replace",
        description="Regroup every stroke, removing the current objects (their prompts are lost)",
        default=False,
    )

    def act(self, context: bpy.types.Context) -> str:
        made = suggest_grouping(current_sketch(context), self.replace)
        names = ", ".join(c.name for c in made)
        return f"Suggested {len(made)} object{'s' * (len(made) != 1)}: {names}. Review and correct them"


class MULTISKETCH_OT_remove_object(_SketchOperator):
    """Remove an object: its strokes go back to the background"""

    bl_idname = "multisketch.remove_object"
    bl_label = "Remove Object"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(name="Object", description="The object collection to remove (empty: the active object's)")

    def act(self, context: bpy.types.Context) -> str:
        collection = _named_or_active_object(context, current_sketch(context), self.name)
        name = collection.name
        remove_object(collection)
        return f"Removed '{name}'; its strokes are background now"


def _named_or_active_object(
    context: bpy.types.Context, sketch: bpy.types.Collection, name: str
) -> bpy.types.Collection:
    collections = scene_model.object_collections(sketch)
    if name:
        found = next((c for c in collections if c.name == name), None)
        if found is None:
            raise GroupingError(f"'{name}' is not an object of the sketch '{sketch.name}'")
        return found
    for candidate in (context.collection, *(context.active_object.users_collection if context.active_object else ())):
        if candidate in collections:
            return candidate
    raise GroupingError("Make an object of the sketch active (or name it) to remove it")


CLASSES = (
    MULTISKETCH_OT_new_object,
    MULTISKETCH_OT_assign_to_object,
    MULTISKETCH_OT_suggest_grouping,
    MULTISKETCH_OT_remove_object,
)
