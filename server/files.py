"""Files of a job folder: private, written atomically, never through a symbolic link, one engine at a time.

A job folder holds the user's sketch and prompts, so nothing in it is readable by others (0700 folder, 0600
files). Every file is written under a fresh temporary name beside its target and then renamed over it: a reader
sees the old file or the new one, never half of one, and a symbolic link planted at the target is replaced, not
followed. The log, the one file appended to, is opened without following a link. Pure standard library: the
add-on writes its part of a job folder (sketch, job spec) with the same functions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .errors import UserError

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has no such flag, and no symbolic links for plain users


def make_private_folder(path: Path) -> None:
    """Create `path` (and missing parents) readable by its owner only; an existing folder stays as it is."""
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A new private temporary file beside `path` to write to; when the block ends without error it replaces `path`.

    The temporary name keeps the target's suffix, so writers that choose a format by it (ffmpeg) still can.
    """
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(descriptor)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_bytes(path: Path, data: bytes) -> None:
    with replacing(path) as temporary:
        temporary.write_bytes(data)


def open_to_append(path: Path) -> TextIO:
    """`path` opened to append text (made private if new); a symbolic link there is refused, not followed."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NO_FOLLOW, PRIVATE_FILE)
    except OSError as exc:
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link: the engine writes nothing through links") from None
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return os.fdopen(descriptor, "a", encoding="utf-8")


def append_text(path: Path, text: str) -> None:
    with open_to_append(path) as file:
        file.write(text)


def try_lock(path: Path) -> int | None:
    """An exclusive lock on the file `path` (made if missing) as an open descriptor; None if another process holds it.

    The lock lasts until the descriptor is closed (`unlock`) or the process ends, however it ends: a killed
    engine never leaves a stale lock.
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | _NO_FOLLOW, PRIVATE_FILE)
    except OSError as exc:
        raise UserError(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def unlock(descriptor: int) -> None:
    os.close(descriptor)
