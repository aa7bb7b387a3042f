"""What "Animate with SDS" does when things go wrong: a clear message, the scene untouched, no engine left.

Runs against the real bpy module and the real engine (this test venv's Python, tiny prior, tiny
renders), started and stopped the way the add-on does it in Blender.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import blf
import bpy
import numpy as np
import pytest

from tests.addon.conftest import addon_module, addon_preferences, reset_scene
from tests.addon.test_end_to_end import _draw_sidebar
from tests.conftest import REPO, needs_shared_sketches

animate = addon_module("animate")
scene_model = addon_module("scene_model")
text_fit = addon_module("text_fit")
ui = addon_module("ui")


@pytest.fixture
def sketch(sketch_for_tiny_job: bpy.types.Collection) -> bpy.types.Collection:
    return sketch_for_tiny_job


def _objects(sketch: bpy.types.Collection) -> dict[str, bpy.types.Collection]:
    return {collection.name: collection for collection in scene_model.object_collections(sketch)}


def _scene_state() -> dict:
    """Everything a job could have changed in the file: objects, collections, drawings, animation."""
    state: dict = {"collections": sorted((c.name, tuple(sorted(c.children.keys()))) for c in bpy.data.collections)}
    for ob in bpy.data.objects:
        entry = [sorted(c.name for c in ob.users_collection), [tuple(row) for row in ob.matrix_world]]
        entry.append(ob.animation_data is not None and ob.animation_data.action is not None)
        entry.append((ob.hide_viewport, ob.hide_render, ob.parent.name if ob.parent else None))
        if ob.type == "GREASEPENCIL":
            for layer in ob.data.layers:
                for frame in layer.frames:
                    position = frame.drawing.attributes["position"]
                    values = np.empty(len(position.data) * 3, np.float32)
                    position.data.foreach_get("vector", values)
                    entry.append((layer.name, frame.frame_number, values.tobytes()))
        state[ob.name] = entry
    return state


def _jobs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "cache" / "jobs"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _animate_error() -> str:
    with pytest.raises(RuntimeError) as error:
        bpy.ops.multisketch.animate()
    return str(error.value)


HAS_PROC = Path("/proc/self/stat").is_file()


def _live_in_group(pgid: int) -> int:
    """How many processes of the group are alive (from /proc; a killed orphan may stay a zombie until init
    reaps it, and that is not alive)."""
    live = 0
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, group = stat_file.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue  # ended while being read
        live += int(group) == pgid and state != "Z"
    return live


def _group_is_gone(pgid: int, within: float = 5.0) -> bool:
    """Whether every process of the group has ended within `within` seconds (a SIGKILL is delivered at once but a
    busy machine can take a moment to end the process)."""
    deadline = time.monotonic() + within
    while True:
        if HAS_PROC:
            gone = _live_in_group(pgid) == 0
        else:
            try:
                os.killpg(pgid, 0)
                gone = False
            except ProcessLookupError:
                gone = True
        if gone or time.monotonic() > deadline:
            return gone
        time.sleep(0.05)


def test_missing_interpreter_says_where_to_set_it(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    before = _scene_state()
    addon_preferences().python_path = ""
    message = _animate_error()
    assert "No Python interpreter is set" in message and "Create Engine Environment" in message
    addon_preferences().python_path = str(tmp_path / "no-such-python")
    message = _animate_error()
    assert "does not exist" in message and "no-such-python" in message and "Preferences" in message
    assert _scene_state() == before and _jobs(tmp_path) == []


def test_broken_interpreters_are_named_with_the_reason(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    before = _scene_state()
    text_file = tmp_path / "python.txt"
    text_file.write_text("this is not a program\n")
    text_file.chmod(text_file.stat().st_mode | stat.S_IXUSR)
    addon_preferences().python_path = str(text_file)
    message = _animate_error()
    assert "python.txt cannot run" in message and "Create Engine Environment" in message

    without_torch = tmp_path / "python-without-torch"
    without_torch.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    without_torch.chmod(0o755)
    addon_preferences().python_path = str(without_torch)
    message = _animate_error()
    assert "cannot import torch and diffusers" in message and "No module named 'torch'" in message
    assert _scene_state() == before and _jobs(tmp_path) == []


def _script(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_animate_returns_at_once_while_a_slow_interpreter_starts(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    # An interpreter that takes seconds to find out it has no torch, as a cold import does.
    addon_preferences().python_path = str(
        _script(tmp_path, "slow-python", "sleep 5\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1")
    )
    before = _scene_state()
    started = time.monotonic()
    job = animate.start_job(bpy.context)
    assert time.monotonic() - started < 2.0  # Blender's UI waits for nothing (the interpreter takes 5 s)
    level, message = job.conclude(bpy.context, job.wait(bpy.context))
    assert level == "ERROR" and "cannot import torch and diffusers" in message and "No module named 'torch'" in message
    assert _scene_state() == before and _jobs(tmp_path) == []  # nothing computed, no job folder kept


@pytest.mark.skipif(not HAS_PROC, reason="counts the engine's processes in /proc")
def test_what_a_killed_engine_started_does_not_outlive_it(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    # As when the engine is killed while a probe it started (lscpu, ffmpeg) runs with its output elsewhere.
    probe = "sleep 600 </dev/null >/dev/null 2>&1 &"
    addon_preferences().python_path = str(_script(tmp_path, "probing-python", f"{probe}\necho started\nexec sleep 600"))
    job = animate.start_job(bpy.context)
    deadline = time.monotonic() + 10
    while _live_in_group(job.process.pid) < 2:
        assert time.monotonic() < deadline, "the stand-in engine did not start its probe"
        time.sleep(0.05)
    os.kill(job.process.pid, signal.SIGKILL)  # the engine alone, as the out-of-memory killer does
    level, _message = job.conclude(bpy.context, job.process.wait())
    assert level == "ERROR" and _group_is_gone(job.process.pid)


def test_progress_redraws_the_sidebar_only_when_news_arrives(
    sketch: bpy.types.Collection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redraws = []
    monkeypatch.setattr(animate, "_redraw_sidebars", lambda context: redraws.append(time.monotonic()))
    step = '{"event": "step", "stage": "joint", "step": 1, "steps": 2, "progress": 0.5}'
    addon_preferences().python_path = str(_script(tmp_path, "quiet-python", f"sleep 1\necho '{step}'\nexec sleep 600"))
    job = animate.start_job(bpy.context)
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            job.update(bpy.context)
            time.sleep(animate.POLL_INTERVAL_S)
        assert len(redraws) == 1  # 40 polls, one event: one redraw
        assert bpy.context.window_manager.multisketch_job.step == 1
    finally:
        job.process.stop()
        job.conclude(bpy.context, job.process.wait())


def test_empty_object_collection_is_named(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    empty = bpy.data.collections.new("kite")
    empty["multisketch_object"] = 1
    sketch.children.link(empty)
    before = _scene_state()
    message = _animate_error()
    assert "'kite' has no strokes" in message
    assert _scene_state() == before and _jobs(tmp_path) == []


def test_strokes_in_two_objects_are_named(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    objects = _objects(sketch)
    ball, hoop = scene_model.drawing_object(objects["basketball"]), scene_model.drawing_object(objects["hoop"])
    objects["hoop"].objects.link(ball)  # the ball's strokes now also belong to the hoop
    objects["hoop"].objects.unlink(hoop)
    before = _scene_state()
    message = _animate_error()
    assert f"strokes of '{ball.name}' are in two objects" in message and "'hoop'" in message
    assert _scene_state() == before and _jobs(tmp_path) == []


def test_linked_duplicates_sharing_strokes_are_named(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    hoop = scene_model.drawing_object(_objects(sketch)["hoop"])
    hoop.data = scene_model.drawing_object(_objects(sketch)["basketball"]).data  # as Alt+D would share it
    before = _scene_state()
    message = _animate_error()
    assert (
        f"'{hoop.name}' of 'hoop'" in message and "share the same strokes" in message and "Make Single User" in message
    )
    assert _scene_state() == before and _jobs(tmp_path) == []


@pytest.mark.parametrize("case", ["no sketch", "no objects", "all static"])
def test_nothing_to_animate_says_what_is_missing(case: str, sketch: bpy.types.Collection, tmp_path: Path) -> None:
    if case == "no sketch":
        del sketch["multisketch_sketch"]
        expected = "the scene has no sketch"
    elif case == "no objects":
        for child in list(sketch.children):
            del child["multisketch_object"]
        expected = "has no objects yet"
    else:
        for child in sketch.children:
            child.multisketch.static = True
        expected = f"every object of '{sketch.name}' is static"
    before = _scene_state()
    message = _animate_error()
    assert "Nothing to animate" in message and expected in message
    assert _scene_state() == before and _jobs(tmp_path) == []


def test_empty_prompt_asks_for_one(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    bpy.context.scene.multisketch.prompt = "   "
    before = _scene_state()
    assert "prompt is empty" in _animate_error()
    assert _scene_state() == before and _jobs(tmp_path) == []


def _wait_for_step(job, timeout: float = 120.0) -> None:
    state = bpy.context.window_manager.multisketch_job
    deadline = time.monotonic() + timeout
    while state.step == 0:
        assert job.update(bpy.context) is None, "the engine ended before its first step"
        assert time.monotonic() < deadline, "the engine made no step in time"
        time.sleep(0.05)


def test_cancel_stops_the_engine_within_2s_and_keeps_scene_and_job(sketch: bpy.types.Collection, tmp_path) -> None:
    bpy.context.scene.multisketch.steps = 10_000  # far more than can finish before the cancel
    before = _scene_state()
    job = animate.start_job(bpy.context)
    _wait_for_step(job)
    cancelled_at = time.monotonic()
    bpy.ops.multisketch.cancel()
    while (outcome := job.update(bpy.context)) is None:
        assert time.monotonic() - cancelled_at < 2.0, "the engine still runs 2 s after Cancel"
        time.sleep(0.02)
    assert time.monotonic() - cancelled_at < 2.0 and _group_is_gone(job.process.pid)
    level, message = job.conclude(bpy.context, outcome)
    assert (outcome.status, level) == ("cancelled", "WARNING") and "Cancelled" in message
    shown = bpy.context.window_manager.multisketch_job.message  # the sidebar's line: the folder's name only
    assert str(job.exported.job_dir) in message and str(job.exported.job_dir) not in shown
    assert job.exported.job_dir.name in shown
    # ...drawn on as many lines as the sidebar needs, none cut off, the folder's name whole on one
    room = ui.message_room(bpy.context)  # 280 px less tabs, margins and an icon: 190 px
    assert room == ui.SIDEBAR_WIDTH - ui.MESSAGE_MARGIN_UNITS * text_fit.UNIT
    lines = [text for kind, text, *_ in _draw_sidebar(bpy.context) if kind == "label" and text and text in shown]
    assert len(lines) >= 2 and " ".join(lines) == shown
    assert all(blf.dimensions(0, line)[0] <= room for line in lines)
    assert any(job.exported.job_dir.name in line for line in lines)
    assert _scene_state() == before and animate.running_job() is None
    assert not bpy.context.window_manager.multisketch_job.running
    assert _jobs(tmp_path) == [job.exported.job_dir] and (job.exported.job_dir / "job.json").is_file()


def _stages_started(job_dir: Path) -> int:
    """How many stages the engine's log says have begun."""
    log = job_dir / "log.txt"
    lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    return sum('"event":"stage"' in line for line in lines)


