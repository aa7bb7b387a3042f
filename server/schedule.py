"""The paper's schedule: every moving object alone (local + global motion), then all of them together (local only).

Per-object stages are independent of each other: each object's networks are initialised from the job's seed and
the object's index, and each stage's random draws come from a generator seeded the same way, so a stage gives the
same result whether it runs first, last or on its own. The joint stage renders the whole scene (static objects
and background strokes unmoved), freezes every global predictor and trains only the local ones on the scene
prompt: the objects keep the paths their own stages gave them and adapt their shapes to each other.

Because they are independent, per-object stages may also run together: up to `object_batch` of them step in
lockstep through one batched prior call, and with several GPUs each device (a lane, with its own copy of the
prior) runs its share of them in a thread; the joint stage runs on the first lane. Neither changes the result
beyond float rounding. Checkpoints hold everything a run depends on (networks, optimizers, learning-rate
schedules, the generator), so a resumed job ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoints, svg
from .errors import UserError
from .motion import ObjectMotion
from .priors import Prior
from .protocol import JobSpec, ObjectSpec
from .render import canvas_to_render, render
from .result import ObjectAnimation, extract_animation
from .sketch import Sketch

JOINT_STAGE = "joint"
# Live-Sketch's scales and learning rates were chosen for 256 px canvases. The motion networks work in units of
# such a canvas (the sketch's longer side = 256) so that a sketch drawn on a larger or smaller canvas moves alike.
MOTION_CANVAS = 256.0

# Live-Sketch's optimizer settings.
LOCAL_LR = 5e-3
GLOBAL_LR = 1e-4
ADAM_BETAS = (0.9, 0.9)
ADAM_EPS = 1e-6
# Its learning-rate multiplier: a sine warm-up from 0.1 over the first tenth of the steps (100 of 1000), then a
# log-linear decay to 0.4 at the last step.
WARMUP_START = 0.1
WARMUP_FRACTION = 0.1
FINAL_MULTIPLIER = 0.4

# Keys that make the seeds of different uses of the job seed independent.
_INIT_SEED, _STAGE_SEED = 0, 1


class Cancelled(Exception):
    """The run was asked to stop; the latest checkpoint holds everything needed to resume it."""


@dataclass
class Stage:
    """One optimization stage: which objects move, under which prompt, and whether their global motion trains."""

    name: str
    animated: list[str]
    prompt: str
    train_global: bool


def plan_stages(spec: JobSpec, stroke_count: int) -> list[Stage]:
    """The stages `spec.schedule` asks for (server/protocol.py, SCHEDULES); none when nothing moves.

    By default: one stage per moving object (spec order), then the joint stage, with global motion frozen unless
    `spec.joint_global`. A lone moving object with no other strokes to meet gets no joint stage: that is
    Live-Sketch's setting, and the joint stage would only repeat its own stage.
    """
    moving = spec.moving_objects()
    if not moving:
        return []
    names = [obj.name for obj in moving]
    if spec.schedule == "joint":
        return [Stage(JOINT_STAGE, names, spec.prompt, True)]
    stages = [Stage(f"object:{obj.name}", [obj.name], obj.prompt or spec.prompt, True) for obj in moving]
    alone = len(moving) == 1 and len(moving[0].strokes) == stroke_count
    if spec.schedule == "iterative" or (spec.schedule == "auto" and not alone):
        stages.append(Stage(JOINT_STAGE, names, spec.prompt, spec.joint_global))
    return stages


def lr_multiplier(steps: int) -> Callable[[int], float]:
    """Live-Sketch's learning-rate multiplier, its 1000-step shape stretched or squeezed to `steps`."""
    warmup = WARMUP_FRACTION * steps
    last = max(steps - 1, 1)

    def multiplier(step: int) -> float:
        delay = WARMUP_START + (1 - WARMUP_START) * math.sin(0.5 * math.pi * min(step / warmup, 1.0)) if warmup else 1
        return delay * FINAL_MULTIPLIER ** min(step / last, 1.0)

    return multiplier


