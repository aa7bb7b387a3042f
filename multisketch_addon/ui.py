"""The "MultiSketch" tab of the 3D View sidebar: the user's steps from import to a finished animation.

Import, then the sketch's objects (per-object prompt and static flag, grouping tools), then the
animation settings and the "Animate with SDS" button, which turns into a progress bar with Cancel
while the engine runs; once a result exists, "Clear Animation" removes it. The panels only draw:
every setting lives in `properties.py`, every action in an operator. A setting or operator that is
missing (an older file, a partial install) is left out instead of breaking the panel.
"""

from __future__ import annotations

import bpy

from . import progress_preview, scene_model, text_fit, writeback
from .contract import protocol
from .preferences import addon_preferences

CATEGORY = "MultiSketch"
SIDEBAR_WIDTH = 280  # px at UI scale 1: a new sidebar's width (292 px at scale 1.04), for drawing without a window
MESSAGE_MARGIN_UNITS = 4.5  # the sidebar's width less a label's text room, in UI units (see `message_room`)
PREVIEW_SCALE = 8.0  # the progress picture's height in UI units


def active_sketch(context: bpy.types.Context) -> bpy.types.Collection | None:
    """The sketch the tab works on, the same one "Animate with SDS" and the grouping tools take; None while that is
    unclear."""
    return scene_model.chosen_sketch(context)[0]


def message_room(context: bpy.types.Context) -> float:
    """The width (px) a label's text has in the sidebar: the region less its tabs, the panel's margins and an icon.

    Measured in Blender 5.2: a 292 px sidebar gives a label beside an icon about 207 px.
    """
    scale = text_fit.ui_scale(context)
    return text_fit.region_width(context, SIDEBAR_WIDTH) - MESSAGE_MARGIN_UNITS * text_fit.UNIT * scale


def _has_operator(idname: str) -> bool:
    category, name = idname.split(".")
    try:
        getattr(getattr(bpy.ops, category), name).get_rna_type()
    except KeyError:
        return False
    return True


def _operator(layout: bpy.types.UILayout, idname: str, **options) -> None:
    if _has_operator(idname):
        layout.operator(idname, **options)


def _prop(layout: bpy.types.UILayout, owner, name: str, **options) -> None:
    if owner is not None and name in owner.bl_rna.properties:
        layout.prop(owner, name, **options)


def _draw_progress(layout: bpy.types.UILayout, job: bpy.types.PropertyGroup) -> None:
    stage = job.stage or "starting"
    step = f"  step {job.step}/{job.steps}" if job.steps and job.step else ""  # a resumed job starts past 0
    eta = f"  {job.eta} left" if job.eta else ""
    row = layout.row(align=True)
    row.progress(factor=job.progress, type="BAR", text=f"{stage}{step}{eta}")
    _operator(row, "multisketch.cancel", text="", icon="CANCEL")
    if job.warning:
        layout.label(text=job.warning, icon="ERROR")
    shown = progress_preview.picture(job.preview)
    if shown is not None:  # the animation so far, at the latest checkpoint: stop the run if it goes wrong
        layout.template_icon(icon_value=shown.icon_id, scale=PREVIEW_SCALE)


class _SidebarPanel(bpy.types.Panel):
    """Where every panel of the tab lives (never registered itself)."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY


class MULTISKETCH_PT_sketch(_SidebarPanel):
    """Where a sketch comes in, and which one the tab works on."""

    bl_label = "MultiSketch"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        _operator(layout, "multisketch.import_svg", text="Import SVG Sketch", icon="IMPORT")
        sketches = scene_model.sketch_collections(context.scene)
        if len(sketches) > 1:
            _prop(layout, getattr(context.scene, "multisketch", None), "sketch")
        sketch = active_sketch(context)
        if sketch is None:
            hint = "Choose the sketch to work on" if sketches else "Import an SVG sketch to start"
            layout.label(text=hint, icon="INFO")
            return
        width, height = scene_model.canvas_size(sketch)
        layout.label(text=f"{sketch.name}: {width:g} x {height:g} px", icon="OUTLINER_COLLECTION")


class _SketchPanel(_SidebarPanel):
    """A sub-panel about the tab's sketch: shown only once there is one (never registered itself)."""

    bl_parent_id = "MULTISKETCH_PT_sketch"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_sketch(context) is not None


class MULTISKETCH_PT_objects(_SketchPanel):
    """The sketch's objects: what moves, with which prompt, and the tools that group strokes."""

    bl_label = "Objects"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        sketch = active_sketch(context)
        objects = scene_model.object_collections(sketch)
        if not objects:
            layout.label(text="No objects yet: group strokes below", icon="INFO")
        for collection in objects:
            settings = getattr(collection, "multisketch", None)
            box = layout.box()
            row = box.row(align=True)
            strokes = scene_model.stroke_count(scene_model.drawing_object(collection))
            row.label(text=f"{collection.name} ({strokes} strokes)", icon="OUTLINER_COLLECTION")
            _prop(row, settings, "static", text="", icon="PINNED" if getattr(settings, "static", False) else "UNPINNED")
            row.operator("multisketch.remove_object", text="", icon="X").name = collection.name
            if not getattr(settings, "static", False):
                _prop(box, settings, "prompt", text="", placeholder="own prompt (optional)")
        background = scene_model.stroke_count(scene_model.background_object(sketch))
        if background:
            layout.label(text=f"Background: {background} strokes, never move", icon="IMAGE_BACKGROUND")
        column = layout.column(align=True)
        _operator(column, "multisketch.new_object", text="New Object from Selection", icon="ADD")
        _operator(column, "multisketch.assign_to_object", text="Assign Selection to Object", icon="FORWARD")
        _operator(column, "multisketch.suggest_grouping", text="Suggest Grouping", icon="LIGHT")


class MULTISKETCH_PT_animate(_SketchPanel):
    """The scene prompt, the run's settings, and the run itself."""

    bl_label = "Animate"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = getattr(context.scene, "multisketch", None)
        job = getattr(context.window_manager, "multisketch_job", None)
        running = bool(getattr(job, "running", False))

        settings_column = layout.column()
        settings_column.enabled = not running
        _prop(settings_column, settings, "prompt", text="", placeholder="what happens in the scene")
        _prop(settings_column, settings, "frames")
        _prop(settings_column, settings, "quality")
        if getattr(settings, "quality", "CUSTOM") == "CUSTOM":
            _prop(settings_column, settings, "steps")
        _prop(settings_column, settings, "size")
        _prop(settings_column, settings, "seed")
        _prop(settings_column, settings, "device")
        _prop(settings_column, settings, "prior")
        if getattr(settings, "prior", protocol.DEFAULTS["prior"]) == "modelscope":
            _prop(settings_column, addon_preferences(context, optional=True), "model")

        if running:
            _draw_progress(layout, job)
        else:
            _operator(layout, "multisketch.animate", text="Animate with SDS", icon="PLAY")
        message = getattr(job, "message", "")
        if message and not running:  # on as many lines as the sidebar's width needs: one label would cut it off
            column = layout.column(align=True)
            for number, line in enumerate(text_fit.fitted_lines(message, message_room(context))):
                column.label(text=line.rstrip(" "), icon="INFO" if number == 0 else "BLANK1")
        sketch = active_sketch(context)
        if not running and writeback.has_result(sketch):
            _operator(layout, "multisketch.clear_animation", icon="TRASH")
        if not running:
            _operator(layout, "multisketch.apply_job", text="Apply Job Folder...", icon="FILE_FOLDER")


CLASSES = (MULTISKETCH_PT_sketch, MULTISKETCH_PT_objects, MULTISKETCH_PT_animate)
