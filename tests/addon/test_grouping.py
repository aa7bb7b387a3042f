"""Grouping strokes into objects by hand and by suggestion, against the real bpy module."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from tests.addon.conftest import addon_module
from tests.conftest import REPO

scene_model = addon_module("scene_model")
grouping = addon_module("grouping")
importer = addon_module("importer")

STROKE_ATTRIBUTES = ("position", "handle_left", "handle_right", "handle_type_left", "handle_type_right", "radius")
STROKE_ATTRIBUTES += ("opacity", "vertex_color", "cyclic", "curve_type")


def _objects(sketch: bpy.types.Collection) -> dict[str, bpy.types.Object]:
    return {c.name: scene_model.drawing_object(c) for c in scene_model.object_collections(sketch)}


def _stroke(ob: bpy.types.Object, index: int) -> dict[str, np.ndarray | str]:
    """Everything about one stroke of an object's rest drawing, with its material by name."""
    drawing = scene_model.rest_drawing(ob)
    offsets = scene_model.stroke_offsets(drawing)
    values: dict[str, np.ndarray | str] = {}
    for name in STROKE_ATTRIBUTES:
        attribute = drawing.attributes[name]
        data = scene_model.read_attribute(attribute)
        values[name] = data[offsets[index] : offsets[index + 1]] if attribute.domain == "POINT" else data[index]
    material = scene_model.read_attribute(drawing.attributes["material_index"])[index]
    values["material"] = ob.data.materials[int(material)].name
    return values


def _select(ob: bpy.types.Object, strokes: list[int]) -> None:
    drawing = scene_model.rest_drawing(ob)
    scene_model.deselect_all(drawing)
    flags = np.zeros(len(drawing.strokes), bool)
    flags[strokes] = True
    scene_model.write_attribute(drawing.attributes[".selection"], flags)


def _deselect_everything(sketch: bpy.types.Collection) -> None:
    for ob in scene_model.drawing_objects(sketch):
        scene_model.deselect_all(scene_model.rest_drawing(ob))


def _assert_each_path_in_one_place(sketch: bpy.types.Collection, count: int) -> None:
    owned = [i for ob in scene_model.drawing_objects(sketch) for i in scene_model.source_strokes(ob)]
    assert sorted(owned) == list(range(count))
    for ob in scene_model.drawing_objects(sketch):
        assert len(scene_model.source_strokes(ob)) == len(scene_model.rest_drawing(ob).strokes)


def test_new_object_takes_the_selected_strokes_with_every_attribute(imported_sketch) -> None:
    name, ob = next(iter(_objects(imported_sketch).items()))
    drawing = scene_model.rest_drawing(ob)
    count = sum(len(scene_model.source_strokes(o)) for o in scene_model.drawing_objects(imported_sketch))
    # Make the strokes to move unlike the rest: another material, colour, width, closed.
    second = bpy.data.materials.new("Second ink")
    bpy.data.materials.create_gpencil_data(second)
    ob.data.materials.append(second)
    offsets = scene_model.stroke_offsets(drawing)
    drawing.attributes.get("vertex_color") or drawing.attributes.new("vertex_color", "FLOAT_COLOR", "POINT")
    drawing.attributes.get("material_index") or drawing.attributes.new("material_index", "INT", "CURVE")
    for attribute, stroke, value in (("radius", 1, 0.02), ("opacity", 3, 0.5), ("vertex_color", 3, (1, 0, 0, 1))):
        data = scene_model.read_attribute(drawing.attributes[attribute])
        data[offsets[stroke] : offsets[stroke + 1]] = value
        scene_model.write_attribute(drawing.attributes[attribute], data)
    for attribute, value in (("material_index", len(ob.data.materials) - 1), ("cyclic", True)):
        data = scene_model.read_attribute(drawing.attributes[attribute])
        data[1] = value
        scene_model.write_attribute(drawing.attributes[attribute], data)
    before = [_stroke(ob, i) for i in (1, 3)]
    sources = scene_model.source_strokes(ob)
    _deselect_everything(imported_sketch)
    _select(ob, [1, 3])

    bpy.ops.multisketch.new_object(name="hand")

    objects = _objects(imported_sketch)
    hand = objects["hand"]
    assert hand.users_collection[0].name in imported_sketch.children
    assert scene_model.source_strokes(hand) == [sources[1], sources[3]]
    assert scene_model.source_strokes(objects[name]) == [s for i, s in enumerate(sources) if i not in (1, 3)]
    for index, expected in enumerate(before):
        moved = _stroke(hand, index)
        assert moved["material"] == expected["material"]
        for attribute in STROKE_ATTRIBUTES:
            assert np.array_equal(moved[attribute], expected[attribute]), attribute
    assert list(hand[scene_model.CANVAS_KEY]) == list(ob[scene_model.CANVAS_KEY])
    assert scene_model.selected_strokes(scene_model.rest_drawing(hand)) == []
    _assert_each_path_in_one_place(imported_sketch, count)


