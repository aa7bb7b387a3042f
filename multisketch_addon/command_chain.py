"""Commands run one after another in the background (making the engine's environment), stoppable as a whole.

pip starts builds and downloads of its own; killing pip alone left them running. Each command therefore
starts in a process group (a session on POSIX, a new process group on Windows) and stopping kills the
group (killpg; taskkill /T on Windows). No bpy, so it is tested with plain processes.
"""

from __future__ import annotations

import collections
import subprocess
import threading
from pathlib import Path
from typing import IO

from .engine_process import own_process_group, signal_process_group

TAIL_LINES = 12


class CommandChain:
    """Runs commands one after another in the background, keeping the tail of their output.

    `output` keeps every line of the last command that ran (the environment check's report is in it).
    """

    def __init__(self, commands: list[list[str]], cwd: Path | None = None) -> None:
        self._pending = list(commands)
        self._cwd = cwd
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.output: list[str] = []
        self.failed_command: list[str] | None = None
        self.command: list[str] = []
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._start_next()

    @property
    def pid(self) -> int | None:
        """The process id of the command running now (the leader of its process group)."""
        return self._process.pid if self._process is not None else None

    def _start_next(self) -> None:
        command = self._pending.pop(0)
        self.command, self.output = command, []
        try:
            self._process = subprocess.Popen(
                command,
                cwd=str(self._cwd) if self._cwd else None,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
                **own_process_group(),
            )
        except OSError as exc:
            self.tail.append(f"cannot run {command[0]}: {exc.strerror or exc}")
            self.failed_command, self._process = command, None
            return
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.strip():
                self.tail.append(line.rstrip())
                self.output.append(line.rstrip())

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
            self.failed_command, self._process = self.command, None
            return True
        if not self._pending:
            self._process = None
            return True
        self._start_next()
        return False

    def stop(self) -> None:
        """Kill the running command and everything it started; the rest of the chain never runs."""
        self._pending.clear()
        process, self._process = self._process, None
        if process is None:
            return
        self.failed_command = self.command
        self.tail.append("stopped")
        if process.poll() is None or (self._reader is not None and self._reader.is_alive()):
            signal_process_group(process, hard=True)
        process.wait()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