def derived_seed(seed: int, *keys: int) -> int:
    """A seed for one use of the job's seed (network init of object i, randomness of stage i, ...)."""
    return int(np.random.SeedSequence([seed % 2**63, *keys]).generate_state(1, dtype=np.uint64)[0] % 2**63)


class ObjectLayout:
    """Where an object's strokes sit in its flat list of control points, to cut it into segments and back."""

    def __init__(self, sketch: Sketch, obj: ObjectSpec, device: torch.device) -> None:
        self.chains: list[list[tuple[int, int]]] = []  # per stroke, per sub-path: (first point, point count)
        chains, segments, start = [], [], 0
        for index in obj.strokes:
            stroke_chains = []
            for chain in sketch.strokes[index].subpaths:
                stroke_chains.append((start, len(chain)))
                segments += [[start + 3 * k + j for j in range(4)] for k in range(svg.segment_count(chain))]
                chains.append(chain)
                start += len(chain)
            self.chains.append(stroke_chains)
        if not segments and not obj.static:
            raise UserError(f"object {obj.name!r} has no drawable strokes: give it strokes with at least one segment")
        self.rest_points = np.concatenate(chains).astype(np.float64) if chains else np.zeros((0, 2))
        # (S, 4) indices into the flat points, in the order of Sketch.segments(obj.strokes).
        self.segment_index = torch.tensor(segments, dtype=torch.long, device=device)
        self.segment_widths = torch.tensor(sketch.segment_widths(obj.strokes), dtype=torch.float32, device=device)

    def regroup(self, points: np.ndarray) -> list[list[np.ndarray]]:
        """Flat (P, 2) points of one frame -> [stroke][sub-path] chains."""
        return [[points[start : start + count] for start, count in stroke] for stroke in self.chains]


@dataclass
class _Lane:
    """Where a series of stages runs: a device with its own prior, the sketch's tensors there, and the networks of
    the objects it trains. The first lane is the job's own device and holds every network; the others (one per
    further GPU) each run their share of the objects' own stages side by side, in a thread of their own."""

    device: torch.device
    prior: Prior
    layouts: dict[str, ObjectLayout]
    offset: torch.Tensor
    still_segments: torch.Tensor
    still_widths: torch.Tensor
    latest: str  # the file of its mid-stage checkpoint
    motions: dict[str, ObjectMotion] = field(default_factory=dict)


