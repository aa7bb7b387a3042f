"""Where the engine's environment lives, and its stamp: what the check after installing reported, for which
requirements.

An environment made for an older add-on still imports torch and diffusers after an update with new pins, so
"it imports" says nothing. The stamp (a JSON file in the environment folder) keeps the sha256 of the
requirements file it was installed from and the check's report (device, torch, GPU); the preferences compare
it with the add-on's own requirements and say "out of date" when they differ or when the interpreter is gone.
No bpy and nothing outside the standard library: the tests load this file by its path.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_FOLDER = "engine-env"
STAMP_NAME = "multisketch-environment.json"
APP_FOLDER = "multisketch"
STAMP_VERSION = 1
GIB = 1024**3


def per_user_cache_folder(system: str, environ: dict[str, str] | os._Environ[str], home: Path) -> Path:
    """The user's own cache folder for MultiSketch, shared by every Blender version (so an upgrade reuses it).

    Linux: $XDG_CACHE_HOME/multisketch or ~/.cache/multisketch; macOS: ~/Library/Caches/multisketch;
    Windows: %LOCALAPPDATA%\\multisketch. `system` is `platform.system()`.
    """
    if system == "Windows":
        local = environ.get("LOCALAPPDATA", "")
        return (Path(local) if local else home / "AppData" / "Local") / APP_FOLDER
    if system == "Darwin":
        return home / "Library" / "Caches" / APP_FOLDER
    xdg = environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache") / APP_FOLDER


def venv_python(env_dir: Path, windows: bool = sys.platform == "win32") -> Path:
    """The interpreter of a virtual environment."""
    return env_dir / ("Scripts/python.exe" if windows else "bin/python")


def environment_of(python: Path) -> Path | None:
    """The environment folder an interpreter belongs to when it is one of ours (it has a stamp)."""
    for candidate in (python.parent.parent, python.parent):
        if (candidate / STAMP_NAME).is_file():
            return candidate
    return None


def requirements_hash(requirements: Path) -> str:
    """sha256 of a requirements file: a changed pin changes it."""
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def parse_check_output(output_lines: list[str]) -> dict[str, Any]:
    """The report the environment check printed (its last JSON line); ValueError when there is none."""
    for line in reversed(output_lines):
        line = line.strip()
        if line.startswith("{"):
            report = json.loads(line)
            if isinstance(report, dict) and "device" in report and "torch" in report:
                return report
    raise ValueError("the environment check printed no report")


def write_stamp(env_dir: Path, report: dict[str, Any], requirements: Path, torch_build_label: str,
                torch_index_url: str) -> dict[str, Any]:  # fmt: skip
    """Keep the check's report with the hash of the requirements it was installed from."""
    stamp = {
        "stamp_version": STAMP_VERSION,
        "requirements_sha256": requirements_hash(requirements),
        "torch_build_label": torch_build_label,
        "torch_index_url": torch_index_url,
        "report": report,
    }
    (env_dir / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    return stamp


def read_stamp(env_dir: Path) -> dict[str, Any] | None:
    """The stamp, or None when there is none or it cannot be read (a damaged stamp counts as none)."""
    try:
        stamp = json.loads((env_dir / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or not isinstance(stamp.get("report"), dict):
        return None
    return stamp


@dataclass(frozen=True)
class EnvironmentState:
    """What the preferences say about an environment: status is 'missing', 'fresh', 'stale' or 'broken'.

    `reason` says why it is not fresh; `summary` is the check's report in one line ("" without one).
    """

    status: str
    reason: str
    summary: str

    @property
    def needs_update(self) -> bool:
        return self.status in ("stale", "broken")


def describe_report(report: dict[str, Any]) -> str:
    """One line for the preferences: "Device: cuda (NVIDIA H200, 139.8 GiB), torch 2.13.0+cu128"."""
    gpu = report.get("gpu")
    memory = report.get("gpu_memory_bytes")
    where = str(report.get("device", "?"))
    if gpu:
        where += f" ({gpu}, {memory / GIB:.1f} GiB)" if isinstance(memory, (int, float)) else f" ({gpu})"
    else:
        where += " (no GPU)"
    return f"Device: {where}, torch {report.get('torch', '?')}"


def environment_state(env_dir: Path, requirements: Path) -> EnvironmentState:
    """Compare an environment with the requirements the add-on installs now."""
    python = venv_python(env_dir)
    stamp = read_stamp(env_dir)
    summary = describe_report(stamp["report"]) if stamp else ""
    if not env_dir.exists():
        return EnvironmentState("missing", "not created yet", "")
    if not python.is_file():
        return EnvironmentState("broken", f"its Python {python} is gone", summary)
    if stamp is None:
        return EnvironmentState("stale", "never checked (made by an older version of the add-on)", "")
    try:
        current = requirements_hash(requirements)
    except OSError:
        current = ""
    if stamp.get("requirements_sha256") != current:
        return EnvironmentState("stale", "the add-on's requirements changed since it was installed", summary)
    return EnvironmentState("fresh", "", summary)
