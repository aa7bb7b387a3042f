"""The engine as a child process: start it, stream its progress, stop it, and never leave it behind.

torch never enters Blender: the engine runs in the interpreter set in the preferences, in its own
process group (so that stopping it stops anything it started), and talks back in JSON lines on its
standard output. Reader threads only fill queues; everything else happens on Blender's main thread.
No bpy here, so the whole life cycle can be tested without Blender's event loop.
"""

from __future__ import annotations

import atexit
import collections
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .contract import engine_root, errors, files, protocol

# How long a cancelled engine may take to stop on its own before it is killed.
CANCEL_GRACE_S = 1.5
# How long quitting Blender, loading a file or a script's interruption waits for the engine to write
# its stop checkpoint before it is killed (it stops after the step it is on).
STOP_GRACE_S = 10.0
# How long processes the engine started may keep its output open after it has exited.
ORPHAN_GRACE_S = 1.0
STDERR_TAIL_LINES = 40
STDERR_LOG = "engine-stderr.txt"
# What the engine's Python must have: without one of them, the interpreter is the one to change.
ENGINE_PACKAGES = {"torch", "diffusers", "transformers", "numpy", "imageio"}
_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")

_FIX_HINT = (
    "Set the engine's Python in Edit > Preferences > Add-ons > MultiSketch, or click 'Create Engine Environment' there"
)


class EngineError(errors.UserError):
    """The engine cannot start or stopped with a failure; the message says what to do."""


@dataclass
class EngineOutcome:
    """How a finished engine run ended: status is 'done', 'cancelled' or 'failed'.

    `bad_interpreter`: it failed because the engine's Python lacks the engine's packages, before
    computing anything. `refused`: the engine refused the job folder's input (exit code 2), e.g. a
    checkpoint it cannot read.
    """

    status: str
    message: str
    bad_interpreter: bool = False
    refused: bool = False


def resolve_interpreter(interpreter: str) -> Path:
    """The engine's Python from the preferences, as a path that exists; EngineError saying what to set.

    Whether it can import torch and diffusers is found out by the engine run itself, in its own
    process: a separate check on Blender's main thread froze the UI for seconds (up to a minute on a
    cold disk), and made the engine import torch twice.
    """
    if not interpreter or not interpreter.strip():
        raise EngineError(f"No Python interpreter is set for the engine. {_FIX_HINT}.")
    path = Path(interpreter.strip()).expanduser()
    if not path.is_file():
        raise EngineError(f"The engine's Python {path} does not exist. {_FIX_HINT}.")
    return path


