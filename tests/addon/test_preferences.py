"""The add-on's preferences and "Create Engine Environment", without network (local requirement files).

The environments made here get the engine's packages from the test run's own engine interpreter (a .pth file
in a venv without pip), so the check after installing runs for real without downloading torch.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest

from tests.addon.conftest import ADDON_PACKAGE, addon_module, engine_python
from tests.conftest import REPO

preferences = addon_module("preferences")
contract = addon_module("contract")
engine_environment = addon_module("engine_environment")


@pytest.fixture
def prefs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip never downloads here: a torch line can only fail, at once
    addon_prefs = bpy.context.preferences.addons[ADDON_PACKAGE].preferences
    saved = {
        name: getattr(addon_prefs, name) for name in ("python_path", "cache_dir", "model", "device", "torch_build")
    }
    online = bpy.context.preferences.system.use_online_access
    bpy.context.preferences.system.use_online_access = True
    yield addon_prefs
    bpy.context.preferences.system.use_online_access = online
    for name, value in saved.items():
        setattr(addon_prefs, name, value)


@pytest.fixture(scope="module")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the environment tests: a venv takes seconds to make, so they share it."""
    return tmp_path_factory.mktemp("env-cache")


def _requirements(tmp_path: Path, text: str) -> str:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_name_the_paper_model_and_a_user_cache_folder(prefs, tmp_path: Path) -> None:
    prefs.property_unset("model")
    prefs.property_unset("cache_dir")
    assert prefs.model == contract.protocol.DEFAULT_MODEL
    default_cache = preferences.cache_folder(bpy.context)
    assert default_cache == Path(bpy.utils.extension_path_user(ADDON_PACKAGE, create=False))
    prefs.cache_dir = str(tmp_path)
    assert preferences.cache_folder(bpy.context) == tmp_path
    prefs.cache_dir = "~/multisketch jobs"
    assert preferences.cache_folder(bpy.context) == Path.home() / "multisketch jobs"
    prefs.cache_dir = "multisketch jobs"  # relative: never to the folder Blender was started in
    assert preferences.cache_folder(bpy.context) == Path.home() / "multisketch jobs"


