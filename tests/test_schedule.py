"""The schedule as a job sees it: which stage moves what, what the prior is shown, checkpoints and resume."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from server.errors import UserError
from server.priors import Prior, load_prior
from server.protocol import JobSpec, ObjectSpec
from server.render import canvas_to_render, render
from server.schedule import Cancelled, Optimization, lr_multiplier, plan_stages
from server.sketch import Sketch, Stroke, load_svg
from server.tables import read_stroke_table, read_trajectories
from tests.conftest import MULTIOBJECT

SKETCH = MULTIOBJECT / "basketball5"  # 53 strokes, three objects: a player, a hoop, a ball
CPU = torch.device("cpu")


class InkPrior(Prior):
    """A loss that pulls every pixel somewhere random (fresh weights each call, from the generator).

    It reaches every parameter of what is rendered, and it records what it was shown.
    """

    name = "ink"

    def __init__(self) -> None:
        self.calls: list[tuple[object, float, torch.Tensor]] = []

    def condition(self, prompt: str, objects: Sequence[str]) -> object:
        return (prompt, tuple(objects))

    def loss(self, video: torch.Tensor, condition: object, guidance: float, generator: torch.Generator) -> torch.Tensor:
        self.calls.append((condition, guidance, video.detach().clone()))
        weights = torch.rand(video.shape, generator=generator)
        return guidance * (weights * (video - 0.5) ** 2).sum()


def _spec(**changes) -> JobSpec:
    sketch = load_svg(SKETCH / "sketch.svg")
    table = read_stroke_table(SKETCH / "objects.tsv", len(sketch.strokes))
    objects = [ObjectSpec(name, strokes) for name, strokes in table.items()]
    settings = dict(sketch="sketch.svg", prompt="a player dunks", objects=objects, frames=3, steps=3, size=32)
    settings.update(changes)
    return JobSpec(**settings)


def _run(spec: JobSpec, folder: Path, prior=None, emit=None, stop=lambda: False, resume=False, sketch=None):
    sketch = sketch or load_svg(SKETCH / "sketch.svg")
    optimization = Optimization(
        spec, sketch, prior or InkPrior(), CPU, folder, emit or (lambda *a, **k: None), should_stop=stop
    )
    return optimization, optimization.run(resume=resume)


def _parameters(optimization: Optimization) -> dict[str, dict[str, torch.Tensor]]:
    """Every parameter, per object and predictor ("ball/local", "ball/global")."""
    snapshot = {}
    for name, motion in optimization.motions.items():
        snapshot[f"{name}/local"] = {k: v.detach().clone() for k, v in motion.local.named_parameters()}
        snapshot[f"{name}/global"] = {k: v.detach().clone() for k, v in motion.global_motion.named_parameters()}
    return snapshot


def _changed(before: dict, after: dict) -> set[str]:
    return {part for part in before if any(not torch.equal(before[part][k], after[part][k]) for k in before[part])}


def test_stages_are_each_moving_object_alone_then_all_together() -> None:
    spec = _spec()
    spec.objects[0].prompt = "the player jumps"
    spec.objects[1].static = True
    stages = plan_stages(spec, stroke_count=53)
    assert [s.name for s in stages] == ["object:player", "object:basketball", "joint"]
    assert [s.animated for s in stages] == [["player"], ["basketball"], ["player", "basketball"]]
    assert [s.prompt for s in stages] == ["the player jumps", "a player dunks", "a player dunks"]
    assert [s.train_global for s in stages] == [True, True, False]


def test_one_moving_object_meets_the_others_in_a_joint_stage_and_none_gets_no_stage() -> None:
    spec = _spec()
    for obj in spec.objects[1:]:
        obj.static = True
    assert [s.name for s in plan_stages(spec, stroke_count=53)] == ["object:player", "joint"]
    for obj in spec.objects:
        obj.static = True
    assert plan_stages(spec, stroke_count=53) == []


def test_a_lone_object_has_no_joint_stage_unless_asked_and_joint_only_trains_global_motion() -> None:
    spec = _spec()
    spec.objects = spec.objects[:1]
    everything = len(spec.objects[0].strokes)
    assert [s.name for s in plan_stages(spec, stroke_count=everything)] == ["object:player"]
    assert [s.name for s in plan_stages(spec, stroke_count=everything + 1)] == ["object:player", "joint"]
    spec.schedule = "iterative"
    assert [s.name for s in plan_stages(spec, stroke_count=everything)] == ["object:player", "joint"]
    spec.schedule = "joint"
    assert [(s.name, s.train_global) for s in plan_stages(spec, stroke_count=everything)] == [("joint", True)]


def test_with_nothing_to_animate_the_result_is_the_still_sketch(tmp_path: Path) -> None:
    spec = _spec()
    for obj in spec.objects:
        obj.static = True
    prior = InkPrior()
    _, animation = _run(spec, tmp_path, prior)
    sketch = load_svg(SKETCH / "sketch.svg")
    assert prior.calls == []
    for obj in spec.objects:
        result = animation[obj.name]
        assert result.static and np.all(result.translate == 0) and np.all(result.scale == 1)
        for frame in result.points:
            for index, stroke in zip(obj.strokes, frame, strict=True):
                for chain, rest in zip(stroke, sketch.strokes[index].subpaths, strict=True):
                    np.testing.assert_array_equal(chain, rest)


def test_a_stage_changes_only_its_own_object_and_the_joint_stage_no_global_motion(tmp_path: Path) -> None:
    spec = _spec()
    snapshots: list[tuple[str, dict]] = []
    holder: list[Optimization] = []

    def emit(event: str, **fields) -> None:
        if event == "stage":
            snapshots.append((fields["stage"], _parameters(holder[0])))

    sketch = load_svg(SKETCH / "sketch.svg")
    optimization = Optimization(spec, sketch, InkPrior(), CPU, tmp_path, emit, should_stop=lambda: False)
    holder.append(optimization)
    optimization.run(resume=False)
    snapshots.append(("end", _parameters(optimization)))

    assert [name for name, _ in snapshots] == ["object:player", "object:hoop", "object:basketball", "joint", "end"]
    for (stage, before), (_, after) in zip(snapshots, snapshots[1:], strict=False):
        if stage == "joint":
            expected = {f"{name}/local" for name in optimization.motions}
        else:
            name = stage.removeprefix("object:")
            expected = {f"{name}/local", f"{name}/global"}
        assert _changed(before, after) == expected, stage


def test_each_step_has_a_local_pass_and_where_globals_train_a_global_pass(tmp_path: Path) -> None:
    spec = _spec(steps=2, guidance_local=30.0, guidance_global=10.0)
    spec.objects[1].static = True
    spec.objects[2].prompt = "the ball bounces"
    prior = InkPrior()
    _run(spec, tmp_path, prior)
    seen = [(condition, guidance) for condition, guidance, _ in prior.calls]
    player, ball = ("a player dunks", ("player",)), ("the ball bounces", ("basketball",))
    joint = ("a player dunks", ("player", "basketball"))
    assert seen == [(player, 30.0), (player, 10.0)] * 2 + [(ball, 30.0), (ball, 10.0)] * 2 + [(joint, 30.0)] * 2


def _ink(video: torch.Tensor) -> float:
    return float((1 - video[0, 0]).sum())


def test_an_object_stage_shows_the_object_alone_and_the_joint_stage_the_whole_scene(tmp_path: Path) -> None:
    spec = _spec(steps=1, size=64)
    prior = InkPrior()
    _run(spec, tmp_path, prior)
    sketch = load_svg(SKETCH / "sketch.svg")
    scale, offset_x, offset_y = canvas_to_render(sketch.width, sketch.height, spec.size)

    def still(strokes: list[int]) -> torch.Tensor:
        segments = torch.tensor(sketch.segments(strokes), dtype=torch.float32) * scale + torch.tensor(
            [offset_x, offset_y]
        )
        widths = torch.tensor([sketch.strokes[i].width for i in strokes for _ in range(len(sketch.segments([i])))])
        return render(segments[None], widths.float() * scale, spec.size)

    shown = {condition[1]: video for condition, _, video in prior.calls if condition[1]}
    for obj in spec.objects:
        assert _ink(shown[(obj.name,)]) == pytest.approx(_ink(still(obj.strokes)), rel=0.1)
    whole = _ink(still(list(range(len(sketch.strokes)))))
    assert _ink(shown[tuple(obj.name for obj in spec.objects)]) == pytest.approx(whole, rel=0.1)
    assert whole > 1.3 * max(_ink(still(obj.strokes)) for obj in spec.objects)


def test_events_report_stages_steps_and_checkpoints(tmp_path: Path) -> None:
    spec = _spec(steps=4, checkpoint_every=2)
    events: list[tuple[str, dict]] = []
    _run(spec, tmp_path, emit=lambda event, **fields: events.append((event, fields)))
    stages = [f for e, f in events if e == "stage"]
    assert [(f["stage"], f["index"], f["count"]) for f in stages] == [
        ("object:player", 0, 4),
        ("object:hoop", 1, 4),
        ("object:basketball", 2, 4),
        ("joint", 3, 4),
    ]
    steps = [f for e, f in events if e == "step"]
    assert len(steps) == 16
    assert [f["step"] for f in steps[:4]] == [1, 2, 3, 4] and all(f["steps"] == 4 for f in steps)
    progress = [f["progress"] for f in steps]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert all(np.isfinite(f["loss"]) and f["eta_s"] >= 0 for f in steps)
    checkpoints = [f for e, f in events if e == "checkpoint"]
    expected = [name for stage in range(4) for name in ("latest.pt", f"stage-{stage}.pt")]
    assert [Path(f["path"]).name for f in checkpoints] == expected
    assert all(Path(f["path"]).is_file() for f in checkpoints)
    assert not list(tmp_path.glob(".*partial"))


def _point_pairs(first: dict, second: dict) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The same chain of control points in two animations, for every object, frame and stroke."""
    for name in first:
        for frame_a, frame_b in zip(first[name].points, second[name].points, strict=True):
            for stroke_a, stroke_b in zip(frame_a, frame_b, strict=True):
                yield from zip(stroke_a, stroke_b, strict=True)


