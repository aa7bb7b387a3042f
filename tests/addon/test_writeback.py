"""Write-back: a result becomes transform F-curves plus per-frame drawings that show it exactly.

Runs against the real bpy module on a shared sketch imported with its stroke table. The results are
synthetic (random affines with rotation, shear and scale, plus random local offsets), written into a
job folder made by the real job export, so every number a test compares comes from the job's files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras import anim_utils

from tests.addon.conftest import ADDON_PACKAGE, addon_module, import_shared_sketch, reset_scene

importer = addon_module("importer")
job_export = addon_module("job_export")
run_settings = addon_module("run_settings").run_settings
scene_model = addon_module("scene_model")
writeback = addon_module("writeback")
ui = addon_module("ui")


TOLERANCE_PX = 1e-3
FRAMES = 24


def _ready_to_export(sketch: bpy.types.Collection, tmp_path: Path) -> bpy.types.Collection:
    bpy.context.preferences.addons[ADDON_PACKAGE].preferences.cache_dir = str(tmp_path / "cache")
    bpy.context.scene.multisketch.prompt = "they move"
    return sketch


@pytest.fixture
def sketch(imported_sketch: bpy.types.Collection, tmp_path: Path) -> bpy.types.Collection:
    return _ready_to_export(imported_sketch, tmp_path)


def _export(sketch: bpy.types.Collection, folder: Path):
    return job_export.export_job(sketch, folder, run_settings(bpy.context))


def _rest_chains(exported) -> list[np.ndarray]:
    """Every engine stroke's control points in canvas pixels, read from the scene the job came from."""
    chains = []
    for gp_name, index in exported.strokes:
        ob = bpy.data.objects[gp_name]
        local = scene_model.stroke_control_points(scene_model.rest_drawing(ob), index)
        chains.append(np.array(scene_model.local_to_canvas(ob, local)))
    return chains


def _affine(rotate: float, shear: np.ndarray, scale: np.ndarray) -> np.ndarray:
    turn = np.array([[np.cos(rotate), -np.sin(rotate)], [np.sin(rotate), np.cos(rotate)]])
    return turn @ np.array([[1.0, shear[1]], [shear[0], 1.0]]) @ np.diag(scale)


def _write_result(exported, seed: int, frames: int = FRAMES, local_px: float = 1.5) -> dict:
    """A result.json as the engine writes it: per moving object a random affine and local offsets per frame."""
    rng = np.random.default_rng(seed)
    rest = _rest_chains(exported)
    objects = {}
    for obj in exported.spec.objects:
        center = np.concatenate([rest[i] for i in obj.strokes]).mean(axis=0)
        motion = []
        for _ in range(frames):
            if obj.static:
                rotate, shear, scale, translate, spread = 0.0, np.zeros(2), np.ones(2), np.zeros(2), 0.0
            else:
                rotate, shear = rng.normal(0, 0.4), rng.normal(0, 0.15, 2)
                scale, translate, spread = np.exp(rng.normal(0, 0.15, 2)), rng.normal(0, 15, 2), local_px
            matrix = _affine(rotate, shear, scale)
            points = [
                [(center + (rest[i] - center) @ matrix.T + translate + rng.normal(0, spread, rest[i].shape)).tolist()]
                for i in obj.strokes
            ]
            motion.append(
                {
                    "translate": translate.tolist(),
                    "rotate": float(rotate),
                    "shear": shear.tolist(),
                    "scale": scale.tolist(),
                    "matrix": matrix.tolist(),
                    "points": points,
                }
            )
        objects[obj.name] = {"static": obj.static, "strokes": obj.strokes, "center": center.tolist(), "frames": motion}
    in_objects = {i for obj in exported.spec.objects for i in obj.strokes}
    result = {
        "version": 1,
        "canvas": [256, 256],
        "frames": frames,
        "fps": 8,
        "stroke_count": len(rest),
        "background": [i for i in range(len(rest)) if i not in in_objects],
        "objects": objects,
    }
    (exported.job_dir / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return result


def result_objects() -> dict[str, bpy.types.Object]:
    """Result objects by the name of the sketch object they animate."""
    return {ob.parent.name: ob for ob in bpy.data.objects if ob.get("multisketch_result")}


def transform_curves(result_object: bpy.types.Object) -> dict[tuple[str, int], bpy.types.FCurve]:
    """The object's F-curves by (data path, axis)."""
    animation = result_object.animation_data
    channelbag = anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot)
    return {(curve.data_path, curve.array_index): curve for curve in channelbag.fcurves}


