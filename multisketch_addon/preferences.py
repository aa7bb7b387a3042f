"""Add-on preferences (where the engine lives, which model, where jobs go) and the engine set-up operator.

The engine needs torch and diffusers, which must never be installed into Blender's own Python: it
runs in a separate interpreter. "Create Engine Environment" makes one (a venv in the cache folder
with the engine's requirements) in a background process, so Blender stays usable during the
download, and points the preferences at it when it is done.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import cast

import bpy
from bpy.props import EnumProperty, StringProperty

from .contract import engine_root, protocol

# Where the engine may compute: the engine's `--device` values.
DEVICE_ITEMS = (
    ("auto", "Auto", "An NVIDIA or AMD GPU when there is one, else an Apple GPU (MPS), else the CPU"),
    ("cpu", "CPU", "The CPU (slow with the real model)"),
    ("cuda", "CUDA GPU", "An NVIDIA GPU (or an AMD GPU with torch's ROCm build)"),
    ("mps", "Apple GPU (MPS)", "The GPU of a Mac with Apple Silicon"),
)

ENV_FOLDER = "engine-env"
PIP_TAIL_LINES = 12
# Why the environment cannot be made while Blender may not go online: one report line was cut off.
OFFLINE_LINES = (
    "Blender may not go online, and pip must download the engine's packages:",
    "allow it in Preferences > System > Network (Allow Online Access),",
    "or make the environment by hand (README: The engine's Python environment).",
)


class MultiSketchPreferences(bpy.types.AddonPreferences):
    """Settings shared by every file: the engine's interpreter, model, device and cache folder."""

    bl_idname = __package__

    python_path: StringProperty(
        name="Engine Python",
        description="Python interpreter with torch and diffusers that runs the engine",
        subtype="FILE_PATH",
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
        description="Where job folders and the engine environment go (empty: the add-on's user folder)",
        subtype="DIR_PATH",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        layout.operator(MULTISKETCH_OT_create_engine_env.bl_idname, icon="IMPORT")
        if not bpy.app.online_access:  # why the button is greyed out, on lines short enough to read
            column = layout.column(align=True)
            for number, line in enumerate(OFFLINE_LINES):
                column.label(text=line, icon="ERROR" if number == 0 else "BLANK1")
        layout.prop(self, "model")
        layout.label(text="ModelScope's weights are licensed CC-BY-NC-4.0 (non-commercial use).", icon="INFO")
        layout.prop(self, "device")
        layout.prop(self, "cache_dir")
        layout.label(text=f"Jobs are kept in {cache_folder(context) / 'jobs'}")


def addon_preferences(context: bpy.types.Context) -> MultiSketchPreferences:
    return cast(MultiSketchPreferences, context.preferences.addons[__package__].preferences)


def cache_folder(context: bpy.types.Context) -> Path:
    """The folder for job folders and the engine environment (created on demand by its users)."""
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


def venv_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


class CommandChain:
    """Runs commands one after another in the background, keeping the tail of their output."""

    def __init__(self, commands: list[list[str]]) -> None:
        self._pending = list(commands)
        self.tail: collections.deque[str] = collections.deque(maxlen=PIP_TAIL_LINES)
        self.failed_command: list[str] | None = None
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._start_next()

    def _start_next(self) -> None:
        command = self._pending.pop(0)
        try:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            self.tail.append(f"cannot run {command[0]}: {exc.strerror or exc}")
            self.failed_command, self._process = command, None
            return
        self._command = command
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            if line.strip():
                self.tail.append(line.rstrip())

    @property
    def last_line(self) -> str:
        return self.tail[-1] if self.tail else ""

    def finished(self) -> bool:
        """Advance the chain; True once every command succeeded or one failed (see `failed_command`)."""
        if self._process is None:
            return True
        if self._process.poll() is None or (self._reader and self._reader.is_alive()):
            return False
        if self._process.returncode != 0:
            self.tail.append(f"exit code {self._process.returncode}")
            self.failed_command, self._process = self._command, None
            return True
        if not self._pending:
            self._process = None
            return True
        self._start_next()
        return False

    def stop(self) -> None:
        self._pending.clear()
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class MULTISKETCH_OT_create_engine_env(bpy.types.Operator):
    """Create a Python environment for the engine (venv + torch, diffusers, ...) in the cache folder"""

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
        requirements = Path(self.requirements) if self.requirements else engine_root() / "requirements" / "engine.txt"
        if not requirements.is_file():
            self.report({"ERROR"}, f"The engine's requirements file {requirements} is missing; reinstall the add-on")
            return False
        self._env_dir = cache_folder(context) / ENV_FOLDER
        try:
            self._env_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.report({"ERROR"}, f"Cannot create the cache folder {self._env_dir.parent}: {exc.strerror or exc}")
            return False
        python = venv_python(self._env_dir)
        install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
        commands = [install + ["-r", str(requirements)]]
        if not python.is_file():  # an existing environment is updated in place
            commands.insert(0, [self.base_python or sys.executable, "-m", "venv", str(self._env_dir)])
        self._chain = CommandChain(commands)
        return True

    def _finish(self, context: bpy.types.Context) -> set[str]:
        chain = self._chain
        if chain.failed_command is not None:
            step = "install the engine's packages" if "pip" in chain.failed_command else "create the environment"
            output = "\n".join(chain.tail)
            self.report({"ERROR"}, f"Could not {step} in {self._env_dir}:\n{output}")
            return {"CANCELLED"}
        python = venv_python(self._env_dir)
        addon_preferences(context).python_path = str(python)
        self.report({"INFO"}, f"Engine environment ready; the engine's Python is now {python}")
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
        self._timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self.cancel(context)
            self.report({"WARNING"}, "Engine environment creation cancelled")
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
