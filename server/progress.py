"""Progress for people (a one-line bar on a terminal) and for the add-on (JSON lines on stdout)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .protocol import encode_event, format_duration

BAR_WIDTH = 24


class ProgressReporter:
    """Turns the schedule's events into the chosen output, and into the job's log."""

    def __init__(self, mode: str) -> None:
        if mode == "auto":  # off a terminal no bar, but still a line per stage and where the result is
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self._log: Callable[[str], None] | None = None
        self._bar_open = False
        self.reader_gone = False  # what read our output has closed it (a crashed parent, `| head`)

    def attach_log(self, log: Callable[[str], None] | None) -> None:
        self._log = log

    def event(self, name: str, **fields: Any) -> None:
        if self.mode == "json":
            self._print(encode_event(name, **fields), sys.stdout)
        elif self.mode in ("bar", "lines"):
            self._draw(name, fields)
        if self._log and (name != "step" or fields.get("step") == fields.get("steps")):
            self._log(encode_event(name, **fields))

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the job."""
        self._message("warning", message)

    def error(self, message: str) -> None:
        self._message("error", message)

    def _message(self, kind: str, message: str) -> None:
        self._end_bar()
        self._print(f"{kind}: {message}", sys.stderr)
        if self.mode == "json":
            self._print(encode_event(kind, message=message), sys.stdout)
        if self._log:
            self._log(encode_event(kind, message=message))

    def _print(self, text: str, stream: Any, end: str = "\n") -> None:
        """Print, or, once the reader is gone, note it and send the stream to the null device: no traceback."""
        try:
            print(text, end=end, file=stream, flush=True)
        except (BrokenPipeError, ValueError):
            self.reader_gone = True
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            except (OSError, ValueError):
                pass

    def _draw(self, name: str, fields: dict[str, Any]) -> None:
        if name == "step" and self.mode == "bar":
            filled = round(BAR_WIDTH * fields["progress"])
            eta = format_duration(fields.get("eta_s")) or "?"
            line = (
                f"\r{fields['stage']:<16} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] "
                f"{fields['progress']:6.1%} step {fields['step']}/{fields['steps']} "
                f"loss {fields['loss']:.4g} ETA {eta}"
            )
            self._print(line, sys.stderr, end="")
            self._bar_open = True
        elif name in ("stage", "done", "cancelled"):
            self._end_bar()
            detail = {"stage": fields.get("stage"), "done": fields.get("result"), "cancelled": fields.get("message")}
            self._print(f"{name}: {detail[name]}", sys.stderr)

    def _end_bar(self) -> None:
        if self._bar_open:
            self._print("", sys.stderr)
            self._bar_open = False