def _same(first: dict, second: dict) -> bool:
    return all(np.array_equal(a, b) for a, b in _point_pairs(first, second)) and all(
        np.array_equal(first[n].matrix, second[n].matrix) for n in first
    )


def test_a_run_cancelled_after_its_first_stage_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    spec = _spec(steps=3, checkpoint_every=2)
    _, whole = _run(spec, tmp_path / "whole")

    stop = [False]

    def emit(event: str, **fields) -> None:
        if event == "stage" and fields["index"] == 1:
            stop[0] = True

    with pytest.raises(Cancelled):
        _run(spec, tmp_path / "stopped", emit=emit, stop=lambda: stop[0])
    assert (tmp_path / "stopped" / "stage-0.pt").is_file()
    assert not (tmp_path / "stopped" / "stage-1.pt").exists()
    _, resumed = _run(spec, tmp_path / "stopped", resume=True)
    assert _same(resumed, whole)
    assert not _same(resumed, _run(_spec(steps=3, seed=1), tmp_path / "other seed")[1])


def test_a_run_cancelled_mid_stage_resumes_from_its_latest_checkpoint_to_the_same_result(tmp_path: Path) -> None:
    spec = _spec(steps=3, checkpoint_every=1)
    spec.objects[0].static = True
    spec.objects[1].static = True
    _, whole = _run(spec, tmp_path / "whole")
    steps_seen = []

    def emit(event: str, **fields) -> None:
        if event == "step":
            steps_seen.append(fields["step"])

    with pytest.raises(Cancelled):
        _run(spec, tmp_path / "stopped", emit=emit, stop=lambda: len(steps_seen) == 2)
    events: list[tuple[str, dict]] = []
    _, resumed = _run(spec, tmp_path / "stopped", emit=lambda e, **f: events.append((e, f)), resume=True)
    assert [f["step"] for e, f in events if e == "step"][0] == 3
    assert _same(resumed, whole)


