"""A model download's progress (bytes so far, total, rate), from the hub's own byte counter.

`huggingface_hub.snapshot_download` counts the bytes of every file it fetches on the progress bar class it is
given; the class made here draws nothing and hands that count on, at most a few times a second, for the
engine's `download` events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

EVENTS_PER_SECOND = 4


def event_bar(emit: Callable[..., None]) -> type[tqdm]:
    """A tqdm class for `snapshot_download(tqdm_class=...)` whose byte bar calls `emit(bytes=, total=, rate=)`."""

    class DownloadEvents(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)  # the hub's own bars take a name; tqdm does not
            self._null = open(os.devnull, "w")  # noqa: SIM115 (closed with the bar)
            super().__init__(*args, **{**kwargs, "file": self._null, "disable": False})
            self._last_event = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            # The hub's byte bars: one counts what arrives from the network; the other, what is written.
            if self.unit == "B" and self.desc != "Downloading bytes" and self.total:
                now = time.monotonic()
                if now - self._last_event >= 1 / EVENTS_PER_SECOND or self.n >= self.total:
                    self._last_event = now
                    rate = self.format_dict.get("rate") or 0.0
                    emit(bytes=int(self.n), total=int(self.total), rate=float(rate))
            return shown

        def close(self) -> None:
            super().close()
            self._null.close()

    return DownloadEvents