def test_assign_moves_selected_strokes_into_an_object_or_back_to_the_background(imported_sketch) -> None:
    (a, ob_a), (b, ob_b), (c, ob_c) = sorted(_objects(imported_sketch).items())
    count = sum(len(scene_model.source_strokes(o)) for o in scene_model.drawing_objects(imported_sketch))
    moving = [scene_model.source_strokes(ob_a)[0], *scene_model.source_strokes(ob_b)[:2]]
    c_before = scene_model.source_strokes(ob_c)
    _deselect_everything(imported_sketch)
    _select(ob_a, [0])
    _select(ob_b, [0, 1])

    bpy.ops.multisketch.assign_to_object(target=c)

    assert sorted(scene_model.source_strokes(ob_c)) == sorted(c_before + moving)
    assert not set(moving) & set(scene_model.source_strokes(ob_a) + scene_model.source_strokes(ob_b))
    _assert_each_path_in_one_place(imported_sketch, count)

    last = len(scene_model.rest_drawing(ob_c).strokes) - 1
    stroke = scene_model.source_strokes(ob_c)[last]
    _deselect_everything(imported_sketch)
    _select(ob_c, [last])
    bpy.ops.multisketch.assign_to_object(target=grouping.BACKGROUND)

    background = scene_model.background_object(imported_sketch)
    assert scene_model.source_strokes(background) == [stroke]
    assert list(background[scene_model.CANVAS_KEY]) == list(ob_c[scene_model.CANVAS_KEY])
    _assert_each_path_in_one_place(imported_sketch, count)


def test_in_edit_mode_only_the_edited_objects_selection_counts(imported_sketch) -> None:
    (a, ob_a), (b, ob_b), _ = sorted(_objects(imported_sketch).items())
    for ob in scene_model.drawing_objects(imported_sketch):  # no selection data: everything counts as selected
        drawing = scene_model.rest_drawing(ob)
        drawing.attributes.remove(drawing.attributes[".selection"])
    for ob in bpy.context.view_layer.objects:
        ob.select_set(ob == ob_a)
    bpy.context.view_layer.objects.active = ob_a
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.grease_pencil.select_all(action="DESELECT")
    drawing = scene_model.rest_drawing(ob_a)
    selection = drawing.attributes[".selection"]
    flags = np.zeros(len(selection.data), bool)
    offsets = scene_model.stroke_offsets(drawing)
    flags[offsets[2] if selection.domain == "POINT" else 2] = True  # one point of stroke 2
    scene_model.write_attribute(selection, flags)
    wanted = scene_model.source_strokes(ob_a)[2]
    b_before = scene_model.source_strokes(ob_b)

    bpy.ops.multisketch.new_object(name="picked")
    bpy.ops.object.mode_set(mode="OBJECT")

    assert scene_model.source_strokes(_objects(imported_sketch)["picked"]) == [wanted]
    assert scene_model.source_strokes(ob_b) == b_before


def test_grouping_without_a_selection_or_a_sketch_says_what_to_do(empty_scene, imported_sketch) -> None:
    _deselect_everything(imported_sketch)
    # Greyed out in the sidebar, saying why (Blender shows the poll message as the button's tooltip).
    assert not bpy.ops.multisketch.new_object.poll() and not bpy.ops.multisketch.assign_to_object.poll()
    with pytest.raises(RuntimeError, match="No strokes selected"):
        bpy.ops.multisketch.new_object(name="nothing")
    with pytest.raises(RuntimeError, match="not an object of the sketch"):
        bpy.ops.multisketch.remove_object(name="no such object")
    assert "nothing" not in bpy.data.collections


def test_removing_an_object_gives_its_strokes_to_the_background(imported_sketch) -> None:
    (a, ob_a), (b, ob_b), _ = sorted(_objects(imported_sketch).items())
    strokes_a, strokes_b = scene_model.source_strokes(ob_a), scene_model.source_strokes(ob_b)
    drawing_name = ob_a.name

    bpy.ops.multisketch.remove_object(name=a)

    assert a not in bpy.data.collections
    assert drawing_name not in bpy.data.objects
    assert len(bpy.data.grease_pencils) == len(scene_model.drawing_objects(imported_sketch))
    assert scene_model.source_strokes(scene_model.background_object(imported_sketch)) == strokes_a
    assert scene_model.source_strokes(ob_b) == strokes_b


def _line(x0: float, y0: float, x1: float, y1: float) -> str:
    return f'<path d="M {x0} {y0} L {x1} {y1}" stroke="black" fill="none" stroke-width="2"/>'


# Three drawings far apart: a square of four touching sides, a zigzag, a star of crossing lines.
CLUSTERS = [
    [(20, 20, 60, 20), (60, 20, 60, 60), (60, 60, 20, 60), (20, 60, 20, 20)],
    [(150, 30, 170, 60), (170, 60, 190, 30), (190, 30, 210, 60), (210, 60, 230, 30)],
    [(80, 180, 140, 240), (80, 240, 140, 180), (110, 175, 110, 245), (75, 210, 145, 210)],
]


