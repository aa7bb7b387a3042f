"""The motion predictors: Live-Sketch's parametrisation on networks that scale to real multi-object sketches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from server.motion import ObjectMotion, affine_matrix
from server.schedule import ADAM_BETAS, ADAM_EPS, GLOBAL_LR, lr_multiplier
from server.sketch import load_svg
from server.tables import read_stroke_table
from tests.conftest import multiobject_sketches

PARAMETER_BUDGET = 20_000_000


def _rest_points(sketch, strokes: list[int]) -> torch.Tensor:
    return torch.tensor(np.concatenate([c for i in strokes for c in sketch.strokes[i].subpaths]), dtype=torch.float32)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_a_job_on_the_largest_shared_sketch_stays_under_the_parameter_budget() -> None:
    folder = max(multiobject_sketches(), key=lambda f: len(load_svg(f / "sketch.svg").strokes))
    sketch = load_svg(folder / "sketch.svg")
    table = read_stroke_table(folder / "objects.tsv", len(sketch.strokes))
    motions = [ObjectMotion(_rest_points(sketch, strokes), frames=24) for strokes in table.values()]
    total = sum(_count(m) for m in motions)
    assert len(sketch.strokes) >= 200
    assert total < PARAMETER_BUDGET, f"{folder.name}: {total:,} trainable parameters"
    # The size does not depend on how many points an object has, only on the frame count.
    sizes = {_count(m) for m in motions}
    assert len(sizes) == 1, sizes
    assert len({len(m.rest_points) for m in motions}) > 1


def test_the_motion_starts_near_the_still_sketch() -> None:
    torch.manual_seed(0)
    rest = torch.rand(300, 2) * 120 + 60
    motion = ObjectMotion(rest, frames=8)()
    displacement = (motion.points - rest).norm(dim=-1)
    assert displacement.mean() < 2.0
    assert motion.translate.norm(dim=-1).max() < 3.0
    assert motion.rotate.abs().max() < 0.02
    assert (motion.scale - 1).abs().max() < 0.1
    assert (motion.shear.abs().max()) < 0.15
    assert motion.points.shape == (8, 300, 2)


def test_points_are_the_affine_about_the_centre_plus_the_local_offsets() -> None:
    torch.manual_seed(1)
    rest = torch.rand(50, 2) * 100
    model = ObjectMotion(rest, frames=4)
    with torch.no_grad():
        model.local.body[-1].weight.zero_()
        model.local.body[-1].bias.zero_()
        motion = model()
    center = rest.mean(dim=0)
    for f in range(4):
        theta = motion.rotate[f]
        rotation = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        shear = torch.tensor([[1.0, motion.shear[f, 1]], [motion.shear[f, 0], 1.0]])
        expected_matrix = rotation @ shear @ torch.diag(motion.scale[f])
        torch.testing.assert_close(motion.matrix[f], expected_matrix)
        expected = center + (rest - center) @ expected_matrix.T + motion.translate[f]
        torch.testing.assert_close(motion.points[f], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(affine_matrix(motion.rotate, motion.shear, motion.scale), motion.matrix)


def test_scale_and_shear_come_from_heads_of_their_own() -> None:
    model = ObjectMotion(torch.rand(20, 2) * 50, frames=3)
    before = model()
    with torch.no_grad():
        model.global_motion.scale[-1].bias.add_(0.1)
    after = model()
    assert not torch.allclose(after.scale, before.scale)
    torch.testing.assert_close(after.shear, before.shear)
    torch.testing.assert_close(after.rotate, before.rotate)


def test_the_same_weights_give_the_same_motion_every_time() -> None:
    model = ObjectMotion(torch.rand(40, 2) * 80, frames=5)
    first, second = model(), model()
    assert torch.equal(first.points, second.points)


def _train_global(model: ObjectMotion, target_translate: torch.Tensor, target_scale: torch.Tensor, steps: int):
    optimizer = torch.optim.Adam(model.global_motion.parameters(), lr=GLOBAL_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(steps))
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        motion = model()
        loss = (motion.translate - target_translate).pow(2).sum() + 100 * (motion.scale - target_scale).pow(2).sum()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model()


@pytest.mark.parametrize("distance", [20.0, 80.0])
def test_at_the_tiny_global_learning_rate_an_object_still_travels_far_in_a_few_hundred_steps(distance: float) -> None:
    torch.manual_seed(2)
    frames = 6
    model = ObjectMotion(torch.rand(60, 2) * 60 + 100, frames=frames)
    time = torch.linspace(0, 1, frames)[:, None]
    target_translate = distance * torch.cat([time, torch.sin(math.pi * time)], dim=1)
    target_scale = 1 + 0.4 * time.expand(frames, 2)
    motion = _train_global(model, target_translate, target_scale, steps=300)
    error = (motion.translate - target_translate).norm(dim=-1)
    assert error.max() < 1.0, error
    assert (motion.scale - target_scale).abs().max() < 0.02


def test_local_offsets_carry_no_affine_motion_so_that_it_all_lives_in_the_global_part() -> None:
    torch.manual_seed(3)
    rest = torch.rand(80, 2) * 90 + 30
    model = ObjectMotion(rest, frames=4)
    with torch.no_grad():
        model.local.body[-1].bias.add_(5.0)  # a local net that would shift every point by 5 px
        motion = model()
    center = rest.mean(dim=0)
    global_part = center + torch.einsum("fij,pj->fpi", motion.matrix, rest - center) + motion.translate[:, None]
    offsets = motion.points - global_part
    basis = torch.cat([torch.ones(80, 1), rest - center], dim=1)
    for frame in offsets:
        fit = torch.linalg.lstsq(basis, frame).solution
        assert fit.abs().max() < 1e-3
    assert offsets.abs().max() > 0.01


def test_kept_local_affine_motion_shows_its_shift_as_global_translation_and_leaves_the_points_alone() -> None:
    torch.manual_seed(3)
    rest = torch.rand(80, 2) * 90 + 30
    kept = ObjectMotion(rest, frames=4, remove_local_affine=False)
    with torch.no_grad():
        kept.local.body[-1].bias.add_(5.0)  # a local net that shifts every point by 5 px
        motion = kept()
        unmoved = kept.global_motion(kept.features)[0]  # the global head's own translation
    assert torch.allclose(motion.translate - unmoved, torch.full((4, 2), 5.0), atol=0.5)
    center = rest.mean(dim=0)
    global_part = center + torch.einsum("fij,pj->fpi", motion.matrix, rest - center) + motion.translate[:, None]
    assert (motion.points - global_part).mean(dim=1).abs().max() < 1e-4  # what remains has no common shift
    assert (motion.points - rest).mean(dim=1).sub(motion.translate).abs().max() < 0.5
