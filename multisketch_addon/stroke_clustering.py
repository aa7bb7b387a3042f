"""Which strokes belong together: the grouping suggestion's clustering, numpy only (no Blender).

Strokes are nodes of a graph whose edge weights fall off with the gap between the two curves,
exp(-gap / (canvas / 32)), so touching strokes are tied tightly and distant ones loosely; Louvain
modularity clustering cuts the graph where the ties are weakest, which separates objects that touch
in a few places, and groups of fewer than 5% of the strokes join the nearest group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Tuned on the shared multi-object set (scripts/bench_grouping.py), the same for every sketch.
GAP_SCALE = 1 / 32  # edge weight exp(-gap / (GAP_SCALE * canvas size))
RESOLUTION = 0.5  # Louvain resolution: lower gives fewer, larger groups
SMALLEST_GROUP = 0.05  # groups with fewer strokes (fraction of all) join their nearest group
SAMPLES_PER_SEGMENT = 17
_T = np.linspace(0.0, 1.0, SAMPLES_PER_SEGMENT)
_BEZIER = np.stack([(1 - _T) ** 3, 3 * (1 - _T) ** 2 * _T, 3 * (1 - _T) * _T**2, _T**3], axis=1)
BLOCK_POINTS = 256  # sample points per block of the distance computation (memory: block x all points)


def sample_curve(chain: np.ndarray) -> np.ndarray:
    """Points along a cubic Bezier chain p0, c1, c2, p1, ... (3k+1, 2)."""
    segments = [chain[i : i + 4] for i in range(0, len(chain) - 3, 3)] or [chain[:1].repeat(4, axis=0)]
    return np.concatenate([_BEZIER @ segment for segment in segments])


def stroke_gaps(chains: Sequence[np.ndarray]) -> np.ndarray:
    """The smallest distance between each pair of curves (n, n), in the chains' units."""
    samples = [sample_curve(np.asarray(chain, np.float64)) for chain in chains]
    points = np.concatenate(samples)
    norms = (points**2).sum(axis=1)
    starts = np.cumsum([0] + [len(s) for s in samples[:-1]])
    gaps = np.empty((len(samples), len(samples)))
    first = 0
    while first < len(samples):  # rows in blocks of whole strokes
        last = first + 1
        while last < len(samples) and starts[last] - starts[first] < BLOCK_POINTS:
            last += 1
        rows = slice(starts[first], starts[last] if last < len(samples) else len(points))
        squared = norms[rows, None] + norms[None, :] - 2.0 * points[rows] @ points.T
        per_stroke = np.minimum.reduceat(squared, starts, axis=1)
        gaps[first:last] = np.minimum.reduceat(per_stroke, starts[first:last] - starts[first], axis=0)
        first = last
    gaps = np.sqrt(np.maximum(np.minimum(gaps, gaps.T), 0.0))
    np.fill_diagonal(gaps, 0.0)
    return gaps


def louvain(weights: np.ndarray, resolution: float = RESOLUTION, seed: int = 0) -> np.ndarray:
    """Communities of a weighted graph by Louvain modularity optimisation (local moves, then merge)."""
    rng = np.random.default_rng(seed)
    node_group = np.arange(len(weights))
    graph = weights.astype(np.float64)
    while True:
        total = graph.sum()
        if total <= 0:
            break
        degree = graph.sum(axis=1)
        group = np.arange(len(graph))
        group_degree = degree.copy()
        changed = True
        while changed:
            changed = False
            for node in rng.permutation(len(graph)):
                current = group[node]
                group_degree[current] -= degree[node]
                links = np.bincount(group, weights=graph[node], minlength=len(graph))
                links[current] -= graph[node, node]
                gain = links - resolution * group_degree * degree[node] / total
                best = int(np.argmax(gain))
                if gain[best] <= gain[current] + 1e-12:
                    best = current
                group[node] = best
                group_degree[best] += degree[node]
                changed |= best != current
        names, group = np.unique(group, return_inverse=True)
        if len(names) == len(graph):  # no node moved: nothing more to merge
            break
        node_group = group[node_group]
        membership = np.zeros((len(names), len(graph)))
        membership[group, np.arange(len(graph))] = 1.0
        graph = membership @ graph @ membership.T
    return np.unique(node_group, return_inverse=True)[1]


def absorb_small_groups(labels: np.ndarray, gaps: np.ndarray, smallest: float = SMALLEST_GROUP) -> np.ndarray:
    """Merge each group of fewer than `smallest` of the strokes into the group nearest to it."""
    labels = labels.copy()
    while True:
        sizes = np.bincount(labels)
        small = [g for g in np.flatnonzero(sizes) if sizes[g] < smallest * len(labels)]
        if not small or np.count_nonzero(sizes) <= 1:
            break
        group = min(small, key=lambda g: sizes[g])
        inside = labels == group
        nearest = np.argmin(gaps[inside][:, ~inside].min(axis=0))
        labels[inside] = labels[~inside][nearest]
    return np.unique(labels, return_inverse=True)[1]


def suggest_labels(chains: Sequence[np.ndarray], canvas_size: Sequence[float]) -> np.ndarray:
    """A group number per stroke (chains in canvas pixels): strokes that touch or nearly touch go together."""
    if len(chains) < 2:
        return np.zeros(len(chains), int)
    gaps = stroke_gaps(chains)
    weights = np.exp(-gaps / (GAP_SCALE * max(canvas_size)))
    np.fill_diagonal(weights, 0.0)
    return absorb_small_groups(louvain(weights), gaps)
