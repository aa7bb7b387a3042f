"""Which build of torch the engine's environment gets, chosen from what this machine has.

PyPI's torch is a CUDA build on Linux (it needs a recent NVIDIA driver) and a CPU build on Windows, so
installing it plainly gives many machines the wrong one. The choice here is pure (`choose_torch_build`
from `MachineFacts`), so it can be tested with faked facts; `gather_machine_facts` asks the real machine.
No bpy and nothing outside the standard library: the tests load this file by its path.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WHEEL_INDEX = "https://download.pytorch.org/whl"
# PyTorch's CUDA wheel indexes, newest first: (CUDA version, index name, the newest torch (major, minor) it holds,
# None while it still gets new releases). A build runs on a driver that supports its CUDA version or a newer one.
CUDA_BUILDS: tuple[tuple[tuple[int, int], str, tuple[int, int] | None], ...] = (
    ((12, 8), "cu128", None),
    ((12, 6), "cu126", None),
    ((12, 4), "cu124", (2, 6)),
    ((12, 1), "cu121", (2, 5)),
    ((11, 8), "cu118", (2, 7)),
)
# ROCm on Linux: the 6.2 line's index with torch 2.6 and 2.7 (the plain rocm6.2 index ends at torch 2.5, below
# the engine's minimum). Its wheels bring ROCm's libraries with them; the machine needs AMD's kernel driver.
ROCM_INDEX = "rocm6.2.4"
CPU_INDEX = "cpu"
NVIDIA_SMI_TIMEOUT_S = 5.0
ROCM_PROBES = ("/opt/rocm/bin/rocminfo",)
_CUDA_HEADER = re.compile(r"CUDA Version\s*:\s*(\d+)\.(\d+)")
# A plain torch requirement: "torch" or "torch>=2.6,<3" (anything else is left to pip's own reading of the file).
_VERSION_CLAUSE = r"(==|!=|>=|<=|~=|<|>)\s*\d+(\.\d+)*(\.\*)?"
_TORCH_LINE = re.compile(rf"^torch(\s*{_VERSION_CLAUSE}(\s*,\s*{_VERSION_CLAUSE})*)?$")
_MINIMUM = re.compile(r">=\s*(\d+)\.(\d+)")

# The choices offered in the preferences (EnumProperty items): automatic, or one kind forced by hand.
OVERRIDE_ITEMS = (
    ("AUTO", "Automatic", "The build this machine's GPU needs (from nvidia-smi, rocminfo and the platform)"),
    ("CUDA", "CUDA", "An NVIDIA GPU's build, for the CUDA version the driver supports"),
    ("ROCM", "ROCm", "An AMD GPU's build (Linux only)"),
    ("CPU", "CPU", "The CPU-only build (small; slow with the real model)"),
)


@dataclass(frozen=True)
class MachineFacts:
    """What the choice looks at: `platform.system()`, `platform.machine()`, what `nvidia-smi` printed (None:
    not installed) and whether `rocminfo` exists."""

    system: str
    machine: str
    nvidia_smi_output: str | None
    has_rocminfo: bool


@dataclass(frozen=True)
class TorchBuild:
    """The plan: a sentence for the user, the pip arguments that install it, and a warning when it may not work."""

    kind: str  # "cuda", "rocm", "macos" or "cpu"
    label: str
    pip_arguments: tuple[str, ...]
    warning: str = ""

    @property
    def index_url(self) -> str:
        """The wheel index this build comes from ("" for PyPI): the stamp keeps it to notice a changed plan."""
        return self.pip_arguments[1] if self.pip_arguments[:1] == ("--index-url",) else ""


def driver_cuda_version(nvidia_smi_output: str | None) -> tuple[int, int] | None:
    """The CUDA version the NVIDIA driver supports, from nvidia-smi's header ("CUDA Version: 12.4")."""
    found = _CUDA_HEADER.search(nvidia_smi_output or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def torch_requirement(requirements_text: str) -> str:
    """The engine's torch line ("torch>=2.6,<3"), so the GPU build is installed within the engine's range.

    "" when there is none or it is malformed: pip then reports the file's error in its own words.
    """
    for line in requirements_text.splitlines():
        text = line.split("#", 1)[0].strip()
        if _TORCH_LINE.match(text):
            return text.replace(" ", "")
    return ""


def minimum_torch(requirement: str) -> tuple[int, int]:
    """The lowest torch (major, minor) a requirement allows; (0, 0) when it names none."""
    found = _MINIMUM.search(requirement)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _index(name: str) -> tuple[str, ...]:
    return ("--index-url", f"{WHEEL_INDEX}/{name}")


def _cuda_build(driver: tuple[int, int] | None, minimum: tuple[int, int]) -> TorchBuild | None:
    """The newest CUDA build the driver supports that holds a torch the engine accepts (None: no such build).

    Without a driver version (chosen by hand, no nvidia-smi) the newest build is taken.
    """
    for cuda, name, newest_torch in CUDA_BUILDS:
        if driver is not None and cuda > driver:
            continue
        if newest_torch is not None and newest_torch < minimum:
            continue
        version = f"{cuda[0]}.{cuda[1]}"
        reason = f"NVIDIA driver supports CUDA {driver[0]}.{driver[1]}" if driver else "chosen by hand"
        return TorchBuild("cuda", f"CUDA {version} build ({reason})", _index(name))
    return None


def choose_torch_build(facts: MachineFacts, override: str = "AUTO", requirement: str = "") -> TorchBuild:
    """The torch build for this machine, or the kind `override` asks for (one of OVERRIDE_ITEMS' keys).

    `requirement` is the engine's torch line: a wheel index that holds no torch in its range is never chosen.
    """
    minimum = minimum_torch(requirement)
    system = facts.system
    driver = driver_cuda_version(facts.nvidia_smi_output)
    apple_silicon = system == "Darwin" and facts.machine.lower() in ("arm64", "aarch64")
    if override == "CPU":
        if system == "Darwin":  # PyPI's macOS wheel is the CPU build (with MPS, which Device = CPU leaves unused)
            return TorchBuild("macos", "CPU build (macOS: PyPI's build; set Device to CPU)", ())
        return TorchBuild("cpu", "CPU build (chosen by hand)", _index(CPU_INDEX))
    if override == "ROCM" or (override == "AUTO" and system == "Linux" and driver is None and facts.has_rocminfo):
        reason = "AMD GPU: rocminfo found" if override == "AUTO" else "chosen by hand"
        warning = "" if system == "Linux" else "torch's ROCm builds exist for Linux only: pip will find none here."
        return TorchBuild("rocm", f"ROCm build ({reason})", _index(ROCM_INDEX), warning)
    if system == "Darwin" and override == "AUTO":
        if apple_silicon:
            return TorchBuild("macos", "macOS build (Apple Silicon: MPS)", ())
        return TorchBuild(
            "macos",
            "macOS build (Intel Mac: CPU only)",
            (),
            "torch 2.3 and later have no wheels for Intel Macs: pip will find none in the engine's range.",
        )
    if override == "CUDA" or driver is not None:
        chosen = _cuda_build(driver, minimum)
        if chosen is not None:
            if system == "Darwin":
                return TorchBuild(chosen.kind, chosen.label, chosen.pip_arguments, "macOS has no CUDA builds.")
            return chosen
        assert driver is not None  # without a driver version the newest build is always taken
        return TorchBuild(
            "cpu",
            f"CPU build (the NVIDIA driver supports only CUDA {driver[0]}.{driver[1]})",
            _index(CPU_INDEX),
            "Update the NVIDIA driver to use the GPU: torch's CUDA builds need CUDA 11.8 or newer.",
        )
    if facts.nvidia_smi_output is not None:
        return TorchBuild("cpu", "CPU build (nvidia-smi found no working NVIDIA driver)", _index(CPU_INDEX))
    return TorchBuild("cpu", "CPU build (no NVIDIA or AMD GPU found)", _index(CPU_INDEX))


def _run_nvidia_smi() -> str | None:
    """nvidia-smi's output (its header names the driver's CUDA version); None when it is not installed."""
    try:
        done = subprocess.run(
            ["nvidia-smi"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return None
    except (OSError, subprocess.TimeoutExpired) as exc:  # installed but not answering: no usable GPU
        return f"nvidia-smi did not answer: {exc}"
    return done.stdout + done.stderr


def gather_machine_facts() -> MachineFacts:
    """Ask this machine (nvidia-smi runs for at most a few seconds: call it off Blender's main thread)."""
    has_rocminfo = shutil.which("rocminfo") is not None or any(Path(probe).is_file() for probe in ROCM_PROBES)
    return MachineFacts(platform.system(), platform.machine(), _run_nvidia_smi(), has_rocminfo)
