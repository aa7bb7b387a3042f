"""The engine's picture of the animation so far (`progress.png`, rewritten at each checkpoint), in the sidebar.

Blender draws a picture in a panel as the icon of a preview collection. The picture is loaded again whenever
the engine has replaced the file (a new file or modification time), under a new name, so that Blender never
keeps showing the old one; only the newest is kept.
"""

from __future__ import annotations

import os

import bpy
import bpy.utils.previews

CLASSES: tuple = ()
_pictures: bpy.utils.previews.ImagePreviewCollection | None = None


def picture(path: str) -> bpy.types.ImagePreview | None:
    """The preview of the picture at `path` as it is now; None when there is none (yet)."""
    if _pictures is None or not path:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    key = f"{path}@{found.st_ino}:{found.st_mtime_ns}"  # the engine replaces the file: a new inode each time
    if key not in _pictures:
        _pictures.clear()
        _pictures.load(key, path, "IMAGE")
    return _pictures[key]


def register() -> None:
    global _pictures
    _pictures = bpy.utils.previews.new()


def unregister() -> None:
    global _pictures
    if _pictures is not None:
        bpy.utils.previews.remove(_pictures)
    _pictures = None
