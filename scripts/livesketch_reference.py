"""Live-Sketch's motion model and loop on this project's priors and rasterizer: the baseline benchmarks compare with.

Re-implemented from yael-vinker/live_sketch (painter.py, animate_svg.py): its PointMLP, which flattens every
(frame, point) code into one vector and so grows with frames x points, its two Adam optimizers, its learning-rate
schedule and its two passes per iteration, quirks included (dropout on, the scale taken from the shear head,
only the local optimizer's gradients zeroed). Live-Sketch has no notion of objects: every moving object of the
job gets a run of its own, as if its strokes were a Live-Sketch input SVG, and there is no joint stage.

What differs from Live-Sketch, and why:
* the rasterizer (server.render, not diffvg) and the prior (`Prior.loss`, which augments as Live-Sketch does when
  it is a diffusion prior) are this project's, so that only the motion model and the loop differ from the engine;
* two modules that never receive a gradient are left out: the `nn.Embedding` table (its values are ignored by
  the positional encoding) and the scale head (the scale is read from the shear head). They change nothing but
  the parameter count: 16 strokes x 24 frames gives 50,895,480 parameters here, 51,311,656 with both;
* points are scaled to a 256-px canvas (the engine's motion units), so a 256-px sketch is Live-Sketch's input;
* closed sub-paths keep their repeated end point (diffvg drops it), so they have one more input point;
* `spec.steps` counts iterations: Live-Sketch's `--num_iter N` runs N + 1 of them, so steps = 1001 is its
  default run (the engine's lr_multiplier then decays over the same 1000 steps; its warm-up lasts 100.1 steps,
  not 100); the result is what Live-Sketch's last SVGs hold, the frames the last (global) pass rendered;
* random draws come from `spec.seed` (network init and dropout through torch's global generator, forked so the
  caller's is left alone; the prior's draws from a generator of its own), not from pytorch_lightning's seeding.

    python scripts/livesketch_reference.py SKETCH.svg --prompt TEXT [--objects objects.tsv] \
        [--prior modelscope|tiny|target] [--target-plan trajectories.tsv] [--frames 24] [--steps 1000] \
        [--size 256] [--seed 0] [--device auto] [--guidance-local 30] [--guidance-global 10] --out result.npz

The CLI's defaults are the engine's, so that the same flags compare like with like; Live-Sketch's own run is
`--steps 1001 --guidance-global 40`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import protocol  # noqa: E402
from server.priors import Prior  # noqa: E402
from server.protocol import JobSpec, ObjectSpec  # noqa: E402
from server.render import canvas_to_render, render  # noqa: E402
from server.schedule import (  # noqa: E402
    ADAM_BETAS,
    ADAM_EPS,
    GLOBAL_LR,
    LOCAL_LR,
    MOTION_CANVAS,
    ObjectLayout,
    lr_multiplier,
)
from server.sketch import Sketch  # noqa: E402

WIDTH = 128  # --inter_dim
DROPOUT = 0.1  # of the positional encoding
# --translation_weight, --rotation_weight, --shear_weight, --scale_weight
TRANSLATION_WEIGHT = 1.0
ROTATION_WEIGHT = 0.01
SHEAR_WEIGHT = 0.1
SCALE_WEIGHT = 0.05


@contextlib.contextmanager
def _seeded_global_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Torch's global generator of `device` seeded for the block (init, dropout), and the caller's put back after."""
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        devices, generator = [index], torch.cuda.default_generators[index]
    else:
        devices, generator = [], torch.default_generator
    with torch.random.fork_rng(devices=devices):
        generator.manual_seed(seed)
        yield


def _block(in_features: int, out_features: int) -> list[nn.Module]:
    return [nn.Linear(in_features, out_features), nn.LayerNorm(out_features), nn.LeakyReLU()]


