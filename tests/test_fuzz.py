"""Random hostile input for the readers every file passes through: each either reads it into finite numbers
within the limits or refuses it with a UserError (one line for the user), never with another exception."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import protocol, svg
from server.errors import UserError
from server.tables import read_stroke_table, read_trajectories

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["1e308", "-1e400", "1e-400", "nan", "inf", ".5.5", "1e", "--1", "0x10", "1,,2", "٣"]),
)
COMMANDS = st.sampled_from(list("MmLlHhVvCcSsQqTtAaZz") + ["", " ", ",", "\t", "\n"])
PATH_DATA = st.lists(st.one_of(COMMANDS, NUMBERS), max_size=40).map(" ".join)
TRANSFORMS = st.one_of(
    st.just(""),
    st.builds(
        lambda n, a: f"{n}({a})",
        st.sampled_from(["matrix", "translate", "scale", "rotate", "skewX", "x"]),
        st.lists(NUMBERS, max_size=7).map(",".join),
    ),  # fmt: skip
)


def _check_document(document: svg.Document) -> None:
    assert all(math.isfinite(v) and v > 0 for v in (document.width, document.height))
    for shape in document.shapes:
        assert math.isfinite(shape.width) and 0 <= shape.width <= svg.MAX_COORDINATE
        for sub in shape.subpaths:
            assert all(math.isfinite(v) and abs(v) <= svg.MAX_COORDINATE for p in sub.points for v in p)


@FUZZ
@given(
    paths=st.lists(st.tuples(PATH_DATA, TRANSFORMS, st.one_of(st.none(), NUMBERS)), min_size=1, max_size=5),
    view_box=st.one_of(st.none(), st.lists(NUMBERS, min_size=0, max_size=5).map(" ".join)),
    depth=st.integers(0, 3),
)
def test_the_svg_reader_reads_finite_geometry_or_refuses_in_one_line(tmp_path: Path, paths, view_box, depth) -> None:
    elements = "".join(
        f'<path d="{d}" transform="{t}"' + (f' stroke-width="{w}"' if w is not None else "") + "/>" for d, t, w in paths
    )
    size = f'viewBox="{view_box}"' if view_box is not None else 'width="256" height="256"'
    text = f'<svg xmlns="http://www.w3.org/2000/svg" {size}>' + "<g>" * depth + elements + "</g>" * depth + "</svg>"
    path = tmp_path / "fuzz.svg"
    path.write_text(text, encoding="utf-8")
    try:
        document = svg.read_svg(path)
    except UserError as exc:
        assert "\n" not in str(exc).strip()
        return
    _check_document(document)


@FUZZ
@given(st.binary(max_size=300))
def test_the_svg_reader_refuses_arbitrary_bytes_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "noise.svg"
    path.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">' + data)
    try:
        _check_document(svg.read_svg(path))
    except UserError:
        pass


TABLE_TEXT = st.lists(
    st.tuples(
        st.text(max_size=8),
        st.sampled_from(["\t", "", " ", "\t\t"]),
        st.lists(st.one_of(st.integers(-5, 40).map(str), st.text(max_size=3)), max_size=6).map(",".join),
    ),
    max_size=6,
).map(lambda rows: "\n".join(f"{name}{tab}{rest}" for name, tab, rest in rows))


@FUZZ
@given(text=TABLE_TEXT, bom=st.booleans())
def test_the_stroke_table_reader_gives_valid_indices_or_refuses(tmp_path: Path, text: str, bom: bool) -> None:
    path = tmp_path / "objects.tsv"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8", "surrogatepass"))
    try:
        table = read_stroke_table(path, 30)
    except UserError:
        return
    owned = [index for indices in table.values() for index in indices]
    assert all(0 <= index < 30 for index in owned) and len(owned) == len(set(owned))
    assert all(name and name == name.strip() and not name.startswith("\ufeff") for name in table)


@FUZZ
@given(text=st.text(alphabet="ab\t[],.0123456789-e \n#", max_size=120))
def test_the_trajectory_reader_gives_finite_boxes_or_refuses(tmp_path: Path, text: str) -> None:
    path = tmp_path / "trajectories.tsv"
    path.write_text(text, encoding="utf-8")
    try:
        plans = read_trajectories(path)
    except UserError:
        return
    assert all(math.isfinite(v) for boxes in plans.values() for box in boxes for v in box)


def _valid_result() -> dict:
    chain = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    frame = {"translate": [1.0, 2.0], "rotate": 0.1, "shear": [0.0, 0.0], "scale": [1.0, 1.0],
             "matrix": [[1.0, 0.0], [0.0, 1.0]], "points": [[chain]]}  # fmt: skip
    obj = {"static": False, "strokes": [0], "center": [1.5, 1.5], "frames": [frame, json.loads(json.dumps(frame))]}
    return {"version": 1, "canvas": [9, 9], "frames": 2, "fps": 8, "stroke_count": 1, "background": [],
            "objects": {"a": obj}}  # fmt: skip


LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**9), 10**9), st.floats(), st.text(max_size=3), st.just([]), st.just({})
)


@FUZZ
@given(path=st.lists(st.integers(0, 6), min_size=1, max_size=7), value=LEAVES)
def test_a_damaged_result_is_refused_by_name_or_still_holds_only_finite_numbers(path: list[int], value) -> None:
    result = _valid_result()
    node = result
    for step in path[:-1]:  # walk to a random place in the document, then replace what is there
        children = list(node.values()) if isinstance(node, dict) else node
        if (
            not isinstance(children, list)
            or not children
            or not isinstance(children[step % len(children)], (dict, list))
        ):
            break
        node = children[step % len(children)]
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if not keys:
        return
    node[keys[path[-1] % len(keys)]] = value
    try:
        protocol.check_result(result)
    except ValueError:
        return
    numbers = json.dumps(result)
    assert "NaN" not in numbers and "Infinity" not in numbers
