"""The engine environment's stamp (fresh, stale, broken), its default place, and the check run in it.

The stamp logic is the add-on's bpy-free module, loaded by its path; the check is the engine's
`python -m server.environment_check`, run here for real (this machine: CPU only).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

_PATH = REPO / "multisketch_addon" / "engine_environment.py"
_SPEC = importlib.util.spec_from_file_location("engine_environment", _PATH)
engine_environment = importlib.util.module_from_spec(_SPEC)
sys.modules["engine_environment"] = engine_environment  # dataclasses look their module up by name
_SPEC.loader.exec_module(engine_environment)

CPU_REPORT = {"device": "cpu", "torch": "2.13.0+cpu", "gpu": None, "gpu_memory_bytes": None}
H200_REPORT = {"device": "cuda", "torch": "2.13.0+cu128", "gpu": "NVIDIA H200", "gpu_memory_bytes": 150_100_000_000}


def _environment(tmp_path: Path, requirements_text: str = "torch>=2.6,<3\n") -> tuple[Path, Path]:
    """A folder shaped like a venv (its interpreter is a stand-in file) and a requirements file."""
    env_dir = tmp_path / "engine-env"
    python = engine_environment.venv_python(env_dir)
    python.parent.mkdir(parents=True)
    python.write_text("")
    requirements = tmp_path / "engine.txt"
    requirements.write_text(requirements_text, encoding="utf-8")
    return env_dir, requirements


def test_a_checked_environment_with_the_same_requirements_is_fresh(tmp_path: Path) -> None:
    env_dir, requirements = _environment(tmp_path)
    engine_environment.write_stamp(env_dir, H200_REPORT, requirements, "CUDA 12.8 build", "https://x/cu128")
    state = engine_environment.environment_state(env_dir, requirements)
    assert state.status == "fresh" and not state.needs_update
    assert state.summary == "Device: cuda (NVIDIA H200, 139.8 GiB), torch 2.13.0+cu128"


def test_changed_requirements_make_it_out_of_date(tmp_path: Path) -> None:
    env_dir, requirements = _environment(tmp_path)
    engine_environment.write_stamp(env_dir, CPU_REPORT, requirements, "CPU build", "")
    requirements.write_text("torch>=2.6,<3\ndiffusers==0.43.0\n", encoding="utf-8")  # an add-on update's new pin
    state = engine_environment.environment_state(env_dir, requirements)
    assert state.status == "stale" and state.needs_update and "requirements changed" in state.reason
    assert state.summary == "Device: cpu (no GPU), torch 2.13.0+cpu"  # the last check is still shown


def test_an_environment_whose_interpreter_is_gone_is_broken(tmp_path: Path) -> None:
    env_dir, requirements = _environment(tmp_path)
    engine_environment.write_stamp(env_dir, CPU_REPORT, requirements, "CPU build", "")
    engine_environment.venv_python(env_dir).unlink()
    state = engine_environment.environment_state(env_dir, requirements)
    assert state.status == "broken" and state.needs_update and "is gone" in state.reason


@pytest.mark.parametrize("stamp_text", [None, "{not json", '{"report": "cpu"}'])
def test_an_environment_without_a_readable_stamp_needs_an_update(tmp_path: Path, stamp_text: str | None) -> None:
    env_dir, requirements = _environment(tmp_path)
    if stamp_text is not None:
        (env_dir / engine_environment.STAMP_NAME).write_text(stamp_text)
    state = engine_environment.environment_state(env_dir, requirements)
    assert state.status == "stale" and "never checked" in state.reason


def test_no_folder_is_missing_not_broken(tmp_path: Path) -> None:
    state = engine_environment.environment_state(tmp_path / "nothing", tmp_path / "engine.txt")
    assert state.status == "missing" and not state.needs_update


def test_an_interpreter_is_traced_back_to_its_environment_only_when_it_is_ours(tmp_path: Path) -> None:
    env_dir, requirements = _environment(tmp_path)
    python = engine_environment.venv_python(env_dir)
    assert engine_environment.environment_of(python) is None  # made by hand: not ours to update
    engine_environment.write_stamp(env_dir, CPU_REPORT, requirements, "CPU build", "")
    assert engine_environment.environment_of(python) == env_dir
    python.unlink()
    assert engine_environment.environment_of(python) == env_dir  # gone, yet still the one to update


@pytest.mark.parametrize(
    ("system", "environ", "expected"),
    [
        ("Linux", {}, "home/.cache/multisketch"),
        ("Linux", {"XDG_CACHE_HOME": "/xdg"}, "/xdg/multisketch"),
        ("Linux", {"XDG_CACHE_HOME": "relative"}, "home/.cache/multisketch"),  # the XDG spec ignores relative ones
        ("Darwin", {}, "home/Library/Caches/multisketch"),
        ("Windows", {"LOCALAPPDATA": "/users/me/AppData/Local"}, "/users/me/AppData/Local/multisketch"),
        ("Windows", {}, "home/AppData/Local/multisketch"),
    ],
)
def test_the_default_place_is_per_user_not_per_blender_version(
    system: str, environ: dict[str, str], expected: str
) -> None:
    folder = engine_environment.per_user_cache_folder(system, environ, Path("home"))
    assert folder == Path(expected)
    assert not any(part[:1].isdigit() for part in folder.parts)  # no "5.0" in it: every Blender version shares it


def test_the_check_reports_the_cpu_and_this_torch_in_one_json_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.environment_check"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    report = engine_environment.parse_check_output(lines)
    assert report == json.loads(lines[0])
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert (report["device"], report["gpu"], report["gpu_memory_bytes"]) == ("cpu", None, None)
    assert report["torch"] == torch.__version__
    assert engine_environment.describe_report(report).startswith(f"Device: {report['device']}")


def test_the_check_in_an_environment_without_diffusers_fails_in_one_line() -> None:
    without_diffusers = (
        "import runpy, sys; sys.modules['diffusers'] = None; "
        "runpy.run_module('server.environment_check', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", without_diffusers], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().startswith("this environment cannot run the engine") and "diffusers" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="no report"):
        engine_environment.parse_check_output(done.stdout.splitlines())