def _shown_chains(result_object: bpy.types.Object, scene_frame: int) -> list[np.ndarray]:
    """What the viewport shows at a frame: evaluated world points, back in the source's canvas pixels."""
    scene = bpy.context.scene
    scene.frame_set(scene_frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = result_object.evaluated_get(depsgraph)
    source = result_object.parent.evaluated_get(depsgraph)
    layer = evaluated.data.layers[0]
    drawing = layer.current_frame().drawing
    to_source = np.array(source.matrix_world.inverted() @ evaluated.matrix_world @ layer.matrix_local)
    chains = []
    for stroke in range(len(drawing.curve_offsets) - 1):
        points = np.array(scene_model.stroke_control_points(drawing, stroke))
        local = points @ to_source[:3, :3].T + to_source[:3, 3]
        chains.append(np.array(scene_model.local_to_canvas(result_object.parent, local)))
    return chains


def source_name(exported, name: str) -> str:
    """The name, now, of the Grease Pencil object that engine object `name` was exported from."""
    link = exported.objects[name]
    return scene_model.find_by_stable_id(bpy.data.objects, link.gp_object_id, link.gp_object).name


def worst_error(exported, result: dict, scene_frames: list[int], engine_frames: list[int]) -> float:
    """Largest distance (px) between what the scene shows and the result, over moving objects and frames."""
    shown_by = result_objects()
    worst = 0.0
    for name, obj in result["objects"].items():
        if obj["static"]:
            continue
        result_object = shown_by[source_name(exported, name)]
        for scene_frame, f in zip(scene_frames, engine_frames, strict=True):
            shown = _shown_chains(result_object, scene_frame)
            for k, engine_stroke in enumerate(obj["strokes"]):
                expected = np.array(obj["frames"][f]["points"][k][0])
                worst = max(worst, float(np.abs(shown[exported.strokes[engine_stroke][1]] - expected).max()))
    return worst


def drawings_of(sketch: bpy.types.Collection) -> dict:
    """Every attribute of every drawing of the sketch's own Grease Pencil objects."""
    state = {}
    for ob in scene_model.drawing_objects(sketch):
        for layer in ob.data.layers:
            for frame in layer.frames:
                for attribute in frame.drawing.attributes:
                    values = scene_model.read_attribute(attribute)
                    state[(ob.name, layer.name, frame.frame_number, attribute.name)] = values.tobytes()
    return state


def _keyed_frames() -> list[int]:
    return writeback.scene_frames(bpy.context.scene, FRAMES, 8)


def test_every_animated_frame_shows_the_result_exactly(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=1)
    writeback.apply_result(bpy.context, sketch, exported)
    assert worst_error(exported, result, _keyed_frames(), list(range(FRAMES))) < TOLERANCE_PX


def test_frames_between_keys_hold_the_previous_engine_frame(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=2)
    writeback.apply_result(bpy.context, sketch, exported)
    keyed = _keyed_frames()
    assert keyed[:3] == [1, 4, 7]  # 24 fps scene, 8 fps animation
    between = [keyed[f] + 1 for f in (0, 5, FRAMES - 1)] + [keyed[-1] + 2]
    assert worst_error(exported, result, between, [0, 5, FRAMES - 1, FRAMES - 1]) < TOLERANCE_PX
    assert bpy.context.scene.frame_end == keyed[-1] + 2  # the timeline plays the result to its last frame


def test_other_frame_rates_and_start_frames_place_keys_at_8_fps(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end = 30, 1.001, 10, 20
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=3)
    writeback.apply_result(bpy.context, sketch, exported)
    expected = [10 + round(f * (30 / 1.001) / 8) for f in range(FRAMES)]
    assert _keyed_frames() == expected
    for result_object in result_objects().values():
        assert sorted(frame.frame_number for frame in result_object.data.layers[0].frames) == expected
    assert worst_error(exported, result, expected, list(range(FRAMES))) < TOLERANCE_PX
    assert scene.frame_end >= expected[-1]


def test_keys_follow_the_sketchs_scene_when_another_is_current(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    own = bpy.context.scene
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=5)
    other = bpy.data.scenes.new("elsewhere")
    other.render.fps, other.frame_end = 60, 250
    bpy.context.window.scene = other  # the user switched scenes while the job ran
    writeback.apply_result(bpy.context, sketch, exported)
    keyed = writeback.scene_frames(own, FRAMES, 8)  # at the sketch's scene's 24 fps
    for result_object in result_objects().values():
        assert sorted(frame.frame_number for frame in result_object.data.layers[0].frames) == keyed
    assert own.frame_end == keyed[-1] + 2 and other.frame_end == 250
    bpy.context.window.scene = own
    assert worst_error(exported, result, keyed, list(range(FRAMES))) < TOLERANCE_PX


def test_global_motion_is_on_editable_transform_fcurves(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=4)
    writeback.apply_result(bpy.context, sketch, exported)
    shown_by = result_objects()
    moving = [name for name, obj in result["objects"].items() if not obj["static"]]
    assert sorted(shown_by) == sorted(exported.objects[name].gp_object for name in moving)
    keyed = _keyed_frames()
    for name in moving:
        result_object = shown_by[exported.objects[name].gp_object]
        curves = transform_curves(result_object)
        for path in ("location", "rotation_euler", "scale"):
            for axis in range(3):
                points = curves[(path, axis)].keyframe_points
                assert [round(p.co.x) for p in points] == keyed
                assert {p.interpolation for p in points} == {"CONSTANT"}
        turn = [p.co.y for p in curves[("rotation_euler", 1)].keyframe_points]
        assert np.allclose(turn, [frame["rotate"] for frame in result["objects"][name]["frames"]], atol=1e-6)
        grow = [p.co.y for p in curves[("scale", 2)].keyframe_points]
        assert np.allclose(grow, [frame["scale"][1] for frame in result["objects"][name]["frames"]], atol=1e-6)
        # The origin is the object's centre, carried by the frame's translation.
        center = np.array(result["objects"][name]["center"])
        for f in (0, FRAMES - 1):
            translate = result["objects"][name]["frames"][f]["translate"]
            (where,) = scene_model.canvas_to_local(result_object.parent, [center + translate])
            location = [curves[("location", axis)].keyframe_points[f].co.y for axis in range(3)]
            assert np.allclose(location, where, atol=1e-6)


def test_the_sketch_keeps_its_drawings_and_shows_again_when_cleared(
    sketch: bpy.types.Collection, tmp_path: Path
) -> None:
    before = drawings_of(sketch)
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=5)
    writeback.apply_result(bpy.context, sketch, exported)
    assert drawings_of(sketch) == before
    moving = {exported.objects[n].gp_object for n, obj in result["objects"].items() if not obj["static"]}
    for ob in scene_model.drawing_objects(sketch):
        hidden = ob.name in moving
        assert (ob.hide_viewport, ob.hide_render) == (hidden, hidden), ob.name
    writeback.clear_result(sketch)
    assert drawings_of(sketch) == before
    assert not any(ob.hide_viewport or ob.hide_render for ob in scene_model.drawing_objects(sketch))
    assert not any(ob.get("multisketch_result") for ob in bpy.data.objects)
    assert len(bpy.data.actions) == 0 and len(bpy.data.grease_pencils) == len(scene_model.drawing_objects(sketch))


