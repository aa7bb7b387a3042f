"""Does the caption steer the SDS gradient? The learned toy prior's pull on a still sketch, caption by caption.

For each sketch and each translation phrase ("the sketch moves left", ...), the SDS gradient with respect to a
velocity v (the sketch drawn at rest + v * t, t from 0 to 1 over the clip) is taken at v = 0, averaged over
random draws (timestep, noise, augmentation) after normalising each draw. A prior whose captions steer SDS
points -gradient the stated way; a prior whose captions barely matter points every caption the same way
(its unconditional pull). Reported: the mean unit direction per phrase, its cosine with the stated one,
and per phrase the mean cosine of its caption-specific part (its pull minus the mean pull of the four
phrases on that sketch) with the stated direction: 1 when captions steer, about 0 when they do not.
Cheap (one SDS pass per draw), so it runs on a CPU in seconds per sketch.

    python scripts/bench_steering.py SKETCH.svg [...] [--draws 16] [--guidance 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.priors.toy import MOTIONS, caption, load_toy_prior  # noqa: E402
from server.protocol import toy_settings  # noqa: E402
from server.render import canvas_to_render, render  # noqa: E402
from server.sketch import Sketch, load_svg  # noqa: E402

TRANSLATIONS = ("moves left", "moves right", "moves up", "moves down")


def mean_pull(prior, sketch: Sketch, phrase: str, draws: int, guidance: float) -> np.ndarray:  # noqa: ANN001
    """Mean over draws of the unit vector -dL/dv (x right, y down) at v = 0."""
    settings = toy_settings()
    size, frames = settings["size"], settings["frames"]
    strokes = list(range(len(sketch.strokes)))
    segments = torch.tensor(sketch.segments(strokes), dtype=torch.float32)
    widths = torch.tensor(sketch.segment_widths(strokes), dtype=torch.float32)
    scale, offset_x, offset_y = canvas_to_render(sketch.width, sketch.height, size)
    time = torch.linspace(0.0, 1.0, frames)[:, None, None, None]
    condition = prior.condition(caption(("sketch", phrase)), ["sketch"])
    generator = torch.Generator().manual_seed(0)
    total = np.zeros(2)
    for _ in range(draws):
        velocity = torch.zeros(2, requires_grad=True)
        moving = (segments[None] + time * velocity * size) * scale + torch.tensor([offset_x, offset_y])
        loss = prior.loss(render(moving, widths * scale, size), condition, guidance, generator)
        (gradient,) = torch.autograd.grad(loss, velocity)
        total -= (gradient / gradient.norm().clamp(min=1e-12)).numpy()
    return total / draws


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sketches", type=Path, nargs="+")
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--guidance", type=float, default=30.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = load_toy_prior(torch.device("cpu"), toy_settings()["size"])
    print(f"toy prior, guidance {args.guidance:g}, {args.draws} draws per phrase, CPU\n")
    print("| sketch | " + " | ".join(f"{p}: pull (x, y), cosine" for p in TRANSLATIONS) + " |")
    print("|---|" + "---|" * len(TRANSLATIONS))
    stated = {p: np.array(MOTIONS[p].shift) / np.linalg.norm(MOTIONS[p].shift) for p in TRANSLATIONS}
    cosines: dict[str, list[float]] = {p: [] for p in TRANSLATIONS}
    specific: dict[str, list[float]] = {p: [] for p in TRANSLATIONS}
    for path in args.sketches:
        sketch = load_svg(path)
        pulls = {phrase: mean_pull(prior, sketch, phrase, args.draws, args.guidance) for phrase in TRANSLATIONS}
        shared = np.mean(list(pulls.values()), axis=0)
        cells = []
        for phrase, pull in pulls.items():
            cosines[phrase].append(_cosine(pull, stated[phrase]))
            specific[phrase].append(_cosine(pull - shared, stated[phrase]))
            cells.append(f"({pull[0]:+.2f}, {pull[1]:+.2f}), {cosines[phrase][-1]:+.2f}")
        print(f"| {path.stem} | " + " | ".join(cells) + " |", flush=True)
    print("\n| | " + " | ".join(TRANSLATIONS) + " |\n|---|" + "---|" * len(TRANSLATIONS))
    print("| mean cosine of the pull | " + " | ".join(f"{np.mean(cosines[p]):+.2f}" for p in TRANSLATIONS) + " |")
    print("| mean cosine of its caption-specific part | "
          + " | ".join(f"{np.mean(specific[p]):+.2f}" for p in TRANSLATIONS) + " |")  # fmt: skip
    counts = [f"{sum(c > 0.5 for c in specific[p])} of {len(specific[p])}" for p in TRANSLATIONS]
    print(
        "| sketches where the caption-specific part points the stated way (cosine > 0.5) | " + " | ".join(counts) + " |"
    )
    return 0


def _cosine(vector: np.ndarray, direction: np.ndarray) -> float:
    return float(vector @ direction / max(np.linalg.norm(vector), 1e-12))


if __name__ == "__main__":
    sys.exit(main())
