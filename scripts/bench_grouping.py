"""How well the suggested grouping finds a sketch's objects: adjusted Rand index against `objects.tsv`.

For every sketch folder (`sketch.svg` + `objects.tsv`) of a data set, imports the SVG without its table
into a fresh scene (real bpy), runs "Suggest Grouping", and compares the suggested objects with the
table's. Strokes in no object (background) count as a class of their own on either side.

    python scripts/bench_grouping.py ../shared/datasets/multiobject
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "bl_ext.dev.multisketch_addon"


def adjusted_rand_index(truth: np.ndarray, found: np.ndarray) -> float:
    """Hubert and Arabie's adjusted Rand index of two labelings of the same items."""
    _, truth = np.unique(truth, return_inverse=True)
    _, found = np.unique(found, return_inverse=True)
    table = np.zeros((truth.max() + 1, found.max() + 1))
    np.add.at(table, (truth, found), 1)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    both, rows, columns = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * columns / pairs(np.array([len(truth)]))
    best = (rows + columns) / 2
    return 1.0 if best == expected else (both - expected) / (best - expected)


def _load_addon():
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="multisketch-bench-"))
    import bpy

    addon_utils = importlib.import_module("addon_utils")  # on the path once bpy is loaded
    preferences = bpy.context.preferences
    if not any(repo.module == "dev" for repo in preferences.extensions.repos):
        preferences.extensions.repos.new(name="dev", module="dev", custom_directory=str(REPO), source="USER")
    addon_utils.enable(PACKAGE, default_set=True)
    modules = (sys.modules[f"{PACKAGE}.{name}"] for name in ("scene_model", "importer", "contract"))
    return bpy, *modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="folder of sketch folders, each with sketch.svg and objects.tsv")
    folders = sorted(p for p in parser.parse_args().dataset.iterdir() if (p / "objects.tsv").is_file())
    if not folders:
        parser.error("no sketch folders with sketch.svg and objects.tsv there")
    bpy, scene_model, importer, contract = _load_addon()

    print(f"{'sketch':16} {'strokes':>7} {'objects':>7} {'groups':>6} {'ARI':>6} {'seconds':>7}")
    scores, times = [], []
    for folder in folders:
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        sketch = importer.import_sketch(bpy.context, str(folder / "sketch.svg"))
        count = len(contract.svg.read_svg(folder / "sketch.svg").strokes)
        start = time.perf_counter()
        bpy.ops.multisketch.suggest_grouping()
        seconds = time.perf_counter() - start
        found = np.full(count, -1)
        groups = scene_model.object_collections(sketch)
        for label, collection in enumerate(groups):
            found[scene_model.source_strokes(scene_model.drawing_object(collection))] = label
        table = contract.tables.read_stroke_table(folder / "objects.tsv", count)
        truth = np.full(count, -1)
        for label, indices in enumerate(table.values()):
            truth[indices] = label
        score = adjusted_rand_index(truth, found)
        scores.append(score)
        times.append(seconds)
        print(f"{folder.name:16} {count:7d} {len(table):7d} {len(groups):6d} {score:6.3f} {seconds:7.3f}")
    print(f"{'mean':16} {'':7} {'':7} {'':6} {np.mean(scores):6.3f} {np.mean(times):7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