def test_engine_killed_mid_run_gives_clear_error_and_loses_nothing(sketch: bpy.types.Collection, tmp_path) -> None:
    before = _scene_state()
    killed: list[int] = []

    def kill_in_second_stage() -> None:  # plays the part of the OOM killer or a crash
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = animate.running_job()
            if job is not None and _stages_started(job.exported.job_dir) >= 2:
                killed.append(job.process.pid)
                os.kill(job.process.pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_in_second_stage)
    killer.start()
    message = _animate_error()  # the operator runs to completion: there is no window
    killer.join()
    assert killed, "the engine never reached its second stage"
    assert "stopped by signal SIGKILL" in message and "engine-stderr.txt" in message
    assert _group_is_gone(killed[0])
    assert _scene_state() == before and animate.running_job() is None
    assert not bpy.context.window_manager.multisketch_job.running

    (kept,) = _jobs(tmp_path)
    sketch.name = "renamed sketch"  # the job folder still carries the old name
    again = animate.start_job(bpy.context)  # the same settings continue after the finished first stage
    try:
        assert again.resumed and again.exported.job_dir == kept
        (progress,) = [entry for entry in _draw_sidebar(bpy.context) if entry[0] == "progress"]
        assert progress[1] == "resuming"  # not "step 0/N" until the engine's first step says where it is
    finally:
        again.cancel()
        again.conclude(bpy.context, again.process.wait())


