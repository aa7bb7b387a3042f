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


def multiobject_sketches() -> list[Path]:
    """Every sketch folder of the shared multi-object set (sorted, so test ids are stable)."""
    return sorted(p for p in MULTIOBJECT.iterdir() if (p / "sketch.svg").is_file())


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
