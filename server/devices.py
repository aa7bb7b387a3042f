"""Where the job runs: `auto` takes an NVIDIA (or ROCm) GPU, else an Apple GPU, else the CPU.

The choice is made from two availability answers only (`pick_device`), so it can be tested on a machine that
has neither GPU by faking `torch.cuda.is_available` and `torch.backends.mps.is_available`.
"""

from __future__ import annotations

import torch

from .errors import UserError
from .protocol import DEVICES

_USE_INSTEAD = "use --device cpu or auto"


def pick_device(name: str, cuda_available: bool, mps_available: bool) -> str:
    """The device type for a job's `device` setting; UserError naming what is missing when it is absent.

    ROCm builds of torch answer through `torch.cuda` as well, so an AMD GPU is "cuda" here.
    """
    if name == "auto":
        return "cuda" if cuda_available else "mps" if mps_available else "cpu"
    if name == "cuda" and not cuda_available:
        raise UserError(f"device 'cuda' was asked for but no CUDA GPU is available: {_USE_INSTEAD}")
    if name == "mps" and not mps_available:
        raise UserError(
            "device 'mps' was asked for but no Apple GPU (MPS) is available: it needs a Mac with Apple Silicon, "
            f"macOS 12.3 or later and torch's macOS build; {_USE_INSTEAD}"
        )
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}: use {', '.join(DEVICES)}")
    return name


def resolve_device(name: str) -> torch.device:
    """The torch device for a job's `device` setting, asking this machine's torch what it has."""
    return torch.device(pick_device(name, torch.cuda.is_available(), torch.backends.mps.is_available()))


def model_dtype(device: torch.device) -> torch.dtype:
    """The dtype the large video model is loaded in on `device`.

    fp16 on CUDA halves the memory and the time. On MPS fp32, the safe choice: fp16 there has a history of NaN
    or black outputs and of ops without fp16 kernels (group norm, attention), this project could not run it
    on a Mac, and a Mac's unified memory holds the 1.7 B model in fp32 (about 7 GB). The CPU has no fast fp16.
    """
    return torch.float16 if device.type == "cuda" else torch.float32


def lane_devices(requested: str | None, device: torch.device, gpu_count: int) -> list[torch.device]:
    """The devices a job's stages spread over: `requested` (comma-separated, e.g. "cuda:0,cuda:1"), or by default
    every visible GPU when the job runs on CUDA and more than one is there; the first runs the joint stage."""
    if requested is None:
        if device.type == "cuda" and gpu_count > 1:
            return [torch.device("cuda", index) for index in range(gpu_count)]
        return [device]
    chosen = []
    for name in (part.strip() for part in requested.split(",") if part.strip()):
        try:
            lane = torch.device(name)
        except RuntimeError:
            raise UserError(f"--devices: {name!r} is not a device (e.g. cuda:0,cuda:1)") from None
        if lane.type != device.type:
            raise UserError(f"--devices: {name} is not a {device.type} device, and the job runs on {device.type}")
        if lane.type == "cuda" and (lane.index or 0) >= gpu_count:
            raise UserError(f"--devices: there is no {name} ({gpu_count} GPU(s) visible)")
        chosen.append(lane)
    if not chosen:
        raise UserError("--devices names no device: give e.g. cuda:0,cuda:1")
    return chosen


def free_gpu_bytes(device: torch.device) -> int | None:
    """GPU memory this process can still take (None off CUDA): what the driver has free and what torch holds
    unused, within any cap set by `torch.cuda.set_per_process_memory_fraction`."""
    if device.type != "cuda":
        return None
    index = torch.cuda.current_device() if device.index is None else device.index
    free, total = torch.cuda.mem_get_info(index)
    allocated = torch.cuda.memory_allocated(index)
    room = free + torch.cuda.memory_reserved(index) - allocated
    cap = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch 2.9 and later
    if cap is not None:
        room = min(room, int(cap(index) * total) - allocated)
    return max(room, 0)
