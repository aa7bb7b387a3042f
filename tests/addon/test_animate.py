"""Animate with SDS on the happy path: the job the engine gets, and a headless run to a written-back result."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from svgpathtools import svg2paths

from tests.addon.conftest import SHARED_SKETCH, addon_module, addon_preferences
from tests.conftest import MULTIOBJECT

animate = addon_module("animate")
job_export = addon_module("job_export")
run_settings = addon_module("run_settings").run_settings
scene_model = addon_module("scene_model")
writeback = addon_module("writeback")


@pytest.fixture
def sketch(sketch_for_tiny_job: bpy.types.Collection) -> bpy.types.Collection:
    return sketch_for_tiny_job


def _control_points(path) -> np.ndarray:
    """An svgpathtools path as its cubic chain p0, c1, c2, p1, ... (canvas pixels)."""
    points = [path[0].start] + [p for segment in path for p in segment.bpoints()[1:]]
    return np.array([(p.real, p.imag) for p in points])


def _canvas_chains(ob: bpy.types.Object) -> list[np.ndarray]:
    """Each stroke of a Grease Pencil object's rest drawing as canvas-pixel control points."""
    drawing = scene_model.rest_drawing(ob)
    return [
        np.array(scene_model.local_to_canvas(ob, scene_model.stroke_control_points(drawing, i)))
        for i in range(scene_model.stroke_count(ob))
    ]