def test_a_stage_gives_the_same_result_whichever_objects_run_before_it(tmp_path: Path) -> None:
    all_moving, ball_only = _spec(steps=2), _spec(steps=2)
    ball_only.objects[0].static = True
    optimization_a, _ = _run(all_moving, tmp_path / "a")
    optimization_b, _ = _run(ball_only, tmp_path / "b")
    stage_a = torch.load(tmp_path / "a" / "stage-2.pt", weights_only=True)["motions"]["basketball"]
    stage_b = torch.load(tmp_path / "b" / "stage-1.pt", weights_only=True)["motions"]["basketball"]
    assert all(torch.equal(stage_a[k], stage_b[k]) for k in stage_a)


def test_each_checkpoint_holds_only_the_networks_its_stage_trains(tmp_path: Path) -> None:
    """Checkpoints grow with the objects, not with their square (20 objects once took 390 MB)."""
    spec = _spec(steps=2, checkpoint_every=1)
    optimization, _ = _run(spec, tmp_path)
    held = {p.name: set(torch.load(p, weights_only=True)["motions"]) for p in tmp_path.glob("*.pt")}
    stages = {f"stage-{i}.pt": set(stage.animated) for i, stage in enumerate(optimization.stages)}
    assert {name: objects for name, objects in held.items() if name != "latest.pt"} == stages
    assert len(stages) == 4 and all(len(objects) == 1 for name, objects in stages.items() if name != "stage-3.pt")


