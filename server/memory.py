"""How a job uses the GPU's memory: the memory mode, the VAE encoder's checkpointing and how many objects' own
stages run together, chosen from the memory that is free once the model is loaded.

Most of an SDS pass's memory is the VAE encoder's activations, kept for the backward pass: they grow with the
frames and the pixels of each video scored, and a batch of stages scores one video each. So the plan is a
matter of arithmetic on the free bytes, and is tested without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
MEMORY_MODES = ("auto", "standard", "low")
# Bytes of activations a video needs per frame and pixel in one SDS pass of ModelScope's VAE and UNet (fp16), the
# first of a batch and each one more, with the VAE encoder's activations kept or recomputed in the backward pass.
# Kept: measured on an H200 at 24 frames of 256 px (BENCHMARKS.md, "Speed and memory"): 13.4 GiB peak for one
# object, 10.0 above the weights; 36.6 GiB for three, 11.6 for each one more. Recomputed: 9.6 GiB for one on an
# H100, 6.2 above the weights; one more scaled by the same ratio as kept.
KEPT_FIRST, KEPT_MORE = 6830, 7920
CHECKPOINTED_FIRST, CHECKPOINTED_MORE = 4230, 4910
# What the plan leaves free for the allocator's fragmentation, the rasterizer and the motion networks.
HEADROOM = 0.85


@dataclass(frozen=True)
class MemoryPlan:
    """What `plan_memory` chose, and the one line that says why (for the log and the progress events)."""

    mode: str  # "standard" or "low"
    vae_checkpointing: bool  # of the whole batch; the low-memory mode recomputes a few frames at a time instead
    object_batch: int
    reason: str


def plan_memory(
    mode: str, object_batch: int | None, free_bytes: int | None, video_pixels: int, moving_objects: int
) -> MemoryPlan:
    """The plan for `mode` ("auto", "standard", "low") and `object_batch` (None: as many as fit).

    `free_bytes` is the GPU memory free after the model was loaded (None off a GPU: nothing to plan, one stage at a
    time unless asked), `video_pixels` the frames times the pixels of one frame. "auto" takes the low-memory mode
    when not even one checkpointed pass fits.
    """
    if mode == "low":
        return MemoryPlan("low", False, 1, "low-memory mode (asked for): one object at a time")
    if free_bytes is None:
        return MemoryPlan("standard", False, object_batch or 1, "not on a GPU")
    usable = free_bytes * HEADROOM / video_pixels  # bytes per frame pixel
    kept = _videos_that_fit(usable, KEPT_FIRST, KEPT_MORE)
    checkpointed = _videos_that_fit(usable, CHECKPOINTED_FIRST, CHECKPOINTED_MORE)
    threshold = CHECKPOINTED_FIRST * video_pixels / HEADROOM / GIB
    free = f"{free_bytes / GIB:.1f} GiB free after loading the model, the standard mode needs {threshold:.1f}"
    if mode == "auto" and checkpointed < 1:
        return MemoryPlan("low", False, 1, f"low-memory mode ({free}): one object at a time")
    wanted = max(1, moving_objects)
    batch = object_batch or min(wanted, max(1, kept if kept >= 1 else checkpointed))
    vae_checkpointing = kept < batch
    how = "VAE encoder checkpointed" if vae_checkpointing else "VAE activations kept"
    return MemoryPlan("standard", vae_checkpointing, batch, f"{free}: {how}, {batch} object(s) at a time")


def _videos_that_fit(usable: float, first: int, more: int) -> int:
    return 0 if usable < first else 1 + int((usable - first) // more)
