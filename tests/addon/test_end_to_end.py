"""End to end, headless: import a shared sketch, "Animate with SDS" with the real engine, get editable keys.

The engine runs as the add-on runs it, as a child process (the engine's venv, the tiny random prior
on the CPU, tiny renders), so the numbers compared come from the engine's own result.json. The
sidebar is drawn into a recording layout, since panels cannot be drawn without a window.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest

from tests.addon.conftest import ADDON_PACKAGE, addon_module, engine_python
from tests.addon.test_writeback import drawings_of, result_objects, source_name, transform_curves, worst_error
from tests.conftest import MULTIOBJECT

job_export = addon_module("job_export")
scene_model = addon_module("scene_model")
ui = addon_module("ui")
writeback = addon_module("writeback")

SKETCH = MULTIOBJECT / "dog9"  # two objects


@pytest.fixture
def sketch(empty_scene: bpy.types.Scene, tmp_path: Path) -> bpy.types.Collection:
    prefs = bpy.context.preferences.addons[ADDON_PACKAGE].preferences
    prefs.python_path, prefs.cache_dir, prefs.device = engine_python(), str(tmp_path / "cache"), "cpu"
    assert bpy.ops.multisketch.import_svg(
        filepath=str(SKETCH / "sketch.svg"), objects_file=str(SKETCH / "objects.tsv")
    ) == {"FINISHED"}
    settings = bpy.context.scene.multisketch
    settings.prompt = (SKETCH / "caption.txt").read_text(encoding="utf-8").strip()
    settings.prior, settings.size, settings.frames, settings.seed = "tiny", 32, 3, 0
    settings.quality, settings.steps = "CUSTOM", 2
    (sketch,) = scene_model.sketch_collections(bpy.context.scene)
    return sketch


def _finished_jobs(tmp_path: Path) -> list[Path]:
    return sorted(p.parent for p in (tmp_path / "cache" / "jobs").glob("*/result.json"))


def _check_shows_job(sketch: bpy.types.Collection, job_dir: Path) -> None:
    """F-curves and one drawing per frame on each moving object, showing the job's result exactly."""
    exported = job_export.ExportedJob.load(job_dir)
    result = json.loads((job_dir / "result.json").read_text(encoding="utf-8"))
    moving = [name for name, obj in result["objects"].items() if not obj["static"]]
    keyed = writeback.scene_frames(bpy.context.scene, result["frames"], result["fps"])
    shown_by = result_objects()
    assert sorted(shown_by) == sorted(source_name(exported, name) for name in moving)
    (collection,) = [c for c in sketch.children if c.get("multisketch_result")]
    assert set(collection.objects) == set(shown_by.values())
    for result_object in shown_by.values():
        curves = transform_curves(result_object)
        for path in ("location", "rotation_euler", "scale"):
            assert [round(key.co.x) for key in curves[(path, 0)].keyframe_points] == keyed
        assert sorted(frame.frame_number for frame in result_object.data.layers[0].frames) == keyed
    assert worst_error(exported, result, keyed, list(range(result["frames"]))) < 1e-3


def test_animate_keys_the_engines_result_and_a_second_run_replaces_it(
    sketch: bpy.types.Collection, tmp_path: Path
) -> None:
    drawn = drawings_of(sketch)
    assert bpy.ops.multisketch.animate() == {"FINISHED"}
    (first,) = _finished_jobs(tmp_path)
    _check_shows_job(sketch, first)
    assert drawings_of(sketch) == drawn

    settings = bpy.context.scene.multisketch
    settings.seed, settings.frames, settings.steps = 1, 2, 1
    assert bpy.ops.multisketch.animate() == {"FINISHED"}
    (second,) = [job for job in _finished_jobs(tmp_path) if job != first]
    _check_shows_job(sketch, second)
    assert drawings_of(sketch) == drawn
    assert len(bpy.data.actions) == len(result_objects())


