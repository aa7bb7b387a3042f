"""Draw the project's own example sketches into examples/ (run once; the output is committed).

Each drawing is a list of strokes, each a cubic Bézier chain on a 256x256 canvas (y down), written as
one `<path d="M .. C ..">` per stroke, black, 3 px wide, in the layout of the shared multi-object
sketches: `sketch.svg`, `objects.tsv` (object -> stroke indices), `caption.txt`, `subprompts.tsv`.

Usage: python scripts/draw_examples.py [--output-dir examples]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CANVAS = 256
KAPPA = 4 / 3 * (np.sqrt(2) - 1)  # control-point distance of a cubic quarter circle, per unit radius

Chain = np.ndarray  # (3k+1, 2) cubic Bézier chain p0, c1, c2, p1, ...


def line(*points: tuple[float, float]) -> Chain:
    """A polyline, each piece a straight cubic segment."""
    p = np.asarray(points, float)
    pieces = [p[0:1]]
    for a, b in zip(p[:-1], p[1:], strict=True):
        pieces.append(np.stack([a + (b - a) / 3, a + 2 * (b - a) / 3, b]))
    return np.concatenate(pieces)


def smooth(*points: tuple[float, float], closed: bool = False) -> Chain:
    """A smooth curve through the points (Catmull-Rom turned into cubic Béziers)."""
    p = np.asarray(points, float)
    if closed:
        p = np.concatenate([p, p[:1]])
        padded = np.concatenate([p[-2:-1], p, p[1:2]])
    else:
        padded = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    pieces = [p[0:1]]
    for i in range(len(p) - 1):
        before, a, b, after = padded[i : i + 4]
        pieces.append(np.stack([a + (b - before) / 6, b - (after - a) / 6, b]))
    return np.concatenate(pieces)


def ellipse(cx: float, cy: float, rx: float, ry: float | None = None) -> Chain:
    """A closed ellipse of four cubic quarter arcs, starting at its rightmost point."""
    ry = rx if ry is None else ry
    unit = np.array(
        [[1, 0], [1, KAPPA], [KAPPA, 1], [0, 1], [-KAPPA, 1], [-1, KAPPA], [-1, 0]]
        + [[-1, -KAPPA], [-KAPPA, -1], [0, -1], [KAPPA, -1], [1, -KAPPA], [1, 0]],
        float,
    )
    return unit * [rx, ry] + [cx, cy]


@dataclass
class Example:
    name: str
    caption: str
    objects: dict[str, list[Chain]]  # object name -> its strokes, drawn in this order
    prompts: dict[str, str]  # object name -> a prompt about that object alone


def dog_and_ball() -> Example:
    dog = [
        smooth((52, 146), (70, 130), (104, 128), (128, 136), (130, 160), (104, 170), (70, 168), (52, 160), closed=True),
        ellipse(146, 118, 18, 16),
        smooth((134, 106), (124, 110), (120, 124), (128, 130), (133, 122)),
        ellipse(150, 113, 2),
        ellipse(163, 121, 2.5),
        smooth((148, 128), (155, 131), (161, 128)),
        smooth((114, 166), (116, 184), (114, 202)),
        smooth((124, 164), (128, 182), (128, 202)),
        smooth((66, 166), (62, 184), (58, 202)),
        smooth((78, 168), (76, 186), (74, 202)),
        smooth((52, 146), (40, 134), (36, 118)),
        line((108, 202), (118, 202)),
        line((124, 202), (134, 202)),
        line((52, 202), (62, 202)),
        line((70, 202), (80, 202)),
    ]
    ball = [
        ellipse(206, 186, 16),
        smooth((191, 180), (206, 186), (221, 180)),
        smooth((192, 194), (206, 190), (220, 194)),
    ]
    return Example(
        name="dog_and_ball",
        caption="A playful dog leaps toward a bouncing ball.",
        objects={"dog": dog, "ball": ball},
        prompts={"dog": "A playful dog leaps forward.", "ball": "A ball bounces up and down."},
    )


def kid(x: float, head_y: float, arm_up: bool, hair: str) -> list[Chain]:
    """A child seen from the front, standing on the ground line, one arm raised when `arm_up`."""
    neck = head_y + 14
    hip = neck + 42
    strokes = [
        ellipse(x, head_y, 14),
        ellipse(x - 5, head_y - 2, 1.5),
        ellipse(x + 5, head_y - 2, 1.5),
        smooth((x - 6, head_y + 5), (x, head_y + 8), (x + 6, head_y + 5)),
        line((x, neck), (x - 14, hip), (x + 14, hip), (x, neck)),
        smooth((x - 4, neck + 8), (x - 16, neck + 20), (x - 24, neck + 32)),
        smooth((x + 4, neck + 8), (x + 16, neck - 2), (x + 24, neck - 12))
        if arm_up
        else smooth((x + 4, neck + 8), (x + 16, neck + 20), (x + 24, neck + 32)),
        line((x - 6, hip), (x - 9, hip + 34)),
        line((x + 6, hip), (x + 9, hip + 34)),
    ]
    if hair == "pigtails":
        strokes += [
            smooth((x - 13, head_y - 6), (x - 22, head_y - 2), (x - 24, head_y + 8)),
            smooth((x + 13, head_y - 6), (x + 22, head_y - 2), (x + 24, head_y + 8)),
        ]
    else:
        strokes += [smooth((x - 13, head_y - 6), (x - 4, head_y - 14), (x + 8, head_y - 12), (x + 14, head_y - 4))]
    return strokes


def bow(x: float, y: float) -> Chain:
    """A small bow tied on a kite's tail: two triangles meeting at (x, y)."""
    return line((x - 7, y - 4), (x + 7, y + 4), (x + 7, y - 4), (x - 7, y + 4), (x - 7, y - 4))