class EngineProcess:
    """One run of `python -m server run JOB_DIR --progress json`."""

    def __init__(self, interpreter: Path, job_dir: Path, resume: bool = False) -> None:
        self.interpreter = interpreter
        self.job_dir = Path(job_dir)
        # The pipe on its standard input ends when Blender does: the engine then stops with a checkpoint.
        command = [
            str(interpreter),
            "-m",
            "server",
            "run",
            str(self.job_dir),
            "--progress",
            "json",
            "--stop-when-input-ends",
        ]
        if resume:
            command.append("--resume")
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._last_error: str | None = None
        self._done_announced = False
        self._cancel_requested = False
        self._kill_deadline: float | None = None
        self._outcome: EngineOutcome | None = None
        self._exited_at: float | None = None
        self.warnings: list[str] = []  # what the engine warned of, each once, in order: for the final report
        try:
            self._stderr_log = files.open_to_append(self.job_dir / STDERR_LOG)  # closed when the engine exits
        except errors.UserError as exc:
            raise EngineError(f"Cannot write into the job folder {self.job_dir}: {exc}") from None
        try:
            self._process = subprocess.Popen(
                command,
                cwd=str(engine_root()),
                stdin=subprocess.PIPE,  # never written: its end tells the engine that Blender is gone
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                **own_process_group(),
            )
        except OSError as exc:
            self._stderr_log.close()
            raise EngineError(
                f"The engine's Python {interpreter} cannot run ({exc.strerror or exc}). {_FIX_HINT}."
            ) from None
        _LIVE.add(self)
        self._readers = [
            threading.Thread(target=self._read_stdout, args=(self._process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def stderr_log(self) -> Path:
        return self.job_dir / STDERR_LOG

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            event = protocol.decode_event(line)
            if event is not None:
                self._events.put(event)

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr_tail.append(line.rstrip())
            self._stderr_log.write(line)
            self._stderr_log.flush()

    def poll(self) -> list[dict[str, Any]]:
        """The events that arrived since the last call; never blocks."""
        events = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event["event"] == "error":
                self._last_error = str(event.get("message", "")).strip() or None
            elif event["event"] == "done":
                self._done_announced = True
            elif event["event"] == "warning" and (warning := str(event.get("message", ""))) not in self.warnings:
                self.warnings.append(warning)
            events.append(event)
        if self._kill_deadline is not None and time.monotonic() > self._kill_deadline:
            self._kill()
        return events

    def cancel(self) -> None:
        """Ask the engine to stop (it keeps its latest checkpoint); it is killed if it has not stopped in time."""
        if self._process.poll() is not None or self._cancel_requested:
            return
        self._cancel_requested = True
        self._kill_deadline = time.monotonic() + CANCEL_GRACE_S
        signal_process_group(self._process, hard=False)

    def stop(self, timeout: float = STOP_GRACE_S) -> None:
        """Cancel and wait until the process is gone (for shutdown paths that cannot wait for a timer).

        It gets `timeout` to stop on its own, with its checkpoint, before it is killed.
        """
        self.cancel()
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
        self._process.wait()

    def _kill(self) -> None:
        self._kill_deadline = None
        if self._process.poll() is None:
            signal_process_group(self._process, hard=True)

    def outcome(self) -> EngineOutcome | None:
        """None while the engine runs; afterwards how it ended (once all its output has been read)."""
        if self._outcome is not None:
            return self._outcome
        if self._process.returncode is None:
            if not _has_exited(self._process):
                return None
            # What the engine started (a probe such as lscpu or ffmpeg) must not outlive it, if it was killed.
            signal_process_group(self._process, hard=True)
        code = self._process.poll()
        if any(reader.is_alive() for reader in self._readers):
            # Something the engine started still holds its output open: it must not outlive the engine.
            self._exited_at = self._exited_at or time.monotonic()
            if time.monotonic() - self._exited_at > ORPHAN_GRACE_S:
                signal_process_group(self._process, hard=True)
            return None
        self.poll()
        self._outcome = self._conclude(code)
        self._stderr_log.close()
        if self._process.stdin is not None:
            self._process.stdin.close()
        _LIVE.discard(self)
        return self._outcome

    def wait(self, interval: float = 0.05) -> EngineOutcome:
        """Block until the engine ends (scripts and background mode); events are dropped."""
        while (outcome := self.outcome()) is None:
            self.poll()
            time.sleep(interval)
        return outcome

    def _conclude(self, code: int) -> EngineOutcome:
        if code == protocol.EXIT_OK and self._done_announced:
            return EngineOutcome("done", "finished")
        if self._cancel_requested or code == protocol.EXIT_CANCELLED:
            return EngineOutcome("cancelled", f"Cancelled; the job folder {self.job_dir} keeps what was computed.")
        missing = self._missing_package()
        if missing:
            return EngineOutcome(
                "failed",
                f"The engine's Python {self.interpreter} cannot import torch and diffusers ({missing}). {_FIX_HINT}.",
                bad_interpreter=True,
            )
        if self._last_error:
            reason = self._last_error
        elif code < 0:
            reason = f"the engine was stopped by signal {_signal_name(-code)}"
        elif code == protocol.EXIT_OK:
            reason = "the engine ended without announcing a result"
        else:
            tail = [line for line in self._stderr_tail if line.strip()][-3:]
            reason = f"the engine failed (exit code {code})" + (": " + " | ".join(tail) if tail else "")
        message = f"{reason[:1].upper()}{reason[1:]}. Details: {self.stderr_log}"
        return EngineOutcome("failed", message, refused=code == protocol.EXIT_BAD_INPUT)

    def _missing_package(self) -> str | None:
        """The line saying which of the engine's packages its Python lacks, if that is why it failed."""
        for line in [self._last_error or "", *reversed(self._stderr_tail)]:
            found = _MISSING_MODULE.search(line)
            if found and found.group(1).split(".")[0] in ENGINE_PACKAGES:
                return found.group(0)
        return None


def own_process_group() -> dict[str, Any]:
    """Popen arguments that start a child in a process group of its own, so it can be stopped with all it starts."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _has_exited(process: subprocess.Popen) -> bool:
    """Whether the child has exited, without reaping it where that can wait: while it is a zombie its
    process group id cannot be reused, so signalling the group reaches only what it started."""
    if sys.platform == "win32":
        return process.poll() is not None
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped elsewhere
        return True


def signal_process_group(process: subprocess.Popen, hard: bool) -> None:
    """Ask a child's whole process group (the child and all it started) to stop (hard: kill it)."""
    try:
        if sys.platform == "win32":
            if hard:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True)
            else:
                process.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            os.killpg(process.pid, signal.SIGKILL if hard else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


_LIVE: set[EngineProcess] = set()


def stop_all() -> None:
    """Stop every engine still running (add-on unregistered, file closed, Blender quitting)."""
    for process in list(_LIVE):
        process.stop()
        process.outcome()
        _LIVE.discard(process)


atexit.register(stop_all)
