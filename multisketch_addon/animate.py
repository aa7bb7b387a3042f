"""Animate with SDS: export the sketch as a job, run the engine, follow it, and write the result back.

In the UI the operator runs modally on a timer, so Blender stays responsive for the minutes a job
takes; from a script or in background mode it runs to completion before returning. The scene is
touched only once the engine has finished, in one step (one undo step), so a cancelled or failed
job leaves it exactly as it was. Job folders are kept: they hold the checkpoints that let the same
job, started again with the same settings, resume where it stopped. Beside it: Cancel, Apply Job Folder
(a finished job's result into its sketch) and Clear Animation (the result out of the scene again).
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

import bpy
from bpy.props import StringProperty

from . import scene_model, writeback
from .contract import errors, files, protocol
from .engine_process import (
    STDERR_LOG,
    EngineError,
    EngineOutcome,
    EngineProcess,
    resolve_interpreter,
    stop_all,
)
from .job_export import ExportedJob, JobExportError, export_job, sketch_to_animate
from .preferences import addon_preferences, cache_folder
from .reporting import ReportingOperator, ReportLevel
from .run_settings import run_settings

JOBS_FOLDER = "jobs"
SET_ASIDE = ".set-aside"  # the suffix of an unfinished job folder that could not be resumed
POLL_INTERVAL_S = 0.1


class AnimationJob:
    """One sketch being animated: its job folder, its engine process, the progress shown to the user."""

    def __init__(self, sketch_name: str, exported: ExportedJob, process: EngineProcess, resumed: bool) -> None:
        self.sketch_name = sketch_name
        self.exported = exported
        self.process = process
        self.resumed = resumed
        self.set_aside: Path | None = None  # where an unfinished job that could not be resumed was moved

    def update(self, context: bpy.types.Context) -> EngineOutcome | None:
        """Show the engine's new progress; how it ended once it has."""
        state = context.window_manager.multisketch_job
        events = self.process.poll()
        for event in events:
            _show_event(state, event)
        outcome = self.process.outcome()
        if outcome is None and events:
            _redraw_sidebars(context)
        return outcome

    def cancel(self) -> None:
        self.process.cancel()

    def wait(self, context: bpy.types.Context) -> EngineOutcome:
        """Follow the engine until it ends (no event loop: scripts, background mode)."""
        try:
            while (outcome := self.update(context)) is None:
                time.sleep(POLL_INTERVAL_S)
        except BaseException:  # Ctrl+C in a script: stop the engine, keep the scene, pass the interruption on
            self.process.stop()
            self.conclude(context, self.process.wait())
            raise
        return outcome

    def conclude(self, context: bpy.types.Context, outcome: EngineOutcome) -> tuple[ReportLevel, str]:
        """Apply a finished result to the scene; returns the report level and message for the user."""
        global _running
        _running = None
        state = context.window_manager.multisketch_job
        state.running = False
        level: ReportLevel = "ERROR"
        message = outcome.message
        if outcome.status == "cancelled":
            level = "WARNING"
        elif outcome.status == "done":
            level, message = self._apply(context)
            if level == "INFO" and self.process.warnings:
                level, message = "WARNING", f"{message}. The engine warned: {'; '.join(self.process.warnings)}"
        elif outcome.bad_interpreter and not self.resumed:  # nothing was computed: no folder to keep
            shutil.rmtree(self.exported.job_dir, ignore_errors=True)
        elif outcome.refused and self.resumed:  # e.g. a damaged checkpoint: never chosen again, kept to look at
            self.set_aside = _set_aside(self.exported.job_dir)
            if self.set_aside is not None:  # else it could not be renamed: the error stands, and nothing restarts
                level = "WARNING"
                message = (
                    f"The unfinished job {self.exported.job_dir.name} could not be resumed ({outcome.message}); "
                    f"it is kept as {self.set_aside.name}, and a fresh job starts"
                )
        state.message = message.replace(str(self.exported.job_dir), self.exported.job_dir.name)  # fits the sidebar
        _redraw_sidebars(context)
        return level, message

    def _apply(self, context: bpy.types.Context) -> tuple[ReportLevel, str]:
        later = f"it stays in the job folder {self.exported.job_dir.name} (Apply Job Folder brings it in later)"
        sketch = scene_model.find_sketch(self.exported.sketch_id, self.exported.sketch_name)
        if sketch is None:
            return "ERROR", f"The sketch '{self.sketch_name}' is gone; {later}"
        try:
            writeback.apply_result(context, sketch, self.exported)
        except Exception as exc:  # the user gets one line; the result file stays for another try
            return "ERROR", f"Could not write the result into the scene ({exc}); {later}"
        return "INFO", f"Animated '{sketch.name}' ({self.exported.spec.frames} frames)"


