"""SDS against a known answer: does a prompted motion happen, with the learned toy prior, ours against Live-Sketch?

Every run is a real job (`python -m server animate ... --prior toy`, in-process) on one sketch with one motion
phrase of `server.priors.toy.MOTIONS` as the prompt ("the sketch moves left"); the verdict comes from the
result's control points (scripts/motion_check.py). Three parts, each a Markdown table:

1. tuning: motion settings (head gains, local affine) on procedural sketches made here, of the training's kind;
   the best (accuracy, then jitter) becomes the candidate default. The evaluation sketches play no part in it.
2. evaluation: that setting, the engine's current default and Live-Sketch's reference model
   (scripts/livesketch_reference.py) on held-out sketches (e.g. ../shared/datasets/singleobject, never trained on).
3. multi-object: two objects of multi-object sketches, each with its own prompt, the iterative schedule against a
   joint-only one with the same number of iterations in all; on real sketches (--multi: their object names are
   words the toy model never learned) and on procedural two-object scenes of shape classes it knows by name.

    python scripts/bench_sds.py --eval ../shared/datasets/singleobject --multi ../shared/datasets/multiobject \
        [--multi-procedural 8] [--tuning 6] [--workers 12] [--device cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import multiprocessing
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.motion_check import jitter, judge, measure_points  # noqa: E402

ALL_GAINS = ("translation", "rotation", "shear", "scale")
# The motion settings tried in the tuning part: name -> CLI flags.
SETTINGS = {
    "gains 600/10/10/20, local affine removed": ["--head-gain", "translation=600", "--head-gain", "rotation=10",
                                                 "--head-gain", "shear=10", "--head-gain", "scale=20"],
    "gains 1, local affine kept": [f for head in ALL_GAINS for f in ("--head-gain", f"{head}=1")]
    + ["--local-affine", "keep"],
    "gains 30/3/3/3, local affine kept": ["--head-gain", "translation=30", "--head-gain", "rotation=3",
                                          "--head-gain", "shear=3", "--head-gain", "scale=3", "--local-affine", "keep"],
}  # fmt: skip
# Fast options measured against the default on the held-out sketches (--compare), not candidates for tuning.
FAST_OPTIONS = {"default + shared pass": [*SETTINGS["gains 600/10/10/20, local affine removed"], "--shared-pass"]}
REFERENCE = "Live-Sketch reference"
TRANSLATIONS = ("moves left", "moves right", "moves up", "moves down")
CANVAS = 256.0  # px, the side of the procedural sketches
PROCEDURAL = ("scribble", "blob", "star", "face", "zigzag", "squiggle", "triangle", "box")


def procedural_sketches(folder: Path, count: int) -> list[Path]:
    """Sketches of the training's shape classes on a 256 px canvas, 3 px lines, one SVG each (seeded)."""
    from scripts.train_toy_prior import make_shape

    rng = np.random.default_rng(1234)
    paths = []
    for index in range(count):
        kind = PROCEDURAL[index % len(PROCEDURAL)]
        centre, radius = rng.uniform(96, 160, 2), rng.uniform(45, 70)
        path = folder / f"procedural-{index:02d}-{kind}.svg"
        _write_svg(path, _paths(make_shape(kind, rng), centre, radius))
        paths.append(path)
    return paths


