"""Importing SVG sketches: objects from stroke tables and `<g id>` groups, exact canvas mapping, clean failures.

Runs against the real bpy module. Reference geometry comes from svgpathtools, independently of the
add-on's own SVG reader.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from mathutils import Vector
from svgpathtools import Arc, CubicBezier, Line, QuadraticBezier, parse_path, svg2paths

from tests.addon.conftest import addon_module, import_shared_sketch, reset_scene
from tests.conftest import REPO, multiobject_sketches

TOLERANCE_PX = 1e-3
scene_model = addon_module("scene_model")
importer = addon_module("importer")


def _cubic_chain(segments, transform: np.ndarray) -> np.ndarray:
    """p0, c1, c2, p1, ... of a sub-path as Blender's importer makes it (lines and quadratics as exact cubics)."""
    points = [segments[0].start]
    for segment in segments:
        if isinstance(segment, Line):
            start, end = segment.start, segment.end
            points += [start + (end - start) / 3, end - (end - start) / 3, end]
        elif isinstance(segment, QuadraticBezier):
            start, control, end = segment.bpoints()
            points += [start + 2 * (control - start) / 3, end + 2 * (control - end) / 3, end]
        elif isinstance(segment, CubicBezier):
            points += list(segment.bpoints()[1:])
        else:
            raise AssertionError(f"no exact cubic for {segment!r}")
    xy = np.array([[p.real, p.imag, 1.0] for p in points])
    return xy @ transform[:2].T


def _gp_chains(ob: bpy.types.Object) -> list[np.ndarray]:
    drawing = scene_model.rest_drawing(ob)
    return [
        np.array(scene_model.local_to_canvas(ob, scene_model.stroke_control_points(drawing, i)))
        for i in range(len(drawing.strokes))
    ]


def _objects(sketch: bpy.types.Collection) -> dict[str, bpy.types.Object]:
    return {c.name: scene_model.drawing_object(c) for c in scene_model.object_collections(sketch)}


EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if (p / "sketch.svg").is_file())


@pytest.mark.parametrize("folder", EXAMPLES + multiobject_sketches(), ids=lambda p: p.name)
def test_sketch_imports_one_object_per_table_row_with_exact_points(folder: Path) -> None:
    """Both examples and every shared sketch, on every Blender version the tests run on."""
    reset_scene()
    sketch = importer.import_sketch(bpy.context, str(folder / "sketch.svg"), str(folder / "objects.tsv"))
    paths, _ = svg2paths(str(folder / "sketch.svg"))
    table = addon_module("contract").tables.read_stroke_table(folder / "objects.tsv", len(paths))
    objects = _objects(sketch)

    assert sorted(objects) == sorted(table)
    assert scene_model.background_object(sketch) is None  # the table assigns every stroke
    identity = np.eye(3)
    for name, indices in table.items():
        ob = objects[name]
        assert tuple(ob.location) == (0.0, 0.0, 0.0)
        expected = [_cubic_chain(sub, identity) for index in indices for sub in paths[index].continuous_subpaths()]
        assert sorted(scene_model.source_strokes(ob)) == sorted(indices)
        assert len(scene_model.rest_drawing(ob).strokes) == len(expected)
        by_index = {index: [] for index in indices}
        for index, chain in zip(scene_model.source_strokes(ob), _gp_chains(ob), strict=True):
            by_index[index].append(chain)
        for index in indices:
            wanted = [_cubic_chain(sub, identity) for sub in paths[index].continuous_subpaths()]
            for got, want in zip(by_index[index], wanted, strict=True):
                assert got.shape == want.shape
                assert np.abs(got - want).max() < TOLERANCE_PX, f"{name}: stroke {index}"
    assert scene_model.canvas_size(sketch) == (256.0, 256.0)


GROUPED_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200" viewBox="10 20 200 100">
  <defs><path d="M 0 0 L 500 500"/></defs>
  <g id="cat" transform="translate(30 5) rotate(10)">
    <path d="M 20 30 C 40 10 60 50 80 30 S 120 10 130 40" stroke="#000" fill="none" stroke-width="3"/>
    <g><path d="m 50 60 l 20 0 h 10 v 15 q 10 10 -20 5 M 90 90 L 100 80 L 110 95 Z"/></g>
  </g>
  <path d="M 150 30 A 20 10 0 0 1 190 60" stroke="red" fill="none"/>
  <g id="ball" transform="matrix(1.2 0 0 1.2 -20 10)"><path d="M 140 70 T 160 90 Q 175 60 185 80"/></g>
  <rect x="15" y="25" width="20" height="10"/>