_running: AnimationJob | None = None


def _no_job_running(operator: type[bpy.types.Operator], context: bpy.types.Context) -> bool:
    """Whether an operator that starts or applies a job may run now (one job at a time); if not, it says why."""
    if _running is not None:
        operator.poll_message_set("A job is running: wait for it or cancel it")
        return False
    return context.scene is not None


def running_job() -> AnimationJob | None:
    """The job in progress, if any (one at a time)."""
    return _running


def start_job(context: bpy.types.Context) -> AnimationJob:
    """Export the chosen sketch and start the engine on it; raises JobExportError or EngineError."""
    global _running
    if _running is not None:
        raise EngineError(f"A job is already running on '{_running.sketch_name}': wait for it or cancel it first")
    sketch = sketch_to_animate(context)
    jobs = cache_folder(context) / JOBS_FOLDER
    job_dir = _new_job_dir(jobs, sketch.name)
    try:  # until the engine runs, the new folder holds nothing worth keeping
        exported = export_job(sketch, job_dir, run_settings(context))
        interpreter = resolve_interpreter(addon_preferences(context).python_path)
        previous = _resumable_job(jobs, exported)
        if previous is not None:
            shutil.rmtree(job_dir)
            exported = ExportedJob.load(previous)
        process = EngineProcess(interpreter, exported.job_dir, resume=previous is not None)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    state = context.window_manager.multisketch_job
    state.running, state.progress, state.step, state.steps = True, 0.0, 0, exported.spec.steps
    state.stage, state.eta, state.message = "resuming" if previous else "starting", "", ""
    state.warning, state.preview = "", ""
    _running = AnimationJob(sketch.name, exported, process, resumed=previous is not None)
    return _running


def _new_job_dir(jobs: Path, sketch_name: str) -> Path:
    stem = f"{bpy.path.clean_name(sketch_name)}-{datetime.now():%Y%m%d-%H%M%S}"
    for suffix in range(1000):
        candidate = jobs / (stem if suffix == 0 else f"{stem}-{suffix}")
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            candidate.mkdir(mode=files.PRIVATE_FOLDER)
        except FileExistsError:
            continue
        except OSError as exc:
            raise JobExportError(f"Cannot create a job folder in {jobs}: {exc.strerror or exc}") from None
        return candidate
    raise JobExportError(f"Cannot create a job folder in {jobs}: too many jobs started this second")


def _set_aside(job_dir: Path) -> Path | None:
    """Rename an unfinished job that cannot be resumed so that no later Animate chooses it; its new path, or None
    when it cannot be renamed (a fresh job would then resume it again, and fail again)."""
    for number in range(1000):
        target = job_dir.with_name(f"{job_dir.name}{f'-{number}' if number else ''}{SET_ASIDE}")
        if target.exists():  # set aside before (Linux will not rename onto a folder that is not empty)
            continue
        try:
            job_dir.rename(target)
        except OSError:
            return None
        return target
    return None