def kids_and_kite() -> Example:
    kite = [
        line((196, 22), (222, 56), (196, 100), (170, 56), (196, 22)),
        line((196, 22), (196, 100)),
        line((170, 56), (222, 56)),
        smooth((196, 100), (188, 118), (202, 136), (192, 156)),
        bow(188, 118),
        bow(202, 136),
        smooth((196, 56), (160, 90), (128, 124), (120, 144)),
    ]
    return Example(
        name="kids_and_kite",
        caption="Two kids run and jump across a field while flying a kite that dances in the wind.",
        objects={
            "girl": kid(42, 138, arm_up=False, hair="pigtails"),
            "boy": kid(96, 148, arm_up=True, hair="short"),
            "kite": kite,
        },
        prompts={
            "girl": "A girl jumps up and down with joy.",
            "boy": "A boy runs while holding a kite string.",
            "kite": "A kite sways and dances in the wind.",
        },
    )


def path_element(chain: Chain) -> str:
    numbers = [f"{x:.2f} {y:.2f}" for x, y in chain]
    segments = " ".join(f"C {' '.join(numbers[i : i + 3])}" for i in range(1, len(numbers), 3))
    return (
        f'    <path d="M {numbers[0]} {segments}" stroke-width="3.0" fill="none" stroke="rgb(0, 0, 0)" '
        'stroke-opacity="1" stroke-linecap="round" stroke-linejoin="round"/>'
    )


def write(example: Example, output_dir: Path) -> None:
    folder = output_dir / example.name
    folder.mkdir(parents=True, exist_ok=True)
    paths, table, index = [], [], 0
    for name, strokes in example.objects.items():
        paths += [path_element(chain) for chain in strokes]
        table.append(f"{name}\t{','.join(str(i) for i in range(index, index + len(strokes)))}")
        index += len(strokes)
    svg = [
        '<?xml version="1.0" ?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{CANVAS}" height="{CANVAS}">',
        "  <g>",
        *paths,
        "  </g>",
        "</svg>",
    ]
    (folder / "sketch.svg").write_text("\n".join(svg) + "\n", encoding="utf-8")
    (folder / "objects.tsv").write_text("\n".join(table) + "\n", encoding="utf-8")
    (folder / "caption.txt").write_text(example.caption + "\n", encoding="utf-8")
    prompts = [f"{prompt}\t{name}" for name, prompt in example.prompts.items()]
    (folder / "subprompts.tsv").write_text("\n".join(prompts) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=EXAMPLES, help="where the folders go (default: examples/)")
    args = parser.parse_args()
    for example in (dog_and_ball(), kids_and_kite()):
        write(example, args.output_dir)
        print(args.output_dir / example.name)


if __name__ == "__main__":
    main()
