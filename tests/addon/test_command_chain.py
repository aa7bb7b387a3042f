"""Cancelling the engine environment's set-up stops pip and everything pip started (POSIX process groups)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.addon.conftest import addon_module

command_chain = addon_module("command_chain")

# A child that starts a grandchild (as pip starts builds), prints the grandchild's pid, and waits for a long time.
PARENT_WITH_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "print(grandchild.pid, flush=True)\n"
    "time.sleep(300)\n"
)


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its reaper has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process states from /proc (Linux)")
def test_stop_kills_the_running_command_and_what_it_started(tmp_path: Path) -> None:
    never_run = tmp_path / "never-run"
    chain = command_chain.CommandChain(
        [[sys.executable, "-c", PARENT_WITH_GRANDCHILD], [sys.executable, "-c", f"open({str(never_run)!r}, 'w')"]]
    )
    assert _wait_for(lambda: bool(chain.output)), "the fake pip did not start its grandchild"
    parent, grandchild = chain.pid, int(chain.output[0])
    assert _alive(parent) and _alive(grandchild)
    chain.stop()
    assert _wait_for(lambda: not _alive(grandchild), timeout=5.0), "the grandchild outlived the cancel"
    assert not _alive(parent)
    assert chain.finished() and chain.failed_command is not None  # a stopped chain never counts as done
    time.sleep(0.3)
    assert not never_run.exists()


def test_commands_run_in_order_and_a_failure_stops_the_chain(tmp_path: Path) -> None:
    never_run = tmp_path / "never-run"
    failing = [sys.executable, "-c", "import sys; print('no such package'); sys.exit(3)"]
    chain = command_chain.CommandChain(
        [[sys.executable, "-c", "print('first')"], failing, [sys.executable, "-c", f"open({str(never_run)!r}, 'w')"]]
    )
    assert _wait_for(chain.finished)
    assert chain.failed_command == failing
    assert list(chain.tail) == ["first", "no such package", "exit code 3"]
    assert not never_run.exists()
