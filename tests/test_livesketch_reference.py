"""The Live-Sketch baseline (scripts/livesketch_reference.py): its size, its quirks and its answer to a known plan."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from server.priors import Prior
from server.priors.target import TargetPrior
from server.protocol import JobSpec, ObjectSpec
from server.sketch import Sketch, Stroke
from tests.conftest import REPO

CPU = torch.device("cpu")


def _load_reference():
    spec = importlib.util.spec_from_file_location("livesketch_reference", REPO / "scripts" / "livesketch_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load_reference()


class InkPrior(Prior):
    """Pulls every pixel somewhere random (fresh weights each call, from the generator); records its calls."""

    name = "ink"

    def __init__(self) -> None:
        self.calls: list[tuple[object, float]] = []

    def condition(self, prompt: str, objects: Sequence[str]) -> object:
        return (prompt, tuple(objects))

    def loss(self, video: torch.Tensor, condition: object, guidance: float, generator: torch.Generator) -> torch.Tensor:
        self.calls.append((condition, guidance))
        weights = torch.rand(video.shape, generator=generator)
        return guidance * (weights * (video - 0.5) ** 2).sum()


def _arc(cx: float, cy: float, radius: float, start: float, end: float) -> np.ndarray:
    """A cubic close to a circular arc: (4, 2)."""
    handle = 4 / 3 * np.tan((end - start) / 4) * radius
    p0 = np.array([cx + radius * np.cos(start), cy + radius * np.sin(start)])
    p3 = np.array([cx + radius * np.cos(end), cy + radius * np.sin(end)])
    t0, t3 = np.array([-np.sin(start), np.cos(start)]), np.array([-np.sin(end), np.cos(end)])
    return np.stack([p0, p0 + handle * t0, p3 - handle * t3, p3])


def _sketch(zoom: float = 1.0) -> Sketch:
    """A ball of four cubics (strokes 0-3) and a post of two joined cubics (stroke 4) on a 256-px canvas."""
    ball = [Stroke([_arc(80, 128, 24, q * np.pi / 2, (q + 1) * np.pi / 2) * zoom], 4.0 * zoom) for q in range(4)]
    post = np.array([[200, 60], [200, 90], [200, 110], [200, 130], [200, 150], [200, 170], [200, 200.0]])
    return Sketch(256 * zoom, 256 * zoom, ball + [Stroke([post * zoom], 4.0 * zoom)])


def _spec(**changes) -> JobSpec:
    objects = [ObjectSpec("ball", [0, 1, 2, 3]), ObjectSpec("post", [4])]
    settings = dict(sketch="sketch.svg", prompt="a ball rolls", objects=objects, frames=4, steps=2, size=32)
    settings.update(changes)
    return JobSpec(**settings)


def _count(points: int, frames: int, width: int = 128) -> int:
    """Live-Sketch's PointMLP less its dead embedding and scale head, from its layer definitions."""
    linear = lambda i, o: i * o + o  # noqa: E731
    block = lambda i, o: linear(i, o) + 2 * o  # noqa: E731 (Linear, LayerNorm)
    count = points * frames
    shared = block(2, width) + linear(width, width)
    local = block(count * width, width) + 2 * block(width, width) + linear(width, 2 * count)
    trunk = block(count * width, width) + block(width, width)
    heads = 3 * block(width, width) + linear(width, 2 * frames)  # translation
    heads += block(width, width) + linear(width, frames) + block(width, width) + linear(width, 2 * frames)
    return shared + local + trunk + heads


def test_the_network_has_live_sketchs_size_51_m_for_16_strokes_and_24_frames() -> None:
    with torch.device("meta"):
        sizes = {(p, f): sum(t.numel() for t in reference.PointMLP(p, f).parameters()) for p, f in [(64, 24), (16, 4)]}
    assert sizes == {(64, 24): _count(64, 24), (16, 4): _count(16, 4)}
    dead_embedding, dead_scale_head = 2 * 64 * 24 * 128, 128 * 128 + 3 * 128 + 128 * 48 + 48
    assert sizes[64, 24] == 50_895_480
    assert sizes[64, 24] + dead_embedding + dead_scale_head == 51_311_656  # Live-Sketch's own count


def test_each_step_is_a_local_then_a_global_pass_and_global_only_gradients_accumulate() -> None:
    spec = _spec(guidance_local=30.0, guidance_global=10.0)
    prior = InkPrior()
    caller_rng = torch.get_rng_state()
    run = reference.ObjectRun(spec, _sketch(), prior, CPU, spec.objects[0])
    network = run.network
    watched = {
        "global only": network.frames_rigid_translation[-1].weight,
        "local only": network.last_linear_layer.weight,
        "shared": network.project_points[0].weight,
    }
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in watched}
    for name, parameter in watched.items():
        parameter.register_hook(lambda grad, name=name: seen[name].append(grad.clone()))
    run.run()

    assert torch.equal(torch.get_rng_state(), caller_rng)  # init and dropout draw from a seeded fork
    assert prior.calls == [(("a ball rolls", ("ball",)), 30.0), (("a ball rolls", ("ball",)), 10.0)] * 2
    assert all(len(grads) == 4 for grads in seen.values())
    torch.testing.assert_close(watched["global only"].grad, torch.stack(seen["global only"]).sum(0))
    assert seen["global only"][0].abs().max() > 0
    for name in ("local only", "shared"):
        torch.testing.assert_close(watched[name].grad, seen[name][-1])


def test_only_moving_objects_are_animated_in_layout_order_and_a_larger_canvas_moves_alike() -> None:
    spec = _spec()
    small = reference.reference_animation(spec, _sketch(), InkPrior(), CPU)
    large = reference.reference_animation(spec, _sketch(zoom=4), InkPrior(), CPU)
    rest = {"ball": np.concatenate([_arc(80, 128, 24, q * np.pi / 2, (q + 1) * np.pi / 2) for q in range(4)])}
    rest["post"] = _sketch().strokes[4].subpaths[0]
    assert set(small) == {"ball", "post"}
    for name, points in small.items():
        assert points.shape == (4, len(rest[name]), 2)
        assert 0 < np.abs(points - rest[name]).mean() < 2  # near the rest sketch, point for point
        np.testing.assert_allclose(large[name], 4 * points, rtol=1e-5, atol=1e-4)
    spec.objects[1].static = True
    assert set(reference.reference_animation(spec, _sketch(), InkPrior(), CPU)) == {"ball"}


def test_with_the_target_prior_the_ball_is_pulled_along_its_plan(tmp_path: Path) -> None:
    plan = tmp_path / "trajectories.tsv"
    plan.write_text("ball\t" + ",".join(f"[{56 + 4 * f},104,48,48]" for f in range(4)) + "\n")
    spec = _spec(steps=40, size=64, prior="target", target_plan=str(plan))
    spec.objects[1].static = True
    sketch = _sketch()
    points = reference.reference_animation(spec, sketch, TargetPrior(spec, sketch, CPU), CPU)["ball"]
    shift = points.mean(axis=1) - np.concatenate([s.subpaths[0] for s in sketch.strokes[:4]]).mean(axis=0)
    planned = 4.0 * np.arange(4)
    assert np.abs(shift[0]).max() < 0.5
    assert np.all(np.diff(shift[:, 0]) > 0)
    assert np.all(shift[1:, 0] > planned[1:] / 3) and np.all(shift[1:, 0] < planned[1:] * 1.2)
    assert np.abs(shift[:, 1]).max() < 1.5