def _endless_engine(tmp_path: Path) -> Path:
    """An interpreter that runs forever: an engine that never ends."""
    script = tmp_path / "endless-python"
    script.write_text("#!/bin/sh\nexec sleep 600\n")
    script.chmod(0o755)
    return script


def test_opening_another_file_stops_the_engine(sketch: bpy.types.Collection, tmp_path: Path) -> None:
    addon_preferences().python_path = str(_endless_engine(tmp_path))
    job = animate.start_job(bpy.context)
    assert not _group_is_gone(job.process.pid, within=0)
    reset_scene()  # File > New runs the same load handlers as File > Open
    assert _group_is_gone(job.process.pid) and animate.running_job() is None
    assert not bpy.context.window_manager.multisketch_job.running


QUIT_WHILE_RUNNING = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.addon.conftest import ADDON_PACKAGE, addon_module, import_shared_sketch, reset_scene
import bpy
reset_scene()
import_shared_sketch()
prefs = bpy.context.preferences.addons[ADDON_PACKAGE].preferences
prefs.python_path, prefs.cache_dir = sys.argv[2], sys.argv[3]
bpy.context.scene.multisketch.prompt = "a player dunks a ball"
print("ENGINE", addon_module("animate").start_job(bpy.context).process.pid, flush=True)
"""  # ...and the interpreter ends with the job running, as when Blender quits


QUIT_ONCE_LISTENING = (
    QUIT_WHILE_RUNNING
    + """
