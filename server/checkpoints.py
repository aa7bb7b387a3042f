"""A job's checkpoints: what a stage has trained so far, so that a stopped job resumes exactly where it was.

Each stage leaves `stage-<i>.pt` when it ends, and `latest.pt` holds the newest point inside a stage (or inside
per-object stages run together, all at the same step); with stages spread over several GPUs, each further one
keeps its own (`latest-<n>.pt`), and stages may finish in any order. A checkpoint holds only the networks its
stages train, with their optimizers, learning-rate schedules and generators; the other networks are in other
stages' files or still as their seed made them, so a job's checkpoints grow with its objects, not with their
square. Every checkpoint carries the identity of its job (format, stages, frames, steps): one of another job is
refused rather than resumed into this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import files
from .errors import UserError

FORMAT = 3  # 2: a checkpoint holds only the networks its stage trains; 3: and may hold several stages run together
_READABLE = (2, FORMAT)
LATEST = "latest.pt"
SAFE_LOAD_TORCH = (2, 6)  # the first torch whose weights_only loading cannot be made to run code


def identity(stages: list[str], frames: int, steps: int) -> dict[str, Any]:
    """What makes a checkpoint belong to a job."""
    return {"format": FORMAT, "stages": stages, "frames": frames, "steps": steps}


def stage_file(stage: int) -> str:
    return f"stage-{stage}.pt"


def latest_file(lane: int) -> str:
    """The mid-stage checkpoint of the `lane`-th device a job's stages are spread over (0: the job's own)."""
    return LATEST if lane == 0 else f"latest-{lane}.pt"


def save(
    path: Path,
    job: dict[str, Any],
    stages: dict[int, dict[str, Any]],
    step: int,
    finished: bool,
    motions: dict[str, Any],
) -> None:
    """Write atomically (temporary file, then rename): a crash mid-write never spoils the last checkpoint.

    `stages`: per stage index its optimizers, schedules and generator (several when stages run together, all
    at `step`); `motions`: the networks they train."""
    with files.replacing(path) as partial:
        state = {**job, "stage": min(stages), "step": step, "finished": finished, "motions": motions}
        torch.save({**state, "stage_states": stages}, partial)


def stages_of(state: dict[str, Any]) -> list[int]:
    """The indices of the stages a checkpoint holds, in order."""
    return sorted(state["stage_states"])


def stage_state(state: dict[str, Any], stage: int) -> dict[str, Any]:
    """One stage's optimizers, learning-rate schedules and generator from a checkpoint."""
    return state["stage_states"][stage]


def _upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of format 2 (one stage, its optimizers at the top level) in the form of the current one."""
    if state.get("format") == 2:
        own = {key: state.pop(key) for key in ("optimizers", "schedulers", "generator")}
        state.update(format=FORMAT, stage_states={state["stage"]: own})
    return state


def load_all(folder: Path, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every checkpoint in `folder` (each stage's last, and the latest mid-stage one); UserError for one that
    cannot be read safely, or that belongs to another job."""
    paths = [
        path for path in [*sorted(folder.glob("stage-*.pt")), *sorted(folder.glob("latest*.pt"))] if path.is_file()
    ]
    if paths and _torch_release() < SAFE_LOAD_TORCH:
        raise UserError(
            f"torch {torch.__version__} can be made to run code by a crafted checkpoint (CVE-2025-32434): "
            f"update it to {'.'.join(map(str, SAFE_LOAD_TORCH))} or later before resuming a job"
        )
    found = []
    for path in paths:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UserError(f"the checkpoint {path} cannot be read ({exc}): delete it to start over") from None
        if not isinstance(state, dict) or state.get("format") not in _READABLE:
            raise UserError(
                f"the checkpoint {path} was written by another version of the engine: start over in a fresh "
                "output folder (or delete the job's checkpoints/)"
            )
        state = _upgrade(state)
        differ = [key for key, value in job.items() if state.get(key) != value]
        if differ:
            raise UserError(
                f"the checkpoint {path} belongs to a job with other {', '.join(differ)}: "
                "resume with the job's own settings, or start over in a fresh output folder"
            )
        found.append(state)
    return found


def resume_position(state: dict[str, Any]) -> tuple[int, int]:
    """(stage to run, steps of it already done): a finished stage continues with the next one."""
    if state["finished"]:
        return state["stage"] + 1, 0
    return state["stage"], state["step"]


def finished_stages(checkpoints: list[dict[str, Any]]) -> set[int]:
    """The stages that ran to their end: with stages spread over several devices, not always the first ones."""
    return {state["stage"] for state in checkpoints if state["finished"]}


def unfinished(checkpoints: list[dict[str, Any]], finished: set[int]) -> list[dict[str, Any]]:
    """The mid-stage checkpoints to resume from: of stages none of which has finished, the furthest for each
    stage (a job resumed on other devices may have left an older one beside it)."""
    chosen: list[dict[str, Any]] = []
    taken: set[int] = set(finished)
    for state in sorted((s for s in checkpoints if not s["finished"]), key=lambda s: -s["step"]):
        if not taken & set(stages_of(state)):
            chosen.append(state)
            taken |= set(stages_of(state))
    return chosen


def networks(checkpoints: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each network's weights from the furthest checkpoint that holds it."""
    weights: dict[str, dict[str, Any]] = {}
    for state in sorted(checkpoints, key=resume_position):
        weights.update(state["motions"])
    return weights


def _torch_release() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)
