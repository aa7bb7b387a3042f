"""The rasterizer: the look of a stroke, the union of strokes, gradients, and real sketch sizes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from server import render as render_module
from server.render import canvas_to_render, render
from server.sketch import load_svg
from tests.conftest import MULTIOBJECT


def _line(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """A straight cubic from (x0, y0) to (x1, y1)."""
    return [[x0 + (x1 - x0) * t, y0 + (y1 - y0) * t] for t in (0, 1 / 3, 2 / 3, 1)]


def _frames(*strokes: list[list[float]], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor([strokes], dtype=dtype)


def _darkness(segments: torch.Tensor, width: float, size: int) -> torch.Tensor:
    """1 - image of the first frame, first channel: where the ink is."""
    return 1 - render(segments, torch.full((segments.shape[1],), width), size)[0, 0]


def _reference(segments: np.ndarray, widths: np.ndarray, size: int) -> np.ndarray:
    """Brute force: distance from every pixel centre to a densely sampled curve, box coverage, union."""
    centres = np.stack(np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="xy"), -1).reshape(-1, 2)
    t = np.linspace(0, 1, 2001)[:, None]
    image = np.ones(size * size)
    for (p0, p1, p2, p3), width in zip(segments, widths, strict=True):
        curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
        distance = np.sqrt(((centres[:, None, :] - curve[None]) ** 2).sum(-1)).min(1)
        image *= 1 - np.clip(width / 2 + 0.5 - distance, 0, 1)
    return image.reshape(size, size)


def test_output_is_white_with_black_strokes_in_the_requested_shape() -> None:
    segments = torch.tensor([[_line(4, 4, 28, 20)], [_line(4, 20, 28, 4)]])
    video = render(segments, torch.tensor([3.0]), 32)
    assert video.shape == (2, 3, 32, 32)
    assert video.dtype == torch.float32
    assert float(video.min()) == pytest.approx(0, abs=1e-5) and float(video.max()) == 1.0
    assert torch.equal(video[:, 0], video[:, 1]) and torch.equal(video[:, 0], video[:, 2])
    assert not torch.equal(video[0], video[1])  # each frame draws its own points
    assert torch.equal(render(torch.zeros(3, 0, 4, 2), torch.zeros(0), 16), torch.ones(3, 3, 16, 16))


def test_stroke_has_the_given_width_and_a_one_pixel_ramp() -> None:
    on_pixel_centres = _darkness(_frames(_line(8, 10.5, 24, 10.5)), 3.0, 32)[:, 16]
    assert on_pixel_centres[9:12].tolist() == pytest.approx([1, 1, 1])
    assert on_pixel_centres[:9].sum() == 0 and on_pixel_centres[12:].sum() == 0
    between_pixels = _darkness(_frames(_line(8, 10.0, 24, 10.0)), 3.0, 32)[:, 16]
    assert between_pixels[8:12].tolist() == pytest.approx([0.5, 1, 1, 0.5])
    thin = _darkness(_frames(_line(8, 10.5, 24, 10.5)), 1.0, 32)[:, 16]
    assert thin[10] == pytest.approx(1) and thin.sum() == pytest.approx(1)


def test_ends_are_round() -> None:
    ink = _darkness(_frames(_line(10, 16.5, 22, 16.5)), 6.0, 32)
    # Along the axis the cap reaches 3 px past the end point; at the corner of a square cap there is no ink.
    assert ink[16, 24] == pytest.approx(1)  # pixel centre (24.5, 16.5): 2.5 px beyond the end, on the axis
    assert ink[19, 24] == 0  # (24.5, 19.5): 3.9 px from the end point, yet inside a square cap
    total = float(ink.sum())
    assert total == pytest.approx(12 * 6 + np.pi * 9, rel=0.03)  # body plus two half discs


def test_matches_a_brute_force_reference_for_curved_strokes() -> None:
    rng = np.random.default_rng(3)
    segments = rng.uniform(4, 36, size=(5, 4, 2))  # random cubics: loops, cusps, sharp bends
    widths = np.array([3.0, 2.0, 1.0, 3.0, 5.0])
    image = render(torch.tensor(segments[None]), torch.tensor(widths), 40)[0, 0].numpy()
    # Flattening strays at most 0.1 px, and loops of a stroke are not inked twice.
    assert np.abs(image - _reference(segments, widths, 40)).max() < 0.1


def test_joints_between_pieces_and_segments_are_not_darker() -> None:
    whole = _darkness(_frames(_line(4, 10.3, 60, 10.3)), 3.0, 64)
    halves = _darkness(_frames(_line(4, 10.3, 33.7, 10.3), _line(33.7, 10.3, 60, 10.3)), 3.0, 64)
    torch.testing.assert_close(halves, whole, atol=1e-5, rtol=0)
    # One cubic cut into many pieces: every column of the body has the same ink as the straight line's.
    column_ink = whole[:, 8:56].sum(dim=0)
    torch.testing.assert_close(column_ink, torch.full_like(column_ink, 3.0), atol=1e-5, rtol=0)


def test_crossing_strokes_form_a_union() -> None:
    cross = _darkness(_frames(_line(4, 16.5, 28, 16.5), _line(16.5, 4, 16.5, 28)), 3.0, 32)
    assert cross[16, 16] == pytest.approx(1)  # covered twice, still just black
    assert cross.max() <= 1 and cross.min() >= 0
    # Overlapping partial coverages combine as 1 - (1 - a)(1 - b): two half-covered edges give 0.75.
    edges = _darkness(_frames(_line(4, 10.0, 28, 10.0), _line(4, 10.0, 28, 10.0)), 3.0, 32)
    assert edges[8, 16] == pytest.approx(0.75)


def test_canvas_is_fitted_and_centred() -> None:
    scale, offset_x, offset_y = canvas_to_render(400, 200, 100)
    assert (scale, offset_x, offset_y) == (0.25, 0, 25)
    assert canvas_to_render(256, 256, 64) == (0.25, 0, 0)


def test_moving_a_control_point_changes_the_image() -> None:
    segments = _frames([[5, 5], [10, 25], [20, 25], [27, 8]])
    moved = segments.clone()
    moved[0, 0, 1] += torch.tensor([0.0, 3.0])
    widths = torch.tensor([2.0])
    before, after = render(segments, widths, 32), render(moved, widths, 32)
    assert (before - after).abs().sum() > 1


def test_gradient_moves_the_stroke_towards_its_target() -> None:
    target = render(_frames(_line(6, 17.5, 26, 17.5)), torch.tensor([3.0]), 32)
    segments = _frames(_line(6, 16.0, 26, 16.0)).requires_grad_()
    loss = ((render(segments, torch.tensor([3.0]), 32) - target) ** 2).sum()
    loss.backward()
    y_gradient = segments.grad[..., 1]
    assert (y_gradient < 0).all()  # descending moves every control point down (+y), towards the target
    assert abs(float(segments.grad[..., 0].sum())) < 1e-3 * float(y_gradient.abs().max())  # no sideways drift
    # and one small step of gradient descent lowers the loss
    with torch.no_grad():
        stepped = segments - 0.5 * segments.grad / segments.grad.norm()
        assert ((render(stepped, torch.tensor([3.0]), 32) - target) ** 2).sum() < loss


def test_gradient_agrees_with_finite_differences() -> None:
    generator = torch.Generator().manual_seed(0)
    segments = (torch.rand(2, 2, 4, 2, generator=generator, dtype=torch.float64) * 12 + 2).requires_grad_()
    widths = torch.tensor([2.5, 1.7], dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 3, 16, 16, generator=generator, dtype=torch.float64)

    def weighted(points: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        return (render(points, widths, 16) * weights).sum()

    assert torch.autograd.gradcheck(weighted, (segments, widths), eps=1e-6, atol=1e-5)


def test_low_precision_input_renders_in_float32() -> None:
    segments = _frames(_line(4, 10.5, 28, 10.5))
    reference = render(segments, torch.tensor([3.0]), 32)
    for dtype in (torch.float16, torch.bfloat16):
        video = render(segments.to(dtype), torch.tensor([3.0], dtype=dtype), 32)
        assert video.dtype == torch.float32
        torch.testing.assert_close(video, reference)


def test_frame_chunks_give_the_same_image_and_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(1)
    segments = torch.rand(6, 8, 4, 2, generator=generator) * 40 + 4
    widths = torch.full((8,), 3.0)
    weights = torch.rand(6, 3, 48, 48, generator=generator)

    def image_and_gradient() -> tuple[torch.Tensor, torch.Tensor]:
        points = segments.clone().requires_grad_()
        image = render(points, widths, 48)
        (image * weights).sum().backward()
        return image.detach(), points.grad

    whole = image_and_gradient()
    monkeypatch.setattr(render_module, "PAIRS_PER_CHUNK", 500)  # every frame in a chunk of its own
    chunked = image_and_gradient()
    torch.testing.assert_close(chunked[0], whole[0])
    torch.testing.assert_close(chunked[1], whole[1])


def test_what_a_render_keeps_for_its_backward_pass_is_bounded_however_many_pixels_its_strokes_cover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(render_module, "PAIRS_PER_CHUNK", 20_000)
    widths = torch.full((8,), 3.0)

    def kept_bytes(spread: float) -> int:
        """What autograd keeps of one render of 8 random strokes spread over `spread` px, frames of 96 px."""
        segments = torch.rand(6, 8, 4, 2, generator=torch.Generator().manual_seed(2)) * spread + 2
        kept = [0]

        def keep(tensor: torch.Tensor) -> torch.Tensor:
            kept[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            render(segments.requires_grad_(), widths, 96)
        return kept[0]

    one_chunk = 124 * 20_000  # bytes a full chunk keeps (render.py)
    assert kept_bytes(10) < one_chunk  # 11 thousand pairs: one chunk, kept
    assert kept_bytes(90) < one_chunk / 2  # 49 thousand pairs: three chunks, recomputed in the backward pass


def test_real_sketch_at_test_scale_is_fast_and_differentiable() -> None:
    sketch = load_svg(MULTIOBJECT / "cat11" / "sketch.svg")
    indices = range(len(sketch.strokes))
    scale, offset_x, offset_y = canvas_to_render(sketch.width, sketch.height, 64)
    rest = torch.tensor(sketch.segments(indices) * scale + [offset_x, offset_y], dtype=torch.float32)
    widths = torch.tensor(sketch.segment_widths(indices) * scale, dtype=torch.float32)
    shifts = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1) * torch.tensor([1.0, 0.0])
    points = (rest + shifts).requires_grad_()
    started = time.perf_counter()
    video = render(points, widths, 64)
    (1 - video).mean().backward()
    seconds = time.perf_counter() - started
    assert len(sketch.strokes) > 100 and video.shape == (4, 3, 64, 64)
    assert seconds < 5.0  # a dense all-pixels x all-pieces evaluation takes minutes here
    assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0
    ink = (1 - video[:, 0]).sum(dim=(1, 2))
    assert torch.allclose(ink, ink[0], rtol=0.05)  # shifting the whole sketch keeps its ink
    assert not torch.equal(video[0], video[3])
