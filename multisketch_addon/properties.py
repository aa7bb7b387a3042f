"""The settings a user edits (saved with the .blend) and the state of a running job (never saved).

Scene settings say what to animate and how; per-object settings live on the object's collection so
that they travel with it. The running job's progress sits on the window manager, which Blender does
not save, so a file saved mid-run never reopens showing a job that is no longer there.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .contract import protocol
from .preferences import DEVICE_ITEMS

# Steps per stage of each quality preset; "paper" is the paper's setting.
QUALITY_STEPS = {"DRAFT": 100, "STANDARD": 400, "PAPER": protocol.DEFAULTS["steps"]}  # the paper's: the default
# The engine's priors (`protocol.PRIORS`, in its order) as the sidebar names them, but for the target prior: it needs
# a motion plan file, which the sidebar has no field for. A prior the engine gains needs a label here.
UNOFFERED_PRIORS = ("target",)
PRIOR_LABELS = {
    "modelscope": ("ModelScope", "ModelScope text-to-video (weights licence CC-BY-NC-4.0)"),
    "tiny": ("Tiny (test)", "A tiny random-weight model: checks the pipeline in seconds, animates nothing useful"),
    "toy": (
        "Toy (known answer)",
        "A small model trained on synthetic sketch motion: knows 'the ... moves left/right/up/down', "
        "'grows', 'shrinks', 'turns clockwise/counter-clockwise', 'stays still'; runs at its own "
        "frames, size and steps, in minutes on a CPU",
    ),
}
PRIOR_ITEMS = tuple((prior, *PRIOR_LABELS[prior]) for prior in protocol.PRIORS if prior not in UNOFFERED_PRIORS)


def _is_sketch(_settings: bpy.types.PropertyGroup, collection: bpy.types.Collection) -> bool:
    return bool(collection.get("multisketch_sketch"))


class MultiSketchObjectSettings(bpy.types.PropertyGroup):
    """What one object of a sketch (an object collection) should do."""

    prompt: StringProperty(
        name="Prompt",
        description="This object's own motion, used for its own stage (empty: the scene prompt)",
    )
    static: BoolProperty(
        name="Static",
        description="Draw this object but never move it",
        default=False,
    )


class MultiSketchSceneSettings(bpy.types.PropertyGroup):
    """How to animate the scene's sketch."""

    prompt: StringProperty(
        name="Prompt",
        description="What happens in the scene, e.g. 'a cat jumps over a ball'",
    )
    sketch: PointerProperty(
        name="Sketch",
        description="The sketch to animate when the scene holds several",
        type=bpy.types.Collection,
        poll=_is_sketch,
    )
    frames: IntProperty(
        name="Frames",
        description="Frames of the animation (the video prior plays 8 frames per second)",
        default=protocol.DEFAULTS["frames"],
        min=protocol.MIN_FRAMES,
        soft_max=48,
        max=protocol.MAX_FRAMES,
    )
    quality: EnumProperty(
        name="Quality",
        description="Optimization steps per stage",
        items=(
            ("DRAFT", "Draft", f"{QUALITY_STEPS['DRAFT']} steps per stage: a quick look"),
            ("STANDARD", "Standard", f"{QUALITY_STEPS['STANDARD']} steps per stage"),
            ("PAPER", "Paper", f"{QUALITY_STEPS['PAPER']} steps per stage, as in the paper"),
            ("CUSTOM", "Custom", "Set the steps per stage yourself"),
        ),
        default="PAPER",
    )
    steps: IntProperty(
        name="Steps",
        description="Optimization steps per stage (Custom quality)",
        default=protocol.DEFAULTS["steps"],
        min=0,
        soft_max=2000,
        max=protocol.MAX_STEPS,
    )
    size: IntProperty(
        name="Render Size",
        description="Side of the square frames the video prior sees, in pixels",
        default=protocol.DEFAULTS["size"],
        min=protocol.MIN_SIZE,
        soft_max=512,
        max=protocol.MAX_SIZE,
    )
    seed: IntProperty(
        name="Seed",
        description="Random seed: the same seed gives the same animation",
        default=protocol.DEFAULTS["seed"],
        min=0,
    )
    device: EnumProperty(
        name="Device",
        description="Where the engine computes",
        items=(("PREFERENCES", "From Preferences", "The device set in the add-on preferences"), *DEVICE_ITEMS),
        default="PREFERENCES",
    )
    prior: EnumProperty(
        name="Prior",
        description="The text-to-video model that judges the motion",
        items=PRIOR_ITEMS,
        default=protocol.DEFAULTS["prior"],
    )


class MultiSketchJobState(bpy.types.PropertyGroup):
    """Progress of the running job, for the panel to draw."""

    running: BoolProperty(name="Running", default=False)
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR", default=0.0)
    stage: StringProperty(name="Stage")
    step: IntProperty(name="Step", default=0)
    steps: IntProperty(name="Steps", default=0)
    eta: StringProperty(name="Time Left")
    message: StringProperty(name="Message", description="How the last job ended")
    warning: StringProperty(name="Warning", description="The engine's latest warning during the running job")
    preview: StringProperty(name="Preview", description="The engine's latest picture of the animation so far")


def steps_per_stage(settings: MultiSketchSceneSettings) -> int:
    """The optimization steps per stage that the chosen quality means."""
    return settings.steps if settings.quality == "CUSTOM" else QUALITY_STEPS[settings.quality]


CLASSES = (MultiSketchObjectSettings, MultiSketchSceneSettings, MultiSketchJobState)


def register() -> None:
    bpy.types.Scene.multisketch = PointerProperty(type=MultiSketchSceneSettings)
    bpy.types.Collection.multisketch = PointerProperty(type=MultiSketchObjectSettings)
    bpy.types.WindowManager.multisketch_job = PointerProperty(type=MultiSketchJobState)


def unregister() -> None:
    del bpy.types.WindowManager.multisketch_job
    del bpy.types.Collection.multisketch
    del bpy.types.Scene.multisketch
