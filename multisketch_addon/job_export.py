"""Turn a sketch in the scene into a job folder the engine can run, and remember how to map results back.

The engine knows strokes only as `<path>` indices of an SVG. The export writes one `<path>` per
Grease Pencil stroke, from the original (rest) drawings, in canvas pixels, and records in
`blender_map.json` which Grease Pencil object and stroke each index came from, so that write-back
needs nothing but the job folder. The map names the sketch and its objects by their stable ids as
well as their names, so renaming them during a run (or before applying a job folder) loses nothing.
Every check that can fail runs before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np

from . import scene_model
from .contract import errors, files, protocol, svg

if TYPE_CHECKING:
    from server.protocol import JobSpec, ObjectSpec

SKETCH_FILE = "sketch.svg"
MAP_FILE = "blender_map.json"
# Half the stroke width of Live-Sketch's sketches (3 px), for strokes that carry no radius.
DEFAULT_RADIUS_PX = 1.5


class JobExportError(errors.UserError):
    """The scene cannot be animated as it is; the message says what to change."""


@dataclass
class ObjectLink:
    """Where one engine object lives in the scene: names when the job was exported, and the object's id."""

    collection: str
    gp_object: str
    gp_object_id: str = ""


@dataclass
class ExportedJob:
    """A written job folder and the maps from the engine's names and indices back to the scene."""

    job_dir: Path
    sketch_path: Path
    spec_path: Path
    map_path: Path
    spec: JobSpec
    objects: dict[str, ObjectLink]
    strokes: list[tuple[str, int]]
    background: str | None
    sketch_name: str = ""
    sketch_id: str = ""

    @property
    def result_path(self) -> Path:
        return self.job_dir / protocol.RESULT

    @classmethod
    def load(cls, job_dir: Path) -> ExportedJob:
        """Read back a job folder written by `export_job`; UserError when it is not one."""
        job_dir = Path(job_dir)
        try:
            mapping = json.loads((job_dir / MAP_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise errors.UserError(
                f"{job_dir} is not a job folder of MultiSketch's (it has no readable {MAP_FILE})"
            ) from None
        return cls(
            job_dir=job_dir,
            sketch_path=job_dir / SKETCH_FILE,
            spec_path=job_dir / protocol.JOB_SPEC,
            map_path=job_dir / MAP_FILE,
            spec=protocol.JobSpec.load(job_dir / protocol.JOB_SPEC),
            objects={
                name: ObjectLink(link["collection"], link["object"], link.get("object_id", ""))
                for name, link in mapping["objects"].items()
            },
            strokes=[(gp_object, index) for gp_object, index in mapping["strokes"]],
            background=mapping["background"],
            sketch_name=mapping.get("sketch", ""),
            sketch_id=mapping.get("sketch_id", ""),
        )

    def identity(self) -> tuple:
        """What makes two exports the same job whatever was renamed in between: inputs, ids, strokes."""
        ids = {link.gp_object: link.gp_object_id for link in self.objects.values()}
        strokes = [(ids.get(name, name), index) for name, index in self.strokes]
        return (
            self.sketch_path.read_bytes(),
            self.spec_path.read_bytes(),
            self.sketch_id,
            sorted((name, link.gp_object_id) for name, link in self.objects.items()),
            strokes,
        )


@dataclass
class _Stroke:
    points: list[tuple[float, float]]
    width: float


def sketch_to_animate(context: bpy.types.Context) -> bpy.types.Collection:
    """The sketch that Animate works on (`scene_model.chosen_sketch`); JobExportError saying how to choose one."""
    sketch, why = scene_model.chosen_sketch(context)
    if sketch is None:
        raise JobExportError(f"Nothing to animate: {why}")
    return sketch


def export_job(sketch: bpy.types.Collection, job_dir: Path, settings: dict[str, Any]) -> ExportedJob:
    """Check the sketch and the run's `settings` (`run_settings`), then write `sketch.svg`, `job.json` and
    `blender_map.json` into `job_dir`."""
    owners = _object_owners(sketch)
    if not settings["prompt"]:
        raise JobExportError(
            "The scene prompt is empty: describe what happens, e.g. 'a cat jumps over a ball' (MultiSketch sidebar)"
        )
    background = scene_model.background_object(sketch)
    gp_objects = ([background] if background is not None else []) + [ob for ob, _ in owners]

    strokes: list[_Stroke] = []
    origins: list[tuple[str, int]] = []
    indices: dict[str, list[int]] = {}
    for ob in gp_objects:
        read = _read_strokes(ob)
        indices[ob.name] = list(range(len(strokes), len(strokes) + len(read)))
        strokes += read
        origins += [(ob.name, index) for index in range(len(read))]

    objects, links = [], {}
    for ob, collection in owners:
        objects.append(
            protocol.ObjectSpec(
                name=collection.name,
                strokes=indices[ob.name],
                prompt=collection.multisketch.prompt.strip() or None,
                static=collection.multisketch.static,
            )
        )
        links[collection.name] = ObjectLink(collection.name, ob.name, scene_model.stable_id(ob))

    spec = _job_spec(settings, objects)
    job_dir = Path(job_dir)
    files.make_private_folder(job_dir)
    exported = ExportedJob(
        job_dir=job_dir,
        sketch_path=job_dir / SKETCH_FILE,
        spec_path=job_dir / protocol.JOB_SPEC,
        map_path=job_dir / MAP_FILE,
        spec=spec,
        objects=links,
        strokes=origins,
        background=background.name if background is not None else None,
        sketch_name=sketch.name,
        sketch_id=scene_model.stable_id(sketch),
    )
    _write_svg(exported.sketch_path, scene_model.canvas_size(sketch), strokes)
    spec.save(exported.spec_path)
    mapping = {
        "sketch": sketch.name,
        "sketch_id": exported.sketch_id,
        "background": exported.background,
        "objects": {
            name: {"collection": link.collection, "object": link.gp_object, "object_id": link.gp_object_id}
            for name, link in links.items()
        },
        "strokes": [list(origin) for origin in origins],
    }
    files.write_text(exported.map_path, json.dumps(mapping, indent=1) + "\n")
    return exported


def _object_owners(sketch: bpy.types.Collection) -> list[tuple[bpy.types.Object, bpy.types.Collection]]:
    """Each object collection with its Grease Pencil object, after checking that there is something to animate."""
    collections = scene_model.object_collections(sketch)
    if not collections:
        raise JobExportError(
            f"Nothing to animate: the sketch '{sketch.name}' has no objects yet. Select strokes and use "
            "'New Object' (or 'Suggest Grouping') in the MultiSketch sidebar"
        )
    owners: list[tuple[bpy.types.Object, bpy.types.Collection]] = []
    owner_of: dict[str, str] = {}  # Grease Pencil object -> where its strokes already belong
    owner_of_data: dict[str, tuple[str, str]] = {}  # Grease Pencil data -> (object, where)
    background = scene_model.background_object(sketch)
    if background is not None:
        owner_of[background.name] = f"the background of '{sketch.name}'"
        owner_of_data[background.data.name] = (background.name, owner_of[background.name])
    for collection in collections:
        drawings = [ob for ob in collection.objects if ob.type == "GREASEPENCIL"]
        if len(drawings) > 1:
            names = ", ".join(f"'{ob.name}'" for ob in drawings)
            raise JobExportError(
                f"The object '{collection.name}' holds several Grease Pencil objects ({names}): "
                "join them into one (Ctrl+J) or move the extra ones to other objects"
            )
        ob = scene_model.drawing_object(collection)
        if scene_model.stroke_count(ob) == 0:
            raise JobExportError(
                f"The object '{collection.name}' has no strokes: assign strokes to it or delete the collection"
            )
        if ob.name in owner_of:
            raise JobExportError(
                f"The strokes of '{ob.name}' are in two objects, {owner_of[ob.name]} and '{collection.name}': "
                f"unlink '{ob.name}' from one of them (Object Properties > Collections)"
            )
        twin, where = owner_of_data.get(ob.data.name, (ob.name, ""))
        if twin != ob.name:
            raise JobExportError(
                f"'{ob.name}' of '{collection.name}' and '{twin}' of {where} share the same strokes (linked "
                f"duplicates): give '{ob.name}' its own (Object > Relations > Make Single User > Object & Data)"
            )
        owner_of[ob.name] = f"'{collection.name}'"
        owner_of_data[ob.data.name] = (ob.name, owner_of[ob.name])
        owners.append((ob, collection))
    if all(collection.multisketch.static for collection in collections):
        raise JobExportError(
            f"Nothing to animate: every object of '{sketch.name}' is static. Untick 'Static' on at least one"
        )
    return owners


def _read_strokes(ob: bpy.types.Object) -> list[_Stroke]:
    """The rest drawing's strokes as canvas-pixel Bezier chains with their width."""
    drawing = scene_model.rest_drawing(ob)
    if drawing is None:
        return []
    if ob.get(scene_model.CANVAS_KEY) is None:
        raise JobExportError(
            f"'{ob.name}' was not made by the MultiSketch import, so its strokes have no place on the sketch's "
            "canvas: move it out of the sketch's collections"
        )
    px_per_unit = 1.0 / float(ob[scene_model.CANVAS_KEY][0])
    offsets = scene_model.stroke_offsets(drawing)
    radius: bpy.types.Attribute | None = drawing.attributes.get("radius")
    if radius is not None:
        radii = scene_model.read_attribute(radius)
    else:
        radii = np.full(offsets[-1], DEFAULT_RADIUS_PX / px_per_unit, np.float32)
    strokes = []
    for index, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        points = scene_model.local_to_canvas(ob, scene_model.stroke_control_points(drawing, index))
        width = 2.0 * px_per_unit * float(radii[start:stop].mean()) if stop > start else 0.0
        strokes.append(_Stroke(points=points, width=width))
    return strokes


def _job_spec(settings: dict[str, Any], objects: list[ObjectSpec]) -> JobSpec:
    spec = protocol.JobSpec(sketch=SKETCH_FILE, objects=objects, **settings)
    try:
        spec.validate()
    except errors.UserError as exc:
        raise JobExportError(f"The job settings cannot work: {exc}") from None
    return spec


def _write_svg(path: Path, canvas: tuple[float, float], strokes: list[_Stroke]) -> None:
    width, height = canvas
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{_num(height)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}">'
    ]
    lines += [svg.path_element([stroke.points], _num(stroke.width), _num) for stroke in strokes]
    lines.append("</svg>")
    files.write_text(path, "\n".join(lines) + "\n")


def _num(value: float) -> str:
    """A coordinate with sub-micropixel precision and no needless digits."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
