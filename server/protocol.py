"""The job contract between the Blender add-on and the engine (documented in docs/job-format.md).

Pure Python on purpose: the add-on imports this module inside Blender, where neither torch nor
bpy-free heavy packages may be assumed. Everything that crosses the process boundary is defined
here: the job folder's file names, the job spec, the result file and the progress events, with
`format_duration`, which writes an event's time left the same way in the engine's and the add-on's progress.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from . import files
from .errors import UserError

PROTOCOL_VERSION = 1
FPS = 8
DEFAULT_MODEL = "ali-vilab/text-to-video-ms-1.7b"
PRIORS = ("modelscope", "tiny", "toy", "target")
DEVICES = ("auto", "cpu", "cuda", "mps")
# How the stages run: "auto" is the paper's (each moving object alone, then all together) but leaves out the joint
# stage where one moving object has nothing else to meet (Live-Sketch's setting); "iterative" always has it;
# "objects" has only the objects' own stages; "joint" only one stage of all objects together, global motion too.
SCHEDULES = ("auto", "iterative", "objects", "joint")
# Adam-speed multipliers of the global motion heads (see server/motion.py, AmplifiedLinear); Live-Sketch's are all 1.
# Tuned with the target prior on the shared sketches, kept after the noise benchmark's tuning half (target pull plus
# Gaussian noise, scripts/bench_noise.py): there gains of 1 or 30 miss planned motions by tens of px (BENCHMARKS.md).
HEAD_GAINS = {"translation": 600.0, "rotation": 10.0, "shear": 10.0, "scale": 20.0}
# "remove": local offsets lose their per-frame affine part while optimizing (all rigid motion is global);
# "keep": they may carry it, and its translation is moved into the global motion when the result is written.
LOCAL_AFFINE = ("remove", "keep")

# The learned known-answer prior ships inside the engine; its file says the frames, size and steps it was made for.
TOY_MODEL_FOLDER = Path(__file__).resolve().parent / "priors" / "toy_model"
TOY_SETTINGS_FILE = "multisketch.json"

# File names inside a job folder.
JOB_SPEC = "job.json"
RESULT = "result.json"
LOG = "log.txt"
PREVIEW_GIF = "preview.gif"
PREVIEW_MP4 = "preview.mp4"
PROGRESS_PREVIEW = "progress.png"  # the animation so far, at the latest checkpoint: a sheet of its frames
FRAMES_DIR = "frames"
CHECKPOINTS_DIR = "checkpoints"
LOCK = ".lock"  # held by the engine working in the folder

# Limits of a job (docs/job-format.md): beyond them a run would take absurd memory or mean nothing. The add-on's
# fields stop at the same numbers.
MIN_FRAMES = 2  # one frame holds no motion
MAX_FRAMES = 240  # 10 s at 24 fps; Live-Sketch animates 24 frames
MIN_SIZE = 16  # px rendered for the prior
MAX_SIZE = 1024  # px rendered for the prior; ModelScope works at 256
MAX_STEPS = 100_000  # iterations per stage; the paper uses 1000
MAX_COORDINATE = 1e6  # px, the largest coordinate a sketch or a result may hold
MAX_OBJECTS = 100  # the paper animates 2 or 3

# Exit codes of `python -m server`.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 3


@dataclass
class ObjectSpec:
    """A named set of strokes (indices of `<path>` elements in document order) that moves as one."""

    name: str
    strokes: list[int]
    prompt: str | None = None
    static: bool = False


@dataclass
class JobSpec:
    """Everything the engine needs to run one job; saved as `job.json` in the job folder."""

    sketch: str
    prompt: str
    objects: list[ObjectSpec] = field(default_factory=list)
    frames: int = 24
    steps: int = 1000
    size: int = 256
    seed: int = 0
    prior: str = "modelscope"
    model: str = DEFAULT_MODEL
    target_plan: str | None = None
    device: str = "auto"
    guidance_local: float = 30.0
    guidance_global: float = 10.0
    checkpoint_every: int = 100
    schedule: str = "auto"
    head_gains: dict[str, float] = field(default_factory=lambda: dict(HEAD_GAINS))
    local_affine: str = "remove"
    joint_global: bool = False
    shared_pass: bool = False
    version: int = PROTOCOL_VERSION

    def validate(self) -> None:
        """Raise UserError naming the first field that cannot work; stroke ranges are checked later."""
        self._check_types()
        if self.version != PROTOCOL_VERSION:
            raise UserError(f"job spec version {self.version} is not supported (this engine reads {PROTOCOL_VERSION})")
        if not self.prompt or not self.prompt.strip():
            raise UserError("the prompt is empty: describe the motion, e.g. --prompt 'a cat jumps'")
        if not MIN_FRAMES <= self.frames <= MAX_FRAMES:
            raise UserError(f"frames must be from {MIN_FRAMES} to {MAX_FRAMES} (got {self.frames})")
        if not 0 <= self.steps <= MAX_STEPS:
            raise UserError(f"steps must be from 0 to {MAX_STEPS} (got {self.steps})")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise UserError(f"render size must be from {MIN_SIZE} to {MAX_SIZE} px (got {self.size})")
        if self.checkpoint_every < 1:
            raise UserError(f"checkpoint_every must be at least 1 step (got {self.checkpoint_every})")
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}: use one of {', '.join(DEVICES)}")
        if self.prior not in PRIORS:
            raise UserError(f"unknown prior {self.prior!r}: use one of {', '.join(PRIORS)}")
        if self.prior == "target" and not self.target_plan:
            raise UserError("the target prior needs a motion plan: pass --target-plan trajectories.tsv")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.local_affine not in LOCAL_AFFINE:
            raise UserError(f"unknown local_affine {self.local_affine!r}: use one of {', '.join(LOCAL_AFFINE)}")
        if set(self.head_gains) != set(HEAD_GAINS):
            raise UserError(f"head_gains must give exactly {', '.join(HEAD_GAINS)} (got {self.head_gains!r})")
        for head, gain in self.head_gains.items():
            _check_type(f"head_gains[{head!r}]", gain, float)
            if not math.isfinite(gain) or gain <= 0:
                raise UserError(f"head_gains[{head!r}] must be a finite number above 0 (got {gain!r})")
        for name, guidance in (("guidance_local", self.guidance_local), ("guidance_global", self.guidance_global)):
            if not math.isfinite(guidance) or guidance < 0:
                raise UserError(f"{name} must be a finite number of 0 or more (got {guidance})")
        if len(self.objects) > MAX_OBJECTS:
            raise UserError(f"a job animates at most {MAX_OBJECTS} objects (got {len(self.objects)}): group strokes")
        seen_names: set[str] = set()
        owner: dict[int, str] = {}
        for obj in self.objects:
            if not obj.name or not obj.name.strip():
                raise UserError("an object has an empty name")
            if obj.name in seen_names:
                raise UserError(f"object name {obj.name!r} is used twice")
            seen_names.add(obj.name)
            if not obj.strokes:
                raise UserError(f"object {obj.name!r} has no strokes")
            for index in obj.strokes:
                if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                    raise UserError(f"object {obj.name!r}: stroke index {index!r} is not a non-negative integer")
                if index in owner:
                    raise UserError(f"stroke {index} is in both {owner[index]!r} and {obj.name!r}")
                owner[index] = obj.name
            if obj.prompt is not None and not obj.prompt.strip():
                obj.prompt = None

    def _check_types(self) -> None:
        """Every field of the JSON type its definition says: a job.json written by hand gets a message, not a crash."""
        for name, kind in _FIELD_TYPES.items():
            _check_type(f"job spec field {name!r}", getattr(self, name), kind)
        for obj in self.objects:
            if not isinstance(obj, ObjectSpec):
                raise UserError(f"every object of the job spec must be a JSON object (got {obj!r:.60})")
            _check_type("an object's 'name'", obj.name, str)
            _check_type(f"object {obj.name!r}'s 'prompt'", obj.prompt, (str, type(None)))
            _check_type(f"object {obj.name!r}'s 'static'", obj.static, bool)
            _check_type(f"object {obj.name!r}'s 'strokes'", obj.strokes, list)

    def check_strokes(self, stroke_count: int) -> None:
        """Raise UserError if an object names a stroke the sketch does not have."""
        for obj in self.objects:
            unknown = sorted(i for i in obj.strokes if i >= stroke_count)
            if unknown:
                raise UserError(
                    f"object {obj.name!r} names stroke(s) {unknown[:5]} but the sketch has only "
                    f"{stroke_count} strokes (0 to {stroke_count - 1})"
                )

    def moving_objects(self) -> list[ObjectSpec]:
        return [obj for obj in self.objects if not obj.static]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        if not isinstance(data, dict):
            raise UserError("the job spec is not a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"the job spec has unknown field(s): {', '.join(unknown)}")
        try:
            listed = data.get("objects", [])
            if isinstance(listed, list):
                listed = [ObjectSpec(**obj) if isinstance(obj, dict) else obj for obj in listed]
            return cls(**{**data, "objects": listed})
        except TypeError as exc:
            raise UserError(f"the job spec is malformed: {exc}") from None

    def save(self, path: Path) -> None:
        files.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> JobSpec:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"no job spec at {path}") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the job spec {path}: {exc}") from None
        return cls.from_dict(data)


_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
               dict: "an object", type(None): "null"}  # fmt: skip
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "sketch": str, "prompt": str, "objects": list, "frames": int, "steps": int, "size": int, "seed": int,
    "prior": str, "model": str, "target_plan": (str, type(None)), "device": str, "guidance_local": float,
    "guidance_global": float, "checkpoint_every": int, "schedule": str, "head_gains": dict,
    "local_affine": str, "joint_global": bool, "shared_pass": bool, "version": int,
}  # fmt: skip


def _check_type(what: str, value: Any, kind: type | tuple[type, ...]) -> None:
    """UserError unless `value` is of `kind`; JSON's true/false are not numbers, and an integer is a number."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        ok = bool in kinds
    else:
        ok = isinstance(value, kinds) or (float in kinds and isinstance(value, int))
    if not ok:
        wanted = " or ".join(_JSON_NAMES[k] for k in kinds)
        raise UserError(f"{what} must be {wanted} (got {json.dumps(value)[:60]})")