def test_the_learning_rate_warms_up_then_decays_as_in_live_sketch() -> None:
    multiplier = lr_multiplier(1000)
    assert multiplier(0) == pytest.approx(0.1)
    assert multiplier(50) == pytest.approx(0.703, abs=0.002)
    assert multiplier(100) == pytest.approx(0.912, abs=0.002)
    assert multiplier(999) == pytest.approx(0.4)
    short = lr_multiplier(200)
    assert short(20) == pytest.approx(multiplier(100), abs=0.002)
    assert short(199) == pytest.approx(0.4)


def test_with_the_target_prior_objects_follow_their_plan_and_a_still_one_stays(tmp_path: Path) -> None:
    folder = MULTIOBJECT / "marry8"  # a bride and a groom, 64 strokes
    sketch = load_svg(folder / "sketch.svg")
    table = read_stroke_table(folder / "objects.tsv", len(sketch.strokes))
    plan = read_trajectories(folder / "trajectories.tsv")
    plan["groom"] = [plan["groom"][0]] * len(plan["groom"])  # the groom is told to stand still
    plan_file = tmp_path / "plan.tsv"
    plan_file.write_text("".join(f"{name}\t{','.join(_box(b) for b in boxes)}\n" for name, boxes in plan.items()))
    spec = JobSpec(
        sketch="sketch.svg",
        prompt="a wedding",
        objects=[ObjectSpec(name, strokes) for name, strokes in table.items()],
        frames=4,
        steps=40,
        size=64,
        prior="target",
        target_plan=str(plan_file),
    )
    prior = load_prior(spec, sketch, CPU)
    animation = Optimization(spec, sketch, prior, CPU, tmp_path / "job", lambda *a, **k: None, lambda: False).run(False)

    def centres(name: str) -> np.ndarray:
        return np.array(
            [np.concatenate([c for s in frame for c in s]).mean(axis=0) for frame in animation[name].points]
        )

    boxes = np.array(plan["bride"])
    planned = boxes[:, :2] + boxes[:, 2:] / 2
    planned = np.stack([np.interp(np.linspace(0, len(boxes) - 1, 4), np.arange(len(boxes)), a) for a in planned.T], 1)
    planned -= planned[0]
    moved = centres("bride") - animation["bride"].center
    assert np.linalg.norm(planned, axis=1).max() > 8
    assert np.sqrt(((moved - planned) ** 2).sum(axis=1).mean()) < 1.5
    assert np.linalg.norm(centres("groom") - animation["groom"].center, axis=1).max() < 0.5


