"""The engine's result as animation an animator can edit: transform F-curves plus per-frame drawings.

Layout in the scene. For each moving object of the result, a new Grease Pencil object
"<object> result" (marked `ob["multisketch_result"] = 1`) in the collection "<sketch> result"
(marked the same way), a child of the sketch collection but not an object collection:

- It is parented to the object's own GP object (identity parent inverse), so it sits wherever the
  sketch sits, and its origin is the object's centre: location, rotation and scale F-curves read as
  "where the centre goes, how the object turns and grows". The engine's global affine
  `A = R(rotate) · shear · scale` becomes location X/Z (centre + translate), rotation Y (the canvas
  is y-down and the drawing lies in the XZ plane, so a clockwise turn on the canvas is +Y) and scale
  X/Z.
- Everything a transform cannot hold (shear and the local motion) lives in one drawing per animated
  frame, written so that object transform times drawing gives the engine's control points exactly.
- Keyframes sit at `frame_start + round(f * scene_fps / result fps)`. Their interpolation is
  CONSTANT: a Grease Pencil drawing holds until the next drawing, so the transform must hold too;
  interpolating it would show, between keys, frame f's drawing under frame f+1's transform, a pose
  the engine never produced. Every scene frame therefore shows exactly one engine frame (the motion
  plays at the prior's 8 frames per second); switch the F-curves to Bezier to smooth the global
  motion by hand.

The original GP objects keep their strokes; a moving object's original is hidden (viewport and
render) while its result exists and shown again by `clear_result`. Static objects and the
background are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np
from bpy_extras import anim_utils
from mathutils import Euler, Matrix

from . import scene_model
from .contract import errors, protocol
from .job_export import ExportedJob

RESULT_MARK = "multisketch_result"
# On a result object: the source object's (hide_viewport, hide_render) before the result hid it.
SOURCE_VISIBILITY = "multisketch_source_visibility"
TRANSFORM_GROUP = "Object Transforms"
KEY_INTERPOLATION_CONSTANT = 0  # Keyframe.interpolation enum index of 'CONSTANT'


@dataclass
class _StrokeLayout:
    """Where each row of an object's concatenated Bezier chains goes in its drawing's point arrays."""

    position_rows: np.ndarray
    position_points: np.ndarray
    right_handle_rows: np.ndarray
    right_handle_points: np.ndarray
    left_handle_rows: np.ndarray
    left_handle_points: np.ndarray
    chain_length: int  # a cyclic stroke's chain ends on its first point again, which is not written twice


@dataclass
class _ObjectPlan:
    """Everything needed to write one moving object, gathered before the scene is touched."""

    name: str
    source: bpy.types.Object
    layer_index: int
    rest_frame_number: int
    layout: _StrokeLayout
    frames: list[dict[str, Any]]
    center: tuple[float, float]


def _stroke_layout(drawing: bpy.types.GreasePencilDrawing, gp_strokes: list[int]) -> _StrokeLayout:
    """Index arrays that scatter the chains `p0, c1, c2, p1, ...` of `gp_strokes` (in that order) into
    the drawing's positions and handles: segment i of a stroke is (P_i, right handle_i, left handle_i+1,
    P_i+1), and a cyclic stroke's last segment closes back on P_0."""
    offsets = scene_model.stroke_offsets(drawing)
    cyclic_attribute: bpy.types.Attribute | None = drawing.attributes.get("cyclic")
    cyclic = scene_model.read_attribute(cyclic_attribute) if cyclic_attribute else np.zeros(len(offsets) - 1, bool)
    fields = [field for field in _StrokeLayout.__dataclass_fields__ if field != "chain_length"]
    parts: dict[str, list[np.ndarray]] = {field: [] for field in fields}
    row = 0
    for stroke in gp_strokes:
        first, count = int(offsets[stroke]), int(offsets[stroke + 1] - offsets[stroke])
        segment = np.arange(count - 1 + bool(cyclic[stroke]))
        parts["position_rows"].append(row + 3 * np.arange(count))
        parts["position_points"].append(first + np.arange(count))
        parts["right_handle_rows"].append(row + 3 * segment + 1)
        parts["right_handle_points"].append(first + segment)
        parts["left_handle_rows"].append(row + 3 * segment + 2)
        parts["left_handle_points"].append(first + (segment + 1) % count)
        row += 3 * len(segment) + 1
    return _StrokeLayout(**{field: np.concatenate(arrays) for field, arrays in parts.items()}, chain_length=row)


def _rest_location(source: bpy.types.Object) -> tuple[int, int]:
    """(layer index, frame number) of the source's rest drawing."""
    rest = scene_model.rest_drawing(source)
    for layer_index, layer in enumerate(source.data.layers):
        for frame in layer.frames:
            if frame.drawing == rest:
                return layer_index, frame.frame_number
    raise errors.UserError(f"{source.name!r} has no drawing with its original strokes: import the sketch again")


