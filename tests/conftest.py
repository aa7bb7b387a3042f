"""Shared test fixtures: where the real sketches are, and the repository root.

Every test, and every engine process a test starts, computes on one CPU thread: the tensors are tiny, so a
second thread only adds hand-over costs, and on a busy machine it can slow a test down many times over.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"
MULTIOBJECT = DATASETS / "multiobject"
SINGLEOBJECT = DATASETS / "singleobject"  # Live-Sketch's sketches: the learned prior never saw them


def multiobject_sketches() -> list[Path]:
    """Every sketch folder of the shared multi-object set (sorted, so test ids are stable); none without it."""
    if not MULTIOBJECT.is_dir():
        return []
    return sorted(p for p in MULTIOBJECT.iterdir() if (p / "sketch.svg").is_file())


needs_shared_sketches = pytest.mark.skipif(
    not MULTIOBJECT.is_dir(), reason=f"needs the shared sketch set in {MULTIOBJECT}"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without the shared sketch set (a user's checkout), its tests are skipped rather than failed."""
    if MULTIOBJECT.is_dir():
        return
    shared_fixtures = {"imported_sketch", "sketch_for_tiny_job"}
    for item in items:
        module = getattr(item, "module", None)
        names_the_set = getattr(module, "MULTIOBJECT", None) == MULTIOBJECT or any(
            hasattr(module, helper) for helper in ("multiobject_sketches", "import_shared_sketch")
        )
        if names_the_set or shared_fixtures & set(getattr(item, "fixturenames", ())):
            item.add_marker(needs_shared_sketches)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