def test_renaming_the_sketch_mid_run_keeps_the_result_and_a_job_folder_applies_later(
    sketch: bpy.types.Collection, tmp_path: Path
) -> None:
    animate = addon_module("animate")
    job = animate.start_job(bpy.context)
    sketch.name = "renamed"  # while the engine runs, as a user may
    first = scene_model.drawing_object(scene_model.object_collections(sketch)[0])
    first.name = "renamed object"
    level, message = job.conclude(bpy.context, job.wait(bpy.context))
    assert level == "INFO" and "'renamed'" in message
    (job_dir,) = _finished_jobs(tmp_path)
    _check_shows_job(sketch, job_dir)

    assert bpy.ops.multisketch.clear_animation() == {"FINISHED"} and not result_objects()
    assert bpy.ops.multisketch.apply_job(directory=str(job_dir)) == {"FINISHED"}
    _check_shows_job(sketch, job_dir)
    with pytest.raises(RuntimeError, match="not a job folder"):
        bpy.ops.multisketch.apply_job(directory=str(tmp_path))


class _Layout:
    """Stands in for a UILayout and records what a panel draws into it."""

    def __init__(self, drawn: list) -> None:
        self.drawn, self.enabled = drawn, True

    def row(self, **_options) -> _Layout:
        return _Layout(self.drawn)

    column = box = row

    def prop(self, owner, name: str, **_options) -> None:
        self.drawn.append(("prop", name))

    def operator(self, idname: str, **_options) -> SimpleNamespace:
        """Like Blender's: the button's operator properties, which the panel may fill in."""
        self.drawn.append(("operator", idname))
        return SimpleNamespace()

    def label(self, text: str = "", **_options) -> None:
        self.drawn.append(("label", text))

    def progress(self, text: str = "", factor: float = 0.0, **_options) -> None:
        self.drawn.append(("progress", text, factor))

    def template_icon(self, icon_value: int = 0, **_options) -> None:
        self.drawn.append(("picture", icon_value))


def _draw_sidebar(context) -> list:
    drawn: list = []
    for panel in (ui.MULTISKETCH_PT_sketch, ui.MULTISKETCH_PT_objects, ui.MULTISKETCH_PT_animate):
        if panel is ui.MULTISKETCH_PT_sketch or panel.poll(context):
            panel.draw(SimpleNamespace(layout=_Layout(drawn)), context)
    return drawn


def test_sidebar_offers_every_step_from_import_to_animate(sketch: bpy.types.Collection) -> None:
    drawn = _draw_sidebar(bpy.context)
    operators = [entry[1] for entry in drawn if entry[0] == "operator"]
    for idname in ("import_svg", "new_object", "assign_to_object", "suggest_grouping", "animate"):
        assert f"multisketch.{idname}" in operators
    assert "multisketch.clear_animation" not in operators and not any(e[0] == "progress" for e in drawn)
    properties = [entry[1] for entry in drawn if entry[0] == "prop"]
    objects = scene_model.object_collections(sketch)
    assert properties.count("static") == len(objects) and properties.count("prompt") == len(objects) + 1
    for name in ("frames", "quality", "seed", "device", "prior"):
        assert name in properties
    labels = " ".join(entry[1] for entry in drawn if entry[0] == "label")
    for collection in objects:
        strokes = len(scene_model.rest_drawing(scene_model.drawing_object(collection)).curve_offsets) - 1
        assert f"{collection.name} ({strokes} strokes)" in labels


