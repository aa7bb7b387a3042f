"""Time the rasterizer on real sketches: forward, forward + backward, and peak memory per sketch.

Usage: python scripts/bench_render.py SKETCHES [--device cpu|cuda] [--frames 24] [--size 256] [--largest N]
SKETCHES is an SVG file or a folder searched for SVG files (e.g. a data set with one folder per sketch).
Every frame moves the whole sketch a little, as an animation would, so no two frames are alike.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.render import canvas_to_render, render  # noqa: E402
from server.sketch import Sketch, load_svg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sketches", type=Path, help="an SVG file or a folder of them (searched recursively)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per sketch (after one warm-up)")
    parser.add_argument("--largest", type=int, default=0, help="only the N sketches with the most strokes")
    args = parser.parse_args()
    device = torch.device(args.device)
    files = [args.sketches] if args.sketches.is_file() else sorted(args.sketches.rglob("*.svg"))
    sketches = sorted(((load_svg(path), path) for path in files), key=lambda item: len(item[0].strokes))
    if args.largest:
        sketches = sketches[-args.largest :]

    print(f"torch {torch.__version__}, {describe(device)}, {args.repeats} timed runs per sketch (median)")
    print(
        "| sketch | frames | strokes | segments | size | device | forward ms | forward+backward ms | peak memory MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for sketch, path in sketches:
        segments, widths = frames_of(sketch, args.frames, args.size, device)
        forward, both, peak = measure(segments, widths, args.size, args.repeats, device)
        name = path.parent.name if path.name == "sketch.svg" else path.stem
        print(
            f"| {name} | {args.frames} | {len(sketch.strokes)} | {segments.shape[1]} | {args.size} | {device.type} "
            f"| {forward:.1f} | {both:.1f} | {peak:.0f} |"
        )


def frames_of(sketch: Sketch, frames: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The sketch in render pixels, shifted and slightly wobbled differently in every frame."""
    indices = range(len(sketch.strokes))
    scale, offset_x, offset_y = canvas_to_render(sketch.width, sketch.height, size)
    rest = torch.tensor(sketch.segments(indices) * scale + [offset_x, offset_y], dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    shift = torch.randn(frames, 1, 1, 2, generator=generator) * 3
    wobble = torch.randn(frames, *rest.shape, generator=generator) * 0.5
    widths = torch.tensor(sketch.segment_widths(indices) * scale, dtype=torch.float32)
    return (rest + shift + wobble).to(device), widths.to(device)


def measure(
    segments: torch.Tensor, widths: torch.Tensor, size: int, repeats: int, device: torch.device
) -> tuple[float, float, float]:
    """Median forward ms, median forward+backward ms, and peak memory in MiB (CUDA: allocated; CPU: process RSS)."""
    weights = torch.rand(segments.shape[0], 3, size, size, device=device)

    def forward() -> None:
        with torch.no_grad():
            render(segments, widths, size)

    def forward_backward() -> None:
        points = segments.clone().requires_grad_()
        (render(points, widths, size) * weights).sum().backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings = [timed(step, repeats + 1, device)[1:] for step in (forward, forward_backward)]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return statistics.median(timings[0]), statistics.median(timings[1]), peak


def timed(step: Callable[[], None], runs: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - started) * 1000)
    return times


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
