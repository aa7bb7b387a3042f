"""Live-Sketch's same-draw augmentation: one random perspective warp and square crop shared by all frames.

The diffusion prior sees a randomly warped and cropped view of the video, so that the motion cannot exploit
one fixed pixel grid. Every frame gets the very same warp, otherwise the warp itself would look like motion.
Equivalent to torchvision's `RandomPerspective(distortion_scale=0.5, fill=1, p=1)` followed by
`RandomResizedCrop(size, scale=(0.4, 1), ratio=(1, 1))`, drawn once per call, but done as a single
differentiable resampling with torch ops (torchvision is not a dependency of the engine).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DISTORTION = 0.5
CROP_SCALE = (0.4, 1.0)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in [low, high)."""
    return int(torch.randint(low, high, (1,), generator=generator).item())


def _perspective_corners(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Where the image corners go (top-left, top-right, bottom-right, bottom-left), as RandomPerspective draws them."""
    bound_x = int(DISTORTION * (width // 2)) + 1
    bound_y = int(DISTORTION * (height // 2)) + 1
    corners = [
        (_randint(0, bound_x, generator), _randint(0, bound_y, generator)),
        (_randint(width - bound_x, width, generator), _randint(0, bound_y, generator)),
        (_randint(width - bound_x, width, generator), _randint(height - bound_y, height, generator)),
        (_randint(0, bound_x, generator), _randint(height - bound_y, height, generator)),
    ]
    return torch.tensor(corners, dtype=torch.float64)


def _homography(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The 3x3 projective map that takes the four `source` points onto the four `target` points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source.tolist(), target.tolist(), strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        rhs += [u, v]
    coefficients = torch.linalg.solve(torch.tensor(rows, dtype=torch.float64), torch.tensor(rhs, dtype=torch.float64))
    return torch.cat([coefficients, coefficients.new_ones(1)]).reshape(3, 3)


def _crop_box(height: int, width: int, generator: torch.Generator) -> tuple[float, float, float, float]:
    """(left, top, crop width, crop height) of a random square covering 40 to 100 % of the area."""
    fraction = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * float(torch.rand(1, generator=generator).item())
    side = min(round(math.sqrt(height * width * fraction)), height, width)
    top = _randint(0, height - side + 1, generator)
    left = _randint(0, width - side + 1, generator)
    return float(left), float(top), float(side), float(side)


def random_view(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """One random warp as a `grid_sample` grid (height, width, 2): for each output pixel, where to read the input."""
    right, bottom = width - 1, height - 1
    image_corners = torch.tensor([[0, 0], [right, 0], [right, bottom], [0, bottom]], dtype=torch.float64)
    warped_corners = _perspective_corners(height, width, generator)
    # The warp moves the image corners onto the drawn corners, so an output pixel reads the input at the inverse map.
    output_to_input = _homography(warped_corners, image_corners)
    left, top, crop_width, crop_height = _crop_box(height, width, generator)
    # The crop is resized back to the full size: output pixel centres spread evenly over the crop.
    ys, xs = torch.meshgrid(
        top + (torch.arange(height, dtype=torch.float64) + 0.5) * crop_height / height - 0.5,
        left + (torch.arange(width, dtype=torch.float64) + 0.5) * crop_width / width - 0.5,
        indexing="ij",
    )
    mapped = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1) @ output_to_input.T
    source = mapped[..., :2] / mapped[..., 2:]
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], dtype=torch.float64)
    return (source * scale - 1.0).float()


def augment(video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Warp every frame of `video` (F, C, H, W), values in [0, 1] on white, by one shared random view.

    Differentiable in `video`. Outside the warped image the result is white, as RandomPerspective's fill=1.
    """
    frames, _, height, width = video.shape
    grid = random_view(height, width, generator).to(device=video.device, dtype=video.dtype)
    # Sampling the ink (1 - video) with zero padding fills the outside with white, anti-aliased at the border.
    ink = F.grid_sample(
        1.0 - video, grid.expand(frames, height, width, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return 1.0 - ink
