"""Access to the engine's pure-Python contract modules (`server.protocol`, `server.tables`, `server.svg`,
`server.files`, `server.errors`).

In the built extension `server/` sits inside the add-on's folder; in a source checkout it sits
beside it. Either way the add-on reads the same files the engine does, so the two never disagree.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

ADDON_DIR = Path(__file__).resolve().parent


def engine_root() -> Path:
    """The folder that contains the `server` package (the engine's working directory)."""
    for candidate in (ADDON_DIR, ADDON_DIR.parent):
        if (candidate / "server" / "protocol.py").is_file():
            return candidate
    raise FileNotFoundError(f"the engine (server/) is neither in {ADDON_DIR} nor beside it")


def _engine_module(name: str) -> ModuleType:
    if __package__ and (ADDON_DIR / "server").is_dir():
        return importlib.import_module(f"{__package__}.server.{name}")
    root = str(engine_root())
    if root not in sys.path:
        sys.path.append(root)
    return importlib.import_module(f"server.{name}")


protocol = _engine_module("protocol")
tables = _engine_module("tables")
svg = _engine_module("svg")
files = _engine_module("files")
if TYPE_CHECKING:  # the add-on's own errors derive from the contract's UserError: the type checker must see it
    from server import errors
else:
    errors = _engine_module("errors")