def procedural_scenes(folder: Path, count: int, objects: int = 2) -> list[Path]:
    """Scenes (sketch.svg, objects.tsv) of `objects` shape classes the toy model knows by name, each named after
    its class. Two objects are placed as its two-object training clips are, from another seed; three (more than
    it was trained on) at the corners of a triangle about the centre."""
    from scripts.train_toy_prior import make_shape, two_slots

    rng = np.random.default_rng(4321 + objects - 2)
    folders = []
    for index in range(count):
        kinds = rng.choice(PROCEDURAL, objects, replace=False)
        elements, rows = [], []
        for kind, slot in zip(kinds, two_slots(rng) if objects == 2 else _corners(rng, objects), strict=True):
            drawn = _paths(make_shape(str(kind), rng), slot * CANVAS, rng.uniform(0.12, 0.22) * CANVAS)
            rows.append(f"{kind}\t" + ",".join(str(len(elements) + i) for i in range(len(drawn))))
            elements += drawn
        scene = folder / f"scene-{objects}-{index:02d}"
        scene.mkdir()
        _write_svg(scene / "sketch.svg", elements)
        (scene / "objects.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        folders.append(scene)
    return folders


def _corners(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """`count` canvas positions (0 to 1) evenly round the centre, 0.27 from it, at a random angle."""
    start = rng.uniform(0, 2 * np.pi)
    angles = start + 2 * np.pi * np.arange(count) / count
    return [0.5 + 0.27 * np.array([np.cos(a), np.sin(a)]) for a in angles]


def _paths(strokes: list[np.ndarray], centre: np.ndarray, radius: float) -> list[str]:
    """SVG path elements of a unit shape's cubic chains drawn at `centre` with `radius` px."""
    elements = []
    for chain in strokes:
        points = chain * radius + centre
        d = f"M {points[0, 0]:.2f} {points[0, 1]:.2f} " + " ".join(
            "C " + " ".join(f"{x:.2f} {y:.2f}" for x, y in points[3 * k + 1 : 3 * k + 4])
            for k in range((len(points) - 1) // 3)
        )
        elements.append(f'<path d="{d}" fill="none" stroke="black" stroke-width="3.0"/>')
    return elements


def _write_svg(path: Path, elements: list[str]) -> None:
    header = f'<svg xmlns="http://www.w3.org/2000/svg" width="{CANVAS:g}" height="{CANVAS:g}">'
    path.write_text(header + "".join(elements) + "</svg>\n", encoding="utf-8")


def _points(result: dict, name: str) -> np.ndarray:
    frames = result["objects"][name]["frames"]
    return np.array([np.concatenate([np.asarray(c) for stroke in f["points"] for c in stroke]) for f in frames])


def run_one(task: dict) -> dict:
    """One job; returns the task with, per moving object, its measured motion and verdict."""
    import torch

    torch.set_num_threads(1)
    from server.cli import main as engine

    with tempfile.TemporaryDirectory() as work:
        if task["setting"] == REFERENCE:
            points = _reference(task)
        else:
            argv = ["animate", task["sketch"], "--prompt", task["prompt"], "--out", str(Path(work) / "job"),
                    "--prior", "toy", "--device", task["device"], "--seed", str(task["seed"]), "--progress", "none",
                    *task["flags"]]  # fmt: skip
            with contextlib.redirect_stderr(io.StringIO()) as errors:
                code = engine(argv)
            if code != 0:
                return {**task, "error": errors.getvalue().strip()}
            result = json.loads((Path(work) / "job" / "result.json").read_text())
            points = {name: _points(result, name) for name in task["stated"]}
    rows = {}
    for name, stated in task["stated"].items():
        measured = measure_points(points[name])
        rows[name] = {
            "stated": stated,
            "ok": bool(judge(stated, measured, CANVAS)),
            "shift": measured.shift.tolist(),
            "scale": measured.scale,
            "turn": measured.turn_degrees,
            "largest_move_px": measured.largest_move_px,
            "jitter_px": jitter(points[name]),
        }
    return {**task, "objects": rows}


def _reference(task: dict) -> dict[str, np.ndarray]:
    import torch

    from scripts.livesketch_reference import reference_animation
    from server.devices import resolve_device
    from server.priors import load_prior
    from server.protocol import JobSpec, toy_settings
    from server.sketch import default_objects, load_svg

    sketch = load_svg(Path(task["sketch"]))
    settings = toy_settings()
    settings["steps"] = task["steps"]
    spec = JobSpec(sketch=task["sketch"], prompt=task["prompt"], objects=default_objects(sketch), prior="toy",
                   seed=task["seed"], device=task["device"], **settings)  # fmt: skip
    device = resolve_device(spec.device)
    with torch.no_grad():
        prior = load_prior(spec, sketch, device)
    return reference_animation(spec, sketch, prior, device)


def one_object_tasks(sketches: list[Path], settings: list[str], device: str, steps: int) -> list[dict]:
    from server.priors.toy import MOTIONS, caption

    flags = {**SETTINGS, **FAST_OPTIONS}
    return [
        {"part": "", "sketch": str(path), "setting": name, "flags": [*flags.get(name, []), "--steps", str(steps)],
         "device": device, "seed": 0, "prompt": caption(("sketch", stated)), "stated": {"sketch": stated},
         "steps": steps}
        for path in sketches for stated in MOTIONS for name in settings
    ]  # fmt: skip


def multi_object_tasks(folders: list[Path], device: str, steps: int, moving_count: int = 2) -> list[dict]:
    """The first `moving_count` objects move (each its own phrase and prompt), the others stay; iterative vs
    joint-only with as many steps in all."""
    from server.priors.toy import caption
    from server.tables import read_stroke_table

    tasks = []
    for index, folder in enumerate(folders):
        names = list(read_stroke_table(folder / "objects.tsv"))
        moving = names[:moving_count]
        stated = {name: TRANSLATIONS[(index + k) % 4] for k, name in enumerate(moving)}
        flags = ["--objects", str(folder / "objects.tsv")]
        for name in names[moving_count:]:
            flags += ["--static", name]
        for name in moving:
            flags += ["--object-prompt", f"{name}={caption((name, stated[name]))}"]
        prompt = caption(*stated.items())
        for schedule, stage_steps in (("auto", steps), ("joint", steps * (len(moving) + 1))):
            tasks.append({"part": "multi", "sketch": str(folder / "sketch.svg"), "setting": schedule,
                          "flags": [*flags, "--schedule", schedule, "--steps", str(stage_steps)], "device": device,
                          "seed": 0, "prompt": prompt, "stated": stated, "steps": stage_steps})  # fmt: skip
    return tasks


def table(rows: list[dict], settings: list[str]) -> str:
    """Per setting and phrase: share going the stated way, mean jitter, and for "stays still" the median move."""
    from server.priors.toy import MOTIONS

    lines = ["| setting | " + " | ".join(MOTIONS) + " | all | jitter px | still: median move px |",
             "|---|" + "---|" * (len(MOTIONS) + 3)]  # fmt: skip
    for name in settings:
        mine = [obj for row in rows if row["setting"] == name for obj in row.get("objects", {}).values()]
        if not mine:
            continue
        cells = [f"{np.mean([o['ok'] for o in mine if o['stated'] == stated]):.0%}" for stated in MOTIONS]
        still = [o["largest_move_px"] for o in mine if o["stated"] == "stays still"]
        moving = [o["jitter_px"] for o in mine]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean([o['ok'] for o in mine]):.0%} | "
                     f"{np.mean(moving):.2f} | {np.median(still):.2f} |")  # fmt: skip
    return "\n".join(lines)


def score(rows: list[dict], name: str) -> tuple[float, float]:
    mine = [obj for row in rows if row["setting"] == name for obj in row.get("objects", {}).values()]
    return float(np.mean([o["ok"] for o in mine])), -float(np.mean([o["jitter_px"] for o in mine]))


@functools.cache
def sketch_hash(path: str) -> str:
    """The content hash of a sketch, read once per path (a sketch has 18 tasks, a log hundreds of rows)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def task_key(part: str, task: dict) -> tuple:
    """What makes two runs the same run: the sketch's content (not its path), setting, prompts, seed and steps."""
    return (
        part,
        task["sketch_sha1"],
        task["setting"],
        json.dumps(task["stated"], sort_keys=True),
        task["seed"],
        task["steps"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, help="folder of held-out SVG sketches (one object each)")
    parser.add_argument("--multi", type=Path, help="multi-object data set (folders with sketch.svg, objects.tsv)")
    parser.add_argument(
        "--tuning", type=int, default=6, help="procedural sketches for choosing the setting (0: keep the default)"
    )
    parser.add_argument("--multi-count", type=int, default=10)
    parser.add_argument("--multi-procedural", type=int, default=0, help="scenes of named shape classes")
    parser.add_argument("--scene-objects", type=int, default=2, help="objects in each procedural scene, all moving")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, help="iterations per stage (default: the toy model's own)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="append every run's measurements here, one JSON line each")
    parser.add_argument(
        "--compare", action="append", default=[], choices=FAST_OPTIONS, help="a fast option to evaluate as well"
    )
    args = parser.parse_args()
    from server.protocol import toy_settings

    steps = args.steps or toy_settings()["steps"]
    everything = []
    pool = multiprocessing.get_context("spawn").Pool(args.workers)
    done = {}
    if args.json and args.json.is_file():
        for line in args.json.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if "sketch_sha1" not in row and Path(row["sketch"]).is_file():  # a row logged before the hash was
                row["sketch_sha1"] = sketch_hash(row["sketch"])
            if "sketch_sha1" in row:
                done[task_key(row["part"], row)] = row
    log = args.json.open("a", encoding="utf-8") if args.json else None

    def run_all(part: str, tasks: list[dict]) -> list[dict]:
        """Every task, in parallel; each row goes to the JSON-lines log as it comes, so a cut-off run keeps it
        and a later run with the same log runs only what is missing."""
        tasks = [{**task, "sketch_sha1": sketch_hash(task["sketch"])} for task in tasks]
        keys = [task_key(part, task) for task in tasks]
        rows = [done[key] for key in keys if key in done]
        missing = [task for task, key in zip(tasks, keys, strict=True) if key not in done]
        for row in pool.imap_unordered(run_one, missing):
            rows.append({**row, "part": part})
            if log:
                log.write(json.dumps(rows[-1]) + "\n")
                log.flush()
        everything.extend(rows)
        return rows

    with tempfile.TemporaryDirectory() as work:
        names = list(SETTINGS)
        best = names[0]  # the engine's default, unless the tuning part picks another
        if args.tuning:
            tuning = run_all(
                "tuning", one_object_tasks(procedural_sketches(Path(work), args.tuning), names, args.device, steps)
            )
            print(
                f"## Tuning: {args.tuning} procedural sketches, {steps} steps\n\n{table(tuning, names)}\n", flush=True
            )
            best = max(names, key=lambda name: score(tuning, name))
            print(f"chosen: {best}\n", flush=True)
        if args.eval:
            sketches = sorted(args.eval.glob("*.svg"))
            compared = list(dict.fromkeys([best, REFERENCE, names[0], *args.compare]))
            held_out = run_all("evaluation", one_object_tasks(sketches, compared, args.device, steps))
            print(f"## Evaluation: {len(sketches)} held-out sketches\n\n{table(held_out, compared)}\n", flush=True)
        scenes = []
        if args.multi:
            real = sorted(p for p in args.multi.iterdir() if (p / "objects.tsv").is_file())[: args.multi_count]
            scenes.append((f"{len(real)} sketches of {args.multi.name}", real, 2))
        if args.multi_procedural:
            made = Path(work) / "scenes"
            made.mkdir()
            label = f"{args.multi_procedural} procedural {args.scene_objects}-object scenes"
            made_scenes = procedural_scenes(made, args.multi_procedural, args.scene_objects)
            scenes.append((label, made_scenes, args.scene_objects))
        for label, folders, moving_count in scenes:
            tasks = multi_object_tasks(folders, args.device, steps, moving_count)
            multi = run_all("multi", [{**t, "flags": [*t["flags"], *SETTINGS[best]]} for t in tasks])
            lines = ["| schedule | objects going their own way | jitter px |", "|---|---|---|"]
            for schedule in ("auto", "joint"):
                objs = [o for row in multi if row["setting"] == schedule for o in row.get("objects", {}).values()]
                lines.append(f"| {schedule} | {np.mean([o['ok'] for o in objs]):.0%} of {len(objs)} | "
                             f"{np.mean([o['jitter_px'] for o in objs]):.2f} |")  # fmt: skip
            print(f"## {moving_count} moving objects, per-object prompts: {label}\n\n" + "\n".join(lines), flush=True)
    pool.close()
    errors = [row for row in everything if "error" in row]
    for row in errors:
        print(f"error: {row['sketch']} {row['setting']}: {row['error']}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