import os, time
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[4]) and time.monotonic() < deadline:
    time.sleep(0.05)
"""
)  # ...once the engine has said it is ready for the stop signal


def _blender_quits_during_a_job(tmp_path: Path, script: str, engine: Path, *more: Path) -> int:
    """Run `script` in a Blender of its own (a fresh user folder) with `engine` as the engine's Python; the pid
    of the engine it started."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(REPO), str(engine), str(tmp_path / "cache"), *map(str, more)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("ENGINE ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-2000:]
    return int(lines[-1].split()[1])


@needs_shared_sketches
def test_quitting_blender_stops_the_engine(tmp_path: Path) -> None:
    engine_pid = _blender_quits_during_a_job(tmp_path, QUIT_WHILE_RUNNING, _endless_engine(tmp_path))
    assert _group_is_gone(engine_pid)


@needs_shared_sketches
def test_quitting_blender_leaves_the_engine_time_for_its_stop_checkpoint(tmp_path: Path) -> None:
    # An engine that needs 3 s after the stop signal to finish its step and write its checkpoint.
    checkpoint, listening = tmp_path / "stop-checkpoint", tmp_path / "trap-set"
    engine = _script(
        tmp_path,
        "careful-python",
        f"trap 'sleep 3; touch {checkpoint}; exit 3' TERM\ntouch {listening}\nwhile :; do sleep 0.1; done",
    )
    started = time.monotonic()
    # Blender quits once the engine listens for TERM (a shell not yet there just dies)
    engine_pid = _blender_quits_during_a_job(tmp_path, QUIT_ONCE_LISTENING, engine, listening)
    assert checkpoint.exists(), "the engine was killed before it wrote its stop checkpoint"
    assert _group_is_gone(engine_pid) and time.monotonic() - started < 60


