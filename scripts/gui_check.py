"""The add-on in a real Blender window, as a user meets it: install, import, Animate, Esc, a full run, Ctrl+Z.

Headless tests cannot see the modal operator, the keys, the progress bar or what the viewport draws,
so this script drives a real Blender 5.x window (its inputs: a command that starts Blender, and an X
display) and checks what a person would look at, with screenshots saved for a person to look at too:

1. the extension zip (scripts/build_extension.py) installed into a fresh Blender user folder;
2. Create Engine Environment, clicked in Preferences, goes on when that window is closed;
3. a sketch imported and the sidebar's MultiSketch tab open;
4. Animate with SDS run through `invoke` (the modal operator) with the Tiny prior: a progress bar, filled as far as
   the job reports;
5. Esc cancels it; a second Animate resumes and runs to the end: the result's strokes are drawn as
   curves (the viewport shows the same pixels after the file is saved and opened again);
6. Ctrl+Z takes the whole result back.

Keys go through xdotool, screenshots through ImageMagick's `import`; Blender runs this same file as
its startup script (`--python`), which then executes the code this script drops into a folder, in
Blender's main thread. Exit code 0 when every check passes.

Example, with Debian's Blender in the chroot of ../shared/tools/blender-gui (see its README):

    T=$(realpath ../shared/tools/blender-gui); $T/setup.sh
    python3 scripts/gui_check.py --display :99 \\
        --blender "$T/run.sh --user {user} --bind $PWD --bind $(pyenv root) -- blender"

With a Blender of your own: --blender "env BLENDER_USER_RESOURCES={user} /path/to/blender".
`{user}` stands for the fresh user folder; the command must see this checkout at the same path.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKETCH = REPO / "examples" / "dog_and_ball"
STEPS = 40  # per stage, at 32 px: long enough to see the progress and press Esc, a minute to finish
BAR_FROM = 0.05  # the progress the bar's screenshot waits for: its filled part is then 10 px wide, not a sliver


# --- Inside Blender: run the code files the checker drops into a folder ----------------------------


def _driver(folder: Path) -> None:
    """Every 0.2 s, run the first *.py file of `folder` in Blender's main thread; write NAME.out."""
    import bpy

    namespace: dict = {"bpy": bpy}

    def tick() -> float:
        names = sorted(folder.glob("*.py"))
        if names:
            path = names[0]
            try:
                namespace["result"] = None
                exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
                answer = {"ok": True, "result": namespace["result"]}
            except BaseException:  # the driver must go on, whatever the code does
                answer = {"ok": False, "error": traceback.format_exc()}
            written = path.with_suffix(".partial")
            written.write_text(json.dumps(answer), encoding="utf-8")
            written.rename(path.with_suffix(".out"))  # whole, or not there, when the checker looks
            path.unlink()
        return 0.2

    bpy.app.timers.register(tick, first_interval=0.5, persistent=True)
    (folder / "ready").write_text(str(os.getpid()), encoding="utf-8")


# --- On the host: start Blender, send code, press keys, take screenshots --------------------------


