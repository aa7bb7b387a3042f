"""Differentiable rasterizer: cubic Bezier strokes -> anti-aliased black lines with round caps on white.

It reproduces the look diffvg gives Live-Sketch (a stroke is every point within half its width of the
curve, box-filtered coverage, strokes composited as opaque black over white) in plain PyTorch, so it runs
wherever torch does and its gradients reach the control points through autograd.

How it stays cheap: each cubic is flattened into line pieces short and flat enough to be drawn exactly,
and each piece is evaluated only on the pixels of its own bounding box, padded by the stroke's reach.
The (piece, pixel) pairs form one flat, ragged list: no all-pixels x all-segments tensor is ever built.
Within a stroke (a chain of joined segments) a pixel takes its coverage from the nearest piece only, so
joints and loops are not darkened; across strokes coverages combine as a union, image = prod(1 - coverage),
accumulated as a scatter-add of log(1 - coverage). Frames are processed in chunks of bounded size,
recomputed during the backward pass (activation checkpointing) when there is more than one chunk.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

FLATNESS = 0.1  # px: how far a line piece may stray from its cubic
MAX_PIECE_LENGTH = 6.0  # px: longer pieces would waste pixels of their bounding box on diagonal strokes
MAX_PIECES = 256  # per cubic; only absurdly long or wild cubics reach it
# (piece, pixel) pairs evaluated at once. A chunk keeps about 124 bytes a pair for the backward pass, and a render
# of one chunk holds them through the whole SDS pass: 4 M pairs keep the rasterizer's share under 0.5 GiB however
# large the strokes grow; a larger render is recomputed chunk by chunk in the backward pass.
PAIRS_PER_CHUNK = 1 << 22
JOIN_TOLERANCE = 1e-4  # px: a segment that starts this close to where the previous one ends continues it
_DISTANCE_EPS = 1e-20  # px^2: keeps the gradient of the distance finite on the centre line


def canvas_to_render(sketch_width: float, sketch_height: float, size: int) -> tuple[float, float, float]:
    """(scale, offset_x, offset_y) with render_xy = scale * canvas_xy + offset: the canvas fitted, centred."""
    scale = size / max(sketch_width, sketch_height)
    return scale, (size - scale * sketch_width) / 2, (size - scale * sketch_height) / 2


def render(segments: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """Render F frames of S cubic segments (F, S, 4, 2) in render pixels with full widths (S,): (F, 3, size, size).

    Black strokes on white, values in [0, 1]; float64 input renders in float64, any other in float32.
    """
    if segments.dim() != 4 or segments.shape[2:] != (4, 2):
        raise ValueError(f"segments must have shape (frames, strokes, 4, 2), got {tuple(segments.shape)}")
    frames, count = segments.shape[:2]
    if widths.shape != (count,):
        raise ValueError(f"widths must have shape ({count},), one per segment, got {tuple(widths.shape)}")
    dtype = torch.float64 if segments.dtype == torch.float64 else torch.float32
    segments = segments.to(dtype)
    radius = widths.to(device=segments.device, dtype=dtype) / 2
    if count == 0:
        return torch.ones(frames, 3, size, size, dtype=dtype, device=segments.device)

    pieces = _Pieces.plan(segments.detach(), radius.detach())
    corners = segments[:, pieces.segment]  # (F, N, 4, 2)
    starts = torch.einsum("nc,fncd->fnd", pieces.start_basis.to(dtype), corners)
    ends = torch.einsum("nc,fncd->fnd", pieces.end_basis.to(dtype), corners)
    piece_radius = radius[pieces.segment]

    pair_counts = _windows(starts.detach(), ends.detach(), piece_radius.detach(), size)[2].sum(dim=1)
    chunks = _frame_chunks(pair_counts.tolist(), PAIRS_PER_CHUNK)
    recompute = torch.is_grad_enabled() and len(chunks) > 1
    logs = []
    for first, last in chunks:
        args = (starts[first:last], ends[first:last], piece_radius, pieces.stroke[first:last])
        if recompute:
            logs.append(checkpoint(_log_transmittance, *args, size, use_reentrant=False))
        else:
            logs.append(_log_transmittance(*args, size))
    image = torch.cat(logs).exp().view(frames, 1, size, size)
    return image.expand(frames, 3, size, size).contiguous()


class _Pieces:
    """How every cubic is cut into line pieces, and which stroke (chain of joined segments) each piece draws."""

    def __init__(self, segment: torch.Tensor, start_basis: torch.Tensor, end_basis: torch.Tensor, stroke: torch.Tensor):
        self.segment = segment  # (N,) segment of each piece
        self.start_basis = start_basis  # (N, 4) Bernstein weights of the piece's start on its cubic
        self.end_basis = end_basis
        self.stroke = stroke  # (F, N) stroke of each piece, numbered across frames

    @classmethod
    def plan(cls, segments: torch.Tensor, radius: torch.Tensor) -> _Pieces:
        device = segments.device
        counts = _piece_counts(segments)
        total = int(counts.sum())
        segment = torch.repeat_interleave(torch.arange(len(counts), device=device), counts, output_size=total)
        index = torch.arange(total, device=device) - (torch.cumsum(counts, 0) - counts)[segment]
        t = index.to(torch.float64) / counts[segment]
        t_next = (index + 1).to(torch.float64) / counts[segment]

        # A segment that starts where the previous one ends, at the same width, continues its stroke.
        frames, count = segments.shape[:2]
        joined = (segments[:, 1:, 0] - segments[:, :-1, 3]).norm(dim=-1) <= JOIN_TOLERANCE
        joined &= radius[1:] == radius[:-1]
        starts_stroke = torch.cat([torch.ones(frames, 1, dtype=torch.long, device=device), (~joined).long()], dim=1)
        stroke = torch.cumsum(starts_stroke, dim=1) - 1 + count * torch.arange(frames, device=device).unsqueeze(1)
        return cls(segment, _bernstein(t), _bernstein(t_next), stroke[:, segment])


def _piece_counts(segments: torch.Tensor) -> torch.Tensor:
    """Pieces per cubic (S,), enough in every frame for both the flatness and the length bound."""
    p0, p1, p2, p3 = segments.unbind(dim=2)
    # Uniform pieces of a cubic stray at most max|B''| / (8 K^2) from it, and |B''| <= 6 max|second difference|.
    bend = torch.maximum((p0 - 2 * p1 + p2).norm(dim=-1), (p1 - 2 * p2 + p3).norm(dim=-1)).amax(dim=0)
    length = ((p1 - p0).norm(dim=-1) + (p2 - p1).norm(dim=-1) + (p3 - p2).norm(dim=-1)).amax(dim=0)
    needed = torch.maximum(torch.sqrt(0.75 * bend / FLATNESS), length / MAX_PIECE_LENGTH)
    return needed.ceil().clamp(1, MAX_PIECES).to(torch.long)


def _bernstein(t: torch.Tensor) -> torch.Tensor:
    u = 1 - t
    return torch.stack([u**3, 3 * u**2 * t, 3 * u * t**2, t**3], dim=-1)


def _windows(
    starts: torch.Tensor, ends: torch.Tensor, radius: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per piece, its first pixel column/row (F, N, 2), its columns/rows (F, N, 2) and their product (F, N)."""
    reach = (radius + 0.5).unsqueeze(-1)  # coverage is exactly 0 beyond r + 1/2 from the centre line
    low = torch.ceil(torch.minimum(starts, ends) - reach - 0.5).clamp(0, size)
    high = torch.floor(torch.maximum(starts, ends) + reach - 0.5).clamp(-1, size - 1)
    extent = (high - low + 1).clamp(min=0).to(torch.long)
    return low.to(torch.long), extent, extent[..., 0] * extent[..., 1]


