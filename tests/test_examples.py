"""The project's own example sketches: they load in the engine and their tables and prompts fit them."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from server.sketch import load_svg
from server.tables import read_stroke_table
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
FOLDERS = sorted(p for p in EXAMPLES.iterdir() if (p / "sketch.svg").is_file())


def _subprompts(folder: Path) -> list[tuple[str, list[str]]]:
    path = folder / "subprompts.tsv"
    if not path.is_file():
        return []
    rows = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [(prompt, names.split(",")) for prompt, names in rows]


def test_examples_include_a_two_object_and_a_three_object_scene() -> None:
    counts = {len(read_stroke_table(folder / "objects.tsv")) for folder in FOLDERS}
    assert {2, 3} <= counts


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_example_loads_and_its_table_covers_every_stroke(folder: Path) -> None:
    sketch = load_svg(folder / "sketch.svg")
    table = read_stroke_table(folder / "objects.tsv", stroke_count=len(sketch.strokes))
    assert (sketch.width, sketch.height) == (256, 256)
    assert len(table) >= 2
    assigned = sorted(i for strokes in table.values() for i in strokes)
    assert assigned == list(range(len(sketch.strokes))), "every stroke belongs to exactly one object"
    for stroke in sketch.strokes:
        assert stroke.width == pytest.approx(3.0)
        for subpath in stroke.subpaths:
            assert len(subpath) % 3 == 1 and len(subpath) >= 4
            assert np.all((subpath >= 0) & (subpath <= 256)), "a stroke leaves the canvas"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_example_prompts_name_its_objects(folder: Path) -> None:
    caption = (folder / "caption.txt").read_text(encoding="utf-8").strip()
    assert caption and "\n" not in caption
    objects = set(read_stroke_table(folder / "objects.tsv"))
    for prompt, names in _subprompts(folder):
        assert prompt.strip()
        assert set(names) <= objects, f"subprompts.tsv names unknown objects: {set(names) - objects}"


def test_committed_examples_are_what_the_drawing_script_draws(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "draw_examples.py"), "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    drawn = sorted(p.name for p in tmp_path.iterdir())
    assert drawn == [p.name for p in FOLDERS]
    for name in drawn:
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        match, mismatch, errors = filecmp.cmpfiles(tmp_path / name, EXAMPLES / name, files, shallow=False)
        assert not mismatch and not errors, f"{name}: {mismatch + errors} differ from the committed files"


def test_quick_demo_animates_an_example_and_saves_blend_and_gif(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--quick", "--example", "dog_and_ball"]
        + ["--steps", "1", "--frames", "3", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "dog_and_ball.blend").is_file()
    assert len(iio.imread(tmp_path / "dog_and_ball.gif", index=None)) == 3
    # The demo reopens the saved file and lists each Grease Pencil object's drawings and F-curves:
    # every object of the example must come back animated, one drawing per frame plus F-curves.
    animated = []
    for line in done.stdout.splitlines():
        if line.endswith(" F-curves"):
            drawings, curves = (int(word) for word in line.rpartition(": ")[2].split() if word.isdigit())
            animated += [line] if drawings == 3 and curves > 0 else []
    assert len(animated) == len(read_stroke_table(EXAMPLES / "dog_and_ball" / "objects.tsv")), done.stdout[-2000:]
