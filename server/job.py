"""The job folder: what a job leaves on disk for the add-on and for people (docs/job-format.md).

A folder becomes a job folder only if it is new, empty or already a job: the engine never writes among a user's
other files. One engine works in it at a time (a lock). Everything is written through `server.files`: private,
atomic (a crash or a cancel never leaves a half-written result the add-on could take for a finished one), and
never through a symbolic link.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch

from . import files, protocol, svg
from .errors import UserError
from .protocol import JobSpec
from .render import canvas_to_render, render
from .result import ObjectAnimation, build_result
from .sketch import Sketch, chain_segments

PREVIEW_SIZE = 256
SHEET_FRAMES, SHEET_COLUMNS, SHEET_FRAME_SIZE = 8, 4, 128  # the progress preview: 8 frames in 2 rows of 4


class JobFolder:
    """Paths and writers of one job folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.spec = self.path / protocol.JOB_SPEC
        self.result = self.path / protocol.RESULT
        self.log_file = self.path / protocol.LOG
        self.checkpoints = self.path / protocol.CHECKPOINTS_DIR
        self.frames = self.path / protocol.FRAMES_DIR
        self.preview_gif = self.path / protocol.PREVIEW_GIF
        self.preview_mp4 = self.path / protocol.PREVIEW_MP4
        self.progress_preview = self.path / protocol.PROGRESS_PREVIEW
        self._lock: int | None = None

    def check_writable(self) -> None:
        """Raise UserError unless the folder exists or can be made, and files can be written in it."""
        probe_parent = _nearest_existing(self.path)
        if not probe_parent.is_dir():
            raise UserError(f"the output folder {self.path} cannot be made: {probe_parent} is a file")
        if not os.access(probe_parent, os.W_OK | os.X_OK):
            raise UserError(f"the output folder {self.path} cannot be written (no permission in {probe_parent})")

    @contextmanager
    def claimed(self) -> Iterator[None]:
        """Hold the folder for this run: it must be new, empty or a job, and no other engine may be working in it."""
        if self.path.is_dir() and not self.holds_job():
            others = sorted(p.name for p in self.path.iterdir() if p.name != protocol.LOCK)
            if others:
                raise UserError(
                    f"{self.path} is not a job folder (it has no {protocol.JOB_SPEC}) and is not empty "
                    f"({len(others)} entries, e.g. {others[0]!r}): choose a new or empty --out folder"
                )
        for inside in (self.checkpoints, self.frames, self.log_file):
            if inside.is_symlink():
                raise UserError(f"{inside} is a symbolic link: the engine writes only inside its job folder")
        try:
            files.make_private_folder(self.path)
        except OSError as exc:
            raise UserError(f"cannot create the output folder {self.path}: {exc.strerror or exc}") from None
        self._lock = files.try_lock(self.path / protocol.LOCK)
        if self._lock is None:
            raise UserError(f"another engine is running the job in {self.path}: wait for it, or choose another folder")
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            files.unlock(self._lock)
            self._lock = None

    def create(self) -> None:
        try:
            self.checkpoints.mkdir(mode=files.PRIVATE_FOLDER, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the output folder {self.path}: {exc.strerror or exc}") from None

    def computed_anything(self) -> bool:
        """Whether a checkpoint exists: work that a failed or refused run must not throw away."""
        return self.checkpoints.is_dir() and any(self.checkpoints.iterdir())

    def contents(self) -> set[Path] | None:
        """What the folder holds now (None: it does not exist), for `discard_all_but`."""
        return set(self.path.iterdir()) if self.path.is_dir() else None

    def discard_all_but(self, before: set[Path] | None) -> None:
        """Remove what this run added (everything, with the folder, if it made the folder), never the user's files.

        The run is over: its lock goes first (Windows cannot remove a file that is open).
        """
        self._release()
        if before is None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for path in set(self.path.iterdir()) - before:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def holds_job(self) -> bool:
        return self.spec.is_file()

    def log(self, message: str) -> None:
        files.append_text(self.log_file, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def copy_input(self, source: Path, name: str) -> str:
        """Copy an input file into the job so that the job folder is self-contained; returns its name."""
        target = self.path / name
        if source.resolve() != target.resolve():
            files.write_bytes(target, Path(source).read_bytes())
        return name

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.path / path

    def model_location(self, model: str) -> str:
        """A job spec's `model`: `~` expanded, a folder relative to the job folder where one exists, else as given
        (a hub id, or a folder the tiny prior is still to create)."""
        expanded = Path(model).expanduser()
        if not expanded.is_absolute() and (self.path / expanded).exists():
            return str(self.path / expanded)
        return str(expanded) if model.startswith("~") else model

    def write_outputs(self, spec: JobSpec, sketch: Sketch, animation: dict[str, ObjectAnimation]) -> list[str]:
        """Result file last, so that its presence means every other output is complete; returns warnings."""
        frames = strokes_per_frame(spec, sketch, animation)
        self._write_svg_frames(sketch, frames)
        warnings = self._write_previews(sketch, frames)
        files.write_text(self.result, json.dumps(build_result(spec, sketch, animation)) + "\n")
        return warnings

    def write_progress_preview(self, spec: JobSpec, sketch: Sketch, animation: dict[str, ObjectAnimation]) -> Path:
        """The animation so far as one PNG, frames evenly spaced from first to last, left to right, row by row:
        what lets the user see early that a run goes wrong and stop it."""
        frames = strokes_per_frame(spec, sketch, animation)
        chosen = np.unique(np.linspace(0, len(frames) - 1, SHEET_FRAMES).round().astype(int))
        images = render_preview(sketch, [frames[i] for i in chosen], SHEET_FRAME_SIZE)
        rows = -(-len(images) // SHEET_COLUMNS)
        sheet = np.full((rows * SHEET_FRAME_SIZE, SHEET_COLUMNS * SHEET_FRAME_SIZE, 3), 255, np.uint8)
        for index, image in enumerate(images):
            row, column = divmod(index, SHEET_COLUMNS)
            sheet[row * SHEET_FRAME_SIZE : (row + 1) * SHEET_FRAME_SIZE,
                  column * SHEET_FRAME_SIZE : (column + 1) * SHEET_FRAME_SIZE] = image  # fmt: skip
        with files.replacing(self.progress_preview) as png:
            imageio.imwrite(png, sheet, format="PNG")
        return self.progress_preview

    def _write_svg_frames(self, sketch: Sketch, frames: list[list[tuple[list[np.ndarray], float]]]) -> None:
        self.frames.mkdir(mode=files.PRIVATE_FOLDER, exist_ok=True)
        for index, strokes in enumerate(frames):
            files.write_text(self.frames / f"frame-{index:03d}.svg", frame_svg(sketch, strokes))

    def _write_previews(self, sketch: Sketch, frames: list[list[tuple[list[np.ndarray], float]]]) -> list[str]:
        """GIF always; MP4 where ffmpeg (imageio-ffmpeg) is installed, else a warning, not a lost job."""
        images = render_preview(sketch, frames, PREVIEW_SIZE)
        with files.replacing(self.preview_gif) as gif:
            imageio.mimsave(gif, images, format="GIF", duration=1000 / protocol.FPS, loop=0)
        try:
            with files.replacing(self.preview_mp4) as mp4:
                imageio.mimsave(mp4, images, format="FFMPEG", fps=protocol.FPS, macro_block_size=16)
        except (ImportError, RuntimeError, OSError) as exc:
            return [f"no MP4 preview ({exc}); install imageio-ffmpeg for it"]
        return []


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def strokes_per_frame(
    spec: JobSpec, sketch: Sketch, animation: dict[str, ObjectAnimation]
) -> list[list[tuple[list[np.ndarray], float]]]:
    """Per frame, every stroke of the sketch in document order as (sub-paths, width)."""
    placed: list[list[list[np.ndarray]]] = [[stroke.subpaths for stroke in sketch.strokes] for _ in range(spec.frames)]
    for obj in animation.values():
        for frame, strokes in enumerate(obj.points):
            for stroke_index, subpaths in zip(obj.strokes, strokes, strict=True):
                placed[frame][stroke_index] = subpaths
    widths = [stroke.width for stroke in sketch.strokes]
    return [list(zip(frame, widths, strict=True)) for frame in placed]


def frame_svg(sketch: Sketch, strokes: list[tuple[list[np.ndarray], float]]) -> str:
    """One frame as an SVG of the canvas, one `<path>` per stroke, like the input."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{sketch.width:g}" height="{sketch.height:g}" '
        f'viewBox="0 0 {sketch.width:g} {sketch.height:g}">',
        f'<rect width="{sketch.width:g}" height="{sketch.height:g}" fill="white"/>',
    ]
    lines += [svg.path_element(subpaths, f"{width:g}", "{:.4f}".format) for subpaths, width in strokes]
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def render_preview(sketch: Sketch, frames: list[list[tuple[list[np.ndarray], float]]], size: int) -> list[np.ndarray]:
    """Render every frame of the whole scene as an 8-bit RGB image."""
    scale, offset_x, offset_y = canvas_to_render(sketch.width, sketch.height, size)
    offset = np.array([offset_x, offset_y])
    segments = [
        np.concatenate([chain_segments(chain) for subpaths, _ in strokes for chain in subpaths]) * scale + offset
        for strokes in frames
    ]
    widths = sketch.segment_widths(range(len(sketch.strokes))) * scale
    with torch.no_grad():
        video = render(
            torch.tensor(np.stack(segments), dtype=torch.float32),
            torch.tensor(widths, dtype=torch.float32),
            size,
        )
    pixels = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(pixels)
