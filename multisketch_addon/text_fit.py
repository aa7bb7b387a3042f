"""Text broken into lines that fit a region's width, for messages and paths a label would cut off.

Blender cuts a label or field that is too wide for its region ("Cancelled; the job fold..."), and
the sidebar and the file browser's side panel are about 250 px wide. Lines are measured in the UI's
own font at the UI's scale.
"""

from __future__ import annotations

import re

import blf
import bpy

UNIT = 20  # px at UI scale 1: Blender's UI unit (a button's height, an icon's width)


def ui_scale(context: bpy.types.Context) -> float:
    """The UI's scale in pixels per unit px (the system's one is 0 without a window: then the user's)."""
    preferences = context.preferences
    return preferences.system.ui_scale or preferences.view.ui_scale


def fitted_lines(text: str, width_px: float, breaks: str = " ") -> list[str]:
    """`text` in lines that each fit `width_px`, broken after any character of `breaks` where one is near.

    A part without a break that is wider than a line is cut where it must be. Joined, the lines are `text`.
    """
    preferences = bpy.context.preferences
    blf.size(0, preferences.ui_styles[0].widget.points * ui_scale(bpy.context))

    def fits(line: str) -> bool:
        return blf.dimensions(0, line.rstrip(" "))[0] <= width_px  # a space at a line's end takes no room

    separators = re.escape(breaks)
    parts = re.findall(rf"[^{separators}]*[{separators}]|[^{separators}]+$", text)
    lines: list[str] = []
    for part in parts:
        if lines and fits(lines[-1] + part):
            lines[-1] += part
            continue
        lines.append("")
        for char in part:
            if lines[-1] and not fits(lines[-1] + char):
                lines.append("")
            lines[-1] += char
    return lines


def region_width(context: bpy.types.Context, default: float) -> float:
    """The width of the region being drawn, `default` (px at UI scale 1, scaled) where there is none."""
    region = getattr(context, "region", None)
    width = getattr(region, "width", 0) if region is not None else 0
    return float(width) if width > 1 else default * ui_scale(context)