def _box(box: tuple[float, float, float, float]) -> str:
    return "[" + ",".join(f"{v:g}" for v in box) + "]"


def test_resuming_with_checkpoints_of_another_job_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    _run(_spec(steps=2), tmp_path)
    with pytest.raises(UserError, match="other steps"):
        _run(_spec(steps=3), tmp_path, resume=True)
    older = torch.load(tmp_path / "stage-0.pt", weights_only=True)
    torch.save({**older, "format": 1}, tmp_path / "stage-0.pt")  # as earlier versions of the engine wrote them
    with pytest.raises(UserError, match="written by another version of the engine"):
        _run(_spec(steps=2), tmp_path, resume=True)


def test_a_sketch_on_a_four_times_larger_canvas_gets_the_same_motion_four_times_larger(tmp_path: Path) -> None:
    spec = _spec(steps=2)
    sketch = load_svg(SKETCH / "sketch.svg")
    large = Sketch(
        sketch.width * 4,
        sketch.height * 4,
        [Stroke([chain * 4 for chain in stroke.subpaths], stroke.width * 4) for stroke in sketch.strokes],
    )
    results = []
    for drawing in (sketch, large):
        _, animation = _run(spec, tmp_path / str(drawing.width), sketch=drawing)
        results.append(animation)
    for name, small in results[0].items():
        big = results[1][name]
        assert np.abs(small.translate).max() > 0.1
        np.testing.assert_allclose(big.translate, 4 * small.translate, atol=0.02)
        np.testing.assert_allclose(big.matrix, small.matrix, atol=1e-4)
        for frame_small, frame_big in zip(small.points, big.points, strict=True):
            for stroke_small, stroke_big in zip(frame_small, frame_big, strict=True):
                np.testing.assert_allclose(stroke_big[0], 4 * stroke_small[0], atol=0.02)


class SometimesBrokenPrior(InkPrior):
    """InkPrior whose gradient is NaN on every third call, as an fp16 overflow in the VAE's backward makes it."""

    def loss(self, video: torch.Tensor, condition: object, guidance: float, generator: torch.Generator) -> torch.Tensor:
        loss = super().loss(video, condition, guidance, generator)
        return loss * float("nan") if len(self.calls) % 3 == 0 else loss


def test_a_step_with_a_non_finite_gradient_is_skipped_and_reported_never_applied(tmp_path: Path) -> None:
    events: list[tuple[str, dict]] = []
    emit = lambda event, **fields: events.append((event, fields))  # noqa: E731
    optimization, _ = _run(_spec(steps=4), tmp_path, prior=SometimesBrokenPrior(), emit=emit)
    warnings = [fields["message"] for event, fields in events if event == "warning"]
    assert warnings and all("non-finite gradient" in message for message in warnings)
    assert optimization.skipped_steps == len(warnings) > 0
    for motion in optimization.motions.values():
        assert all(torch.isfinite(p).all() for p in motion.parameters())


def _largest_difference(first: dict, second: dict) -> float:
    """The largest distance (canvas px) between the same control point of two animations."""
    return max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in _point_pairs(first, second))


def _toy_run(spec: JobSpec, folder: Path, object_batch: int, stop=lambda: False, resume=False, emit=None):
    """A run with the learned toy prior (the real SDS path: VAE, UNet, guidance), recording its batch sizes."""
    sketch = load_svg(SKETCH / "sketch.svg")
    prior = load_prior(spec, sketch, CPU)
    batches: list[int] = []
    scored = prior.losses

    def counted(videos, *args):
        batches.append(len(videos))
        return scored(videos, *args)

    prior.losses = counted  # type: ignore[method-assign]
    optimization = Optimization(
        spec, sketch, prior, CPU, folder, emit or (lambda *a, **k: None), should_stop=stop, object_batch=object_batch
    )
    return optimization.run(resume=resume), batches


