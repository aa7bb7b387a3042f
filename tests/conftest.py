"""Shared test fixtures: where the real sketches are, and the repository root."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"
MULTIOBJECT = DATASETS / "multiobject"


def multiobject_sketches() -> list[Path]:
    """Every sketch folder of the shared multi-object set (sorted, so test ids are stable)."""
    return sorted(p for p in MULTIOBJECT.iterdir() if (p / "sketch.svg").is_file())


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
