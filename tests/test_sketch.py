"""Loading SVG sketches: what the engine sees of a user's file, and what it says about a bad one."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from server.errors import UserError
from server.job import frame_svg
from server.sketch import Sketch, default_objects, load_svg
from server.svg import MAX_STROKES
from server.tables import read_stroke_table
from tests.conftest import REPO, multiobject_sketches

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
SVG_NS = "{http://www.w3.org/2000/svg}"


def _write(tmp_path: Path, body: str, root: str = 'width="100" height="100"', name: str = "sketch.svg") -> Path:
    path = tmp_path / name
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" {root}>{body}</svg>', encoding="utf-8")
    return path


def _cubic(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    p0, p1, p2, p3 = points
    t = t[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _sampled(sketch: Sketch, index: int = 0) -> np.ndarray:
    """Points along every cubic segment of one stroke."""
    t = np.linspace(0, 1, 50)
    return np.concatenate([_cubic(segment, t) for segment in sketch.segments([index])])


@pytest.mark.parametrize("folder", multiobject_sketches(), ids=lambda p: p.name)
def test_shared_sketch_loads_every_path_with_its_exact_points(folder: Path) -> None:
    svg = folder / "sketch.svg"
    elements = [e for e in ElementTree.parse(svg).iter() if e.tag == f"{SVG_NS}path"]
    sketch = load_svg(svg)
    assert (sketch.width, sketch.height) == (256, 256)
    assert len(sketch.strokes) == len(elements)
    for stroke, element in zip(sketch.strokes, elements, strict=True):
        expected = np.array([float(n) for n in NUMBER.findall(element.get("d"))]).reshape(-1, 2)
        assert len(stroke.subpaths) == 1
        np.testing.assert_array_equal(stroke.subpaths[0], expected)
        assert stroke.width == float(element.get("stroke-width"))
    assert [obj.strokes for obj in default_objects(sketch)] == [list(range(len(elements)))]


def test_lines_and_quadratics_become_the_same_curves_as_cubics(tmp_path: Path) -> None:
    sketch = load_svg(_write(tmp_path, '<path d="M 10 10 L 40 70 Q 90 10 60 90"/>'))
    line, quadratic = sketch.segments([0])
    np.testing.assert_allclose(line, [[10, 10], [20, 30], [30, 50], [40, 70]])
    t = np.linspace(0, 1, 11)[:, None]
    q0, q1, q2 = np.array([40, 70]), np.array([90, 10]), np.array([60, 90])
    exact = (1 - t) ** 2 * q0 + 2 * (1 - t) * t * q1 + t**2 * q2
    np.testing.assert_allclose(_cubic(quadratic, t[:, 0]), exact, atol=1e-9)
    assert sketch.strokes[0].subpaths[0].shape == (7, 2)  # one chain: 2 segments share their joint


@pytest.mark.parametrize("scale", [1, 40])
def test_arc_is_drawn_within_a_tenth_of_a_pixel(tmp_path: Path, scale: int) -> None:
    # A half circle through the top, also blown up 40x by a group transform (the tolerance is in canvas px).
    body = f'<g transform="scale({scale})"><path d="M 10 50 A 40 40 0 0 1 90 50"/></g>'
    sketch = load_svg(_write(tmp_path, body, root='width="4000" height="4000"'))
    points = _sampled(sketch) / scale
    radial_error = np.abs(np.hypot(points[:, 0] - 50, points[:, 1] - 50) - 40)
    assert radial_error.max() * scale < 0.1
    assert points[:, 1].min() == pytest.approx(10, abs=0.1 / scale)
    np.testing.assert_allclose(sketch.strokes[0].subpaths[0][[0, -1]] / scale, [[10, 50], [90, 50]])


def test_arc_ellipse_error_is_small_in_canvas_pixels(tmp_path: Path) -> None:
    sketch = load_svg(_write(tmp_path, '<path d="M 0 50 A 50 25 0 1 1 100 50"/>', root='viewBox="0 0 100 100"'))
    points = _sampled(sketch)
    # on the ellipse (x-50)^2/50^2 + (y-50)^2/25^2 = 1 the level is 1; a level off by e is at most 50 e px away
    level = np.hypot((points[:, 0] - 50) / 50, (points[:, 1] - 50) / 25)
    assert np.abs(level - 1).max() * 50 < 0.1  # at most the larger radius per unit of level
    assert points[:, 1].min() == pytest.approx(25, abs=0.05)


def test_group_and_path_transforms_compose(tmp_path: Path) -> None:
    body = (
        '<g transform="translate(10 20)"><g transform="rotate(90)">'
        '<path transform="scale(2)" d="M 1 0 L 5 0" stroke-width="1.5"/></g></g>'
    )
    sketch = load_svg(_write(tmp_path, body))
    # (1, 0) -> scale 2 -> (2, 0) -> rotate 90 (y down: towards +y) -> (0, 2) -> translate -> (10, 22)
    np.testing.assert_allclose(sketch.segments([0])[0][[0, 3]], [[10, 22], [10, 30]], atol=1e-9)
    assert sketch.strokes[0].width == pytest.approx(3.0)


def test_viewbox_gives_canvas_pixels_whatever_the_display_size(tmp_path: Path) -> None:
    body = '<path d="M 60 70 C 80 70 100 90 120 110" stroke-width="3"/>'
    plain = load_svg(_write(tmp_path, body, root='viewBox="50 50 256 256"', name="a.svg"))
    doubled = load_svg(_write(tmp_path, body, root='width="512" height="512" viewBox="50 50 256 256"', name="b.svg"))
    letterboxed = load_svg(
        _write(tmp_path, body, root='width="10cm" height="3cm" viewBox="50 50 256 256"', name="c.svg")
    )
    for sketch in (plain, doubled, letterboxed):
        assert (sketch.width, sketch.height) == (256, 256)
        np.testing.assert_allclose(sketch.strokes[0].subpaths[0], [[10, 20], [30, 20], [50, 40], [70, 60]])
        assert sketch.strokes[0].width == 3


def test_size_without_viewbox_is_read_in_pixels(tmp_path: Path) -> None:
    sketch = load_svg(_write(tmp_path, '<path d="M 1 1 L 2 2"/>', root='width="2in" height="96pt"'))
    assert (sketch.width, sketch.height) == pytest.approx((192, 128))


def test_each_moveto_starts_a_subpath_of_the_same_stroke(tmp_path: Path) -> None:
    # The second sub-path starts exactly where the first ends; the third is relative to the closed start.
    sketch = load_svg(_write(tmp_path, '<path d="M 10 10 L 20 10 M 20 10 L 20 20 L 10 20 Z m 5 5 h 10"/>'))
    assert len(sketch.strokes) == 1
    first, second, third = sketch.strokes[0].subpaths
    assert first.shape == (4, 2)
    assert second.shape == (10, 2)  # two lines and the closing line back to (20, 10)
    np.testing.assert_allclose(second[-1], [20, 10])
    np.testing.assert_allclose(third[[0, -1]], [[25, 15], [35, 15]])
    assert len(sketch.segments([0])) == 5


def test_stroke_width_comes_from_style_attribute_or_group(tmp_path: Path) -> None:
    body = (
        '<g style="stroke-width:4px"><path d="M 0 0 L 1 1"/>'
        '<path d="M 0 0 L 1 1" stroke-width="2" style="fill:none; stroke-width: 5"/>'
        '<g transform="scale(3)"><path d="M 0 0 L 1 1"/></g></g>'
        '<path d="M 0 0 L 1 1"/><path d="M 0 0 L 1 1" stroke-width="1mm"/>'
    )
    sketch = load_svg(_write(tmp_path, body))
    widths = [stroke.width for stroke in sketch.strokes]
    assert widths == pytest.approx([4, 5, 12, 1, 96 / 25.4])
    np.testing.assert_allclose(sketch.segment_widths([1, 2]), [5, 12])


def test_groups_become_objects_and_other_shapes_are_counted(tmp_path: Path) -> None:
    body = (
        '<path d="M 0 0 L 1 1"/>'
        '<g id="cat"><path d="M 0 0 L 2 2"/><g id="tail"><path d="M 0 0 L 3 3"/></g><rect width="5" height="5"/></g>'
        '<g><g id="ball"><path d="M 0 0 L 4 4"/><circle r="3"/><circle r="4"/></g></g>'
        '<defs><path id="hidden" d="M 0 0 L 9 9"/></defs>'
    )
    sketch = load_svg(_write(tmp_path, body))
    assert len(sketch.strokes) == 4  # the <path> in <defs> is not drawn
    assert sketch.groups == {"cat": [1, 2], "ball": [3]}  # the outermost id'd group wins
    assert sketch.ignored_shapes == {"rect": 1, "circle": 2}
    objects = default_objects(sketch)
    assert [(o.name, o.strokes, o.static) for o in objects] == [("cat", [1, 2], False), ("ball", [3], False)]


def test_path_without_geometry_keeps_the_stroke_numbering(tmp_path: Path) -> None:
    sketch = load_svg(_write(tmp_path, '<path d="M 5 5"/><path d="M 0 0 L 1 1"/>'))
    assert [len(s.subpaths) for s in sketch.strokes] == [0, 1]
    assert sketch.segments([0, 1]).shape == (1, 4, 2)


def test_frames_are_written_byte_for_byte_and_read_back_as_the_same_strokes(tmp_path: Path) -> None:
    """A frame SVG: one `<path>` per stroke, its sub-paths as "M ... C ..." at 4 decimals (the path writer the
    add-on's job sketch shares), a stroke without geometry as an empty path that keeps the numbering."""
    chain = np.array([[1, 2], [3, 4.25], [5, 6], [7, -0.00001]])
    text = frame_svg(Sketch(64, 48.5, []), [([chain, chain + 10], 2.5), ([], 1.0)])
    path = 'fill="none" stroke="black" stroke-width="{}" stroke-linecap="round" stroke-linejoin="round"/>'
    assert text == "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48.5" viewBox="0 0 64 48.5">',
        '<rect width="64" height="48.5" fill="white"/>',
        '<path d="M 1.0000 2.0000 C 3.0000 4.2500 5.0000 6.0000 7.0000 -0.0000 '
        'M 11.0000 12.0000 C 13.0000 14.2500 15.0000 16.0000 17.0000 10.0000" ' + path.format("2.5"),
        '<path d="" ' + path.format("1"),
        "</svg>\n",
    ])  # fmt: skip
    frame = tmp_path / "frame.svg"
    frame.write_text(text, encoding="utf-8")
    read = load_svg(frame)
    assert [stroke.width for stroke in read.strokes] == [2.5, 1.0] and read.strokes[1].subpaths == []
    np.testing.assert_allclose(np.stack(read.strokes[0].subpaths), [chain, chain + 10], atol=1e-4)