def _plan_object(sketch: bpy.types.Collection, name: str, result: dict, exported: ExportedJob) -> _ObjectPlan:
    """Check that the scene still holds what the job was exported from, and where each point goes."""
    link = exported.objects.get(name)
    found = scene_model.find_by_stable_id(bpy.data.objects, link.gp_object_id, link.gp_object) if link else None
    source = found if isinstance(found, bpy.types.Object) else None
    if source is None or source.type != "GREASEPENCIL" or scene_model.sketch_of(source) != sketch:
        raise errors.UserError(
            f"object {name!r} of the result is no longer in sketch {sketch.name!r} (deleted or moved to "
            "another sketch?): animate again"
        )
    gp_strokes: list[int] = []  # a <path> with several sub-paths became consecutive GP strokes
    for engine_stroke, subpaths in zip(result["strokes"], result["frames"][0]["points"], strict=True):
        object_name, first = exported.strokes[engine_stroke]
        if object_name != link.gp_object:  # the job folder contradicts itself
            raise errors.UserError(f"stroke {engine_stroke} of {name!r} is not in {source.name!r}: animate again")
        gp_strokes.extend(first + k for k in range(len(subpaths)))
    layer_index, frame_number = _rest_location(source)
    rest = scene_model.rest_drawing(source)
    if max(gp_strokes, default=-1) >= scene_model.stroke_count(source):
        raise errors.UserError(f"{source.name!r} has fewer strokes than when the job started: animate again")
    layout = _stroke_layout(rest, gp_strokes)
    for f, frame in enumerate(result["frames"]):
        length = sum(len(chain) for stroke in frame["points"] for chain in stroke)
        if length != layout.chain_length:
            raise errors.UserError(
                f"frame {f} of {name!r} has {length} control points where the drawing has {layout.chain_length}: "
                "the strokes changed since the job started, animate again"
            )
    return _ObjectPlan(name, source, layer_index, frame_number, layout, result["frames"], result["center"])


def scene_frames(scene: bpy.types.Scene, count: int, fps: float) -> list[int]:
    """The scene frame of each engine frame, so that the animation plays at `fps` at the scene's rate."""
    scene_fps = scene.render.fps / scene.render.fps_base
    return [scene.frame_start + round(f * scene_fps / fps) for f in range(count)]


_Channels = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


def _transform(plan: _ObjectPlan, frame: dict) -> _Channels:
    """Location, rotation and scale of the object at one frame: origin at the moved centre."""
    cx, cy = plan.center
    tx, ty = frame["translate"]
    (location,) = scene_model.canvas_to_local(plan.source, [(cx + tx, cy + ty)])
    scale_x, scale_y = (float(v) for v in frame["scale"])
    return location, (0.0, float(frame["rotate"]), 0.0), (scale_x, 1.0, scale_y)


def _drawing_points(plan: _ObjectPlan, frame: dict, rest: dict[str, np.ndarray], basis: Matrix) -> dict:
    """Positions and handles for one frame's drawing, in the result object's own (moving) space."""
    chains = [point for stroke in frame["points"] for chain in stroke for point in chain]
    local = np.asarray(scene_model.canvas_to_local(plan.source, chains), np.float64)
    layout = plan.layout
    position = rest["position"].copy()
    position[layout.position_points] = local[layout.position_rows]
    moved = position - rest["position"]  # end handles outside the chains follow their point
    left, right = rest["handle_left"] + moved, rest["handle_right"] + moved
    right[layout.right_handle_points] = local[layout.right_handle_rows]
    left[layout.left_handle_points] = local[layout.left_handle_rows]
    inverse = np.array(basis.inverted())
    return {
        name: values @ inverse[:3, :3].T + inverse[:3, 3]
        for name, values in (("position", position), ("handle_left", left), ("handle_right", right))
    }


def _key_transforms(result_object: bpy.types.Object, numbers: list[int], transforms: list[_Channels]) -> None:
    """Location, rotation and scale F-curves with one CONSTANT key per animated frame, written in bulk."""
    action = bpy.data.actions.new(f"{result_object.name} Action")
    slot = action.slots.new(id_type="OBJECT", name=result_object.name)
    animation = result_object.animation_data_create()
    animation.action = action
    animation.action_slot = slot
    channelbag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
    keys = np.empty(2 * len(numbers), np.float32)
    keys[0::2] = numbers
    for channel, data_path in enumerate(("location", "rotation_euler", "scale")):
        for axis in range(3):
            curve = channelbag.fcurves.new(data_path, index=axis, group_name=TRANSFORM_GROUP)
            curve.keyframe_points.add(len(numbers))
            keys[1::2] = [transform[channel][axis] for transform in transforms]
            curve.keyframe_points.foreach_set("co", keys)
            curve.keyframe_points.foreach_set(
                "interpolation", np.full(len(numbers), KEY_INTERPOLATION_CONSTANT, np.int32)
            )
            curve.update()