</svg>
"""


def test_g_id_groups_become_objects_and_every_curve_maps_back_exactly(empty_scene, tmp_path: Path) -> None:
    svg = tmp_path / "grouped.svg"
    svg.write_text(GROUPED_SVG, encoding="utf-8")
    sketch = importer.import_sketch(bpy.context, str(svg))

    objects = _objects(sketch)
    assert sorted(objects) == ["ball", "cat"]
    assert scene_model.source_strokes(objects["cat"]) == [0, 1, 1]  # the second path has two sub-paths
    assert scene_model.source_strokes(objects["ball"]) == [3]
    background = scene_model.background_object(sketch)
    assert scene_model.source_strokes(background) == [2, -1]  # the arc path, then the rect (no <path>)
    assert scene_model.canvas_size(sketch) == (200.0, 100.0)

    to_canvas = np.array([[1, 0, -10], [0, 1, -20], [0, 0, 1]], float)
    cat = np.deg2rad(10)
    cat_transform = (
        to_canvas
        @ np.array([[1, 0, 30], [0, 1, 5], [0, 0, 1]])
        @ np.array([[np.cos(cat), -np.sin(cat), 0], [np.sin(cat), np.cos(cat), 0], [0, 0, 1]])
    )
    ball_transform = to_canvas @ np.array([[1.2, 0, -20], [0, 1.2, 10], [0, 0, 1]])
    path_data = [
        "M 20 30 C 40 10 60 50 80 30 S 120 10 130 40",
        "m 50 60 l 20 0 h 10 v 15 q 10 10 -20 5 M 90 90 L 100 80 L 110 95 Z",
    ]
    wanted = [_cubic_chain(sub, cat_transform) for d in path_data for sub in parse_path(d).continuous_subpaths()]
    got = _gp_chains(objects["cat"])
    assert len(got) == 3
    for g, w in zip(got[:2], wanted[:2], strict=True):
        assert np.abs(g - w).max() < TOLERANCE_PX
    closed = got[2]  # a cyclic stroke: its chain runs back to the start through the closing line
    assert np.abs(closed - wanted[2]).max() < TOLERANCE_PX
    drawing = scene_model.rest_drawing(objects["cat"])
    assert list(scene_model.read_attribute(drawing.attributes["cyclic"])) == [False, False, True]

    ball = parse_path("M 140 70 T 160 90 Q 175 60 185 80")
    assert np.abs(_gp_chains(objects["ball"])[0] - _cubic_chain(ball, ball_transform)).max() < TOLERANCE_PX

    arc = parse_path("M 150 30 A 20 10 0 0 1 190 60")[0]
    assert isinstance(arc, Arc)
    arc_chain = _gp_chains(background)[0]  # cubics within 0.01 px of the arc
    t = np.linspace(0, 1, 21)[:, None]
    for i in range(0, len(arc_chain) - 1, 3):
        c = arc_chain[i : i + 4]
        samples = (1 - t) ** 3 * c[0] + 3 * (1 - t) ** 2 * t * c[1] + 3 * (1 - t) * t**2 * c[2] + t**3 * c[3]
        on_arc = np.array([arc.point(u) for u in np.linspace(0, 1, 4001)])
        on_arc = np.stack([on_arc.real - 10, on_arc.imag - 20], axis=1)
        assert np.sqrt(((samples[:, None] - on_arc[None]) ** 2).sum(-1)).min(1).max() < 0.02
    for got_point, want in ((arc_chain[0], arc.start), (arc_chain[-1], arc.end)):
        assert np.abs(got_point - (to_canvas @ [want.real, want.imag, 1])[:2]).max() < TOLERANCE_PX
    rect = _gp_chains(background)[1]
    assert np.abs(rect[0::3] - [[5, 5], [25, 5], [25, 15], [5, 15], [5, 5]]).max() < TOLERANCE_PX


def test_import_selects_the_sketch_and_frames_the_3d_view_on_it(empty_scene) -> None:
    (view,) = [a.spaces.active.region_3d for a in bpy.context.window.screen.areas if a.type == "VIEW_3D"]
    view.view_location, view.view_distance = (30.0, 30.0, 30.0), 100.0
    folder = REPO / "examples" / "dog_and_ball"
    assert bpy.ops.multisketch.import_svg(filepath=str(folder / "sketch.svg")) == {"FINISHED"}
    assert np.abs(np.array(view.view_location)).max() < importer.CANVAS_SIZE_M / 2  # on the sketch
    assert view.view_distance < 3 * importer.CANVAS_SIZE_M  # and close enough to see its strokes
    (sketch,) = scene_model.sketch_collections(empty_scene)
    assert set(bpy.context.selected_objects) == set(scene_model.drawing_objects(sketch))  # selected, to edit


def test_import_leaves_the_rest_of_the_scene_and_the_active_collection_alone(empty_scene) -> None:
    mine = bpy.data.collections.new("My stuff")
    empty_scene.collection.children.link(mine)
    cube = bpy.data.objects.new("Empty", None)
    cube.location = (1.0, 2.0, 3.0)
    mine.objects.link(cube)
    layer_collection = bpy.context.view_layer.layer_collection.children["My stuff"]
    bpy.context.view_layer.active_layer_collection = layer_collection
    empty_scene.cursor.location = (5.0, 5.0, 5.0)

    sketch = import_shared_sketch()

    assert bpy.context.view_layer.active_layer_collection.collection == mine
    assert sketch.name in mine.children  # the sketch goes where new things go
    assert tuple(cube.location) == (1.0, 2.0, 3.0) and list(cube.users_collection) == [mine]
    assert set(bpy.data.objects) == {cube, *scene_model.drawing_objects(sketch)}
    for ob in scene_model.drawing_objects(sketch):
        assert tuple(ob.location) == (5.0, 5.0, 5.0)  # at the 3D cursor (an empty hides nothing)
        assert tuple(ob.rotation_euler) == (0.0, 0.0, 0.0) and tuple(ob.scale) == (1.0, 1.0, 1.0)
        assert len(ob.data.layers) == 1
    assert len(bpy.data.grease_pencils) == len(scene_model.drawing_objects(sketch))


def _world_box(obs: list[bpy.types.Object]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest world corner of the objects' evaluated bounding boxes."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = np.array([
        tuple(ob.evaluated_get(depsgraph).matrix_world @ Vector(corner))
        for ob in obs
        for corner in ob.evaluated_get(depsgraph).bound_box
    ])  # fmt: skip
    return corners.min(axis=0), corners.max(axis=0)


def test_a_sketch_imported_into_a_new_file_stands_in_front_of_the_default_cube() -> None:
    """At the 3D cursor, as Blender places new things, but moved out of the cube that sits there.

    Checked on the boxes: Blender's renderers draw the strokes over the cube wherever they are, so a
    render cannot tell; the viewport's Solid shading hides strokes inside the cube.
    """
    bpy.ops.wm.read_homefile(use_factory_startup=True)  # what File > New > General gives: cube, camera, light
    cube = bpy.data.objects["Cube"]
    folder = REPO / "examples" / "kids_and_kite"
    assert bpy.ops.multisketch.import_svg(
        filepath=str(folder / "sketch.svg"), objects_file=str(folder / "objects.tsv")
    ) == {"FINISHED"}  # fmt: skip

    (sketch,) = scene_model.sketch_collections(bpy.context.scene)
    drawings = scene_model.drawing_objects(sketch)
    for ob in drawings:  # the cursor's X and Z, 0.1 m in front of the cube's front face (y = -1)
        assert np.allclose(ob.location, (0.0, -1.0 - importer.GAP_M, 0.0), atol=1e-6)
    low, high = _world_box(drawings)
    assert high[1] < _world_box([cube])[0][1]  # no stroke inside or behind the cube's front face
    assert high[0] - low[0] > 1.5  # metres: about as wide as the cube (its strokes span 1.6 of the 2 m canvas)

    view = next(a.spaces.active.region_3d for a in bpy.context.window.screen.areas if a.type == "VIEW_3D")
    assert np.abs(np.array(view.view_location) - (low + high) / 2).max() < 0.1  # and framed

    other = REPO / "examples" / "dog_and_ball" / "sketch.svg"
    second = importer.import_sketch(bpy.context, str(other))  # a second sketch at the cursor: before the first
    assert _world_box(scene_model.drawing_objects(second))[1][1] < low[1]
    assert np.allclose(scene_model.drawing_objects(second)[0].location, (0.0, low[1] - importer.GAP_M, 0.0))


def test_a_sketch_imported_over_a_floor_stands_on_it(empty_scene) -> None:
    """A wide, flat object at the cursor: the shorter way out is up, not 10 m forward."""
    floor = bpy.data.objects.new("Floor", bpy.data.meshes.new("Floor"))
    floor.data.from_pydata([(-10, -10, 0), (10, -10, 0), (10, 10, 0), (-10, 10, 0)], [], [(0, 1, 2, 3)])
    empty_scene.collection.objects.link(floor)

    sketch = importer.import_sketch(bpy.context, str(REPO / "examples" / "dog_and_ball" / "sketch.svg"))

    low, _ = _world_box(scene_model.drawing_objects(sketch))
    for ob in scene_model.drawing_objects(sketch):  # square canvas, 2 m: its bottom edge GAP_M above z = 0
        assert np.allclose(ob.location, (0.0, 0.0, importer.CANVAS_SIZE_M / 2 + importer.GAP_M), atol=1e-6)
    assert low[2] > 0.0


def test_a_stroke_table_path_too_long_for_the_file_browsers_side_panel_is_shown_whole_on_lines() -> None:
    """The side panel is about 250 px wide: a path that its field cuts in the middle is spelled out below it."""
    import blf

    path = "/home/someone/Documents/Drawings/2026/children in the park with a kite/objects.tsv"
    width = 250 - 2 * addon_module("text_fit").UNIT  # the side panel, less the folder icon and the field's padding
    lines = importer.path_lines(path, width)
    assert "".join(lines) == path
    assert len(lines) >= 3
    assert all(blf.dimensions(0, line)[0] <= width for line in lines)  # measured in the UI's font
    assert lines[-1].endswith("objects.tsv") and all(line.endswith("/") for line in lines[:-1])  # cut at folders
    assert importer.path_lines("/a/objects.tsv", width) == ["/a/objects.tsv"]  # short: the field shows it whole
    unbroken = "x" * 200  # no separator: cut where it must be
    assert "".join(importer.path_lines(unbroken, width)) == unbroken


BAD_INPUTS = {
    "missing file": ("missing.svg", None, None, "No sketch at"),
    "not xml": ("notes.svg", "just some text", None, "not well-formed XML"),
    "not svg": ("page.svg", "<html><body/></html>", None, "is not an SVG"),
    "no strokes": ("empty.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect/></svg>', None,
                   "has no <path> strokes"),
    "huge coordinates": ("huge.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">'
                         '<path d="M 1e308 0 L 1 1"/></svg>', None, "reach beyond"),
    "deep nesting": ("deep.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">' + "<g>" * 5000
                     + '<path d="M 0 0 L 1 1"/>' + "</g>" * 5000 + "</svg>", None, "nested more than"),
    "unknown stroke": (None, None, "cat\t0,1,999\n", "does not exist"),
    "duplicate stroke": (None, None, "cat\t0,1\ndog\t1,2\n", "is in both"),
    "superscript index": (None, None, "cat\t0,\u00b2\n", "is not a stroke index"),
    "over 20 MB": ("huge.svg", lambda: '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><path d="M 0 0 L '
                   + "1" * 21_000_000 + '"/></svg>', None, "is over 20 MB"),
    "too many paths": ("many.svg", lambda: '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">'
                       + '<path d="M 0 0 L 1 1"/>' * 10_001 + "</svg>", None, "over 10,000 strokes"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_reported_and_leaves_nothing_behind(case: str, empty_scene, tmp_path: Path) -> None:
    """Refused in seconds with the reader's message: a 200 MB file once froze Blender for over 10 minutes."""
    name, text, table, message = BAD_INPUTS[case]
    svg = tmp_path / (name or "sketch.svg")
    if name is None:
        svg.write_text((next(iter(multiobject_sketches())) / "sketch.svg").read_text(), encoding="utf-8")
    elif text is not None:
        svg.write_text(text() if callable(text) else text, encoding="utf-8")  # the big ones built only when used
    objects_file = ""
    if table is not None:
        objects_file = str(tmp_path / "objects.tsv")
        Path(objects_file).write_text(table, encoding="utf-8")
    before = {kind: set(getattr(bpy.data, kind)) for kind in ("objects", "grease_pencils", "materials", "collections")}

    started = time.monotonic()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.multisketch.import_svg(filepath=str(svg), objects_file=objects_file)
    assert time.monotonic() - started < 5

    after = {kind: set(getattr(bpy.data, kind)) for kind in before}
    assert after == before
    assert not scene_model.sketch_collections(empty_scene)


