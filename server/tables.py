"""Readers for the two tab-separated tables of the multi-object sketch format.

`objects.tsv`: `name<TAB>i,j,k` per object, 0-based `<path>` indices in document order.
`trajectories.tsv`: `name<TAB>[x,y,w,h],[x,y,w,h],...` per object, a box per frame (canvas pixels).
Both are UTF-8, with or without a byte-order mark. Blank lines and lines whose first non-blank character is
`#` are comments. A name is everything before the first tab, trimmed; it may hold any character but control
characters (so that names print safely in terminals and logs). Pure Python so that the add-on reads them too.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from .errors import UserError

Box = tuple[float, float, float, float]
_BOX = re.compile(r"\[\s*([^\]]*?)\s*\]")
_INDEX = re.compile(r"[0-9]{1,9}")  # ASCII digits only ("²".isdigit() is true), and no 5,000-digit numbers


def _read_rows(path: Path, what: str) -> list[tuple[int, str, str]]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first name
    except OSError as exc:
        raise UserError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"the {what} {path} is not UTF-8 text") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, tab, rest = line.partition("\t")
        if not tab or not name.strip():
            raise UserError(f"{path}, line {number}: expected 'name<TAB>...', got {line[:60]!r}")
        if any(unicodedata.category(character) == "Cc" for character in name):
            raise UserError(f"{path}, line {number}: the name {name.strip()!r} holds a control character")
        rows.append((number, name.strip(), rest.strip()))
    return rows


def read_stroke_table(path: Path, stroke_count: int | None = None) -> dict[str, list[int]]:
    """Object name -> stroke indices, in file order.

    Rejects duplicate names, an object without indices, indices that are not integers, a stroke in
    two objects, and (when `stroke_count` is given) indices the sketch does not have.
    """
    table: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for number, name, rest in _read_rows(path, "stroke table"):
        where = f"{path}, line {number}"
        if name in table:
            raise UserError(f"{where}: object {name!r} is listed twice")
        if not rest:
            raise UserError(f"{where}: object {name!r} has no stroke indices")
        indices = []
        for token in rest.split(","):
            token = token.strip()
            if not _INDEX.fullmatch(token):
                shown = token if len(token) <= 20 else token[:20] + "..."
                raise UserError(f"{where}: {shown!r} is not a stroke index (0-based integer)")
            index = int(token)
            if index in owner:
                raise UserError(f"{where}: stroke {index} is in both {owner[index]!r} and {name!r}")
            if stroke_count is not None and index >= stroke_count:
                raise UserError(
                    f"{where}: stroke {index} does not exist "
                    f"(the sketch has {stroke_count} strokes, 0 to {stroke_count - 1})"
                )
            owner[index] = name
            indices.append(index)
        table[name] = indices
    if not table:
        raise UserError(f"the stroke table {path} names no objects")
    return table


def read_trajectories(path: Path) -> dict[str, list[Box]]:
    """Object name -> one (x, y, w, h) box per planned frame, x, y the top-left corner."""
    plan: dict[str, list[Box]] = {}
    for number, name, rest in _read_rows(path, "motion plan"):
        where = f"{path}, line {number}"
        if name in plan:
            raise UserError(f"{where}: object {name!r} is listed twice")
        boxes = []
        for match in _BOX.finditer(rest):
            try:
                values = tuple(float(v) for v in match.group(1).split(","))
            except ValueError:
                raise UserError(f"{where}: {match.group(0)!r} is not a box [x,y,w,h]") from None
            if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
                raise UserError(f"{where}: {match.group(0)!r} is not a box [x,y,w,h] with positive size")
            boxes.append(values)
        if not boxes:
            raise UserError(f"{where}: object {name!r} has no boxes")
        plan[name] = boxes
    if not plan:
        raise UserError(f"the motion plan {path} names no objects")
    return plan
