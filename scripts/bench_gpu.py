"""Real-scale benchmark: the `modelscope` path at ModelScope's real configs, timed per stage.

Builds (once) a random-weight ModelScope in the diffusers layout with scripts/make_random_modelscope.py,
then runs a multi-object job through the engine's command line in this process with the paper's
settings (24 frames, 256 px, local and global passes) for a few steps per stage, and prints a Markdown
table: seconds per step and peak GPU memory per stage. The weights are random, so the motion means
nothing; the time and memory are those of the real model.

    python scripts/bench_gpu.py SKETCH_DIR MODEL_DIR [--steps 4] [--frames 24] [--size 256] [--vae-checkpointing both]
        [--object-batches 1,3]

SKETCH_DIR holds sketch.svg, objects.tsv and caption.txt. `--vae-checkpointing both` runs the job twice,
with the VAE encoder's activation checkpointing off and on, so the two are compared in the same run;
`--object-batches 1,3` runs it with the objects' own stages one after another and three together.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.cli import main as engine  # noqa: E402
from server.priors import modelscope  # noqa: E402

GIB = 2**30


class StageMeter(io.TextIOBase):
    """Reads the engine's JSON progress lines as they are printed; times steps and GPU memory per stage."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}
        self._stage = ""
        self._last = 0.0
        self.started = self.ended = 0.0  # the optimization's start and end (model load before it)

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            now = time.perf_counter()
            if event["event"] == "start":
                torch.cuda.synchronize()
                self.started = time.perf_counter()
            elif event["event"] == "stage":
                self._close_stage()
                self._stage = event["stage"]
                self.stages[self._stage] = {"steps": []}
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                self._last = now
            elif event["event"] == "step":
                torch.cuda.synchronize()
                now = time.perf_counter()
                self.stages[self._stage]["steps"].append(now - self._last)
                self._last = now
            elif event["event"] == "done":
                self._close_stage()
                self.ended = now
        return len(text)

    def _close_stage(self) -> None:
        if self._stage and "peak" not in self.stages[self._stage]:
            self.stages[self._stage]["peak"] = torch.cuda.max_memory_allocated() / GIB


def run_job(sketch_dir: Path, model_dir: Path, args: argparse.Namespace, out: Path, object_batch: int) -> StageMeter:
    argv = [
        "animate", str(sketch_dir / "sketch.svg"), "--objects", str(sketch_dir / "objects.tsv"),
        "--prompt", (sketch_dir / "caption.txt").read_text().strip(), "--out", str(out),
        "--prior", "modelscope", "--model", str(model_dir), "--device", "cuda",
        "--frames", str(args.frames), "--size", str(args.size), "--steps", str(args.steps),
        "--checkpoint-every", str(args.steps), "--progress", "json", "--object-batch", str(object_batch),
    ]  # fmt: skip
    meter = StageMeter()
    with contextlib.redirect_stdout(meter):
        code = engine(argv)
    if code != 0:
        raise SystemExit(f"engine exit {code}; see {out / 'log.txt'}")
    return meter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sketch", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--vae-checkpointing", choices=("auto", "off", "on", "both"), default="both")
    parser.add_argument(
        "--object-batches", default="1", help="comma-separated --object-batch values to compare (1: sequential)"
    )
    args = parser.parse_args()
    batches = [int(value) for value in args.object_batches.split(",")]
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    if not (args.model / "unet").is_dir():
        started = time.perf_counter()
        script = Path(__file__).with_name("make_random_modelscope.py")
        subprocess.run([sys.executable, str(script), str(args.model), "--device", "cuda"], check=True)
        print(f"random-weight ModelScope built in {time.perf_counter() - started:.0f} s")
    modes = {"both": ("off", "on")}.get(args.vae_checkpointing, (args.vae_checkpointing,))
    thresholds = {"off": 0, "on": 1 << 62, "auto": modelscope.CHECKPOINT_BELOW_BYTES}
    strokes = len((args.sketch / "sketch.svg").read_text().split("<path")) - 1
    objects = len([line for line in (args.sketch / "objects.tsv").read_text().splitlines() if line.strip()])
    print(
        f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}; sketch {args.sketch.name}: {strokes} strokes, "
        f"{objects} objects; {args.frames} frames, {args.size} px, {args.steps} steps per stage\n"
    )
    print(
        "| VAE checkpointing | object batch | stage | passes per step | s per step (after the first) | peak GPU GiB |"
    )
    print("|---|---|---|---|---|---|")
    for mode in modes:
        modelscope.CHECKPOINT_BELOW_BYTES = thresholds[mode]
        for batch in batches:
            with tempfile.TemporaryDirectory() as work:
                meter = run_job(args.sketch, args.model, args, Path(work) / "job", batch)
            for stage, numbers in meter.stages.items():
                steady = numbers["steps"][1:] or numbers["steps"]
                passes = 1 if stage == "joint" else 2
                print(f"| {mode} | {batch} | {stage} | {passes} | {sum(steady) / len(steady):.3f} | "
                      f"{numbers['peak']:.1f} |")  # fmt: skip
            print(f"| {mode} | {batch} | whole job (no model load) | | {meter.ended - meter.started:.1f} s | |")
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
