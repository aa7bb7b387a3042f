"""`python -m server.environment_check`: what this engine environment will compute on, as one JSON line.

Run by the add-on right after it made or updated an environment, so that a CPU-only torch on a GPU machine
(or an environment that cannot import the engine's packages) is seen there and then, not as a run that
quietly takes days. It imports what a job imports and asks torch for the device `auto` would pick.
Exit 0 with the report on standard output; exit 1 with one line on standard error when a package is missing.
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any


def environment_report() -> dict[str, Any]:
    """The device `auto` would use, torch's version and build, and the GPU's name and memory (None without one)."""
    import diffusers
    import torch
    import transformers

    from .devices import resolve_device

    device = resolve_device("auto")
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(0)
        gpu_name, gpu_memory_bytes = properties.name, int(properties.total_memory)
    elif device.type == "mps":
        gpu_name = "Apple GPU (MPS)"
        gpu_memory_bytes = int(torch.mps.recommended_max_memory())  # the share of unified memory torch may use
    build = (
        f"ROCm {torch.version.hip}" if torch.version.hip else f"CUDA {torch.version.cuda}" if torch.version.cuda else ""
    )
    return {
        "device": device.type,
        "torch": torch.__version__,
        "torch_build": build or ("macOS" if sys.platform == "darwin" else "CPU"),
        "gpu": gpu_name,
        "gpu_memory_bytes": gpu_memory_bytes,
        "python": platform.python_version(),
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def main() -> int:
    """Print the report; a missing package is one line on standard error and exit code 1."""
    try:
        report = environment_report()
    except ImportError as exc:
        print(f"this environment cannot run the engine: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
