"""The motion model under SDS-like noise: the `target` prior's pull plus zero-mean Gaussian noise on its gradient.

SDS gradients are mostly noise, and any gain on a motion head turns noise into drift and jitter. Here the
known-answer `target` prior (server/priors/target.py) gives the signal, and i.i.d. Gaussian noise is added to
its gradient with respect to the video at a given signal-to-noise ratio (norm of the pull / norm of the noise,
every pass). Each moving object runs its own stage (schedule "objects", as Live-Sketch has no joint stage), for
the engine's motion model under several settings and for Live-Sketch's reference model
(scripts/livesketch_reference.py), on the same sketches, plans and seeds. Reported per setting and SNR:
moving objects' centre RMS error against the plan, planned-still objects' largest move, and jitter.

The shared multi-object set is split by name: the first half chooses settings, the second half reports.

    python scripts/bench_noise.py ../shared/datasets/multiobject --part tuning|evaluation [--sketches 6] \
        [--snr inf 1 0.3] [--settings ...] [--workers 2] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_target import planned_displacement  # noqa: E402
from scripts.motion_check import jitter  # noqa: E402
from server.priors import Prior  # noqa: E402
from server.protocol import JobSpec  # noqa: E402

FRAMES, SIZE, STEPS = 8, 64, 150  # the toy prior's scale, so that this runs on a CPU
STILL_PX = 0.5
REFERENCE = "Live-Sketch reference"
SETTINGS = {
    "gains 600/10/10/20, local affine removed": {"head_gains": {"translation": 600.0, "rotation": 10.0,
                                                               "shear": 10.0, "scale": 20.0}, "local_affine": "remove"},
    "gains 1, local affine kept": {"head_gains": dict.fromkeys(("translation", "rotation", "shear", "scale"), 1.0),
                                   "local_affine": "keep"},
    "gains 30/3/3/3, local affine kept": {"head_gains": {"translation": 30.0, "rotation": 3.0, "shear": 3.0,
                                                         "scale": 3.0}, "local_affine": "keep"},
    REFERENCE: {},
}  # fmt: skip


class _NoisyGradient(torch.autograd.Function):
    """Identity forward; backward adds `noise`, rescaled to the incoming gradient's norm over `snr`."""

    @staticmethod
    def forward(ctx, video: torch.Tensor, snr: float, noise: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.snr = snr
        ctx.save_for_backward(noise)
        return video.view_as(video)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        (noise,) = ctx.saved_tensors
        scale = grad.norm() / (ctx.snr * noise.norm().clamp(min=1e-12))
        return grad + scale * noise, None, None


class NoisyPrior(Prior):
    """Another prior's gradient plus Gaussian noise at a fixed signal-to-noise ratio (none at snr = inf)."""

    def __init__(self, inner: Prior, snr: float) -> None:
        self.inner, self.snr, self.name = inner, snr, f"{inner.name}+noise"

    def condition(self, prompt: str, objects):  # noqa: ANN001, ANN201
        return self.inner.condition(prompt, objects)

    def loss(self, video: torch.Tensor, condition: object, guidance: float, generator: torch.Generator) -> torch.Tensor:
        if math.isfinite(self.snr):
            noise = torch.randn(video.shape, generator=generator).to(video.device, video.dtype)
            video = _NoisyGradient.apply(video, self.snr, noise)
        return self.inner.loss(video, condition, guidance, generator)


def run_one(task: dict) -> list[dict]:
    """One sketch at one SNR with one setting: a row per object."""
    torch.set_num_threads(1)
    from scripts.livesketch_reference import reference_animation
    from server.priors.target import TargetPrior
    from server.protocol import ObjectSpec
    from server.schedule import Optimization
    from server.sketch import load_svg
    from server.tables import read_stroke_table, read_trajectories

    folder = Path(task["folder"])
    sketch = load_svg(folder / "sketch.svg")
    table = read_stroke_table(folder / "objects.tsv", len(sketch.strokes))
    spec = JobSpec(sketch=str(folder / "sketch.svg"), prompt="-", objects=[ObjectSpec(n, s) for n, s in table.items()],
                   frames=FRAMES, steps=STEPS, size=SIZE, prior="target", target_plan=str(folder / "trajectories.tsv"),
                   schedule="objects", **SETTINGS[task["setting"]])  # fmt: skip
    cpu = torch.device("cpu")
    prior = NoisyPrior(TargetPrior(spec, sketch, cpu), task["snr"])
    if task["setting"] == REFERENCE:
        points = reference_animation(spec, sketch, prior, cpu)
    else:
        with tempfile.TemporaryDirectory() as work:
            optimization = Optimization(spec, sketch, prior, cpu, Path(work), lambda *a, **k: None, lambda: False)
            animation = optimization.run(resume=False)
        points = {
            name: np.array([np.concatenate([c for stroke in frame for c in stroke]) for frame in obj.points])
            for name, obj in animation.items()
        }
    plan = read_trajectories(folder / "trajectories.tsv")
    rows = []
    for name, frames in points.items():
        centres = frames.mean(axis=1)
        moved = centres - centres[0]
        wanted = planned_displacement(plan[name], FRAMES) if name in plan else np.zeros_like(moved)
        error = float(np.sqrt(((moved - wanted) ** 2).sum(axis=1).mean()))
        largest = float(np.linalg.norm(moved, axis=1).max())
        still = bool(np.abs(wanted).max() < STILL_PX)
        rows.append({**task, "object": name, "still": still, "rms_px": error, "largest_move_px": largest,
                     "jitter_px": jitter(frames)})  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--part", choices=("tuning", "evaluation"), required=True)
    parser.add_argument("--sketches", type=int, default=6, help="sketches from the part, in name order")
    parser.add_argument("--snr", type=float, nargs="+", default=[math.inf, 1.0, 0.3])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="append each row here as a JSON line")
    args = parser.parse_args()
    folders = sorted(p for p in args.dataset.iterdir() if (p / "trajectories.tsv").is_file())
    half = len(folders) // 2
    folders = (folders[:half] if args.part == "tuning" else folders[half:])[: args.sketches]
    tasks = [{"folder": str(f), "snr": snr, "setting": s} for f in folders for snr in args.snr for s in args.settings]
    rows = []
    log = args.json.open("a", encoding="utf-8") if args.json else None
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for found in pool.imap_unordered(run_one, tasks):
            rows += found
            if log:
                log.writelines(json.dumps(row) + "\n" for row in found)
                log.flush()
    names = ", ".join(Path(f).name for f in folders)
    print(f"{args.part} sketches ({len(folders)}): {names}; {FRAMES} frames, {SIZE} px, {STEPS} steps, CPU\n")
    print(table(rows, args.settings, args.snr))
    return 0


def table(rows: list[dict], settings: list[str], snrs: list[float]) -> str:
    header = (
        "| setting | SNR | moving: centre RMS error px (median / mean) | still: largest move px (max) | jitter px |"
    )
    lines = [header, "|---|---|---|---|---|"]
    for setting in settings:
        for snr in snrs:
            mine = [r for r in rows if r["setting"] == setting and r["snr"] == snr]
            moving = [r["rms_px"] for r in mine if not r["still"]]
            still = [r["largest_move_px"] for r in mine if r["still"]]
            if not mine:
                continue
            lines.append(
                f"| {setting} | {snr:g} | {np.median(moving):.2f} / {np.mean(moving):.2f} | "
                f"{max(still, default=float('nan')):.2f} | {np.mean([r['jitter_px'] for r in mine]):.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
