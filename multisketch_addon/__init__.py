"""MultiSketch: animate multi-object Grease Pencil sketches with a text-to-video prior (SDS).

Every module below lists the Blender classes it defines in `CLASSES`; a module with more to set up
(pointer properties, handlers) also has `register()` / `unregister()`. Order matters: property
groups before the classes that point to them.
"""

import bpy

from . import animate, grouping, importer, preferences, progress_preview, properties, ui

_MODULES = (preferences, properties, importer, grouping, animate, progress_preview, ui)


def register() -> None:
    for module in _MODULES:
        for cls in module.CLASSES:
            bpy.utils.register_class(cls)
        if hasattr(module, "register"):
            module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        if hasattr(module, "unregister"):
            module.unregister()
        for cls in reversed(module.CLASSES):
            bpy.utils.unregister_class(cls)