CRASH_WHILE_RUNNING = (
    QUIT_WHILE_RUNNING
    + """
import os, signal, time
time.sleep(1.5)
print("EOF WHILE RUNNING", os.path.exists(sys.argv[4]), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
)  # ...and Blender crashes


@needs_shared_sketches
def test_a_crashing_blender_closes_the_engines_input(tmp_path: Path) -> None:
    # An engine that reads its standard input and stops at its end, as the engine can to not run on orphaned.
    noticed = tmp_path / "parent-gone"
    engine = _script(tmp_path, "watching-python", f"cat >/dev/null\ntouch {noticed}")
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_WHILE_RUNNING, str(REPO), str(engine), str(tmp_path / "cache"), str(noticed)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")},
    )
    assert crashed.returncode == -signal.SIGKILL and "EOF WHILE RUNNING False" in crashed.stdout, crashed.stderr[-2000:]
    deadline = time.monotonic() + 10
    while not noticed.exists():
        assert time.monotonic() < deadline, "the engine never saw that Blender is gone"
        time.sleep(0.1)


def test_an_unfinished_job_that_cannot_be_resumed_is_set_aside_and_a_fresh_one_runs(
    sketch: bpy.types.Collection, tmp_path: Path
) -> None:
    bpy.ops.multisketch.animate()
    (stuck,) = _jobs(tmp_path)
    (stuck / "result.json").unlink()  # unfinished, as after a crash, and its checkpoints damaged
    damaged = {}
    for checkpoint in (stuck / "checkpoints").glob("*.pt"):
        checkpoint.write_bytes(b"half a checkpoint")
        damaged[checkpoint.name] = b"half a checkpoint"
    assert damaged

    bpy.ops.multisketch.animate()  # would resume it, and before this fix failed on every try

    jobs = _jobs(tmp_path)
    (kept,) = [job for job in jobs if job.name.endswith(animate.SET_ASIDE)]
    assert kept.name.startswith(stuck.name) and not stuck.exists()
    assert {p.name: p.read_bytes() for p in (kept / "checkpoints").glob("*.pt")} == damaged  # kept to look at
    (fresh,) = [job for job in jobs if job != kept]
    assert (fresh / "result.json").is_file()
    assert addon_module("writeback").has_result(sketch)


def test_a_job_folder_set_aside_twice_keeps_both_and_an_unrenamable_one_is_not_retried(tmp_path: Path) -> None:
    first = tmp_path / "sketch-1"
    (first / "checkpoints").mkdir(parents=True)
    (first / "checkpoints" / "stage-0.pt").write_bytes(b"damaged")
    kept = animate._set_aside(first)
    again = tmp_path / "sketch-1"
    (again / "checkpoints").mkdir(parents=True)
    (again / "checkpoints" / "stage-0.pt").write_bytes(b"damaged too")
    assert animate._set_aside(again) == tmp_path / f"sketch-1-1{animate.SET_ASIDE}"
    assert kept == tmp_path / f"sketch-1{animate.SET_ASIDE}" and (kept / "checkpoints" / "stage-0.pt").is_file()
    assert animate._set_aside(tmp_path / "gone") is None  # could not be renamed: no fresh job would get past it


def _log_events(job_dir: Path, name: str) -> int:
    log = job_dir / "log.txt"
    text = log.read_text(encoding="utf-8") if log.is_file() else ""
    return text.count(f'{{"event":"{name}"')


def _kill_after(job: animate.AnimationJob, event: str | None, delay: float) -> bool:
    """SIGKILL the engine `delay` s after it logs one more `event` (None: at once); False if it ended first."""
    folder, deadline = job.exported.job_dir, time.monotonic() + 120
    seen = _log_events(folder, event) if event else 0
    while event and _log_events(folder, event) <= seen:
        if job.process.outcome() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    time.sleep(delay)
    if job.process.outcome() is not None:
        return False
    os.kill(job.process.pid, signal.SIGKILL)
    return True


KILLS = 20


def _evaluated_scene_state() -> dict:
    """The scene state at its first frame, evaluated: an animated object's matrix is the one of that frame."""
    bpy.context.scene.frame_set(bpy.context.scene.frame_start)
    return _scene_state()


@pytest.mark.skipif(
    bpy.app.version[:2] != (5, 0), reason="engine process and job folder logic, not Blender's: run on one Blender"
)
def test_twenty_random_kills_leave_the_scene_alone_and_resume_to_the_same_result(sketch, tmp_path: Path) -> None:
    """Kills while the engine starts, in the middle of a stage and just after a checkpoint, as a crash or the
    out-of-memory killer would; after each the scene is as it was, no engine is left, one job folder holds
    the job, and the job then ends with the result of a run that was never interrupted."""
    # Stages longer than the longest delay below, so that a kill "in a stage" lands in it on a fast machine too
    # (with 4 steps an idle machine finished stages before their kill, and the job before 16 kills had landed).
    bpy.context.scene.multisketch.steps = 12
    before = _scene_state()
    prefs = addon_preferences()
    prefs.cache_dir = str(tmp_path / "uninterrupted")
    bpy.ops.multisketch.animate()
    (uninterrupted,) = sorted((tmp_path / "uninterrupted" / "jobs").iterdir())
    animated = _evaluated_scene_state()
    bpy.ops.multisketch.clear_animation()
    assert _scene_state() == before

    prefs.cache_dir = str(tmp_path / "cache")
    rng = np.random.default_rng(7)
    kills = 0
    for attempt in range(KILLS):
        job = animate.start_job(bpy.context)
        folder = job.exported.job_dir
        if attempt % 5 == 0:  # while the engine starts (imports, model)
            killed = _kill_after(job, None, rng.uniform(0.0, 1.5))
        elif attempt % 5 == 4:  # just after a checkpoint
            killed = _kill_after(job, "checkpoint", rng.uniform(0.0, 0.05))
        else:  # in a stage
            killed = _kill_after(job, "stage", rng.uniform(0.0, 0.3))
        outcome = job.process.wait()
        job.conclude(bpy.context, outcome)
        if not killed:
            break  # the job ended before this kill: it has been killed often enough
        kills += 1
        assert outcome.status == "failed" and _group_is_gone(job.process.pid)
        assert _scene_state() == before and animate.running_job() is None
        assert _jobs(tmp_path) == [folder], "each start took up the same job folder again"

    assert kills >= KILLS - 4, f"only {kills} kills landed before the job ended"
    if animate.running_job() is None and not (_jobs(tmp_path)[0] / "result.json").exists():
        bpy.ops.multisketch.animate()
    (resumed,) = _jobs(tmp_path)
    assert (resumed / "result.json").read_bytes() == (uninterrupted / "result.json").read_bytes()
    assert _evaluated_scene_state() == animated


def test_the_engine_is_started_without_a_shell_whatever_the_cache_folder_is_called(
    sketch: bpy.types.Collection, tmp_path: Path
) -> None:
    """The job folder's path reaches the engine as one argument: a Cache Folder named like a command runs nothing."""
    hostile = tmp_path / "jobs; touch ran-1 $(touch ran-2) `touch ran-3` 'quoted"
    argv = tmp_path / "argv"
    addon_preferences().cache_dir = str(hostile)
    addon_preferences().python_path = str(_script(tmp_path, "argv-python", f'printf "%s\\n" "$@" > {argv}\nexit 1'))
    job = animate.start_job(bpy.context)
    job.conclude(bpy.context, job.wait(bpy.context))
    arguments = argv.read_text().splitlines()
    assert arguments[:3] == ["-m", "server", "run"] and Path(arguments[3]).parent == hostile / animate.JOBS_FOLDER
    assert not [p for folder in (tmp_path, hostile, REPO, Path.cwd()) for p in folder.glob("ran-*")]
