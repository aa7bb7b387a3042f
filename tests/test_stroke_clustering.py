"""The grouping suggestion's clustering, without Blender: the module is numpy only and is loaded by its path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parent.parent / "multisketch_addon" / "stroke_clustering.py"
_SPEC = importlib.util.spec_from_file_location("stroke_clustering", _PATH)
clustering = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(clustering)


def test_gaps_between_curves_are_their_closest_distance_to_within_a_sample_step() -> None:
    horizontal = np.array([[0, 0], [10, 0], [20, 0], [30, 0]], float)
    parallel = horizontal + [0, 10]
    crossing = np.array([[15, -5], [15, 0], [15, 5], [15, 10]], float)
    far = horizontal + [0, 100]
    gaps = clustering.stroke_gaps([horizontal, parallel, crossing, far])
    step = 15 / (clustering.SAMPLES_PER_SEGMENT - 1)  # sample spacing along the 15 px crossing line
    assert gaps[0, 1] == pytest.approx(10.0)
    assert gaps[0, 2] <= step / 2
    assert gaps[0, 3] == pytest.approx(100.0)
    assert np.array_equal(gaps, gaps.T)


def test_two_drawings_that_touch_at_one_point_are_suggested_as_two_objects() -> None:
    """Two fans of strokes, each fan's strokes meeting at its centre, the fans touching at one tip."""

    def fan(centre: np.ndarray) -> list[np.ndarray]:
        ends = [centre + 40 * np.array([np.cos(a), np.sin(a)]) for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
        return [np.linspace(centre, end, 4) for end in ends]

    left, right = fan(np.array([60.0, 128.0])), fan(np.array([140.0, 128.0]))  # tips meet at x = 100
    labels = clustering.suggest_labels(left + right, (256, 256))
    assert len(set(labels[:8])) == 1 and len(set(labels[8:])) == 1
    assert labels[0] != labels[8]
