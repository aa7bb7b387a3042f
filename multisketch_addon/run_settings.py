"""What the user asked a run to be, read in one place from the scene's settings and the preferences.

The job export takes these settings as given, so that a setting's meaning (Quality to steps, the
scene's device over the preferences', the toy model's own frames and size) is decided once.
"""

from __future__ import annotations

from typing import Any

import bpy

from .contract import protocol
from .preferences import addon_preferences, cache_folder
from .properties import steps_per_stage

TINY_MODEL_FOLDER = "models/tiny"  # in the cache folder: the tiny model is built there on first use


def run_settings(context: bpy.types.Context) -> dict[str, Any]:
    """The job spec's fields other than the sketch and its objects, as the scene and preferences set them."""
    settings = context.scene.multisketch
    prefs = addon_preferences(context)
    if settings.prior == "tiny":
        model = str(cache_folder(context) / TINY_MODEL_FOLDER)
    else:
        model = prefs.model.strip() or protocol.DEFAULTS["model"]
    sizes = {"frames": settings.frames, "steps": steps_per_stage(settings), "size": settings.size}
    if settings.prior == "toy":  # the model knows one frame count and size only
        sizes = protocol.toy_settings()
    return {
        "prompt": settings.prompt.strip(),
        **sizes,
        "seed": settings.seed,
        "prior": settings.prior,
        "model": model,
        "device": prefs.device if settings.device == "PREFERENCES" else settings.device,
    }