def toy_settings() -> dict[str, int]:
    """frames, size and steps of the toy prior's model: a job with `prior: toy` runs at them unless told otherwise."""
    return json.loads((TOY_MODEL_FOLDER / TOY_SETTINGS_FILE).read_text(encoding="utf-8"))


# The job spec's defaults by field: the one place the command line and the add-on take their defaults from.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(JobSpec) if f.default is not MISSING}


def load_result(path: Path) -> dict[str, Any]:
    """Read `result.json`, checked whole (`check_result`) so that nothing half-usable reaches a scene."""
    data = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    if not isinstance(data, dict):
        raise ValueError("the result is not a JSON object")
    check_result(data)
    return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"the result holds {name}, which is not a number")


def check_result(data: dict[str, Any]) -> None:
    """ValueError naming the first field of a `result.json` document that is missing, mistyped or out of range."""
    version = data.get("version")
    if isinstance(version, bool) or version != PROTOCOL_VERSION:
        raise ValueError(f"result version {version!r} is not {PROTOCOL_VERSION}")
    canvas = data.get("canvas")
    _points(canvas, 1, "canvas")
    if min(canvas) <= 0:
        raise ValueError(f"canvas must be a positive width and height (got {canvas!r})")
    _expect(data, "stroke_count", int, 0, MAX_COORDINATE)
    background = data.get("background", [])
    if not isinstance(background, list) or not all(_is_index(i) for i in background):
        raise ValueError("background must be a list of stroke indices")
    _expect(data, "frames", int, MIN_FRAMES, MAX_FRAMES)
    _expect(data, "fps", (int, float), 1, 1000)
    frames = data["frames"]
    objects = data.get("objects")
    if not isinstance(objects, dict) or not objects:
        raise ValueError("objects must be a non-empty mapping of object names")
    for name, obj in objects.items():
        where = f"objects[{name!r}]"
        if not isinstance(obj, dict) or not isinstance(obj.get("static"), bool):
            raise ValueError(f"{where}.static must be true or false")
        strokes = obj.get("strokes")
        if not isinstance(strokes, list) or not strokes or not all(_is_index(i) for i in strokes):
            raise ValueError(f"{where}.strokes must be a non-empty list of stroke indices")
        _points(obj.get("center"), 1, f"{where}.center")
        if not isinstance(obj.get("frames"), list) or len(obj["frames"]) != frames:
            raise ValueError(f"{where}.frames must list {frames} frames")
        for f, frame in enumerate(obj["frames"]):
            at = f"{where}.frames[{f}]"
            if not isinstance(frame, dict):
                raise ValueError(f"{at} must be a mapping")
            for key, count in (("translate", 1), ("shear", 1), ("scale", 1), ("matrix", 2)):
                _points(frame.get(key), count, f"{at}.{key}")
            _expect(frame, "rotate", (int, float), -1e6, 1e6, at)
            if min(abs(v) for v in frame["scale"]) < 1e-9:
                raise ValueError(f"{at}.scale shrinks the object to nothing")
            points = frame.get("points")
            if not isinstance(points, list) or len(points) != len(strokes):
                raise ValueError(f"{at}.points must hold one entry per stroke ({len(strokes)})")
            for s, stroke in enumerate(points):
                if not isinstance(stroke, list) or not stroke:
                    raise ValueError(f"{at}.points[{s}] must be a list of sub-paths")
                for chain in stroke:
                    if not isinstance(chain, list) or len(chain) % 3 != 1:
                        raise ValueError(f"{at}.points[{s}] must hold Bezier chains of 3k+1 points")
                    _points(chain, len(chain), f"{at}.points[{s}]")


