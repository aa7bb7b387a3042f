"""Speed and memory at real scale: whole jobs of the `modelscope` path at ModelScope's real configs, per variant.

Builds (once) a random-weight ModelScope in the diffusers layout with scripts/make_random_modelscope.py, then
runs each sketch's job through the engine's command line in this process with the paper's settings (24 frames,
256 px, local and global passes) for a few steps per stage, once per variant:

- sequential: the objects' own stages one after another (`--object-batch 1`), the baseline;
- batched: all three together (`--object-batch 3`); default: what the engine chooses by itself;
- shared: the fast option `--shared-pass`, one object at a time; shared-batched: that option with all three together;
- low: `--memory auto` with the process capped at `--cap-gib` of GPU memory
  (`torch.cuda.set_per_process_memory_fraction`), so the automatic choice and the peak are those of a small card;
  low-uncapped: `--memory low` without the cap;
- two-gpus: the objects' own stages spread over two GPUs (`--devices cuda:0,cuda:1`), one object at a time on each.

It prints Markdown tables: per stage the seconds per step (the first step of a stage left out) and the peak
allocated GPU memory; per job the wall time of the steps run, the time extrapolated to `--paper-steps` per
stage, and the ratio to the first variant of the run (the sequential baseline by default). With `--profile`, a
`torch.profiler` table of the default path's first stage; the relative difference of the SDS gradients of three
videos scored together and one by one is always printed. The weights are random, so the motion means nothing;
time and memory are those of the real model.

    python scripts/bench_gpu.py MODEL_DIR SKETCH_DIR [SKETCH_DIR ...] [--steps 6] [--variants sequential,batched]
        [--cap-gib 7] [--profile]

Each SKETCH_DIR holds sketch.svg, objects.tsv and caption.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
from server.memory import GIB  # noqa: E402
from server.priors import Prior  # noqa: E402
from server.priors.modelscope import ModelScopePrior  # noqa: E402

# name: (what the table calls it, the engine's flags)
VARIANTS = {
    "sequential": ("sequential (baseline)", ["--object-batch", "1"]),
    "batched": ("objects batched", ["--object-batch", "3"]),
    "default": ("default", []),
    "shared": ("shared pass", ["--shared-pass", "--object-batch", "1"]),
    "shared-batched": ("shared pass, objects batched", ["--shared-pass", "--object-batch", "3"]),
    "low": ("low memory, capped", ["--memory", "auto"]),  # under the cap: the engine chooses it
    "low-uncapped": ("low memory, no cap", ["--memory", "low"]),
    "two-gpus": ("objects' stages on two GPUs", ["--devices", "cuda:0,cuda:1", "--object-batch", "1"]),
}


class StageMeter(io.TextIOBase):
    """Reads the engine's JSON progress lines as they are printed; times steps and GPU memory per stage."""

    def __init__(self, on_step: object = None) -> None:
        self.stages: dict[str, dict] = {}
        self.memory: dict = {}
        self._stage = ""
        self._last = 0.0
        self._on_step = on_step
        self.started = self.ended = 0.0  # the optimization's start and end (model load before it)

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            torch.cuda.synchronize()
            now = time.perf_counter()
            if event["event"] == "memory":
                self.memory = event
            elif event["event"] == "start":
                self.started = now
            elif event["event"] == "stage":
                self._close_stage()
                self._stage = event["stage"]
                self.stages[self._stage] = {"steps": []}
                torch.cuda.reset_peak_memory_stats()
                self._last = now
            elif event["event"] == "step":
                self.stages[self._stage]["steps"].append(now - self._last)
                self._last = time.perf_counter()
                if callable(self._on_step):
                    self._on_step()
            elif event["event"] == "done":
                self._close_stage()
                self.ended = now
        return len(text)

    def _close_stage(self) -> None:
        if self._stage and "peak" not in self.stages[self._stage]:
            self.stages[self._stage]["peak"] = torch.cuda.max_memory_allocated() / GIB


def run_job(sketch_dir: Path, model_dir: Path, steps: int, flags: list[str], meter: StageMeter) -> StageMeter | None:
    """One whole job, timed by `meter`; None (with the log's end printed) when the engine failed."""
    with tempfile.TemporaryDirectory() as work:
        argv = [
            "animate", str(sketch_dir / "sketch.svg"), "--objects", str(sketch_dir / "objects.tsv"),
            "--prompt", (sketch_dir / "caption.txt").read_text().strip(), "--out", str(Path(work) / "job"),
            "--prior", "modelscope", "--model", str(model_dir), "--device", "cuda",
            "--frames", "24", "--size", "256", "--steps", str(steps), "--checkpoint-every", str(steps),
            "--progress", "json", *flags,
        ]  # fmt: skip
        with contextlib.redirect_stdout(meter):
            code = engine(argv)
        if code != 0:
            print(f"engine exit {code}: {(Path(work) / 'job' / 'log.txt').read_text()[-1500:]}", file=sys.stderr)
    gc.collect()  # the job's model may sit in reference cycles: free it before the next variant loads its own
    torch.cuda.empty_cache()
    return meter if code == 0 else None