def _resumable_job(jobs: Path, exported: ExportedJob) -> Path | None:
    """The newest earlier, unfinished job with the very same inputs, sketch and strokes.

    Sketch and objects are matched by their ids, so a job renamed since (its folder carries the old
    name) still resumes. A job stopped before its first checkpoint without an error (killed, cancelled,
    Blender quit) is taken up again too, from the beginning in its own folder, instead of leaving that
    folder behind beside a new one each time.
    """
    fresh = exported.identity()
    candidates = [p for p in jobs.iterdir() if p.is_dir() and p != exported.job_dir and not p.name.endswith(SET_ASIDE)]
    for candidate in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        if (candidate / protocol.RESULT).exists():
            continue
        if not any((candidate / protocol.CHECKPOINTS_DIR).glob("*.pt")) and not _interrupted(candidate):
            continue  # refused or failed before any work: running it again would end the same way
        try:
            if ExportedJob.load(candidate).identity() == fresh:
                return candidate
        except (errors.UserError, OSError, ValueError, KeyError):
            continue  # not a job folder of this version: never resumed
    return None


def _interrupted(job_dir: Path) -> bool:
    """Whether the engine ran in `job_dir` and stopped without saying why (killed, or Blender quit): neither
    its log nor its stderr holds an error. An engine that refused or failed says so, and would again."""
    try:
        stderr = (job_dir / STDERR_LOG).read_text(encoding="utf-8", errors="replace")  # absent: it never ran
        log_file = job_dir / protocol.LOG  # absent when killed before the engine claimed the folder
        log = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
    except OSError:
        return False
    said_why = protocol.encode_event("error")[:-1] in log or any(
        line.startswith(("error:", "Traceback")) for line in stderr.splitlines()
    )
    return not said_why


def _show_event(state: bpy.types.PropertyGroup, event: dict) -> None:
    kind = event["event"]
    if kind == "stage":
        state.stage = str(event.get("stage", ""))
        state.step = 0
    elif kind == "step":
        state.stage = str(event.get("stage", state.stage))
        state.step = int(event.get("step", 0))
        state.steps = int(event.get("steps", state.steps))
        state.progress = min(max(float(event.get("progress", 0.0)), 0.0), 1.0)
        state.eta = protocol.format_duration(event.get("eta_s"))
    elif kind == "warning":
        state.warning = str(event.get("message", ""))
    elif kind == "preview":
        state.preview = str(event.get("path", ""))
    elif kind == "download":  # the model, before the job starts (4 GB for ModelScope)
        done, total, rate = int(event.get("bytes", 0)), max(int(event.get("total", 0)), 1), float(event.get("rate", 0))
        state.stage = f"downloading the model {done / 1e9:.1f}/{total / 1e9:.1f} GB"
        state.step, state.progress = 0, min(max(done / total, 0.0), 1.0)
        state.eta = protocol.format_duration((total - done) / rate) if rate > 0 else ""