class Blender:
    def __init__(self, command: list[str], folder: Path, log: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [*command, "--python", str(Path(__file__).resolve()), "--", "--drive", str(folder)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not (folder / "ready").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Blender did not start its driver; see {log}")
            time.sleep(0.2)
        self.count = 0

    def run(self, code: str, timeout: float = 60):
        """Run `code` in Blender's main thread; what it assigns to `result` comes back."""
        self.count += 1
        path = self.folder / f"{self.count:04d}.py"
        path.with_suffix(".tmp").write_text(code, encoding="utf-8")
        path.with_suffix(".tmp").rename(path)
        out = path.with_suffix(".out")
        deadline = time.monotonic() + timeout
        while not out.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Blender did not run:\n{code}")
            time.sleep(0.1)
        answer = json.loads(out.read_text(encoding="utf-8"))
        if not answer["ok"]:
            raise SystemExit(f"Blender failed on:\n{code}\n{answer['error']}")
        return answer["result"]

    def wait_for(self, expression: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.run(f"result = bool({expression})"):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {expression}")
            time.sleep(0.3)


def _xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True)


def _press(key: str, at: tuple[int, int]) -> None:
    """A key with the pointer over a place of the screen: focus follows the pointer."""
    _xdotool("mousemove", str(at[0]), str(at[1]))
    time.sleep(0.4)
    _xdotool("key", key)
    time.sleep(0.5)


def _screenshot(path: Path) -> list[list[tuple[int, int, int]]]:
    """The whole screen as a PNG at `path`, and its pixels (rows of RGB) read back through a PPM."""
    time.sleep(1.0)  # software OpenGL redraws slowly
    subprocess.run(["import", "-window", "root", str(path)], check=True)
    ppm = subprocess.run(["convert", str(path), "-depth", "8", "ppm:-"], check=True, capture_output=True).stdout
    parts = ppm.split(maxsplit=4)
    width, height, data = int(parts[1]), int(parts[2]), parts[4]
    return [[tuple(data[3 * (y * width + x) : 3 * (y * width + x) + 3]) for x in range(width)] for y in range(height)]


def _crop(pixels: list, box: dict) -> list:
    return [row[box["x"] : box["x"] + box["width"]] for row in pixels[box["y"] : box["y"] + box["height"]]]


# Screen rectangles (top-left origin) of the first 3D viewport's regions; sidebar open on MultiSketch.
LAYOUT = """
window = bpy.context.window_manager.windows[0]
area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
regions = {r.type: r for r in area.regions}
area.spaces.active.overlay.show_relationship_lines = False  # their dashes move on reopening: not strokes
if not area.spaces.active.show_region_ui:  # open the sidebar; its tab can be chosen once it is drawn
    area.spaces.active.show_region_ui = True
else:
    regions["UI"].active_panel_category = "MultiSketch"
area.tag_redraw()
def box(r):
    return {"x": r.x, "y": window.height - r.y - r.height, "width": r.width, "height": r.height}
sidebar, view = box(regions["UI"]), box(regions["WINDOW"])
view["width"] = sidebar["x"] - view["x"]  # the part of the viewport that the sidebar does not cover
bar = bpy.context.preferences.themes[0].user_interface.wcol_progress
result = {"sidebar": sidebar, "view": view, "tab": regions["UI"].active_panel_category,
          "progress": [round(255 * c) for c in bar.item[:3]], "progress_empty": [round(255 * c) for c in bar.inner[:3]]}
"""

VIEW3D = """
window = bpy.context.window_manager.windows[0]
area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
region = next(r for r in area.regions if r.type == "WINDOW")
override = dict(window=window, area=area, region=region)
"""


def check(blender_command: str, display: str, out: Path, engine_python: Path) -> list[tuple[str, bool, str]]:
    os.environ["DISPLAY"] = display
    for tool in ("xdotool", "import", "convert"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (Debian: apt-get install xdotool imagemagick)")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    user = out / "blender-user"
    command = shlex.split(blender_command.replace("{user}", str(user)))
    built = subprocess.run(
        [str(engine_python), str(REPO / "scripts" / "build_extension.py"), "--output-dir", str(out / "dist")],
        check=True,
        capture_output=True,
        text=True,
    )
    archive = built.stdout.strip().splitlines()[-1]
    installed = subprocess.run(
        [*command, "--command", "extension", "install-file", "--repo", "user_default", "--enable", archive],
        capture_output=True,
        text=True,
    )
    results: list[tuple[str, bool, str]] = []
    results.append(("extension installed from its zip", "Installed" in installed.stdout, installed.stdout[-300:]))

    blender = Blender(command, out / "drive", out / "blender.log")
    try:
        return results + _in_the_window(blender, out, engine_python)
    finally:
        blender.process.terminate()
        blender.process.wait(timeout=30)


def _in_the_window(blender: Blender, out: Path, engine_python: Path) -> list[tuple[str, bool, str]]:
    """Everything done in the running window, each check as (what, passed, detail)."""
    results: list[tuple[str, bool, str]] = []
    screen = blender.run("w = bpy.context.window_manager.windows[0]; result = [w.width, w.height]")
    middle = (screen[0] // 2, screen[1] // 2)
    _press("Escape", middle)  # the splash
    blender.run(
        "import bpy\n"
        "prefs = bpy.context.preferences.addons['bl_ext.user_default.multisketch'].preferences\n"
        f"prefs.python_path, prefs.cache_dir, prefs.device = {str(engine_python)!r}, {str(out / 'cache')!r}, 'cpu'\n"
        "bpy.context.preferences.view.show_splash = False\n"
        "for ob in list(bpy.data.objects): bpy.data.objects.remove(ob)\n"
        f"bpy.ops.multisketch.import_svg(filepath={str(SKETCH / 'sketch.svg')!r}, "
        f"objects_file={str(SKETCH / 'objects.tsv')!r})\n"
        "s = bpy.context.scene.multisketch\n"
        "s.prompt, s.prior, s.size, s.frames, s.quality = 'a dog chases a ball', 'tiny', 32, 8, 'CUSTOM'\n"
        f"s.steps = {STEPS}\n"
        "bpy.ops.ed.undo_push(message='Import and settings')\n"  # as the UI pushes after each operator
    )
    results.append(_closing_preferences_keeps_installing(blender, out, engine_python))
    blender.run(LAYOUT)
    time.sleep(1.0)
    layout = blender.run(LAYOUT)
    pixels = _screenshot(out / "1-imported.png")
    results.append(("sidebar shows the MultiSketch tab", layout["tab"] == "MultiSketch", layout["tab"]))
    results.append(("the imported sketch is drawn", _dark_pixels(_crop(pixels, layout["view"])) > 200, ""))

    blender.run(VIEW3D + "with bpy.context.temp_override(**override): bpy.ops.multisketch.animate('INVOKE_DEFAULT')")
    # Past 5%, so that the bar's filled part (a sliver at 1 step of 120) is wide enough to find and measure.
    blender.wait_for(f"bpy.context.window_manager.multisketch_job.progress >= {BAR_FROM}", timeout=180)
    layout = blender.run(LAYOUT)
    job = "bpy.context.window_manager.multisketch_job"
    before = blender.run(f"result = {job}.progress")
    pixels = _screenshot(out / "2-progress.png")
    after, text = blender.run(f"result = [{job}.progress, f'{{{job}.stage}} step {{{job}.step}}/{{{job}.steps}}']")
    bar = _progress_bar(_crop(pixels, layout["sidebar"]), tuple(layout["progress"]), tuple(layout["progress_empty"]))
    results.append(("a progress bar while the job runs", *_bar_agrees(bar, before, after, text)))

    view_centre = (
        layout["view"]["x"] + layout["view"]["width"] // 2,
        layout["view"]["y"] + layout["view"]["height"] // 2,
    )
    _press("Escape", view_centre)
    blender.wait_for("not bpy.context.window_manager.multisketch_job.running", timeout=30)
    message = blender.run("result = bpy.context.window_manager.multisketch_job.message")
    results.append(("Esc cancels the job", "Cancelled" in message, message))

    blender.run(VIEW3D + "with bpy.context.temp_override(**override): bpy.ops.multisketch.animate('INVOKE_DEFAULT')")
    blender.wait_for("not bpy.context.window_manager.multisketch_job.running", timeout=600)
    message = blender.run("result = bpy.context.window_manager.multisketch_job.message")
    results.append(("a second Animate resumes and finishes", message.startswith("Animated"), message))
    blender.run("bpy.context.scene.frame_set(bpy.context.scene.frame_start + 6)")
    before = _crop(_screenshot(out / "3-result.png"), layout["view"])

    has_result = (
        "import importlib\n"
        "wb = importlib.import_module('bl_ext.user_default.multisketch.writeback')\n"
        "sm = importlib.import_module('bl_ext.user_default.multisketch.scene_model')\n"
        "(sketch,) = sm.sketch_collections(bpy.context.scene)\n"
        "result = wb.has_result(sketch)"
    )
    _press("ctrl+z", view_centre)
    gone = not blender.run(has_result)
    _screenshot(out / "4-undone.png")
    _press("ctrl+shift+z", view_centre)
    back = blender.run(has_result)
    results.append(("Ctrl+Z takes the whole result back, Ctrl+Shift+Z brings it again", gone and back, ""))

    blend = out / "result.blend"
    blender.run(
        "bpy.context.scene.frame_set(bpy.context.scene.frame_start + 6)\n"
        f"bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})\n"
        f"bpy.ops.wm.open_mainfile(filepath={str(blend)!r})\n"
    )
    blender.run(LAYOUT)
    after = _crop(_screenshot(out / "5-result-reopened.png"), layout["view"])
    changed = sum(a != b for row_a, row_b in zip(before, after, strict=True) for a, b in zip(row_a, row_b, strict=True))
    results.append(("the result's strokes are drawn as curves (same pixels after reopening)", changed == 0,
                    f"{changed} pixels differ"))  # fmt: skip
    return results


# A stand-in base Python for Create Engine Environment: `-m venv DIR` takes 3 s and makes an environment whose
# Python answers pip with success and the environment check with a report, as a real one would, offline.
STAND_IN_BASE_PYTHON = """#!/bin/sh
sleep 3
mkdir -p "$3/bin"
printf '%s\\n' '#!/bin/sh' 'if [ "$2" = pip ]; then exit 0; fi' \\
    'echo "{\\"device\\": \\"cpu\\", \\"torch\\": \\"stand-in\\"}"' > "$3/bin/python"
chmod +x "$3/bin/python"
"""


def _closing_preferences_keeps_installing(blender: Blender, out: Path, engine_python: Path) -> tuple[str, bool, str]:
    """Create Engine Environment clicked in the Preferences window, which is then closed: every step still runs,
    the environment gets its stamp and becomes the engine's Python."""
    stand_in = out / "slow-base-python"
    stand_in.write_text(STAND_IN_BASE_PYTHON, encoding="utf-8")
    stand_in.chmod(0o755)
    blender.run(
        "bpy.context.preferences.system.use_online_access = True\n"
        "bpy.ops.screen.userpref_show()\n"
        "bpy.context.preferences.active_section = 'ADDONS'\n"
    )
    time.sleep(1.0)
    blender.run(
        "window = next(w for w in bpy.context.window_manager.windows if w.screen.is_temporary)\n"
        "area = next(a for a in window.screen.areas if a.type == 'PREFERENCES')\n"
        "with bpy.context.temp_override(window=window, area=area):\n"
        f"    bpy.ops.multisketch.create_engine_env('INVOKE_DEFAULT', base_python={str(stand_in)!r})\n"
    )
    _screenshot(out / "0-preferences-installing.png")
    blender.run(
        "window = next(w for w in bpy.context.window_manager.windows if w.screen.is_temporary)\n"
        "with bpy.context.temp_override(window=window): bpy.ops.wm.window_close()\n"
    )
    prefs = "bpy.context.preferences.addons['bl_ext.user_default.multisketch'].preferences"
    stamp = out / "cache" / "engine-env" / "multisketch-environment.json"
    try:
        blender.wait_for(f"{prefs}.python_path.endswith('engine-env/bin/python')", timeout=30)
    except SystemExit as exc:
        return "closing Preferences does not cancel Create Engine Environment", False, str(exc)
    windows = blender.run(
        f"result = len(bpy.context.window_manager.windows); {prefs}.python_path = {str(engine_python)!r}"
    )
    detail = f"{windows} window(s) left; the environment's stamp {'written' if stamp.is_file() else 'missing'}"
    return "closing Preferences does not cancel Create Engine Environment", stamp.is_file() and windows == 1, detail


def _dark_pixels(pixels: list) -> int:
    return sum(max(p) < 80 for row in pixels for p in row)


def _near(pixel: tuple, colour: tuple, tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def _progress_bar(pixels: list, filled: tuple, empty: tuple) -> dict | None:
    """The progress bar found by its shape, as a person sees it at any progress: at least 10 rows that begin in the
    filled colour and go on in the empty one across half the region or more. None if there is none.

    A count of filled pixels alone depends on how far the job is (2 steps of 120 fill a few pixels)."""

    def run_end(row: list, start: int, colours: tuple) -> int:
        """The last x of the run from `start` of pixels in `colours`, across gaps of 2 px (the filled part's outline);
        the bar's text breaks some rows' runs sooner."""
        x, end = start, start
        while x + 1 < len(row) and x - end < 3:
            x += 1
            if any(_near(row[x], c) for c in colours):
                end = x
        return end

    bands: list[list[tuple]] = []  # runs of consecutive rows with the same left edge (+-2: rounded corners)
    for y, row in enumerate(pixels):
        left = next((x for x, p in enumerate(row) if _near(p, filled)), None)
        if left is None or not all(_near(p, filled) for p in row[left : left + 3]):
            continue
        found = (y, left, run_end(row, left, (filled, empty)), run_end(row, left, (filled,)))
        last = bands[-1][-1] if bands else None
        if last and y == last[0] + 1 and abs(left - last[1]) <= 2:
            bands[-1].append(found)
        else:
            bands.append([found])
    for band in sorted(bands, key=len, reverse=True):
        # The rows above and below the text show the whole bar: the longest runs.
        left, right, fill = sorted(r[1] for r in band)[len(band) // 2], max(r[2] for r in band), max(r[3] for r in band)
        if len(band) >= 10 and right - left + 1 >= len(pixels[0]) // 2:
            return {
                "x": left,
                "y": band[0][0],
                "width": right - left + 1,
                "height": len(band),
                "filled": fill - left + 1,
            }
    return None


def _bar_agrees(bar: dict | None, before: float, after: float, text: str) -> tuple[bool, str]:
    """Whether the bar's filled part matches the job's progress, read just before and after the screenshot (4 px of
    slack for the outlines and their antialiasing): a bar stuck at one width, or not drawn, fails."""
    if bar is None:
        return False, f"no progress bar in the sidebar while the job reports {text}"
    low = before * bar["width"] - 4
    high = after * bar["width"] + 4
    detail = (
        f"{bar['width']}x{bar['height']} px bar at {bar['x']},{bar['y']} of the sidebar, {bar['filled']} px filled; "
        f"{low:.0f}-{high:.0f} px expected from progress {before:.3f}-{after:.3f} ({text})"
    )
    return low <= bar["filled"] <= high, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blender", required=True, help="command that starts Blender; {user}: its user folder")
    parser.add_argument("--display", default=os.environ.get("DISPLAY", ":99"), help="the X display Blender uses")
    parser.add_argument("--out", type=Path, default=REPO / "gui-check", help="screenshots, logs, files")
    parser.add_argument("--engine-python", type=Path, default=REPO / ".venv" / "bin" / "python")
    args = parser.parse_args()
    results = check(args.blender, args.display, args.out.resolve(), args.engine_python)
    for name, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {name}" + (f"  ({detail.strip()})" if detail.strip() else ""))
    print(f"screenshots in {args.out}")
    return 0 if all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    if "--drive" in sys.argv:
        _driver(Path(sys.argv[sys.argv.index("--drive") + 1]))
    else:
        sys.exit(main())