def _frame_chunks(pairs_per_frame: list[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive frame ranges, each with at most `budget` pairs unless a single frame has more."""
    chunks, first, total = [], 0, 0
    for frame, pairs in enumerate(pairs_per_frame):
        if frame > first and total + pairs > budget:
            chunks.append((first, frame))
            first, total = frame, 0
        total += pairs
    chunks.append((first, len(pairs_per_frame)))
    return chunks


def _log_transmittance(
    starts: torch.Tensor, ends: torch.Tensor, radius: torch.Tensor, stroke: torch.Tensor, size: int
) -> torch.Tensor:
    """Sum over strokes of log(1 - coverage) for every pixel of these frames: (F, size * size)."""
    frames, count = starts.shape[:2]
    device = starts.device
    with torch.no_grad():
        low, extent, pairs = _windows(starts, ends, radius, size)
        pairs = pairs.flatten()
        total = int(pairs.sum())
        piece = torch.repeat_interleave(torch.arange(frames * count, device=device), pairs, output_size=total)
        local = torch.arange(total, device=device) - (torch.cumsum(pairs, 0) - pairs)[piece]
        columns = extent[..., 0].flatten()[piece]
        x = low[..., 0].flatten()[piece] + local % columns
        y = low[..., 1].flatten()[piece] + local // columns
        pixel = y * size + x
        centre_x = x.to(starts.dtype) + 0.5
        centre_y = y.to(starts.dtype) + 0.5
    distance = _distance(centre_x, centre_y, starts.reshape(-1, 2)[piece], ends.reshape(-1, 2)[piece])
    owner = _nearest_piece_owns(stroke.flatten()[piece] * (size * size) + pixel, distance.detach())
    # Capping coverage just below 1 keeps log(1 - coverage) finite: black comes out as 1e-7 (float32).
    opaque = 1 - torch.finfo(starts.dtype).eps
    coverage = (radius.repeat(frames)[piece] + 0.5 - distance).clamp(0, opaque) * owner
    frame_pixel = (piece // count) * (size * size) + pixel
    log_clear = torch.zeros(frames * size * size, dtype=starts.dtype, device=device)
    return log_clear.index_add(0, frame_pixel, torch.log1p(-coverage)).view(frames, size * size)


@torch.no_grad()
def _nearest_piece_owns(stroke_pixel: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """True for the one (piece, pixel) pair of each stroke and pixel whose piece is nearest (ties: the first).

    A stroke is the region within its half width of the curve: a pixel takes its coverage from the
    nearest piece only, so neither joints nor loops of a stroke are counted twice.
    """
    keys, which = torch.unique(stroke_pixel, return_inverse=True)
    nearest = torch.full(keys.shape, math.inf, dtype=distance.dtype, device=distance.device)
    nearest = nearest.scatter_reduce(0, which, distance, "amin")
    order = torch.arange(len(distance), device=distance.device)
    candidate = torch.where(distance == nearest[which], order, len(distance))
    first = torch.full(keys.shape, len(distance), device=distance.device).scatter_reduce(0, which, candidate, "amin")
    return first[which] == order


def _distance(x: torch.Tensor, y: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Distance from points (x, y) to line pieces (starts, ends), each row paired with one piece."""
    ax, ay = starts.unbind(dim=-1)
    bx, by = ends.unbind(dim=-1)
    abx, aby = bx - ax, by - ay
    apx, apy = x - ax, y - ay
    along = ((apx * abx + apy * aby) / (abx * abx + aby * aby).clamp(min=1e-12)).clamp(0, 1)
    dx, dy = apx - along * abx, apy - along * aby
    return (dx * dx + dy * dy + _DISTANCE_EPS).sqrt()