def test_export_sends_the_imported_strokes_objects_and_settings(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    objects = {c.name: c for c in scene_model.object_collections(sketch)}
    objects["basketball"].multisketch.prompt = "a ball flies into the hoop"
    objects["hoop"].multisketch.static = True
    bpy.context.scene.multisketch.quality = "DRAFT"
    exported = job_export.export_job(sketch, tmp_path / "job", run_settings(bpy.context))

    # The engine sees exactly the strokes of the user's SVG, one <path> per Grease Pencil stroke.
    paths, attributes = svg2paths(str(exported.sketch_path))
    source = [path.continuous_subpaths() for path in svg2paths(str(MULTIOBJECT / SHARED_SKETCH / "sketch.svg"))[0]]
    assert len(paths) == len(exported.strokes) == sum(len(subpaths) for subpaths in source)
    seen: dict[int, int] = {}
    for path, (gp_object, gp_stroke) in zip(paths, exported.strokes, strict=True):
        path_index = scene_model.source_strokes(bpy.data.objects[gp_object])[gp_stroke]
        subpath = seen.get(path_index, 0)  # a <path> with several sub-paths gave several strokes, in order
        seen[path_index] = subpath + 1
        np.testing.assert_allclose(_control_points(path), _control_points(source[path_index][subpath]), atol=1e-3)
    np.testing.assert_allclose([float(a["stroke-width"]) for a in attributes], 3.0, atol=1e-3)

    # Each object names the strokes of its own collection: those the stroke table gave it.
    spec = json.loads(exported.spec_path.read_text())
    table = (MULTIOBJECT / SHARED_SKETCH / "objects.tsv").read_text().splitlines()
    expected = {name: {int(i) for i in indices.split(",")} for name, indices in (row.split("\t") for row in table)}
    for obj in spec["objects"]:
        gp_object = bpy.data.objects[exported.objects[obj["name"]].gp_object]
        assert {exported.strokes[i][0] for i in obj["strokes"]} == {gp_object.name}
        sources = {scene_model.source_strokes(gp_object)[exported.strokes[i][1]] for i in obj["strokes"]}
        assert sources == expected[obj["name"]]
    by_name = {obj["name"]: obj for obj in spec["objects"]}
    assert (by_name["basketball"]["prompt"], by_name["basketball"]["static"]) == ("a ball flies into the hoop", False)
    assert (by_name["hoop"]["static"], by_name["player"]["prompt"]) == (True, None)
    assert (spec["prompt"], spec["sketch"], spec["frames"], spec["size"]) == (
        "a player dunks a ball",
        "sketch.svg",
        2,
        32,
    )
    assert (spec["prior"], spec["device"], spec["steps"]) == ("tiny", "cpu", 100)  # 100: the draft preset
    assert Path(spec["model"]).is_relative_to(tmp_path / "cache")

    again = job_export.ExportedJob.load(exported.job_dir)
    assert (again.objects, again.strokes, again.spec) == (exported.objects, exported.strokes, exported.spec)


def test_scene_device_overrides_the_preferences_and_paper_quality_is_1000_steps(sketch, tmp_path: Path) -> None:
    settings = bpy.context.scene.multisketch
    settings.quality, settings.prior, settings.device = "PAPER", "modelscope", "PREFERENCES"
    addon_preferences().model, addon_preferences().device = "/models/text-to-video", "auto"
    spec = job_export.export_job(sketch, tmp_path / "a", run_settings(bpy.context)).spec
    assert (spec.steps, spec.device, spec.model) == (1000, "auto", "/models/text-to-video")
    settings.device = "cuda"
    assert job_export.export_job(sketch, tmp_path / "b", run_settings(bpy.context)).spec.device == "cuda"


def test_the_sidebar_offers_every_engine_prior_but_the_target_prior(empty_scene: bpy.types.Scene) -> None:
    priors = empty_scene.multisketch.bl_rna.properties["prior"].enum_items
    engine = addon_module("contract").protocol
    assert [item.identifier for item in priors] == [prior for prior in engine.PRIORS if prior != "target"]
    assert set(addon_module("properties").PRIOR_LABELS) == {item.identifier for item in priors}


def test_the_job_sketch_is_written_byte_for_byte(tmp_path: Path) -> None:
    """sketch.svg: one `<path>` per Grease Pencil stroke (the path writer the engine's frames share), its numbers
    to a millionth of a pixel without needless digits."""
    stroke, path = job_export._Stroke, tmp_path / "sketch.svg"
    job_export._write_svg(path, (123.4567891, 96.0), [
        stroke([(-0.0, 1e-9), (1e6, -1e-5), (2.5, 3.33333333), (4, 5)], 1.5),
        stroke([(1, 2)], 0.0),
    ])  # fmt: skip
    look = 'fill="none" stroke="black" stroke-width="{}" stroke-linecap="round" stroke-linejoin="round"/>'
    assert path.read_text(encoding="utf-8") == "\n".join([
        '<svg xmlns="http://www.w3.org/2000/svg" width="123.456789" height="96" viewBox="0 0 123.456789 96">',
        '<path d="M 0 0 C 1000000 -0.00001 2.5 3.333333 4 5" ' + look.format("1.5"),
        '<path d="M 1 2" ' + look.format("0"),
        "</svg>\n",
    ])  # fmt: skip


def test_headless_animate_runs_to_the_end_and_writes_the_result_back(sketch, tmp_path: Path) -> None:
    objects = scene_model.object_collections(sketch)
    for collection in objects:  # one moving object keeps the run short: its own stage, then the joint one
        collection.multisketch.static = collection.name != "player"
    rest_before = {ob.name: _canvas_chains(ob) for ob in map(scene_model.drawing_object, objects)}
    assert bpy.ops.multisketch.animate() == {"FINISHED"}

    (job_dir,) = (tmp_path / "cache" / "jobs").iterdir()
    assert job_dir.name.startswith(f"{sketch.name}-") and (job_dir / "result.json").is_file()
    assert writeback.has_result(sketch)
    state = bpy.context.window_manager.multisketch_job
    assert not state.running and f"Animated '{sketch.name}'" in state.message
    assert (state.stage, state.step, state.steps, state.progress) == ("joint", 2, 2, pytest.approx(1.0))
    for name, chains in rest_before.items():
        for before, after in zip(chains, _canvas_chains(bpy.data.objects[name]), strict=True):
            np.testing.assert_array_equal(before, after)


def test_a_job_stopped_before_its_first_checkpoint_is_taken_up_again_unless_it_failed(sketch, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    earlier = job_export.export_job(sketch, jobs / "earlier", run_settings(bpy.context))
    fresh = job_export.export_job(sketch, jobs / "fresh", run_settings(bpy.context))
    (earlier.job_dir / "log.txt").write_text('{"event":"start","stages":["object:ball"]}\n')
    (earlier.job_dir / "engine-stderr.txt").write_text("stage: object:ball\n")  # then killed: nothing said
    assert animate._resumable_job(jobs, fresh) == earlier.job_dir

    (earlier.job_dir / "engine-stderr.txt").write_text("error: the sketch has no stroke 40\n")
    assert animate._resumable_job(jobs, fresh) is None  # it would fail the same way again

    (earlier.job_dir / "engine-stderr.txt").unlink()  # exported, but no engine ever ran in it
    assert animate._resumable_job(jobs, fresh) is None