def _svg(body: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">{body}</svg>'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no sketch at"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ('<svg xmlns="http://www.w3.org/2000/svg"><path d="M 0 0 L 1 1"/>', "not well-formed XML (line 1"),
        ("<html><body>a page</body></html>", "root element is <html>, expected <svg>"),
        ('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "has no <path> strokes"),
        (
            '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5"/></svg>',
            "it has 1 <rect>; convert them to paths",
        ),
        (
            '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><path d="M 0 0 L 1"/></svg>',
            "stroke 0 (<path> number 1)",
        ),
        (
            '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><path d="M 0 0 L 1 1" '
            'transform="scale(2,"/></svg>',
            "a transform attribute cannot be read",
        ),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 0 10"><path d="M 0 0 L 1 1"/></svg>', "viewBox"),
        ('<svg xmlns="http://www.w3.org/2000/svg"><path d="M 0 0 L 1 1"/></svg>', "canvas size is unknown"),
        (
            '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><path d="M 0 0 L 1 1" stroke-width="2em"/>'
            "</svg>",
            "stroke-width '2em' is not a length",
        ),
        (_svg('<path d="M 1e308 10 L 20 20"/>'), "coordinates (after transforms) reach beyond"),
        (_svg('<path d="M 1e400 10 L 20 20"/>'), "coordinates (after transforms) reach beyond"),
        (_svg('<g transform="scale(1e308)"><path d="M 0 0 A 10 10 0 0 1 20 0"/></g>'), "its transform stretches"),
        (_svg('<path d="M 0 0 L 20 0" stroke-width="1e400"/>'), "stroke width (after transforms) must be from 0 to"),
        ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1e400 9"><path d="M 0 0 L 1 1"/></svg>', "canvas"),
        (_svg("<g>" * 10_000 + '<path d="M 0 0 L 1 1"/>' + "</g>" * 10_000), "nested more than"),
    ],
    ids=[
        "missing",
        "empty",
        "blank",
        "malformed",
        "not-svg",
        "no-paths",
        "only-shapes",
        "bad-path-data",
        "bad-transform",
        "bad-viewbox",
        "no-size",
        "bad-width-unit",
        "huge-coordinate",
        "infinite-coordinate",
        "huge-scale-with-arc",
        "infinite-stroke-width",
        "infinite-canvas",
        "deep-nesting",
    ],
)
def test_bad_input_says_what_is_wrong(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bad.svg"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=re.escape(message)):
        load_svg(path)


def test_a_folder_is_not_a_sketch(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a folder"):
        load_svg(tmp_path)


def test_rotation_about_a_point(tmp_path: Path) -> None:
    stroke = '<path d="M 10 10 C 30 0 60 40 80 20"/>'
    body = f'{stroke}<g transform="rotate(33 50 50)">{stroke}</g>'
    sketch = load_svg(_write(tmp_path, body))
    angle = math.radians(33)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    expected = (sketch.strokes[0].subpaths[0] - 50) @ rotation.T + 50
    np.testing.assert_allclose(sketch.strokes[1].subpaths[0], expected, atol=1e-9)


def test_stroke_tables_read_as_a_text_editor_saves_them(tmp_path: Path) -> None:
    table = tmp_path / "objects.tsv"
    table.write_bytes("\ufeffdog\t0,1\n# the ball comes next\n\n  ball \t2\n".encode())  # Notepad's BOM
    assert read_stroke_table(table, 3) == {"dog": [0, 1], "ball": [2]}
    table.write_text("dog\x1b[2J\t0\n", encoding="utf-8")  # a name that would clear the user's terminal
    with pytest.raises(UserError, match=re.escape(r"the name 'dog\x1b[2J' holds a control character")):
        read_stroke_table(table, 3)


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limit as Linux applies it")
@pytest.mark.parametrize(("paths", "segments"), [(1, 1_000_000), (200_000, 1)], ids=["one-huge-path", "many-paths"])
def test_a_giant_sketch_is_refused_quickly_within_ordinary_memory(tmp_path: Path, paths: int, segments: int) -> None:
    """Once 22 GB and the out-of-memory killer: now refused by the reader, under a 1 GB address-space cap."""
    path = tmp_path / "giant.svg"
    d = "M 0 0" + " L 1 1 L 2 0" * (segments // 2) if segments > 1 else "M 0 0 L 1 1"
    body = f'<path d="{d}"/>' * paths
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">{body}</svg>')
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
        "from server.svg import read_svg\n"
        "from server.errors import UserError\n"
        "try:\n    read_svg(sys.argv[1])\nexcept UserError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-500:]
    assert "far more than a sketch to animate" in done.stdout


def test_reading_paths_takes_time_in_proportion_to_their_number(tmp_path: Path) -> None:
    """Each path was numbered by recounting those before it: 10,000 (the limit) took 5 s, in Blender's import too."""

    def cpu_seconds(paths: int) -> float:
        sketch = _write(tmp_path, "".join(f'<path d="M {i % 90} 5 l 1 1"/>' for i in range(paths)), name=f"{paths}.svg")
        started = time.process_time()
        assert len(load_svg(sketch).strokes) == paths
        return time.process_time() - started

    tenth = min(cpu_seconds(MAX_STROKES // 10) for _ in range(2))
    limit = min(cpu_seconds(MAX_STROKES) for _ in range(2))
    assert limit < 25 * tenth, f"{tenth:.2f} s, then {limit:.2f} s for 10 times the paths"  # about 50 if quadratic


@pytest.mark.parametrize("entity", ["billion laughs", "external file"])
def test_xml_entities_that_expand_or_read_files_are_refused(entity: str, tmp_path: Path) -> None:
    """A few hundred bytes of nested entities would expand to gigabytes; an external one would read the user's file."""
    secret = tmp_path / "secret.txt"
    secret.write_text("M 0 0 L 1 1")
    if entity == "billion laughs":
        nested = "".join(f'<!ENTITY e{i + 1} "{f"&e{i};" * 10}">' for i in range(9))
        declarations, use = f'<!ENTITY e0 "laugh">{nested}', "&e9;"
    else:
        declarations, use = f'<!ENTITY e9 SYSTEM "{secret.as_uri()}">', "&e9;"
    sketch = tmp_path / "entities.svg"
    sketch.write_text(f'<?xml version="1.0"?><!DOCTYPE svg [{declarations}]>'
                      f'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><path d="M 0 0 L 5 5"/>'
                      f"<desc>{use}</desc></svg>")  # fmt: skip
    with pytest.raises(UserError, match="not well-formed XML"):
        load_svg(sketch)