def _redraw_sidebars(context: bpy.types.Context) -> None:
    """Redraw the 3D viewports' sidebars, where the progress shows, and not the viewports themselves:
    redrawing every viewport ten times a second took most of a CPU core from the engine."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()


class MULTISKETCH_OT_animate(ReportingOperator):
    """Animate the sketch's objects with the text-to-video prior (score distillation), then key the result"""

    bl_idname = "multisketch.animate"
    bl_label = "Animate with SDS"
    bl_options = {"REGISTER", "UNDO"}
    _timer = None  # the modal poll's timer; None when the operator runs to completion (execute)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _no_job_running(cls, context)

    def _start(self, context: bpy.types.Context) -> AnimationJob | None:
        try:
            return start_job(context)
        except errors.UserError as exc:  # JobExportError, EngineError and the engine contract's own
            self.tell("ERROR", exc)
            return None

    def _finish(self, context: bpy.types.Context, job: AnimationJob, outcome: EngineOutcome) -> set[str]:
        level, message = job.conclude(context, outcome)
        self.tell(level, message)
        if job.set_aside is not None:  # the unfinished job was set aside: start afresh at once
            return self.execute(context) if self._timer is None else self._follow(context)
        return {"FINISHED"} if outcome.status == "done" and level != "ERROR" else {"CANCELLED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        return self._finish(context, job, job.wait(context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        started = self._follow(context)
        if started == {"RUNNING_MODAL"}:
            context.window_manager.modal_handler_add(self)
        return started

    def _follow(self, context: bpy.types.Context) -> set[str]:
        """Start a job and poll it from the running modal handler."""
        self._timer = None
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        if self._job.resumed:
            self.tell("INFO", f"Resuming the unfinished job in {self._job.exported.job_dir}")
        self._timer = context.window_manager.event_timer_add(POLL_INTERVAL_S, window=context.window)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        outcome = self._job.update(context)
        if outcome is None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, self._job, outcome)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (window closed, file loaded): stop the engine, keep the scene."""
        context.window_manager.event_timer_remove(self._timer)
        self._job.process.stop()
        self._job.conclude(context, self._job.process.wait())


class MULTISKETCH_OT_cancel(ReportingOperator):
    """Stop the running job; its folder keeps what was computed, and the scene stays as it was"""

    bl_idname = "multisketch.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _running is not None

    def act(self, context: bpy.types.Context) -> str:
        _running.cancel()
        return "Stopping the engine..."


def apply_job_folder(context: bpy.types.Context, job_dir: Path) -> bpy.types.Collection:
    """Write a finished job's result into the sketch it was made from; UserError saying why not."""
    exported = ExportedJob.load(job_dir)
    sketch = scene_model.find_sketch(exported.sketch_id, exported.sketch_name)
    if sketch is None:
        raise errors.UserError(
            f"The sketch this job was made from ('{exported.sketch_name}') is not in this file: open the file "
            "that holds it"
        )
    writeback.apply_result(context, sketch, exported)
    return sketch


class MULTISKETCH_OT_apply_job(ReportingOperator):
    """Write a finished job folder's result into its sketch (e.g. a job that ended while the sketch was away)"""

    bl_idname = "multisketch.apply_job"
    bl_label = "Apply Job Folder"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Job Folder", description="A job folder with a result.json", subtype="DIR_PATH")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _no_job_running(cls, context)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        if not self.directory:
            self.directory = str(cache_folder(context) / JOBS_FOLDER) + "/"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def act(self, context: bpy.types.Context) -> str:
        sketch = apply_job_folder(context, Path(bpy.path.abspath(self.directory)))
        context.window_manager.multisketch_job.message = f"Applied {Path(self.directory).name} to '{sketch.name}'"
        return f"Applied the job's result to '{sketch.name}'"


@bpy.app.handlers.persistent
def _stop_before_load(*_args: object) -> None:
    """Opening another file must not leave an engine running for a scene that is gone."""
    global _running
    stop_all()
    _running = None
    state = getattr(bpy.context.window_manager, "multisketch_job", None)
    if state is not None:
        state.running = False


class MULTISKETCH_OT_clear_animation(ReportingOperator):
    """Remove the sketch's animation and show the sketch as it was drawn"""

    bl_idname = "multisketch.clear_animation"
    bl_label = "Clear Animation"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        sketch = scene_model.chosen_sketch(context)[0]
        return sketch is not None and writeback.has_result(sketch)

    def act(self, context: bpy.types.Context) -> str:
        sketch = scene_model.chosen_sketch(context)[0]
        writeback.clear_result(sketch)
        return f"Cleared the animation of '{sketch.name}'"


CLASSES = (MULTISKETCH_OT_animate, MULTISKETCH_OT_cancel, MULTISKETCH_OT_apply_job, MULTISKETCH_OT_clear_animation)


@bpy.app.handlers.persistent
def _forget_status(*_args: object) -> None:
    """After Undo or Redo the last job's status line ("Animated ...") may no longer be true."""
    state = getattr(bpy.context.window_manager, "multisketch_job", None)
    if state is not None and not state.running:
        state.message = ""


_HANDLERS = (
    (bpy.app.handlers.load_pre, _stop_before_load),
    (bpy.app.handlers.undo_post, _forget_status),
    (bpy.app.handlers.redo_post, _forget_status),
)


def register() -> None:
    for handlers, handler in _HANDLERS:
        handlers.append(handler)


def unregister() -> None:
    for handlers, handler in _HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    _stop_before_load()