def test_static_objects_and_background_stay_as_drawn(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    objects = scene_model.object_collections(sketch)
    objects[0].multisketch.static = True
    exported = _export(sketch, tmp_path / "job")
    _write_result(exported, seed=6)
    writeback.apply_result(bpy.context, sketch, exported)
    still = [scene_model.drawing_object(objects[0]), scene_model.background_object(sketch)]
    shown_by = result_objects()
    for ob in still:
        if ob is not None:
            assert ob.name not in shown_by and not ob.hide_viewport and ob.animation_data is None
    assert len(shown_by) == len(objects) - 1


def test_animating_again_replaces_the_previous_result(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    first = _export(sketch, tmp_path / "first")
    _write_result(first, seed=7)
    writeback.apply_result(bpy.context, sketch, first)
    counts = (len(bpy.data.objects), len(bpy.data.grease_pencils), len(bpy.data.actions), len(bpy.data.collections))
    second = _export(sketch, tmp_path / "second")
    result = _write_result(second, seed=8, frames=12)
    writeback.apply_result(bpy.context, sketch, second)
    assert (len(bpy.data.objects), len(bpy.data.grease_pencils), len(bpy.data.actions), len(bpy.data.collections)) == (
        counts
    )
    assert [c.name for c in sketch.children if c.get("multisketch_result")] == [f"{sketch.name} result"]
    keyed = writeback.scene_frames(bpy.context.scene, 12, 8)
    for result_object in result_objects().values():
        assert sorted(frame.frame_number for frame in result_object.data.layers[0].frames) == keyed
    assert worst_error(second, result, keyed, list(range(12))) < TOLERANCE_PX


def test_a_result_that_no_longer_fits_the_scene_changes_nothing(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    exported = _export(sketch, tmp_path / "job")
    _write_result(exported, seed=9)
    writeback.apply_result(bpy.context, sketch, exported)
    shown = sorted(ob.name for ob in bpy.data.objects)
    stale = _export(sketch, tmp_path / "stale")
    _write_result(stale, seed=10)
    moving = next(obj for obj in stale.spec.objects if not obj.static)
    taken_out = bpy.data.objects[stale.objects[moving.name].gp_object]  # moved out of the sketch meanwhile
    for collection in list(taken_out.users_collection):
        collection.objects.unlink(taken_out)
    bpy.context.scene.collection.objects.link(taken_out)
    with pytest.raises(writeback.errors.UserError, match="no longer in sketch"):
        writeback.apply_result(bpy.context, sketch, stale)
    assert sorted(ob.name for ob in bpy.data.objects) == shown


def _last_keys() -> dict[str, dict[tuple[str, int], tuple[float, float]]]:
    """The last key of every transform F-curve of every result object: what the user sees the result end on."""
    return {
        name: {key: tuple(curve.keyframe_points[-1].co) for key, curve in transform_curves(ob).items()}
        for name, ob in result_objects().items()
    }


CORRUPTIONS = {
    "NaN in the last frame": lambda r, name: r["objects"][name]["frames"][-1]["points"][0][0][0].__setitem__(0, "NaN"),
    "Infinity in a translation": lambda r, name: r["objects"][name]["frames"][-1]["translate"].__setitem__(1, "Inf"),
    "negative fps": lambda r, name: r.__setitem__("fps", -8),
    "30 million frames": lambda r, name: r.__setitem__("frames", 30_000_000),
    "a frame missing": lambda r, name: r["objects"][name]["frames"].pop(),
    "a coordinate of 1e308": lambda r, name: r["objects"][name]["frames"][3]["points"][0][0][1].__setitem__(0, 1e308),
    "a stroke index as text": lambda r, name: r["objects"][name]["strokes"].__setitem__(0, "3"),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_result_is_refused_whole_and_the_previous_result_stays(
    corruption: str, sketch: bpy.types.Collection, tmp_path: Path
) -> None:
    first = _export(sketch, tmp_path / "first")
    _write_result(first, seed=3)
    writeback.apply_result(bpy.context, sketch, first)
    shown = _last_keys()
    second = _export(sketch, tmp_path / "second")
    result = _write_result(second, seed=4)
    moving = next(obj.name for obj in second.spec.objects if not obj.static)
    CORRUPTIONS[corruption](result, moving)
    text = json.dumps(result).replace('"NaN"', "NaN").replace('"Inf"', "Infinity")
    second.result_path.write_text(text, encoding="utf-8")
    with pytest.raises(writeback.errors.UserError, match="cannot read the result"):
        writeback.apply_result(bpy.context, sketch, second)
    assert _last_keys() == shown


def test_undo_takes_the_whole_result_back(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    sketch_name = sketch.name
    before = drawings_of(sketch)
    objects_before = sorted(ob.name for ob in bpy.data.objects)
    exported = _export(sketch, tmp_path / "job")
    _write_result(exported, seed=11)
    bpy.ops.ed.undo_push(message="before animate")
    writeback.apply_result(bpy.context, sketch, exported)
    bpy.ops.ed.undo_push(message="animate")
    assert result_objects()
    status = bpy.context.window_manager.multisketch_job
    status.message = f"Animated '{sketch_name}' (24 frames)"
    bpy.ops.ed.undo()
    assert status.message == ""  # the status line no longer claims an animation that is gone
    sketch = bpy.data.collections[sketch_name]
    assert sorted(ob.name for ob in bpy.data.objects) == objects_before
    assert not writeback.has_result(sketch) and len(bpy.data.actions) == 0
    assert drawings_of(sketch) == before
    assert not any(ob.hide_viewport for ob in scene_model.drawing_objects(sketch))


def test_clear_animation_button_removes_the_result(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    assert not bpy.ops.multisketch.clear_animation.poll()
    exported = _export(sketch, tmp_path / "job")
    _write_result(exported, seed=12)
    writeback.apply_result(bpy.context, sketch, exported)
    assert ui.active_sketch(bpy.context) == sketch
    assert bpy.ops.multisketch.clear_animation() == {"FINISHED"}
    assert not writeback.has_result(sketch) and not result_objects()


def test_the_largest_shared_sketch_writes_24_frames_fast(tmp_path: Path) -> None:
    reset_scene()
    sketch = _ready_to_export(import_shared_sketch("gvk10"), tmp_path)
    exported = _export(sketch, tmp_path / "job")
    assert len(exported.strokes) == 270
    result = _write_result(exported, seed=13)
    started = time.perf_counter()
    writeback.apply_result(bpy.context, sketch, exported)
    seconds = time.perf_counter() - started
    assert seconds < 1.0, f"writing 24 frames of 270 strokes took {seconds:.2f} s"
    assert worst_error(exported, result, _keyed_frames()[::6], list(range(FRAMES))[::6]) < TOLERANCE_PX


def test_closed_strokes_close_on_their_first_point(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    ob = scene_model.drawing_object(scene_model.object_collections(sketch)[0])
    drawing = scene_model.rest_drawing(ob)
    cyclic = drawing.attributes.get("cyclic") or drawing.attributes.new("cyclic", "BOOLEAN", "CURVE")
    closed = np.zeros(scene_model.stroke_count(ob), bool)
    closed[[0, 2]] = True
    cyclic.data.foreach_set("value", closed)
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=14)
    for obj in result["objects"].values():
        for frame in obj["frames"]:
            for k, engine_stroke in enumerate(obj["strokes"]):
                gp_name, index = exported.strokes[engine_stroke]
                if gp_name == ob.name and closed[index]:
                    chain = frame["points"][k][0]
                    chain[-1] = chain[0]  # the engine moves a closed stroke's closing point with its first one
    (exported.job_dir / "result.json").write_text(json.dumps(result), encoding="utf-8")
    writeback.apply_result(bpy.context, sketch, exported)
    assert worst_error(exported, result, _keyed_frames(), list(range(FRAMES))) < TOLERANCE_PX


def test_the_result_plays_where_the_sketch_was_imported(tmp_path: Path) -> None:
    """A sketch placed at the 3D cursor away from the origin: its result is there too, not at the origin."""
    reset_scene()
    bpy.context.scene.cursor.location = (3.0, -2.0, 1.5)
    sketch = _ready_to_export(import_shared_sketch(), tmp_path)
    exported = _export(sketch, tmp_path / "job")
    result = _write_result(exported, seed=5)
    writeback.apply_result(bpy.context, sketch, exported)

    assert worst_error(exported, result, _keyed_frames(), list(range(FRAMES))) < TOLERANCE_PX
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for result_object in result_objects().values():
        evaluated = result_object.evaluated_get(depsgraph)
        layer = evaluated.data.layers[0]
        points = scene_model.read_attribute(layer.current_frame().drawing.attributes["position"])
        world = np.array(evaluated.matrix_world @ layer.matrix_local)
        seen = points @ world[:3, :3].T + world[:3, 3]
        assert np.allclose(seen[:, 1], -2.0, atol=1e-5)  # in the sketch's plane
        assert np.abs(seen[:, [0, 2]].mean(axis=0) - (3.0, 1.5)).max() < importer.CANVAS_SIZE_M / 2  # on its canvas