def _expect(data: dict, key: str, kind: type | tuple, low: float, high: float, where: str = "") -> None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= cast(float, value) <= high:
        field_name = f"{where}.{key}" if where else key
        raise ValueError(f"{field_name} must be a number from {low:g} to {high:g} (got {value!r})")


def _points(value: Any, count: int, where: str) -> None:
    """`count` finite (x, y) pairs within the coordinate limit ([x, y] itself when count is 1)."""
    pairs = [value] if count == 1 else value
    if not isinstance(pairs, list) or len(pairs) != count:
        raise ValueError(f"{where} must hold {count} pairs of numbers")
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and all(is_coordinate(v) for v in pair)):
            raise ValueError(f"{where} must be finite pairs of numbers within {MAX_COORDINATE:g} (got {pair!r})")


def is_coordinate(value: Any) -> bool:
    """A number a sketch or a result may hold as a coordinate: finite and within MAX_COORDINATE (NaN is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= MAX_COORDINATE


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def format_duration(seconds: float | None) -> str:
    """A time left as people read it in a progress line: 45s, 3m05s, 1h02m, 3d04h ("" when unknown)."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours_of_day = divmod(hours, 24)
    if days:
        return f"{days}d{hours_of_day:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def encode_event(event: str, **fields: Any) -> str:
    """One progress event as a JSON line (no newline)."""
    return json.dumps({"event": event, **fields}, separators=(",", ":"))


def decode_event(line: str) -> dict[str, Any] | None:
    """Parse a progress line from the engine; None for anything that is not an event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "event" not in data:
        return None
    return data
