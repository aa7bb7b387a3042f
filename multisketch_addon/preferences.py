"""Add-on preferences (where the engine lives, which model, where jobs go) and the engine set-up operator.

The engine needs torch and diffusers, which must never be installed into Blender's own Python: it
runs in a separate interpreter. "Create Engine Environment" makes one in a background process, so
Blender stays usable during the download: a venv, the torch build this machine needs (torch_build,
shown here before installing and overridable), the engine's requirements, then a check run in the new
environment whose report is kept as a stamp (engine_environment) and shown here; a stale or broken
environment is updated in place by the same operator. The environment lives in a per-user folder
shared by every Blender version unless a cache folder is chosen.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import cast

import bpy
from bpy.props import EnumProperty, StringProperty

from . import engine_environment, torch_build
from .command_chain import CommandChain
from .contract import engine_root, protocol
from .engine_environment import ENV_FOLDER, venv_python
from .reporting import ReportingOperator

# Where the engine may compute: the engine's `--device` values.
DEVICE_ITEMS = (
    ("auto", "Auto", "An NVIDIA or AMD GPU when there is one, else an Apple GPU (MPS), else the CPU"),
    ("cpu", "CPU", "The CPU (slow with the real model)"),
    ("cuda", "CUDA GPU", "An NVIDIA GPU (or an AMD GPU with torch's ROCm build)"),
    ("mps", "Apple GPU (MPS)", "The GPU of a Mac with Apple Silicon"),
)

# Why the environment cannot be made while Blender may not go online: one report line was cut off.
OFFLINE_LINES = (
    "Blender may not go online, and pip must download the engine's packages:",
    "allow it in Preferences > System > Network (Allow Online Access),",
    "or make the environment by hand (README: The engine's Python environment).",
)
PIP_INSTALL = ("-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off")
CHECK_MODULE = "server.environment_check"


class MultiSketchPreferences(bpy.types.AddonPreferences):
    """Settings shared by every file: the engine's interpreter, model, device and cache folder."""

    bl_idname = __package__

    python_path: StringProperty(
        name="Engine Python",
        description="Python interpreter with torch and diffusers that runs the engine",
        subtype="FILE_PATH",
    )
    torch_build: EnumProperty(
        name="Torch Build",
        description="Which build of torch Create Engine Environment installs",
        items=torch_build.OVERRIDE_ITEMS,
        default="AUTO",
    )
    model: StringProperty(
        name="Model",
        description="Hugging Face id or local folder (diffusers layout) of the ModelScope text-to-video model",
        default=protocol.DEFAULTS["model"],
    )
    device: EnumProperty(
        name="Device",
        description="Where the engine computes, unless a scene chooses otherwise",
        items=DEVICE_ITEMS,
        default=protocol.DEFAULTS["device"],
    )
    cache_dir: StringProperty(
        name="Cache Folder",
        description="Where job folders and the engine environment go (empty: the add-on's user folder for jobs, "
        "a per-user cache folder shared by every Blender version for the environment)",
        subtype="DIR_PATH",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        draw_engine_environment(layout.box(), context)
        layout.prop(self, "model")
        layout.label(text="ModelScope's weights are licensed CC-BY-NC-4.0 (non-commercial use).", icon="INFO")
        layout.prop(self, "device")
        layout.prop(self, "cache_dir")
        layout.label(text=f"Jobs are kept in {cache_folder(context) / 'jobs'}")


def addon_preferences(context: bpy.types.Context, optional: bool = False) -> MultiSketchPreferences | None:
    """The add-on's preferences; while the add-on is not registered, KeyError, or None when `optional` (for a
    panel, which draws what it finds)."""
    addons = context.preferences.addons
    if optional and addons.get(__package__) is None:
        return None
    return cast(MultiSketchPreferences, addons[__package__].preferences)


def cache_folder(context: bpy.types.Context) -> Path:
    """The folder for job folders (created on demand by its users)."""
    chosen = addon_preferences(context).cache_dir.strip()
    if chosen:
        # "//jobs" is relative to the blend file (Blender's convention), "~" is the user's home; any other
        # relative path is taken from the home folder, never from wherever Blender happened to be started.
        folder = Path(bpy.path.abspath(chosen)).expanduser()
        return folder if folder.is_absolute() else Path.home() / folder
    try:
        return Path(bpy.utils.extension_path_user(__package__, create=False))
    except ValueError:  # installed as a legacy add-on: the user's own Blender data folder, not a shared /tmp
        return Path(bpy.utils.user_resource("DATAFILES", path="multisketch"))


def draw_engine_environment(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The environment's state and check report, the torch build it would get, and the button."""
    env_dir = target_environment(context)
    state = engine_environment.environment_state(env_dir, engine_requirements())
    column = layout.column(align=True)
    column.label(text=f"Engine environment: {env_dir}")
    if state.status == "fresh":
        column.label(text=state.summary, icon="CHECKMARK")
    elif state.status == "missing":
        column.label(text="Not created yet", icon="BLANK1")
    else:
        column.label(text=f"Out of date: update ({state.reason})", icon="ERROR")
        if state.summary:
            column.label(text=f"Last check: {state.summary}", icon="BLANK1")
    prefs = addon_preferences(context)
    python = prefs.python_path.strip()
    if python and Path(python).expanduser() != venv_python(env_dir):
        column.label(text=f"Engine Python is set to another interpreter: {python}", icon="INFO")
    layout.prop(prefs, "torch_build")
    plan = torch_build_plan(context, wait=False)
    if plan is None:
        layout.label(text="Torch build: looking at this machine's GPU...", icon="TIME")
    else:
        layout.label(text=f"Torch build to install: {plan.label}", icon="INFO")
        if plan.warning:
            layout.label(text=plan.warning, icon="ERROR")
    text = "Create Engine Environment" if state.status == "missing" else "Update Engine Environment"
    layout.operator(MULTISKETCH_OT_create_engine_env.bl_idname, text=text, icon="IMPORT")
    if not bpy.app.online_access:  # why the button is greyed out, on lines short enough to read
        column = layout.column(align=True)
        for number, line in enumerate(OFFLINE_LINES):
            column.label(text=line, icon="ERROR" if number == 0 else "BLANK1")


def default_environment(context: bpy.types.Context) -> Path:
    """Where a new engine environment goes: in the chosen cache folder, else in a per-user cache folder.

    Not in the add-on's user folder, which is Blender's per-version folder: every Blender upgrade would
    leave several GB behind and make the user download them again.
    """
    if addon_preferences(context).cache_dir.strip():
        return cache_folder(context) / ENV_FOLDER
    return engine_environment.per_user_cache_folder(platform.system(), os.environ, Path.home()) / ENV_FOLDER


def target_environment(context: bpy.types.Context) -> Path:
    """The environment Create/Update works on: the one Engine Python belongs to when this add-on made it."""
    python = addon_preferences(context).python_path.strip()
    ours = engine_environment.environment_of(Path(python).expanduser()) if python else None
    return ours or default_environment(context)


def engine_requirements() -> Path:
    return engine_root() / "requirements" / "engine.txt"


class _MachineFacts:
    """This machine's facts, gathered once per session off the main thread (nvidia-smi can take seconds)."""

    facts: torch_build.MachineFacts | None = None
    thread: threading.Thread | None = None

    @classmethod
    def get(cls, wait: bool) -> torch_build.MachineFacts | None:
        if cls.facts is None and cls.thread is None:
            cls.thread = threading.Thread(target=cls._gather, daemon=True)
            cls.thread.start()
            if not bpy.app.background:
                bpy.app.timers.register(cls._redraw_when_known, first_interval=0.2)
        if wait and cls.thread is not None:
            cls.thread.join()
        return cls.facts

    @classmethod
    def _gather(cls) -> None:
        cls.facts = torch_build.gather_machine_facts()

    @classmethod
    def _redraw_when_known(cls) -> float | None:
        if cls.facts is None:
            return 0.2
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "PREFERENCES":
                    area.tag_redraw()
        return None


def torch_build_plan(context: bpy.types.Context, wait: bool = True) -> torch_build.TorchBuild | None:
    """The torch build Create Engine Environment installs (None while the machine is still being looked at)."""
    facts = _MachineFacts.get(wait)
    if facts is None:
        return None
    try:
        requirement = torch_build.torch_requirement(engine_requirements().read_text(encoding="utf-8"))
    except OSError:
        requirement = ""
    return torch_build.choose_torch_build(facts, addon_preferences(context).torch_build, requirement)


def lasting_window(context: bpy.types.Context) -> bpy.types.Window:
    """A window the user does not close in passing: the first one not showing a temporary screen (Preferences,
    a render view), else the current one."""
    for window in context.window_manager.windows:
        if not window.screen.is_temporary:
            return window
    return context.window


class MULTISKETCH_OT_create_engine_env(ReportingOperator):
    """Create or update the engine's Python environment (torch for this GPU, diffusers, ...) and check it"""

    bl_idname = "multisketch.create_engine_env"
    bl_label = "Create Engine Environment"
    bl_options = {"REGISTER"}

    base_python: StringProperty(
        name="Base Python",
        description="Python to create the environment from (empty: Blender's own Python)",
        subtype="FILE_PATH",
    )
    requirements: StringProperty(
        name="Requirements",
        description="Requirements file to install (empty: the engine's own requirements/engine.txt)",
        subtype="FILE_PATH",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not bpy.app.online_access:
            cls.poll_message_set(" ".join(OFFLINE_LINES))
            return False
        return True

    def _begin(self, context: bpy.types.Context) -> bool:
        requirements = Path(self.requirements) if self.requirements else engine_requirements()
        if not requirements.is_file():
            self.tell("ERROR", f"The engine's requirements file {requirements} is missing; reinstall the add-on")
            return False
        self._requirements = requirements
        self._env_dir = env_dir = target_environment(context)
        try:
            env_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.tell("ERROR", f"Cannot create the folder {env_dir.parent}: {exc.strerror or exc}")
            return False
        python = str(venv_python(env_dir))
        self._plan = plan = torch_build_plan(context)
        assert plan is not None  # waited for
        requirement = torch_build.torch_requirement(requirements.read_text(encoding="utf-8"))
        stamp = engine_environment.read_stamp(env_dir)
        steps: list[tuple[str, list[str]]] = []
        if not venv_python(env_dir).is_file():  # an existing environment is updated in place
            steps.append(("create the environment", [self.base_python or sys.executable, "-m", "venv", str(env_dir)]))
        if requirement:  # torch first, from the plan's wheel index, so the requirements keep it
            if stamp is not None and stamp.get("torch_index_url") != plan.index_url:
                steps.append(("remove the previous torch build", [python, "-m", "pip", "uninstall", "-y", "torch"]))
            steps.append((f"install torch ({plan.label})", [python, *PIP_INSTALL, requirement, *plan.pip_arguments]))
        steps.append(("install the engine's packages", [python, *PIP_INSTALL, "-r", str(requirements)]))
        steps.append(("check the environment", [python, "-m", CHECK_MODULE]))
        (env_dir / engine_environment.STAMP_NAME).unlink(missing_ok=True)  # no stamp until the check has passed
        self._steps = steps
        self._chain = CommandChain([command for _what, command in steps], cwd=engine_root())
        return True

    def _finish(self, context: bpy.types.Context) -> set[str]:
        chain, env_dir = self._chain, self._env_dir
        if chain.failed_command is not None:
            step = next((what for what, command in self._steps if command is chain.failed_command), "run pip")
            output = "\n".join(chain.tail)
            self.tell("ERROR", f"Could not {step} in {env_dir}:\n{output}")
            return {"CANCELLED"}
        try:
            report = engine_environment.parse_check_output(chain.output)
        except ValueError as exc:
            self.tell("ERROR", f"Could not check the environment in {env_dir}: {exc}")
            return {"CANCELLED"}
        engine_environment.write_stamp(env_dir, report, self._requirements, self._plan.label, self._plan.index_url)
        python = venv_python(env_dir)
        addon_preferences(context).python_path = str(python)
        summary = engine_environment.describe_report(report)
        if report.get("device") == "cpu" and self._plan.kind in ("cuda", "rocm"):
            self.tell(
                "WARNING",
                f"Engine environment ready, but its torch sees no GPU ({self._plan.label}): "
                f"the engine would run on the CPU. {summary}",
            )
        else:
            self.tell("INFO", f"Engine environment ready ({summary}); the engine's Python is now {python}")
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self._begin(context):
            return {"CANCELLED"}
        while not self._chain.finished():
            time.sleep(0.1)
        return self._finish(context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self._begin(context):
            return {"CANCELLED"}
        # A modal handler ends with its window: run in the main window, not the Preferences window the
        # button is in, so closing Preferences does not cancel the installation.
        window = lasting_window(context)
        self._timer = context.window_manager.event_timer_add(0.25, window=window)
        with context.temp_override(window=window):
            context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self.cancel(context)
            self.tell("WARNING", "Engine environment creation cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not self._chain.finished():
            context.workspace.status_text_set(f"Engine environment (Esc cancels): {self._chain.last_line[:150]}")
            return {"PASS_THROUGH"}
        self._end_modal(context)
        return self._finish(context)

    def _end_modal(self, context: bpy.types.Context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)

    def cancel(self, context: bpy.types.Context) -> None:
        self._chain.stop()
        self._end_modal(context)


CLASSES = (MULTISKETCH_OT_create_engine_env, MultiSketchPreferences)