def test_an_environment_without_the_engines_packages_fails_its_check(prefs, env_cache: Path, tmp_path: Path) -> None:
    prefs.cache_dir, prefs.python_path = str(env_cache), "/the/previous/python"
    with pytest.raises(RuntimeError) as error:
        bpy.ops.multisketch.create_engine_env(requirements=_requirements(tmp_path, "# nothing to install\n"))
    message = str(error.value)
    assert "Could not check the environment" in message and "cannot run the engine" in message
    assert prefs.python_path == "/the/previous/python"  # a broken environment is never set as the engine's
    made = env_cache / preferences.ENV_FOLDER
    version = subprocess.run(
        [made / "bin" / "python", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert Path(version.stdout.strip()) == made  # the venv itself was made, in the chosen cache folder
    assert not (made / engine_environment.STAMP_NAME).exists()


def _environment_with_engine_packages(cache: Path) -> Path:
    """A venv in `cache` that sees the engine interpreter's packages (torch, diffusers, pip) through a .pth."""
    env_dir = cache / preferences.ENV_FOLDER
    engine = engine_python()
    subprocess.run([engine, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    engine_site = subprocess.run(
        [engine, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    (Path(site) / "engine-packages.pth").write_text(engine_site + "\n")
    return env_dir


class _Layout:
    """Records the labels the preferences draw (and the operator buttons' texts)."""

    def __init__(self) -> None:
        self.labels: list[str] = []

    def column(self, **_options) -> _Layout:
        return self

    box = column

    def label(self, text: str = "", **_options) -> None:
        self.labels.append(text)

    def prop(self, *_args, **_options) -> None:
        pass

    def operator(self, _idname: str, text: str = "", **_options) -> None:
        self.labels.append(f"[{text}]")


def _drawn() -> list[str]:
    layout = _Layout()
    preferences.MultiSketchPreferences.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout.labels


def test_create_checks_the_environment_shows_the_report_and_updates_it_when_stale(
    prefs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = Path(_requirements(tmp_path, "# version 1\n"))
    monkeypatch.setattr(preferences, "engine_requirements", lambda: requirements)  # what the add-on installs now
    prefs.cache_dir, prefs.python_path = str(tmp_path / "cache"), ""
    env_dir = _environment_with_engine_packages(tmp_path / "cache")
    assert "[Update Engine Environment]" in _drawn()
    assert any(line.startswith("Out of date: update (never checked") for line in _drawn())

    assert bpy.ops.multisketch.create_engine_env() == {"FINISHED"}
    python = env_dir / "bin" / "python"
    assert Path(prefs.python_path) == python
    stamp = json.loads((env_dir / engine_environment.STAMP_NAME).read_text())
    report = stamp["report"]
    expected_torch = subprocess.run(
        [engine_python(), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    assert report["torch"] == expected_torch and report["device"] in ("cpu", "cuda", "mps")
    summary = engine_environment.describe_report(report)
    assert summary in _drawn() and not any(line.startswith("Out of date") for line in _drawn())

    requirements.write_text("# version 2: an add-on update with new pins\n")
    assert any(line.startswith("Out of date: update (the add-on's requirements changed") for line in _drawn())
    assert f"Last check: {summary}" in _drawn()
    assert bpy.ops.multisketch.create_engine_env() == {"FINISHED"}  # updated in place, checked again
    assert summary in _drawn() and not any(line.startswith("Out of date") for line in _drawn())

    python.unlink()  # the interpreter is gone (its base Python was removed, say)
    assert any(line.startswith("Out of date: update (its Python") for line in _drawn())
    assert preferences.target_environment(bpy.context) == env_dir  # the same environment is the one to update


def test_the_torch_build_is_shown_before_installing_and_installed_as_chosen(
    prefs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefs.cache_dir, prefs.python_path = str(tmp_path / "cache"), ""
    _environment_with_engine_packages(tmp_path / "cache")
    automatic = preferences.torch_build_plan(bpy.context)
    assert f"Torch build to install: {automatic.label}" in _drawn()
    prefs.torch_build = "CPU"
    assert "Torch build to install: CPU build (chosen by hand)" in _drawn()
    with pytest.raises(RuntimeError) as error:
        bpy.ops.multisketch.create_engine_env(requirements=_requirements(tmp_path, "torch>=99\n"))
    message = str(error.value)
    assert "Could not install torch (CPU build (chosen by hand))" in message and "torch>=99" in message
    assert prefs.python_path == ""


def test_the_default_environment_is_shared_by_every_blender_version(prefs) -> None:
    prefs.cache_dir, prefs.python_path = "", ""
    default = preferences.target_environment(bpy.context)
    assert default.name == preferences.ENV_FOLDER and default.parent.name == "multisketch"
    blender_user = Path(bpy.utils.resource_path("USER"))
    assert not default.is_relative_to(blender_user)  # not in Blender's per-version folder
    assert bpy.app.version_string.split()[0] not in str(default)


def test_device_choices_are_the_engines() -> None:
    assert [key for key, _name, _tip in preferences.DEVICE_ITEMS] == list(contract.protocol.DEVICES)


def test_failing_install_shows_pips_message_and_keeps_the_setting(prefs, env_cache: Path, tmp_path: Path) -> None:
    prefs.cache_dir, prefs.python_path = str(env_cache), "/the/previous/python"
    bad = _requirements(tmp_path, "torch >= = 2 !!\n")
    with pytest.raises(RuntimeError) as error:
        bpy.ops.multisketch.create_engine_env(requirements=bad)
    message = str(error.value)
    assert "Could not install the engine's packages" in message and "Invalid requirement" in message
    assert prefs.python_path == "/the/previous/python"


def test_unusable_base_python_is_named(prefs, tmp_path: Path) -> None:
    prefs.cache_dir, prefs.python_path = str(tmp_path / "cache"), ""
    not_python = tmp_path / "python.txt"
    not_python.write_text("not a program\n")
    with pytest.raises(RuntimeError) as error:
        bpy.ops.multisketch.create_engine_env(base_python=str(not_python), requirements=_requirements(tmp_path, ""))
    message = str(error.value)
    assert "Could not create the environment" in message and "python.txt" in message
    assert prefs.python_path == ""


def test_offline_blender_is_told_how_to_allow_the_download(prefs, tmp_path: Path) -> None:
    prefs.cache_dir = str(tmp_path / "cache")
    bpy.context.preferences.system.use_online_access = False
    assert not bpy.ops.multisketch.create_engine_env.poll()  # greyed out, its tooltip says why
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.multisketch.create_engine_env()
    assert not (tmp_path / "cache").exists()
    explained = [line for line in _drawn() if line in preferences.OFFLINE_LINES]
    assert len(explained) == 3 and all(len(line) < 80 for line in explained)  # several short lines, not one cut off


LEGACY_INSTALL = """
import sys
import bpy
import addon_utils

def _raise(exc):
    raise exc

addon_utils.enable("multisketch_addon", default_set=True, handle_error=_raise)  # from scripts/addons: no extension
sketch = sys.argv[1]
sys.modules["multisketch_addon.importer"].import_sketch(bpy.context, f"{sketch}/sketch.svg", f"{sketch}/objects.tsv")
bpy.context.preferences.addons["multisketch_addon"].preferences.python_path = sys.argv[2]
bpy.context.scene.multisketch.prompt = "a dog plays with a ball"
animate = sys.modules["multisketch_addon.animate"]
print("ADDON", animate.__file__)
print("JOB", animate.start_job(bpy.context).exported.job_dir, flush=True)
"""


@pytest.mark.skipif(os.name == "nt", reason="the add-on is linked into Blender's add-on folder")
def test_installed_as_a_legacy_add_on_it_keeps_its_jobs_in_the_users_blender_folder(tmp_path: Path) -> None:
    """Without an extension's user folder the jobs once went to a fixed shared path in /tmp, readable by others."""
    user = tmp_path / "blender-user"
    (user / "scripts" / "addons").mkdir(parents=True)
    (user / "scripts" / "addons" / "multisketch_addon").symlink_to(REPO / "multisketch_addon")
    engine = shutil.which("true")  # an engine that ends at once: only where its job folder went matters here
    assert engine is not None
    done = subprocess.run(
        [sys.executable, "-c", LEGACY_INSTALL, str(REPO / "examples" / "dog_and_ball"), engine],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,  # not the checkout: it would import from there
        env={**os.environ, "BLENDER_USER_RESOURCES": str(user)},
    )  # fmt: skip
    jobs = [Path(line.removeprefix("JOB ")) for line in done.stdout.splitlines() if line.startswith("JOB ")]
    assert done.returncode == 0 and jobs, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"ADDON {user / 'scripts' / 'addons' / 'multisketch_addon' / 'animate.py'}" in done.stdout.splitlines()
    assert jobs[0].parent == user / "datafiles" / "multisketch" / "jobs"  # Blender's own data folder of this user
    assert (jobs[0] / "job.json").is_file() and stat.S_IMODE(jobs[0].stat().st_mode) == 0o700
