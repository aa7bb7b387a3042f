"""Strokes are drawn as the curves they are, not as polylines through their points, as soon as they exist.

Blender draws Grease Pencil strokes from a cache of their curve types that is rebuilt when a file is
opened: strokes whose type was only written as data look straight-edged (round heads become diamonds)
until the file is saved and opened again. So each check renders the scene with Blender's own renderer,
saves and reopens the file, renders again and asks for the same pixels: a freshly imported sketch,
strokes moved into objects by the grouping operators, and a result written back.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

import tests.conftest as shared
from tests.addon.conftest import addon_module, reset_scene
from tests.addon.test_writeback import _export, _ready_to_export, _write_result, result_objects
from tests.conftest import REPO

importer = addon_module("importer")
scene_model = addon_module("scene_model")
writeback = addon_module("writeback")

EXAMPLE = REPO / "examples" / "dog_and_ball"  # round heads and a ball: curves that a polyline would cut
SIZE_PX = 128


def _render(path: Path) -> np.ndarray:
    """The scene through a front orthographic camera that frames the canvas, rendered by Workbench."""
    scene = bpy.context.scene
    camera = bpy.data.objects.get("check camera")
    if camera is None:
        camera = bpy.data.objects.new("check camera", bpy.data.cameras.new("check camera"))
        scene.collection.objects.link(camera)
        camera.location, camera.rotation_euler = (0.0, -10.0, 0.0), (np.pi / 2, 0.0, 0.0)
        camera.data.type, camera.data.ortho_scale = "ORTHO", importer.CANVAS_SIZE_M
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = SIZE_PX
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:], np.float32).reshape(SIZE_PX, SIZE_PX, 4)
    bpy.data.images.remove(image)
    return pixels


def _assert_same_after_reopening(tmp_path: Path, name: str, frame: int = 1) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    before = _render(tmp_path / f"{name}-before.png")
    blend = tmp_path / f"{name}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    bpy.context.scene.frame_set(frame)
    after = _render(tmp_path / f"{name}-after.png")
    ink = before[..., 3] > 0.5
    assert ink.sum() > 500, "the render shows the sketch"
    changed = np.abs(before - after).max(axis=2) > 1 / 255
    assert not changed.any(), f"{changed.sum()} pixels change when the file is reopened"
    return before


def test_imported_and_regrouped_strokes_render_as_curves_at_once(empty_scene, tmp_path: Path) -> None:
    importer.import_sketch(bpy.context, str(EXAMPLE / "sketch.svg"), str(EXAMPLE / "objects.tsv"))
    imported = _assert_same_after_reopening(tmp_path, "imported")

    reset_scene()
    importer.import_sketch(bpy.context, str(EXAMPLE / "sketch.svg"))
    assert bpy.ops.multisketch.suggest_grouping() == {"FINISHED"}  # copies every stroke into new objects
    regrouped = _assert_same_after_reopening(tmp_path, "regrouped")
    assert np.array_equal(regrouped, imported)  # the same strokes, wherever they live


def test_a_written_back_result_renders_as_curves_at_once(empty_scene, tmp_path: Path) -> None:
    sketch = importer.import_sketch(bpy.context, str(EXAMPLE / "sketch.svg"), str(EXAMPLE / "objects.tsv"))
    exported = _export(_ready_to_export(sketch, tmp_path), tmp_path / "job")
    _write_result(exported, seed=3, frames=4)
    writeback.apply_result(bpy.context, sketch, exported)
    assert result_objects()
    _assert_same_after_reopening(tmp_path, "result", frame=bpy.context.scene.frame_start + 2)


GRID_PX = 128  # per sketch, as in the single-sketch checks


def _render_grid(path: Path, columns: int) -> np.ndarray:
    """Every sketch of the scene, laid out `columns` wide, through one front orthographic camera (Workbench)."""
    scene = bpy.context.scene
    span = columns * importer.CANVAS_SIZE_M
    camera = bpy.data.objects.get("grid camera")
    if camera is None:
        camera = bpy.data.objects.new("grid camera", bpy.data.cameras.new("grid camera"))
        scene.collection.objects.link(camera)
        camera.data.type, camera.data.ortho_scale, camera.data.clip_end = "ORTHO", span, 100.0
        camera.location = (span / 2 - importer.CANVAS_SIZE_M / 2, -50.0, -span / 2 + importer.CANVAS_SIZE_M / 2)
        camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = columns * GRID_PX
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:], np.float32).reshape(columns * GRID_PX, columns * GRID_PX, 4)
    bpy.data.images.remove(image)
    return pixels[::-1]  # top row first, as the grid is laid out


def test_every_example_and_shared_sketch_renders_as_curves_at_once(empty_scene, tmp_path: Path) -> None:
    """All of them side by side in one render: the same pixels before saving and after reopening."""
    folders = sorted(p for p in (REPO / "examples").iterdir() if (p / "sketch.svg").is_file())
    folders += shared.multiobject_sketches()  # none where the shared set is not beside the checkout
    columns = int(np.ceil(np.sqrt(len(folders))))
    for number, folder in enumerate(folders):
        sketch = importer.import_sketch(bpy.context, str(folder / "sketch.svg"), str(folder / "objects.tsv"))
        row, column = divmod(number, columns)
        for ob in scene_model.drawing_objects(sketch):  # one grid cell each, in the same plane
            ob.location = (column * importer.CANVAS_SIZE_M, 0.0, -row * importer.CANVAS_SIZE_M)

    before = _render_grid(tmp_path / "grid-before.png", columns)
    blend = tmp_path / "grid.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    after = _render_grid(tmp_path / "grid-after.png", columns)

    for number, folder in enumerate(folders):
        row, column = divmod(number, columns)
        cell = np.s_[row * GRID_PX : (row + 1) * GRID_PX, column * GRID_PX : (column + 1) * GRID_PX]
        assert (before[cell][..., 3] > 0.5).sum() > 50, f"{folder.name} is not in its cell"
        changed = np.abs(before[cell] - after[cell]).max(axis=2) > 1 / 255
        assert not changed.any(), f"{folder.name}: {changed.sum()} pixels change when the file is reopened"