def test_per_object_stages_run_together_give_the_result_of_running_them_one_after_another(tmp_path: Path) -> None:
    """Batching the three objects' own stages through the prior (one VAE and one UNet call for all three) is a
    speed-up only: the same animation, to float rounding."""
    spec = _spec(prior="toy", frames=4, steps=3, size=64)
    one_by_one, single = _toy_run(spec, tmp_path / "one by one", object_batch=1)
    together, batched = _toy_run(spec, tmp_path / "together", object_batch=3)
    assert set(single) == {1} and batched[:6] == [3] * 6 and set(batched[6:]) == {1}  # 3 steps, 2 passes; joint
    other_seed, _ = _toy_run(_spec(prior="toy", frames=4, steps=3, size=64, seed=1), tmp_path / "seed 1", 3)
    # Batched convolutions round differently (gradients agree to 1e-5), and Adam enlarges that on near-zero
    # gradient components: 0.05 px after 12 steps, against 14 px for another seed.
    assert _largest_difference(together, one_by_one) < 0.1 and _largest_difference(together, other_seed) > 1.0


def test_stages_stopped_together_resume_one_by_one_to_the_same_result(tmp_path: Path) -> None:
    spec = _spec(prior="toy", frames=4, steps=3, size=64, checkpoint_every=1)
    whole, _ = _toy_run(spec, tmp_path / "whole", object_batch=3)
    steps_seen = []

    def emit(event: str, **fields) -> None:
        if event == "step":
            steps_seen.append(fields)

    with pytest.raises(Cancelled):
        _toy_run(spec, tmp_path / "stopped", object_batch=3, emit=emit, stop=lambda: len(steps_seen) == 2)
    assert steps_seen[-1]["stage"] == "object:player + object:hoop + object:basketball"
    assert steps_seen[-1]["progress"] == pytest.approx(6 / 12)  # 2 steps of 3 stages done, of 4 stages of 3 steps
    resumed, batches = _toy_run(spec, tmp_path / "stopped", object_batch=1, resume=True)
    assert batches[:2] == [3, 3]  # the stopped stages go on together from their checkpoint, the joint stage alone
    assert _largest_difference(resumed, whole) < 1e-3


def test_a_job_stopped_by_the_previous_engine_version_resumes_to_the_same_result(tmp_path: Path) -> None:
    """Checkpoints of format 2 (one stage each, its optimizers at the top level) still resume: an update of the
    engine in the middle of a job loses nothing computed."""
    spec = _spec(steps=3, checkpoint_every=1)
    _, whole = _run(spec, tmp_path / "whole")
    steps_seen = []
    with pytest.raises(Cancelled):
        _run(spec, tmp_path / "stopped", emit=lambda e, **f: steps_seen.append(e == "step"),
             stop=lambda: sum(steps_seen) == 4)  # fmt: skip
    for path in (tmp_path / "stopped").glob("*.pt"):  # as the previous version wrote them
        state = torch.load(path, weights_only=True)
        own = state.pop("stage_states")[state["stage"]]
        torch.save({**state, **own, "format": 2}, path)
    _, resumed = _run(spec, tmp_path / "stopped", resume=True)
    assert _same(resumed, whole)


def test_the_shared_pass_scores_one_render_per_step_for_both_passes_and_trains_both(tmp_path: Path) -> None:
    """The fast option `shared_pass`: one UNet call a step instead of two in the objects' own stages, and both the
    local and the global networks still learn, each from its own guidance."""
    unet_calls = {}
    for shared in (False, True):
        spec = _spec(prior="toy", frames=4, steps=3, size=64, shared_pass=shared, schedule="joint")
        sketch = load_svg(SKETCH / "sketch.svg")
        prior = load_prior(spec, sketch, CPU)
        calls: list[int] = []
        prior.unet.register_forward_pre_hook(lambda _module, inputs, calls=calls: calls.append(len(inputs[0])))
        optimization = Optimization(
            spec, sketch, prior, CPU, tmp_path / str(shared), lambda *a, **k: None, lambda: False
        )
        before = _parameters(optimization)
        optimization.run(resume=False)
        assert _changed(before, _parameters(optimization)) == set(before)  # every object's local and global
        unet_calls[shared] = calls
    assert len(unet_calls[False]) == 6 and len(unet_calls[True]) == 3  # 3 steps: two passes, or one shared


