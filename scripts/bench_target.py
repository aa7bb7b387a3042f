"""Known-answer benchmark: does the optimizer make each object follow a given motion plan?

Runs the engine with the `target` prior on sketches of a multi-object data set (each folder with
sketch.svg, objects.tsv, caption.txt, trajectories.tsv) and measures, per object, the RMS over frames
between the planned displacement of the object's box centre and the displacement of the object's
centre (mean of its control points) in result.json. Prints a Markdown table.

    python scripts/bench_target.py DATASET_DIR [--sketches N] [--part all|tuning|evaluation] [--size 128]
        [--frames 8] [--steps 300]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.cli import main as engine  # noqa: E402
from server.tables import read_trajectories  # noqa: E402

STILL_PX = 0.5  # a plan that moves its box less than this keeps the object still


def planned_displacement(boxes: list[tuple[float, float, float, float]], frames: int) -> np.ndarray:
    """Box-centre displacement from the first box, linearly resampled to `frames` frames."""
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in boxes])
    where = np.linspace(0, len(boxes) - 1, frames)
    resampled = np.stack([np.interp(where, np.arange(len(boxes)), centres[:, axis]) for axis in range(2)], axis=1)
    return resampled - resampled[0]


def object_centres(frames: list[dict]) -> np.ndarray:
    """Mean of every control point of the object, per frame."""
    return np.array(
        [np.concatenate([np.asarray(chain) for stroke in f["points"] for chain in stroke]).mean(axis=0) for f in frames]
    )


def run_sketch(folder: Path, args: argparse.Namespace, work: Path) -> list[dict]:
    out = work / folder.name
    argv = [
        "animate", str(folder / "sketch.svg"), "--objects", str(folder / "objects.tsv"),
        "--prompt", (folder / "caption.txt").read_text().strip(), "--out", str(out),
        "--prior", "target", "--target-plan", str(folder / "trajectories.tsv"),
        "--size", str(args.size), "--frames", str(args.frames), "--steps", str(args.steps),
        "--device", args.device, "--seed", "0", "--progress", "none",
    ]  # fmt: skip
    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()) as errors:
        code = engine(argv)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{folder.name}: engine exit {code}: {errors.getvalue().strip()}")
    result = json.loads((out / "result.json").read_text())
    plan = read_trajectories(folder / "trajectories.tsv")
    rows = []
    for name, obj in result["objects"].items():
        centres = object_centres(obj["frames"])
        moved = centres - centres[0]
        wanted = planned_displacement(plan[name], args.frames) if name in plan else np.zeros_like(moved)
        still = float(np.abs(wanted).max()) < STILL_PX
        rows.append(
            {
                "sketch": folder.name,
                "strokes": result["stroke_count"],
                "objects": len(result["objects"]),
                "object": name,
                "planned_px": float(np.linalg.norm(wanted, axis=1).max()),
                "rms_px": float(np.sqrt(((moved - wanted) ** 2).sum(axis=1).mean())),
                "still": still,
                "max_move_px": float(np.linalg.norm(moved, axis=1).max()),
                "seconds": seconds,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--sketches", type=int, default=10, help="how many sketches (sorted by name)")
    parser.add_argument(
        "--part",
        choices=("all", "tuning", "evaluation"),
        default="all",
        help="the first or second half by name (the split scripts/bench_noise.py uses), or all",
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    folders = sorted(p for p in args.dataset.iterdir() if (p / "trajectories.tsv").is_file())
    half = len(folders) // 2
    folders = {"all": folders, "tuning": folders[:half], "evaluation": folders[half:]}[args.part][: args.sketches]
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    machine = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({platform.processor() or 'x86-64'})"
    print(f"size {args.size}, frames {args.frames}, steps {args.steps} per stage, device {device}: {machine}\n")
    print("| sketch | strokes | objects | object | planned max px | centre RMS error px | still: max move px | s |")
    print("|---|---|---|---|---|---|---|---|")
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        for folder in folders:
            for row in run_sketch(folder, args, Path(work)):
                ok = row["max_move_px"] < STILL_PX if row["still"] else row["rms_px"] <= 3.0
                failures += not ok
                still = f"{row['max_move_px']:.2f}" if row["still"] else "-"
                print(
                    f"| {row['sketch']} | {row['strokes']} | {row['objects']} | {row['object']} | "
                    f"{row['planned_px']:.1f} | {row['rms_px']:.2f} | {still} | {row['seconds']:.0f} |"
                    + ("" if ok else " **FAIL**"),
                    flush=True,
                )
    print(f"\n{failures} object(s) outside the bounds (moving: RMS <= 3 px; still: < {STILL_PX} px)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
