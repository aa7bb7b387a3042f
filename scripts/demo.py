"""The demo: one of the project's example sketches animated headless in real Blender (the bpy module).

It does what a user does in Blender, through the add-on's operators: installs the extension zip into
a fresh Blender user folder, imports the example with its stroke table (one collection per object),
types the prompts, runs "Animate with SDS" (without a window the operator blocks until the engine is
done and the result is keyed), then saves the .blend and the engine's preview GIF.

The full demo uses the real ModelScope model on a CUDA GPU (weights from the Hugging Face hub or a
local folder, --model). --quick runs the same path on the CPU with the tiny random-weight model: it
checks the whole pipeline in about a minute on two CPU cores, but its motion means nothing.

Usage: python scripts/demo.py [--quick] [--example kids_and_kite] [--output demo-output] [--steps N]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
ADDON = "bl_ext.user_default.multisketch"


@dataclass
class Settings:
    prior: str
    device: str
    frames: int
    steps: int
    size: int


# The paper's settings with the real model; tiny ones that finish in about a minute on a CPU.
FULL = Settings(prior="modelscope", device="cuda", frames=24, steps=1000, size=256)
QUICK = Settings(prior="tiny", device="cpu", frames=8, steps=10, size=64)


def parse_args() -> argparse.Namespace:
    examples = sorted(p.name for p in EXAMPLES.iterdir() if (p / "sketch.svg").is_file())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny test model on the CPU (minutes, no GPU)")
    parser.add_argument("--example", choices=examples, default="kids_and_kite", help="which sketch of examples/")
    parser.add_argument("--output", type=Path, default=REPO / "demo-output", help="where the .blend and GIF go")
    parser.add_argument("--steps", type=int, help="optimization steps per stage (default: 1000, quick: 10)")
    parser.add_argument("--frames", type=int, help="frames of the animation (default: 24, quick: 8)")
    parser.add_argument("--model", help="ModelScope hub id or local folder in the diffusers layout")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def engine_has_cuda() -> bool:
    """Ask the engine's interpreter (this one), in its own process: Blender's side never loads torch."""
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def choose_settings(args: argparse.Namespace) -> Settings:
    settings = QUICK if args.quick else FULL
    if not args.quick and not engine_has_cuda():
        print("No CUDA GPU is visible to torch: running the quick demo (tiny model on the CPU) instead.")
        settings = QUICK
    return replace(
        settings, frames=args.frames or settings.frames, steps=settings.steps if args.steps is None else args.steps
    )


def read_subprompts(folder: Path) -> dict[str, str]:
    """Object name -> its own prompt, from the example's subprompts.tsv lines about one object."""
    path = folder / "subprompts.tsv"
    prompts: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            prompt, _, names = line.partition("\t")
            if prompt.strip() and names.strip() and "," not in names:
                prompts[names.strip()] = prompt.strip()
    return prompts


def install_extension(work: Path) -> None:
    """Build the extension zip and install it the way Preferences > Add-ons > Install from Disk does."""
    import bpy

    sys.path.insert(0, str(REPO / "scripts"))
    from build_extension import build

    archive = build(work / "dist")
    bpy.ops.extensions.package_install_files(filepath=str(archive), repo="user_default", enable_on_install=True)
    if ADDON not in bpy.context.preferences.addons:
        sys.exit("the MultiSketch extension did not enable; see the messages above")


def follow_engine(jobs: Path, since: float, stop: threading.Event) -> None:
    """Print the stages from the engine's job log while the operator blocks (the log is safe to read from a thread)."""
    printed = 0
    while not stop.wait(1.0):
        logs = [log for log in jobs.glob("*/log.txt") if log.stat().st_mtime >= since]
        if not logs:
            continue
        lines = max(logs, key=lambda log: log.stat().st_mtime).read_text(encoding="utf-8").splitlines()
        for line in lines[printed:]:
            try:
                event = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            if event.get("event") == "stage":
                print(f"  stage {event['index'] + 1} of {event['count']}: {event['stage']}", flush=True)
            elif event.get("event") == "done":
                print(f"  engine done in {event['seconds']:.0f} s", flush=True)
        printed = len(lines)