def _write_object(plan: _ObjectPlan, collection: bpy.types.Collection, numbers: list[int]) -> None:
    """One result object: a copy of the source's data trimmed to the rest drawing, one drawing per frame."""
    source = plan.source
    data = source.data.copy()
    data.name = f"{plan.name} result"
    for index in reversed(range(len(data.layers))):
        if index != plan.layer_index:
            data.layers.remove(data.layers[index])
    layer = data.layers[0]
    layer.name = "result"
    for frame in [frame.frame_number for frame in layer.frames if frame.frame_number != plan.rest_frame_number]:
        layer.frames.remove(frame)
    result_object = bpy.data.objects.new(f"{plan.name} result", data)
    result_object[RESULT_MARK] = 1
    result_object[SOURCE_VISIBILITY] = [source.hide_viewport, source.hide_render]
    result_object["multisketch_source_strokes"] = list(source.get("multisketch_source_strokes", []))
    collection.objects.link(result_object)
    result_object.parent = source
    result_object.rotation_mode = "XYZ"

    rest_drawing = layer.frames[0].drawing
    rest = {
        name: scene_model.read_attribute(rest_drawing.attributes[name]).astype(np.float64)
        for name in ("position", "handle_left", "handle_right")
    }
    for number in numbers:
        if number != plan.rest_frame_number:
            layer.frames.copy(plan.rest_frame_number, number)
    transforms = [_transform(plan, frame) for frame in plan.frames]
    drawings = {frame.frame_number: frame for frame in layer.frames}
    for number, frame, (location, rotation, scale) in zip(numbers, plan.frames, transforms, strict=True):
        gp_frame = drawings[number]
        basis = Matrix.LocRotScale(location, Euler(rotation), scale)
        for name, values in _drawing_points(plan, frame, rest, basis).items():
            scene_model.write_attribute(gp_frame.drawing.attributes[name], values)
        gp_frame.drawing.tag_positions_changed()
        gp_frame.keyframe_type = "GENERATED"
    if plan.rest_frame_number not in numbers:
        layer.frames.remove(plan.rest_frame_number)
    _key_transforms(result_object, numbers, transforms)
    source.hide_viewport = True
    source.hide_render = True


def _result_collections(sketch: bpy.types.Collection) -> list[bpy.types.Collection]:
    return [child for child in sketch.children if child.get(RESULT_MARK)]


def has_result(sketch: bpy.types.Collection) -> bool:
    """Whether the sketch currently shows an animation result."""
    return bool(_result_collections(sketch))


def clear_result(sketch: bpy.types.Collection) -> None:
    """Remove the sketch's result (objects, drawings, actions) and show the original objects again."""
    for collection in _result_collections(sketch):
        for result_object in list(collection.all_objects):
            source = result_object.parent
            visibility = result_object.get(SOURCE_VISIBILITY)
            if source is not None and visibility is not None:
                source.hide_viewport, source.hide_render = (bool(v) for v in visibility)
            data = result_object.data
            action = result_object.animation_data.action if result_object.animation_data else None
            bpy.data.objects.remove(result_object)
            if isinstance(data, bpy.types.GreasePencil) and data.users == 0:
                bpy.data.grease_pencils.remove(data)
            if action is not None and action.users == 0:
                bpy.data.actions.remove(action)
        bpy.data.collections.remove(collection)


def _scene_of(sketch: bpy.types.Collection, current: bpy.types.Scene) -> bpy.types.Scene:
    """The scene that shows the sketch, the current one when it does: a job may end after the user has
    switched scenes, and the keys must follow the sketch's scene's frame rate and range."""
    for scene in (current, *bpy.data.scenes):
        if sketch in scene.collection.children_recursive:
            return scene
    return current


def apply_result(context: bpy.types.Context, sketch: bpy.types.Collection, exported: ExportedJob) -> None:
    """Replace the sketch's previous result with the one in the job folder (`result.json`).

    The job's map from engine names and stroke indices to scene objects says where each point goes.
    Everything is checked before the scene changes, so a result that no longer fits the scene raises
    UserError and leaves the scene as it was.
    """
    try:
        result = protocol.load_result(exported.result_path)
    except FileNotFoundError:
        raise errors.UserError(f"the job folder {exported.job_dir} has no result") from None
    except ValueError as exc:
        raise errors.UserError(f"cannot read the result in {exported.job_dir}: {exc}") from None
    plans = [_plan_object(sketch, name, obj, exported) for name, obj in result["objects"].items() if not obj["static"]]
    scene = _scene_of(sketch, context.scene)
    numbers = scene_frames(scene, result["frames"], result["fps"])
    # Below 8 fps several engine frames fall on one scene frame: the first of them is kept.
    keep = [f for f, number in enumerate(numbers) if f == 0 or number != numbers[f - 1]]
    numbers = [numbers[f] for f in keep]
    for plan in plans:
        plan.frames = [plan.frames[f] for f in keep]

    clear_result(sketch)
    collection = bpy.data.collections.new(f"{sketch.name} result")
    collection[RESULT_MARK] = 1
    sketch.children.link(collection)
    try:
        for plan in plans:
            _write_object(plan, collection, numbers)
    except BaseException:
        clear_result(sketch)  # never leave half a result behind
        raise
    scene_fps = scene.render.fps / scene.render.fps_base
    last_shown = numbers[-1] + max(1, round(scene_fps / result["fps"])) - 1
    scene.frame_end = last_shown  # the timeline plays the result, and only it