class Optimization:
    """Runs the stages of one job, with progress events, checkpoints, cancellation and exact resume."""

    def __init__(
        self,
        spec: JobSpec,
        sketch: Sketch,
        prior: Prior,
        device: torch.device,
        checkpoint_dir: Path,
        emit: Callable[..., None],
        should_stop: Callable[[], bool],
        object_batch: int = 1,
        more_devices: Sequence[tuple[torch.device, Prior]] = (),
    ) -> None:
        """`more_devices`: further (device, prior) pairs, where the objects' own stages are spread as well."""
        self.spec = spec
        self.object_batch = max(1, object_batch)
        self.sketch = sketch
        self.device = torch.device(device)
        self.checkpoint_dir = Path(checkpoint_dir)
        self._emit_unlocked = emit
        self._lock = threading.Lock()  # lanes in threads report, count and check through it
        self.should_stop = should_stop
        self._halt = threading.Event()  # a lane failed: the others checkpoint and stop
        self.stages = plan_stages(spec, len(sketch.strokes))
        self.layouts = {obj.name: ObjectLayout(sketch, obj, self.device) for obj in spec.objects}
        self.motion_units = MOTION_CANVAS / max(sketch.width, sketch.height)  # motion units per canvas px
        self.motions: dict[str, ObjectMotion] = {}
        for index, obj in enumerate(spec.objects):
            if not obj.static:
                self.motions[obj.name] = self._new_motion(index, obj)
        moving_strokes = {index for obj in spec.moving_objects() for index in obj.strokes}
        still = [index for index in range(len(sketch.strokes)) if index not in moving_strokes]
        self.scale, offset_x, offset_y = canvas_to_render(sketch.width, sketch.height, spec.size)
        self.offset = torch.tensor([offset_x, offset_y], dtype=torch.float32, device=self.device)
        self.still_segments = torch.tensor(sketch.segments(still), dtype=torch.float32, device=self.device)
        self.still_widths = torch.tensor(sketch.segment_widths(still), dtype=torch.float32, device=self.device)
        self.lanes = [_Lane(self.device, prior, self.layouts, self.offset, self.still_segments, self.still_widths,
                            checkpoints.LATEST, self.motions)]  # fmt: skip
        for number, (other, other_prior) in enumerate(more_devices, start=1):
            other = torch.device(other)
            layouts = {obj.name: ObjectLayout(sketch, obj, other) for obj in spec.objects}
            self.lanes.append(_Lane(other, other_prior, layouts, self.offset.to(other), self.still_segments.to(other),
                                    self.still_widths.to(other), checkpoints.latest_file(number)))  # fmt: skip
        self._run_started = 0.0
        self._steps_this_run = 0
        self._steps_before = 0  # of stages finished before this run
        self._steps_done: dict[tuple[int, ...], int] = {}  # per group of this run, its steps (from its stages' start)
        self.skipped_steps = 0  # passes whose gradient was not finite, this run

    def _new_motion(self, index: int, obj: ObjectSpec) -> ObjectMotion:
        """Networks initialised from (seed, object index) on the CPU: the same start on every device."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(self.spec.seed, _INIT_SEED, index))
            rest_points = torch.from_numpy(self.layouts[obj.name].rest_points * self.motion_units).float()
            motion = ObjectMotion(
                rest_points, self.spec.frames, self.spec.head_gains, self.spec.local_affine == "remove"
            )
        return motion.to(self.device)

    # -- the run ------------------------------------------------------------------------------------------------

    def run(self, resume: bool) -> dict[str, ObjectAnimation]:
        """Every stage from the start (or from the newest checkpoint), then every object's animation.

        Up to `object_batch` per-object stages run together, step by step in one batch through the prior; each
        keeps its own networks, optimizers and random draws, so the result is that of running them one after
        another (to float rounding). With several lanes (devices) the objects' own stages are spread over them,
        with the same result; the joint stage runs on the first.
        """
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        found = checkpoints.load_all(self.checkpoint_dir, self._identity()) if resume else []
        for name, weights in checkpoints.networks(found).items():
            self.motions[name].load_state_dict(weights)
        finished = checkpoints.finished_stages(found)
        work: list[tuple[list[int], int, dict[str, Any] | None]] = []
        for checkpoint in checkpoints.unfinished(found, finished):  # inside the stages it was saved in, together
            work.append((checkpoints.stages_of(checkpoint), checkpoint["step"], checkpoint))
        covered = finished | {index for group, _, _ in work for index in group}
        work += [(group, 0, None) for group in self._groups([i for i in range(len(self.stages)) if i not in covered])]
        work.sort(key=lambda item: item[0][0])
        self._run_started, self._steps_this_run = time.monotonic(), 0
        self._steps_before, self._steps_done = len(finished) * self.spec.steps, {}
        is_joint = [self.stages[group[0]].name == JOINT_STAGE for group, _, _ in work]
        self._run_spread([item for item, joint in zip(work, is_joint, strict=True) if not joint])
        for item in [item for item, joint in zip(work, is_joint, strict=True) if joint]:
            self._run_group(self.lanes[0], *item)
        return self.animation()

    def _run_spread(self, work: list[tuple[list[int], int, dict[str, Any] | None]]) -> None:
        """The objects' own stages, dealt out over the lanes in turn; each lane runs its share in order, in a
        thread of its own when there are several. A lane that fails stops the others at a checkpoint."""
        if len(work) < 2 or len(self.lanes) == 1:
            self._run_share(self.lanes[0], work)  # in this thread: one device, nothing beside it
            return
        shares = [work[number :: len(self.lanes)] for number in range(len(self.lanes))]
        with ThreadPoolExecutor(len(shares)) as pool:
            running = [
                pool.submit(self._run_share, lane, share) for lane, share in zip(self.lanes, shares, strict=True)
            ]
            failures = [future.exception() for future in running]
        errors = [error for error in failures if error is not None]
        if errors:  # the fault itself before the stops it caused
            raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])

    def _run_share(self, lane: _Lane, share: list[tuple[list[int], int, dict[str, Any] | None]]) -> None:
        on_gpu = torch.cuda.device(lane.device) if lane.device.type == "cuda" else contextlib.nullcontext()
        try:
            with on_gpu:  # the lane's GPU is the current one in its thread, for whatever allocates on the current
                for group, first_step, checkpoint in share:
                    names = [name for index in group for name in self.stages[index].animated]
                    if lane is not self.lanes[0]:  # its own copies of the networks it trains, back when done
                        lane.motions = {name: copy.deepcopy(self.motions[name]).to(lane.device) for name in names}
                    self._run_group(lane, group, first_step, checkpoint)
                    if lane is not self.lanes[0]:
                        for name in names:
                            self.motions[name].load_state_dict(lane.motions[name].state_dict())
        except BaseException as error:
            if not isinstance(error, Cancelled):
                self._halt.set()
            raise

    def _groups(self, indices: list[int]) -> list[list[int]]:
        """Stages `indices` (in order), consecutive per-object stages in groups of up to `object_batch`, and small
        enough that every lane gets a group."""
        objects = sum(self.stages[index].name != JOINT_STAGE for index in indices)
        batch = min(self.object_batch, max(1, math.ceil(objects / len(self.lanes))))
        groups: list[list[int]] = []
        for index in indices:
            joins = groups and self.stages[index].name != JOINT_STAGE and self.stages[groups[-1][0]].name != JOINT_STAGE
            if joins and len(groups[-1]) < batch:
                groups[-1].append(index)
            else:
                groups.append([index])
        return groups

    def _run_group(self, lane: _Lane, group: list[int], first_step: int, checkpoint: dict[str, Any] | None) -> None:
        """Stages `group` in lockstep on `lane` from `first_step` (restored from `checkpoint` when resuming)."""
        stages = [self.stages[index] for index in group]
        steps = self.spec.steps
        label = self._label(group)
        self.emit("stage", stage=label, index=group[0], count=len(self.stages))
        animated = {name for stage in stages for name in stage.animated}
        for name, motion in lane.motions.items():
            motion.local.requires_grad_(name in animated)
            motion.global_motion.requires_grad_(name in animated and stages[0].train_global)
        runs = [_StageRun(self._optimizers(lane, stage), steps) for stage in stages]
        for index, stage, run in zip(group, stages, runs, strict=True):
            run.generator.manual_seed(derived_seed(self.spec.seed, _STAGE_SEED, self._stage_key(stage)))
            if checkpoint is not None:
                run.restore(checkpoints.stage_state(checkpoint, index))
        conditions = [lane.prior.condition(stage.prompt, stage.animated) for stage in stages]
        passes = [("local", self.spec.guidance_local)]
        if stages[0].train_global:
            passes.append(("global", self.spec.guidance_global))
        for step in range(first_step, steps):
            if self.should_stop() or self._halt.is_set():
                self._save(lane, lane.latest, group, runs, step, False)
                raise Cancelled(f"stopped in stage {label} before step {step + 1}")
            loss = self._step(lane, stages, runs, passes, conditions)
            for run in runs:
                run.step_schedules()
            self._report_step(group, label, step + 1, loss)
            if (step + 1) % self.spec.checkpoint_every == 0 and step + 1 < steps:
                self._save(lane, lane.latest, group, runs, step + 1, False)
        for index, run in zip(group, runs, strict=True):
            self._save(lane, checkpoints.stage_file(index), [index], [run], steps, True)

    def _step(
        self,
        lane: _Lane,
        stages: list[Stage],
        runs: list[_StageRun],
        passes: list[tuple[str, float]],
        conditions: list[object],
    ) -> float:
        """One iteration of every stage of a group: per pass, render each, score them together at the pass's
        guidance, step each stage's optimizer of that pass only. With the shared pass (`spec.shared_pass`) one
        render and one score serve every pass, each pass's networks get the gradient of their own guidance's loss,
        then every optimizer steps: unlike the default, the global pass sees the video from before the local step.

        Every gradient is cleared before each render, so no pass ever steps on another pass's gradient. Returns the
        local pass's mean loss, the one progress reports.
        """
        generators = [run.generator for run in runs]
        if self.spec.shared_pass and len(passes) > 1:
            videos = self._fresh_videos(lane, stages)
            scores = lane.prior.guided_losses(videos, conditions, [guidance for _, guidance in passes], generators)
            for index, (kind, _) in enumerate(passes):
                params = [p for run in runs for group in run.optimizers[kind].param_groups for p in group["params"]]
                last = index == len(passes) - 1
                grads = torch.autograd.grad(scores[index].sum(), params, retain_graph=not last, allow_unused=True)
                for param, grad in zip(params, grads, strict=True):
                    param.grad = grad
            self._step_optimizers(stages, runs, [kind for kind, _ in passes])
            return float(scores[0].detach().mean())
        losses = []
        for kind, guidance in passes:
            videos = self._fresh_videos(lane, stages)
            scores = lane.prior.losses(videos, conditions, guidance, generators)
            scores.sum().backward()  # each stage's networks get the gradient of its own loss only
            self._step_optimizers(stages, runs, [kind])
            losses.append(float(scores.detach().mean()))
        return losses[0]

    def _step_optimizers(self, stages: list[Stage], runs: list[_StageRun], kinds: list[str]) -> None:
        """Each stage's optimizers of `kinds` step on their gradients, unless one is not finite (an fp16 overflow in
        the VAE's backward): then that step is lost and reported, and the networks are never corrupted."""
        for stage, run in zip(stages, runs, strict=True):
            for kind in kinds:
                if _finite_gradients(run.optimizers[kind]):
                    run.optimizers[kind].step()
                else:
                    with self._lock:
                        self.skipped_steps += 1
                        skipped = self.skipped_steps
                    self.emit("warning", message=f"step skipped in stage {stage.name}: non-finite gradient "
                              f"({skipped} so far)")  # fmt: skip

    def _stage_key(self, stage: Stage) -> int:
        """Object stages are keyed by the object's index in the spec, the joint stage by the object count."""
        names = [obj.name for obj in self.spec.objects]
        return len(names) if stage.name == JOINT_STAGE else names.index(stage.animated[0])

    def _optimizers(self, lane: _Lane, stage: Stage) -> dict[str, torch.optim.Optimizer]:
        groups: dict[str, list[torch.nn.Parameter]] = {"local": [], "global": []}
        for name in stage.animated:
            groups["local"] += list(lane.motions[name].local.parameters())
            if stage.train_global:
                groups["global"] += list(lane.motions[name].global_motion.parameters())
        rates = {"local": LOCAL_LR, "global": GLOBAL_LR}
        return {
            kind: torch.optim.Adam(params, lr=rates[kind], betas=ADAM_BETAS, eps=ADAM_EPS)
            for kind, params in groups.items()
            if params
        }

    def _fresh_videos(self, lane: _Lane, stages: list[Stage]) -> list[torch.Tensor]:
        """Every stage's video, rendered after clearing every gradient of the lane's networks: a pass steps on its
        own gradient only."""
        for motion in lane.motions.values():
            motion.zero_grad(set_to_none=True)
        return [self._render_stage(lane, stage) for stage in stages]

    def _render_stage(self, lane: _Lane, stage: Stage) -> torch.Tensor:
        """The stage's video (F, 3, size, size): its animated objects, plus everything else in the joint stage."""
        segments, widths = [], []
        for name in stage.animated:
            layout = lane.layouts[name]
            segments.append(lane.motions[name]().points[:, layout.segment_index] / self.motion_units)
            widths.append(layout.segment_widths)
        if stage.name == JOINT_STAGE and len(lane.still_segments):
            segments.append(lane.still_segments.expand(self.spec.frames, -1, -1, -1))
            widths.append(lane.still_widths)
        render_segments = torch.cat(segments, dim=1) * self.scale + lane.offset
        return render(render_segments, torch.cat(widths) * self.scale, self.spec.size)

    def emit(self, name: str, **fields: Any) -> None:
        """An event to the job's listener, one at a time whichever lane sends it."""
        with self._lock:
            self._emit_unlocked(name, **fields)

    def _report_step(self, group: list[int], label: str, step: int, loss: float) -> None:
        steps = self.spec.steps
        total = steps * len(self.stages)
        with self._lock:
            self._steps_this_run += len(group)
            self._steps_done[tuple(group)] = step * len(group)
            done = self._steps_before + sum(self._steps_done.values())
            eta = (time.monotonic() - self._run_started) / self._steps_this_run * (total - done)
        self.emit("step", stage=label, step=step, steps=steps, loss=loss, progress=done / total, eta_s=round(eta, 1))

    # -- results ------------------------------------------------------------------------------------------------

    def animation(self) -> dict[str, ObjectAnimation]:
        """Every object's animation as the networks give it now."""
        return extract_animation(self.spec, self.layouts, self.motions, self.motion_units)

    # -- checkpoints --------------------------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        return checkpoints.identity([s.name for s in self.stages], self.spec.frames, self.spec.steps)

    def _save(
        self, lane: _Lane, file_name: str, group: list[int], runs: list[_StageRun], step: int, finished: bool
    ) -> None:
        """A checkpoint of the networks stages `group` train on `lane` (server/checkpoints.py), announced."""
        path = self.checkpoint_dir / file_name
        animated = [name for index in group for name in self.stages[index].animated]
        checkpoints.save(
            path,
            self._identity(),
            {index: run.state() for index, run in zip(group, runs, strict=True)},
            step,
            finished,
            {name: lane.motions[name].state_dict() for name in animated},
        )
        self.emit("checkpoint", stage=self._label(group), step=step, path=str(path))

    def _label(self, group: list[int]) -> str:
        """The name progress events give stages that run together: theirs, joined by ' + '."""
        return " + ".join(self.stages[index].name for index in group)


class _StageRun:
    """What one stage trains with: its optimizers (one per pass), their learning-rate schedules, its generator."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], steps: int) -> None:
        self.optimizers = optimizers
        self.schedulers = {
            kind: torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(steps))
            for kind, optimizer in optimizers.items()
        }
        self.generator = torch.Generator()

    def step_schedules(self) -> None:
        with warnings.catch_warnings():  # a skipped first step leaves the schedule a step ahead: meant so
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            for scheduler in self.schedulers.values():
                scheduler.step()

    def state(self) -> dict[str, Any]:
        return {
            "optimizers": {kind: optimizer.state_dict() for kind, optimizer in self.optimizers.items()},
            "schedulers": {kind: scheduler.state_dict() for kind, scheduler in self.schedulers.items()},
            "generator": self.generator.get_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        for kind, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][kind])
            self.schedulers[kind].load_state_dict(state["schedulers"][kind])
        self.generator.set_state(state["generator"])


def _finite_gradients(optimizer: torch.optim.Optimizer) -> bool:
    """Whether every gradient the optimizer would apply is finite (one check, one device sync)."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return bool(torch.stack([g.isfinite().all() for g in grads]).all()) if grads else True