def animate(example: Path, settings: Settings, args: argparse.Namespace, cache: Path) -> None:
    """Import the example, type its prompts, and run Animate with SDS as a script does (blocking)."""
    import bpy

    scene_model = importlib.import_module(f"{ADDON}.scene_model")
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.python_path = sys.executable
    prefs.cache_dir = str(cache)
    if args.model:
        prefs.model = args.model

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.frame_set(1)
    bpy.ops.multisketch.import_svg(filepath=str(example / "sketch.svg"), objects_file=str(example / "objects.tsv"))
    sketch = scene_model.sketch_collections(scene)[0]
    objects = scene_model.object_collections(sketch)
    print(f"Imported {example.name}: objects {', '.join(c.name for c in objects)}")

    own_prompts = read_subprompts(example)
    for collection in objects:
        collection.multisketch.prompt = own_prompts.get(collection.name, "")
    options = scene.multisketch
    options.prompt = (example / "caption.txt").read_text(encoding="utf-8").strip()
    options.prior = settings.prior
    options.device = settings.device
    options.frames = settings.frames
    options.quality = "CUSTOM"
    options.steps = settings.steps
    options.size = settings.size
    options.seed = args.seed
    print(
        f"Animating with the {settings.prior} prior on {settings.device}: {settings.frames} frames, "
        f"{settings.steps} steps per stage, {settings.size} px ... (prompt: {options.prompt!r})"
    )
    started = time.monotonic()
    stop = threading.Event()
    follower = threading.Thread(target=follow_engine, args=(cache / "jobs", time.time(), stop), daemon=True)
    follower.start()
    try:
        bpy.ops.multisketch.animate()
    except RuntimeError as exc:  # the operator's error report
        sys.exit(f"Animate with SDS failed: {exc}")
    finally:
        stop.set()
        follower.join()
    print(f"Animated in {time.monotonic() - started:.0f} s: {bpy.context.window_manager.multisketch_job.message}")


def summarize(blend: Path) -> list[str]:
    """Reopen the saved file and describe its animation, object by object."""
    import bpy
    from bpy_extras import anim_utils

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    lines = []
    for ob in bpy.data.objects:
        if ob.type != "GREASEPENCIL":
            continue
        drawings = sum(len(layer.frames) for layer in ob.data.layers)
        curves = 0
        animation = ob.animation_data
        if animation and animation.action:
            channelbag = anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot)
            curves = len(channelbag.fcurves) if channelbag else 0
        lines.append(f"{ob.name}: {drawings} drawings, {curves} F-curves")
    return lines


def main() -> None:
    args = parse_args()
    settings = choose_settings(args)
    example = EXAMPLES / args.example
    output = args.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    cache = output / "cache"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="multisketch-demo-") as tmp:
        work = Path(tmp)
        # A Blender user folder of its own, so the demo neither reads nor changes the user's Blender set-up.
        for kind in ("RESOURCES", "CONFIG", "SCRIPTS", "EXTENSIONS", "DATAFILES"):
            os.environ[f"BLENDER_USER_{kind}"] = str(work / "blender-user" / kind.lower())
        import bpy  # only now: Blender reads the user folder variables when it loads

        install_extension(work)
        animate(example, settings, args, cache)
        blend = output / f"{example.name}.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        previews = sorted((cache / "jobs").glob("*/preview.gif"), key=lambda p: p.stat().st_mtime)
        if not previews:
            sys.exit(f"the engine wrote no preview.gif under {cache / 'jobs'}")
        gif = output / f"{example.name}.gif"
        shutil.copyfile(previews[-1], gif)
        report = summarize(blend)
    print("\n".join(["Saved:", f"  {blend}", f"  {gif}", f"  job folder {previews[-1].parent}", *report]))
    print(f"Demo done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