def _spread_run(spec: JobSpec, folder: Path, lanes: int, stop=lambda: False, resume=False, emit=None, lag=0.0):
    """A run with the learned toy prior on `lanes` CPU lanes (each its own copy of the model), as on that many GPUs;
    the first lane `lag` seconds slower a pass."""
    sketch = load_svg(SKETCH / "sketch.svg")
    first = load_prior(spec, sketch, CPU)
    scored = first.losses

    def lagging(*args):
        time.sleep(lag)
        return scored(*args)

    first.losses = lagging  # type: ignore[method-assign]
    more = [(CPU, load_prior(spec, sketch, CPU)) for _ in range(lanes - 1)]
    optimization = Optimization(spec, sketch, first, CPU, folder, emit or (lambda *a, **k: None), stop,
                                more_devices=more)  # fmt: skip
    return optimization.run(resume=resume)


def test_objects_stages_spread_over_two_devices_give_the_result_of_one(tmp_path: Path) -> None:
    """Two lanes (as on two GPUs) run the three objects' own stages side by side, in threads, and the joint stage
    after them: the same animation as one device running them all."""
    spec = _spec(prior="toy", frames=4, steps=3, size=64)
    one = _spread_run(spec, tmp_path / "one", lanes=1)
    threads: dict[str, str] = {}

    def emit(event: str, **fields) -> None:
        if event == "stage":
            threads[fields["stage"]] = threading.current_thread().name

    two = _spread_run(spec, tmp_path / "two", lanes=2, emit=emit)
    assert _largest_difference(one, two) < 1e-3
    assert threads["object:player"] == threads["object:basketball"] != threads["object:hoop"]  # dealt in turn


def test_a_spread_job_stopped_after_a_later_stage_finished_resumes_to_the_same_result(tmp_path: Path) -> None:
    """Lanes finish stages out of order: stopped when the second lane's stage (the hoop's) has ended while the
    first is still in the player's, the job resumes on one device and still runs every stage, to the same end."""
    spec = _spec(prior="toy", frames=4, steps=4, size=64, checkpoint_every=1)
    whole = _spread_run(spec, tmp_path / "whole", lanes=1)
    ended: list[str] = []

    def emit(event: str, **fields) -> None:
        if event == "checkpoint" and fields["step"] == spec.steps:
            ended.append(fields["stage"])

    with pytest.raises(Cancelled):
        _spread_run(spec, tmp_path / "stopped", lanes=2, emit=emit, stop=lambda: "object:hoop" in ended, lag=1.0)
    assert "object:player" not in ended  # stopped inside the first stage, after the second had ended
    resumed = _spread_run(spec, tmp_path / "stopped", lanes=1, resume=True)
    assert _largest_difference(whole, resumed) < 1e-3


def test_when_one_device_fails_the_others_stop_at_a_checkpoint_and_the_failure_is_reported(tmp_path: Path) -> None:
    """A fault on one GPU (say, out of memory) must not throw away what the others computed: they stop with a
    checkpoint, and the job ends with that fault, not with a cancellation."""
    spec = _spec(prior="toy", frames=4, steps=4, size=64)
    sketch = load_svg(SKETCH / "sketch.svg")
    failing = load_prior(spec, sketch, CPU)
    scored_there, calls = failing.losses, []

    def out_of_memory_at_the_third_pass(*args):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("CUDA out of memory (as a test)")
        return scored_there(*args)

    failing.losses = out_of_memory_at_the_third_pass  # type: ignore[method-assign]
    first = load_prior(spec, sketch, CPU)
    scored = first.losses

    def lagging(*args):
        time.sleep(0.5)
        return scored(*args)

    first.losses = lagging  # type: ignore[method-assign]
    optimization = Optimization(spec, sketch, first, CPU, tmp_path, lambda *a, **k: None, lambda: False,
                                more_devices=[(CPU, failing)])  # fmt: skip
    with pytest.raises(RuntimeError, match="out of memory"):
        optimization.run(resume=False)
    assert (tmp_path / "latest.pt").is_file()  # the first device's stage, kept where it was stopped