def test_sidebar_shows_progress_with_cancel_while_running_then_clear(sketch: bpy.types.Collection) -> None:
    job = bpy.context.window_manager.multisketch_job
    job.running, job.stage, job.step, job.steps, job.eta, job.progress = True, "object:dog", 3, 10, "42s", 0.25
    drawn = _draw_sidebar(bpy.context)
    (progress,) = [entry for entry in drawn if entry[0] == "progress"]
    assert progress[2] == 0.25 and all(part in progress[1] for part in ("object:dog", "3/10", "42s"))
    operators = [entry[1] for entry in drawn if entry[0] == "operator"]
    assert "multisketch.cancel" in operators and "multisketch.animate" not in operators
    addon_module("animate")._show_event(job, {"event": "download", "bytes": 10**9, "total": 4 * 10**9, "rate": 10**7})
    (progress,) = [entry for entry in _draw_sidebar(bpy.context) if entry[0] == "progress"]
    assert progress[2] == 0.25 and all(part in progress[1] for part in ("downloading the model", "1.0/4.0 GB", "5m00s"))
    job.stage, job.step, job.eta, job.progress = "resuming", 0, "", 0.0  # before a resumed job's first step
    (progress,) = [entry for entry in _draw_sidebar(bpy.context) if entry[0] == "progress"]
    assert progress[1] == "resuming"

    job.running = False
    collection = bpy.data.collections.new(f"{sketch.name} result")
    collection["multisketch_result"] = 1
    sketch.children.link(collection)
    operators = [entry[1] for entry in _draw_sidebar(bpy.context) if entry[0] == "operator"]
    assert "multisketch.animate" in operators and "multisketch.clear_animation" in operators


def test_sidebar_still_draws_without_the_add_ons_settings(sketch: bpy.types.Collection) -> None:
    bare = SimpleNamespace(
        scene=SimpleNamespace(collection=bpy.context.scene.collection),
        window_manager=SimpleNamespace(),
        preferences=bpy.context.preferences,
        active_object=None,
    )
    drawn = _draw_sidebar(bare)
    assert ("operator", "multisketch.animate") in drawn
    assert ("label", f"{sketch.name}: 256 x 256 px") in drawn
    properties = [entry[1] for entry in drawn if entry[0] == "prop"]
    assert properties.count("static") == len(scene_model.object_collections(sketch))
    assert not {"frames", "quality", "seed", "device", "prior"} & set(properties)


def test_the_engines_warnings_reach_the_sidebar_and_the_report(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    warning = "low memory mode: the VAE encodes frame by frame"
    warns = tmp_path / "python-that-warns"  # the real engine, which first warns as the engine does
    event = json.dumps({"event": "warning", "message": warning})
    warns.write_text(f"#!/bin/sh\necho '{event}'\nexec {engine_python()} \"$@\"\n")
    warns.chmod(0o755)
    bpy.context.preferences.addons[ADDON_PACKAGE].preferences.python_path = str(warns)
    animate = addon_module("animate")
    job = animate.start_job(bpy.context)
    outcome = job.wait(bpy.context)
    state = bpy.context.window_manager.multisketch_job
    assert state.warning == warning
    state.running = True  # as the sidebar draws while the job runs
    assert ("label", warning) in [entry[:2] for entry in _draw_sidebar(bpy.context)]
    level, message = job.conclude(bpy.context, outcome)
    assert level == "WARNING" and message.startswith("Animated") and warning in message
    assert result_objects(), "a warning does not stop the result from reaching the scene"
    assert Path(state.preview) == job.exported.job_dir / "progress.png" and Path(state.preview).is_file()


def _png(path: Path, width: int, height: int) -> None:
    image = bpy.data.images.new("picture", width, height)
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)


def test_sidebar_shows_the_engines_latest_picture_of_the_animation(sketch: bpy.types.Collection, tmp_path) -> None:
    progress_preview = addon_module("progress_preview")
    job = bpy.context.window_manager.multisketch_job
    job.running, job.preview = True, str(tmp_path / "progress.png")
    assert not any(entry[0] == "picture" for entry in _draw_sidebar(bpy.context))  # none written yet
    _png(tmp_path / "progress.png", 200, 100)  # (previews are at most 256 px wide)
    assert any(entry[0] == "picture" for entry in _draw_sidebar(bpy.context))
    assert tuple(progress_preview.picture(job.preview).image_size) == (200, 100)
    _png(tmp_path / "progress.png", 64, 128)  # the engine's picture at the next checkpoint, a second later
    os.utime(tmp_path / "progress.png", ns=(0, (tmp_path / "progress.png").stat().st_mtime_ns + 10**9))
    assert tuple(progress_preview.picture(job.preview).image_size) == (64, 128), "the newest picture is shown"
    job.running = False
    assert not any(entry[0] == "picture" for entry in _draw_sidebar(bpy.context))