def test_suggestion_puts_touching_strokes_together_and_can_be_redone(empty_scene, tmp_path: Path) -> None:
    order = [(cluster, line) for line in range(4) for cluster in range(3)]  # interleaved in the document
    svg = tmp_path / "clusters.svg"
    body = "".join(_line(*CLUSTERS[cluster][line]) for cluster, line in order)
    svg.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">{body}</svg>', encoding="utf-8")
    sketch = importer.import_sketch(bpy.context, str(svg))
    assert not scene_model.object_collections(sketch)
    truth = sorted(sorted(i for i, (cluster, _) in enumerate(order) if cluster == c) for c in range(3))

    bpy.ops.multisketch.suggest_grouping()

    groups = sorted(sorted(scene_model.source_strokes(ob)) for ob in _objects(sketch).values())
    assert groups == truth
    assert len(scene_model.rest_drawing(scene_model.background_object(sketch)).strokes) == 0
    with pytest.raises(RuntimeError, match="already belongs to an object"):
        bpy.ops.multisketch.suggest_grouping()

    bpy.ops.multisketch.suggest_grouping(replace=True)

    assert sorted(sorted(scene_model.source_strokes(ob)) for ob in _objects(sketch).values()) == truth
    assert len(bpy.data.grease_pencils) == len(scene_model.drawing_objects(sketch))


def _world_points(sketch: bpy.types.Collection) -> np.ndarray:
    """Every rest-drawing point and handle of the sketch in world space, sorted: where its strokes are seen."""
    found = []
    for ob in scene_model.drawing_objects(sketch):
        matrix = np.array(ob.matrix_world)
        attributes = scene_model.rest_drawing(ob).attributes
        for name in ("position", "handle_left", "handle_right"):
            found.append(scene_model.read_attribute(attributes[name]) @ matrix[:3, :3].T + matrix[:3, 3])
    points = np.concatenate(found)
    return points[np.lexsort(points.T[::-1])]


def test_regrouping_a_sketch_imported_away_from_the_origin_moves_no_stroke(empty_scene) -> None:
    """New objects (and a new background) sit where the sketch sits, so strokes moved into them stay put."""
    empty_scene.cursor.location = (3.0, -2.0, 1.5)
    folder = REPO / "examples" / "kids_and_kite"
    sketch = importer.import_sketch(bpy.context, str(folder / "sketch.svg"), str(folder / "objects.tsv"))
    before = _world_points(sketch)
    assert np.allclose((before.min(axis=0) + before.max(axis=0)) / 2, (3.0, -2.0, 1.5), atol=0.3)

    ob = next(iter(_objects(sketch).values()))
    _deselect_everything(sketch)
    _select(ob, [0, 1])
    assert bpy.ops.multisketch.new_object(name="hand") == {"FINISHED"}
    _deselect_everything(sketch)
    _select(_objects(sketch)["hand"], [0])
    assert bpy.ops.multisketch.assign_to_object(target=grouping.BACKGROUND) == {"FINISHED"}  # makes a background
    assert bpy.ops.multisketch.suggest_grouping(replace=True) == {"FINISHED"}  # every object made anew

    assert np.allclose(_world_points(sketch), before, atol=1e-6)
    for drawing in scene_model.drawing_objects(sketch):
        assert tuple(drawing.location) == (3.0, -2.0, 1.5)


def test_with_two_sketches_the_sidebar_grouping_and_animate_work_on_the_same_one(empty_scene) -> None:
    from tests.addon.conftest import import_shared_sketch

    ui, job_export = addon_module("ui"), addon_module("job_export")
    first, second = import_shared_sketch("airplane1"), import_shared_sketch("cat11")

    def everyone() -> set:
        return {ui.active_sketch(bpy.context), grouping.current_sketch(bpy.context),
                job_export.sketch_to_animate(bpy.context)}  # fmt: skip

    bpy.context.view_layer.objects.active = scene_model.drawing_objects(second)[0]
    assert everyone() == {second}  # nothing chosen in the sidebar: the active stroke object's sketch
    bpy.context.scene.multisketch.sketch = first
    assert everyone() == {first}  # the sidebar's choice wins over a stroke of the other sketch that is active
    bpy.context.scene.multisketch.sketch = None
    bpy.context.view_layer.objects.active = None
    assert ui.active_sketch(bpy.context) is None
    names = f"'{first.name}', '{second.name}'"
    with pytest.raises(grouping.GroupingError, match=f"several sketches \\({names}\\)"):
        grouping.current_sketch(bpy.context)
    with pytest.raises(job_export.JobExportError, match="choose one in the MultiSketch sidebar"):
        job_export.sketch_to_animate(bpy.context)