def test_file_import_menu_and_dropping_an_svg_on_the_viewport_reach_the_importer(empty_scene) -> None:
    ours = [draw for draw in bpy.types.TOPBAR_MT_file_import.draw._draw_funcs if draw.__module__ == importer.__name__]
    assert len(ours) == 1
    drawn: list = []
    ours[0](
        SimpleNamespace(layout=SimpleNamespace(operator=lambda idname, **options: drawn.append((idname, options)))),
        bpy.context,
    )
    assert drawn == [("multisketch.import_svg", {"text": "MultiSketch Sketch (.svg)"})]

    handler = bpy.types.MULTISKETCH_FH_svg
    assert handler.bl_import_operator == "multisketch.import_svg" and ".svg" in handler.bl_file_extensions
    areas = {area.type: area for area in bpy.context.window.screen.areas}
    for kind, accepted in (("VIEW_3D", True), ("PROPERTIES", False)):
        with bpy.context.temp_override(area=areas[kind]):
            assert handler.poll_drop(bpy.context) is accepted


def test_names_over_blenders_limit_stay_two_objects_and_reach_the_job_apart(empty_scene, tmp_path) -> None:
    """Blender keeps 255 bytes of a name: two long names alike in those stay two objects, each its strokes."""
    svg = tmp_path / "long.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                   '<path d="M 10 10 L 40 40"/><path d="M 60 60 L 90 90"/></svg>', encoding="utf-8")  # fmt: skip
    common = "the small brown dog that runs along the fence at the end of the garden " * 4  # 284 bytes
    table = tmp_path / "objects.tsv"
    table.write_text(f"{common} on the left\t0\n{common} on the right\t1\n", encoding="utf-8")
    sketch = importer.import_sketch(bpy.context, str(svg), str(table))
    objects = _objects(sketch)
    assert len(objects) == 2 and all(len(name.encode()) <= 255 for name in objects)
    assert sorted(scene_model.source_strokes(ob) for ob in objects.values()) == [[0], [1]]
    run_settings = addon_module("run_settings").run_settings
    bpy.context.scene.multisketch.prompt = "two dogs run"
    spec = addon_module("job_export").export_job(sketch, tmp_path / "job", run_settings(bpy.context)).spec
    assert sorted(obj.strokes for obj in spec.objects) == [[0], [1]] and len({o.name for o in spec.objects}) == 2


def test_multi_byte_group_ids_long_or_short_become_objects_apart(empty_scene, tmp_path: Path) -> None:
    """A `<g id>` of over 63 bytes in multi-byte characters was refused with a misleading message."""
    names = ["\u00e9" * 40, "\u00fc" * 140 + "a", "\u00fc" * 140 + "b"]  # 80 bytes; two of 281, alike in 255
    groups = "".join(f'<g id="{name}"><path d="M {10 * i} 10 L 40 40"/></g>' for i, name in enumerate(names))
    svg = tmp_path / "names.svg"
    svg.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">{groups}</svg>', encoding="utf-8")
    objects = _objects(importer.import_sketch(bpy.context, str(svg)))
    assert names[0] in objects and all(len(name.encode()) <= 255 for name in objects)
    assert sorted(scene_model.source_strokes(ob) for ob in objects.values()) == [[0], [1], [2]]