def per_step(numbers: dict) -> float:
    steady = numbers["steps"][1:] or numbers["steps"]
    return sum(steady) / len(steady)


def extrapolated(meter: StageMeter, paper_steps: int) -> float:
    """The job's optimization time at `paper_steps` per stage: every stage's steady step time times the steps."""
    return sum(per_step(numbers) * paper_steps for numbers in meter.stages.values())


def gradient_difference(prior: Prior, device: torch.device, frames: int = 24, size: int = 256) -> float:
    """Relative difference of the SDS gradients w.r.t. three videos, scored together and one by one (same draws)."""
    condition = prior.condition("a dog chases a ball", ["dog"])
    shape = (frames, 3, size, size)
    videos = [torch.rand(shape, generator=torch.Generator().manual_seed(i)).to(device) for i in range(3)]

    def gradients(batched: bool) -> torch.Tensor:
        inputs = [video.clone().requires_grad_(True) for video in videos]
        generators = [torch.Generator().manual_seed(10 + i) for i in range(3)]
        if batched:
            prior.losses(inputs, [condition] * 3, 30.0, generators).sum().backward()
        else:
            for video, generator in zip(inputs, generators, strict=True):
                prior.losses([video], [condition], 30.0, [generator]).sum().backward()
        return torch.stack([video.grad for video in inputs]).float()

    together, alone = gradients(True), gradients(False)
    return float((together - alone).norm() / alone.norm())


def profile_table(sketch_dir: Path, model_dir: Path, steps: int) -> str:
    """`torch.profiler` over steps 2 to 4 of the default path's first stage: the operations that take the GPU."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    schedule = torch.profiler.schedule(wait=1, warmup=1, active=3, repeat=1)
    with torch.profiler.profile(activities=activities, schedule=schedule) as profiler:
        run_job(sketch_dir, model_dir, max(steps, 5), [], StageMeter(on_step=profiler.step))
    return profiler.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("sketches", type=Path, nargs="+")
    parser.add_argument("--steps", type=int, default=6, help="steps per stage actually run")
    parser.add_argument("--paper-steps", type=int, default=1000, help="steps per stage the times are scaled to")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--cap-gib", type=float, default=7.0, help="the low-memory variant's GPU memory cap")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    variants = args.variants.split(",")
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    if not (args.model / "unet").is_dir():
        started = time.perf_counter()
        script = Path(__file__).with_name("make_random_modelscope.py")
        subprocess.run([sys.executable, str(script), str(args.model), "--device", "cuda"], check=True)
        print(f"random-weight ModelScope built in {time.perf_counter() - started:.0f} s")
    total = torch.cuda.get_device_properties(0).total_memory
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}; 24 frames, 256 px, "
          f"{args.steps} steps per stage run, times scaled to {args.paper_steps}\n")  # fmt: skip
    stage_rows, job_rows = [], []
    for sketch in args.sketches:
        baseline = None
        for variant in variants:
            label, flags = VARIANTS[variant]
            if variant == "low":
                torch.cuda.set_per_process_memory_fraction(args.cap_gib * GIB / total)
            if variant == "low" and not hasattr(torch.cuda, "get_per_process_memory_fraction"):
                flags = ["--memory", "low"]  # this torch cannot tell the engine of the cap
            try:
                meter = run_job(sketch, args.model, args.steps, flags, StageMeter())
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0)
            if meter is None:
                job_rows.append(f"| {sketch.name} | {label} | failed (see above) | | | | |")
                continue
            memory = meter.memory
            plan = f"{memory.get('mode')}, batch {memory.get('object_batch')}" + (
                ", VAE checkpointed" if memory.get("vae_checkpointing") else ""
            )
            for stage, numbers in meter.stages.items():
                stage_rows.append(
                    f"| {sketch.name} | {label} | {stage} | {per_step(numbers):.3f} | {numbers['peak']:.1f} |"
                )
            scaled = extrapolated(meter, args.paper_steps)
            baseline = baseline or scaled
            peak = max(numbers["peak"] for numbers in meter.stages.values())
            job_rows.append(f"| {sketch.name} | {label} | {plan} | {meter.ended - meter.started:.1f} | "
                            f"{scaled / 60:.1f} | {scaled / baseline:.2f} | {peak:.1f} |")  # fmt: skip
            print(job_rows[-1], flush=True)
    print("\n| sketch | variant | stage | s per step | peak GPU GiB |\n|---|---|---|---|---|")
    print("\n".join(stage_rows))
    print(f"\n| sketch | variant | memory plan | s for {args.steps} steps per stage | min at {args.paper_steps} steps "
          "| time / sequential | peak GPU GiB |\n|---|---|---|---|---|---|---|")  # fmt: skip
    print("\n".join(job_rows))
    prior = ModelScopePrior.load(str(args.model), torch.device("cuda"), 256)
    difference = gradient_difference(prior, torch.device("cuda"))
    print(f"\nSDS gradients of 3 videos, batched against one by one: relative difference {difference:.2e}")
    del prior
    torch.cuda.empty_cache()
    if args.profile:
        print(f"\nProfile of the default path, {args.sketches[0].name}, steps 2 to 4 of its first stage:\n")
        print(profile_table(args.sketches[0], args.model, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