class PositionalEncoding(nn.Module):
    """Sine/cosine codes of the flattened (frame, point) index, dropped out: the network's only frame identity."""

    def __init__(self, count: int, width: int = WIDTH, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(count, dtype=torch.float32)[:, None]
        rates = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
        codes = torch.zeros(count, width)
        codes[:, 0::2] = torch.sin(position * rates)
        codes[:, 1::2] = torch.cos(position * rates)
        self.register_buffer("codes", codes)

    def forward(self) -> torch.Tensor:
        return self.dropout(self.codes)


class PointMLP(nn.Module):
    """Live-Sketch's PointMLP with its global path: (F * P, 2) centre-relative points -> their offsets (F * P, 2).

    Attribute names are Live-Sketch's; its hidden layers and heads all come from the flattened codes of every
    frame and point, so the two flatten layers hold F * P * 128 * 128 weights each.
    """

    def __init__(self, points: int, frames: int, width: int = WIDTH) -> None:
        super().__init__()
        self.points, self.frames = points, frames
        count = points * frames
        self.project_points = nn.Sequential(*_block(2, width), nn.Linear(width, width))
        self.pos_encoder = PositionalEncoding(count, width)
        self.frames_rigid_shared = nn.Sequential(*_block(count * width, width), *_block(width, width))
        self.frames_rigid_translation = nn.Sequential(
            *_block(width, width), *_block(width, width), *_block(width, width), nn.Linear(width, 2 * frames)
        )
        self.frames_rigid_rotation = nn.Sequential(*_block(width, width), nn.Linear(width, frames))
        self.frames_rigid_shear = nn.Sequential(*_block(width, width), nn.Linear(width, 2 * frames))
        self.project_xy = nn.Sequential(*_block(count * width, width))
        self.model = nn.Sequential(*_block(width, width), *_block(width, width))
        self.last_linear_layer = nn.Linear(width, 2 * count)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.project_points.parameters())

    def local_parameters(self) -> list[nn.Parameter]:
        """What the local optimizer steps (Live-Sketch's get_points_params)."""
        local = [self.project_xy, self.model, self.last_linear_layer]
        return self.shared_parameters() + [p for module in local for p in module.parameters()]

    def global_parameters(self) -> list[nn.Parameter]:
        """What the global optimizer steps (get_global_params)."""
        heads = [self.frames_rigid_shared, self.frames_rigid_translation, self.frames_rigid_rotation]
        heads.append(self.frames_rigid_shear)
        return self.shared_parameters() + [p for module in heads for p in module.parameters()]

    def forward(self, relative: torch.Tensor) -> torch.Tensor:
        codes = (self.project_points(relative) + self.pos_encoder()).reshape(1, -1)
        local = self.last_linear_layer(self.model(self.project_xy(codes))).reshape(-1, 2)
        return local + self.global_deltas(relative, codes)

    def global_deltas(self, relative: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Per frame one affine about the centre, A = T R [[1, sh_y], [sh_x, 1]] diag(s); returns A p - p."""
        shared = self.frames_rigid_shared(codes)
        dx, dy = (TRANSLATION_WEIGHT * self.frames_rigid_translation(shared)).reshape(self.frames, 2).chunk(2, -1)
        theta = ROTATION_WEIGHT * self.frames_rigid_rotation(shared).reshape(self.frames, 1)
        shear = self.frames_rigid_shear(shared).reshape(self.frames, 2)
        shear_x, shear_y = (SHEAR_WEIGHT * shear).chunk(2, -1)
        scale_x, scale_y = (1 + SCALE_WEIGHT * shear).chunk(2, -1)  # Live-Sketch's bug: the shear head again
        cos, sin = torch.cos(theta), torch.sin(theta)
        row0 = torch.cat([scale_x * (cos - sin * shear_x), scale_y * (cos * shear_y - sin), dx], dim=-1)
        row1 = torch.cat([scale_x * (sin + cos * shear_x), scale_y * (sin * shear_y + cos), dy], dim=-1)
        matrix = torch.stack([row0, row1], dim=1).repeat_interleave(self.points, dim=0)  # (F * P, 2, 3)
        homogeneous = torch.cat([relative, torch.ones_like(relative[:, :1])], dim=1)
        return torch.einsum("mij,mj->mi", matrix, homogeneous) - relative


class ObjectRun:
    """One object animated the way Live-Sketch animates a sketch: its network, optimizers, schedules and loop."""

    def __init__(self, spec: JobSpec, sketch: Sketch, prior: Prior, device: torch.device, obj: ObjectSpec) -> None:
        self.spec, self.prior, self.device, self.obj = spec, prior, torch.device(device), obj
        self.layout = ObjectLayout(sketch, obj, self.device)
        self.units = MOTION_CANVAS / max(sketch.width, sketch.height)  # motion units per canvas px
        rest = torch.from_numpy(self.layout.rest_points * self.units).float()
        self.center = rest.mean(dim=0).to(self.device)
        # Every frame starts from the rest sketch: the input is the rest points tiled frame-major, index f * P + p.
        self.inputs = (rest.to(self.device) - self.center).repeat(spec.frames, 1)
        with _seeded_global_rng(torch.device("cpu"), spec.seed):  # the same start on every device
            self.network = PointMLP(len(rest), spec.frames).to(self.device)
        self.local_optimizer = torch.optim.Adam(
            self.network.local_parameters(), lr=LOCAL_LR, betas=ADAM_BETAS, eps=ADAM_EPS
        )
        self.global_optimizer = torch.optim.Adam(
            self.network.global_parameters(), lr=GLOBAL_LR, betas=ADAM_BETAS, eps=ADAM_EPS
        )
        self.schedulers = [
            torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(spec.steps))
            for optimizer in (self.local_optimizer, self.global_optimizer)
        ]
        self.scale, offset_x, offset_y = canvas_to_render(sketch.width, sketch.height, spec.size)
        self.offset = torch.tensor([offset_x, offset_y], dtype=torch.float32, device=self.device)

    def points(self) -> torch.Tensor:
        """Every frame's control points (F, P, 2) in motion units: centre + rest offset + predicted offset."""
        moved = self.center + self.inputs + self.network(self.inputs)
        return moved.view(self.spec.frames, -1, 2)

    def render(self, points: torch.Tensor) -> torch.Tensor:
        """The object alone, rendered exactly as the engine renders an object's own stage."""
        segments = points[:, self.layout.segment_index] / self.units * self.scale + self.offset
        return render(segments, self.layout.segment_widths * self.scale, self.spec.size)

    def run(self) -> np.ndarray:
        """Live-Sketch's loop; the final control points (F, P, 2) in canvas px, those of the last rendered video.

        Per iteration a local pass (guidance_local, local optimizer) then a global pass (guidance_global, global
        optimizer), each rendering the full animation. Before each pass only the local optimizer's gradients are
        zeroed, so the global-only heads step on their gradients summed over every pass so far, local ones too.
        """
        spec = self.spec
        condition = self.prior.condition(self.obj.prompt or spec.prompt, [self.obj.name])
        generator = torch.Generator().manual_seed(spec.seed)
        passes = ((self.local_optimizer, spec.guidance_local), (self.global_optimizer, spec.guidance_global))
        with _seeded_global_rng(self.device, spec.seed):  # dropout masks
            points = None
            for _ in range(spec.steps):
                for optimizer, guidance in passes:
                    self.local_optimizer.zero_grad(set_to_none=False)
                    points = self.points()
                    self.prior.loss(self.render(points), condition, guidance, generator).backward()
                    optimizer.step()
                for scheduler in self.schedulers:
                    scheduler.step()
            if points is None:
                with torch.no_grad():
                    points = self.points()
        return points.detach().double().cpu().numpy() / self.units


def reference_animation(spec: JobSpec, sketch: Sketch, prior: Prior, device: torch.device) -> dict[str, np.ndarray]:
    """Live-Sketch's networks and loop applied to each moving object of `spec` on its own (one stage per object,
    its own prompt or the scene prompt; no joint stage: Live-Sketch has none) -> object name -> final control
    points (F, P, 2) in canvas px, points in the order of the engine's ObjectLayout (every stroke's sub-path
    chains concatenated)."""
    return {obj.name: ObjectRun(spec, sketch, prior, device, obj).run() for obj in spec.moving_objects()}


def main(argv: list[str] | None = None) -> int:
    """Run the reference on one sketch and save object name -> (F, P, 2) control points as an .npz."""
    from server.cli import objects_from_flags
    from server.devices import resolve_device
    from server.errors import UserError
    from server.priors import load_prior
    from server.sketch import load_svg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sketch", type=Path, help="the SVG sketch")
    parser.add_argument("--prompt", required=True, help="the scene prompt (and every object's without its own)")
    parser.add_argument("--objects", type=Path, help="stroke table (objects.tsv); default: the SVG's groups")
    parser.add_argument("--object-prompt", action="append", default=[], metavar="NAME=TEXT")
    parser.add_argument("--static", action="append", default=[], metavar="NAME", help="an object left out")
    parser.add_argument("--prior", choices=protocol.PRIORS, default="modelscope")
    parser.add_argument("--model", default=protocol.DEFAULT_MODEL)
    parser.add_argument("--target-plan", type=Path, help="motion plan for the target prior (trajectories.tsv)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=1000, help="iterations per object (Live-Sketch runs 1001)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=protocol.DEVICES, default="auto")
    parser.add_argument("--guidance-local", type=float, default=30.0)
    parser.add_argument("--guidance-global", type=float, default=10.0, help="the engine's default (Live-Sketch: 40)")
    parser.add_argument("--out", required=True, type=Path, help="the .npz to write")
    args = parser.parse_args(argv)
    try:
        sketch = load_svg(args.sketch)
        objects = objects_from_flags(sketch, args.objects, args.object_prompt, args.static)
        spec = JobSpec(
            sketch=str(args.sketch),
            prompt=args.prompt,
            objects=objects,
            frames=args.frames,
            steps=args.steps,
            size=args.size,
            seed=args.seed,
            prior=args.prior,
            model=args.model,
            target_plan=str(args.target_plan) if args.target_plan else None,
            device=args.device,
            guidance_local=args.guidance_local,
            guidance_global=args.guidance_global,
        )
        spec.validate()
        spec.check_strokes(len(sketch.strokes))
        device = resolve_device(spec.device)
        prior = load_prior(spec, sketch, device)
        started = time.perf_counter()
        result = reference_animation(spec, sketch, prior, device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return protocol.EXIT_BAD_INPUT
    np.savez(args.out, **result)
    print(f"{len(result)} object(s), {spec.steps} steps each, {time.perf_counter() - started:.1f} s -> {args.out}")
    return protocol.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
