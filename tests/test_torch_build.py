"""The engine environment's torch build, chosen from faked machine facts (no Blender: the module is loaded by path)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

_PATH = REPO / "multisketch_addon" / "torch_build.py"
_SPEC = importlib.util.spec_from_file_location("torch_build", _PATH)
torch_build = importlib.util.module_from_spec(_SPEC)
sys.modules["torch_build"] = torch_build  # dataclasses look their module up by name
_SPEC.loader.exec_module(torch_build)

ENGINE_TORCH = torch_build.torch_requirement((REPO / "requirements" / "engine.txt").read_text(encoding="utf-8"))
WHL = "https://download.pytorch.org/whl"


def _smi(cuda: str) -> str:
    """nvidia-smi's header as the driver prints it."""
    return (
        "+-----------------------------------------------------------------------------------------+\n"
        f"| NVIDIA-SMI 550.54.14              Driver Version: 550.54.14      CUDA Version: {cuda}     |\n"
        "|-----------------------------------------+------------------------+----------------------+\n"
    )


def _plan(system: str = "Linux", machine: str = "x86_64", smi: str | None = None, rocm: bool = False,
          override: str = "AUTO"):  # fmt: skip
    facts = torch_build.MachineFacts(system, machine, smi, rocm)
    return torch_build.choose_torch_build(facts, override, ENGINE_TORCH)


def test_the_engine_requirements_name_a_torch_range_with_a_minimum() -> None:
    assert ENGINE_TORCH.startswith("torch")
    assert torch_build.minimum_torch(ENGINE_TORCH) >= (2, 6)


@pytest.mark.parametrize(
    ("driver_cuda", "index"),
    [
        ("12.4", "cu124"),
        ("12.5", "cu124"),
        ("12.6", "cu126"),
        ("12.8", "cu128"),
        ("13.0", "cu128"),
        ("11.8", "cu118"),
    ],  # fmt: skip
)
def test_nvidia_gets_the_newest_cuda_build_its_driver_supports(driver_cuda: str, index: str) -> None:
    for system in ("Linux", "Windows"):
        plan = _plan(system, smi=_smi(driver_cuda))
        assert plan.pip_arguments == ("--index-url", f"{WHL}/{index}")
        assert plan.kind == "cuda" and not plan.warning


def test_the_label_says_which_build_and_why() -> None:
    assert _plan(smi=_smi("12.4")).label == "CUDA 12.4 build (NVIDIA driver supports CUDA 12.4)"


def test_a_cuda_index_without_a_torch_in_the_engines_range_is_skipped() -> None:
    # cu121 holds torch up to 2.5; a CUDA 12.1-12.3 driver runs the 11.8 build, which has 2.6 and 2.7.
    assert _plan(smi=_smi("12.2")).pip_arguments == ("--index-url", f"{WHL}/cu118")
    assert torch_build.choose_torch_build(
        torch_build.MachineFacts("Linux", "x86_64", _smi("12.2"), False), "AUTO", "torch>=2.1"
    ).pip_arguments == ("--index-url", f"{WHL}/cu121")


def test_a_driver_too_old_for_any_build_gets_the_cpu_build_and_says_to_update_it() -> None:
    plan = _plan(smi=_smi("11.4"))
    assert plan.kind == "cpu" and plan.pip_arguments == ("--index-url", f"{WHL}/cpu")
    assert "11.4" in plan.label and "Update the NVIDIA driver" in plan.warning


def test_nvidia_smi_without_a_driver_answer_is_no_gpu() -> None:
    failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    plan = _plan(smi=failed)
    assert plan.kind == "cpu" and "no working NVIDIA driver" in plan.label


def test_amd_on_linux_gets_the_rocm_build() -> None:
    plan = _plan(rocm=True)
    assert plan.label.startswith("ROCm build") and plan.pip_arguments == ("--index-url", f"{WHL}/rocm6.2.4")


def test_an_nvidia_driver_wins_over_rocminfo() -> None:
    assert _plan(smi=_smi("12.6"), rocm=True).kind == "cuda"


def test_apple_silicon_gets_pypis_macos_build_with_mps() -> None:
    plan = _plan("Darwin", "arm64")
    assert plan.label == "macOS build (Apple Silicon: MPS)" and plan.pip_arguments == () and not plan.warning


def test_an_intel_mac_is_warned_that_no_wheel_exists() -> None:
    plan = _plan("Darwin", "x86_64")
    assert plan.kind == "macos" and "Intel" in plan.warning


@pytest.mark.parametrize(("system", "machine"), [("Linux", "x86_64"), ("Linux", "aarch64"), ("Windows", "AMD64")])
def test_no_gpu_gets_the_small_cpu_build_not_pypis_default(system: str, machine: str) -> None:
    plan = _plan(system, machine)
    assert plan.label.startswith("CPU build") and plan.pip_arguments == ("--index-url", f"{WHL}/cpu")


def test_the_user_can_override_the_automatic_choice() -> None:
    nvidia = _smi("12.6")
    assert _plan(smi=nvidia, override="CPU").pip_arguments == ("--index-url", f"{WHL}/cpu")
    assert _plan(smi=nvidia, override="ROCM").kind == "rocm"
    forced = _plan(override="CUDA")  # no nvidia-smi: the newest CUDA build
    assert forced.pip_arguments == ("--index-url", f"{WHL}/cu128") and "chosen by hand" in forced.label
    assert _plan(smi=_smi("12.4"), override="CUDA").pip_arguments == ("--index-url", f"{WHL}/cu124")
    assert "Linux only" in _plan("Windows", "AMD64", override="ROCM").warning
    assert {key for key, _name, _tip in torch_build.OVERRIDE_ITEMS} == {"AUTO", "CUDA", "ROCM", "CPU"}


def test_the_torch_line_is_read_from_a_requirements_file() -> None:
    text = "# the engine\ntorchvision==0.1\ntorch >= 2.6, <3  # why\ndiffusers==1\n"
    assert torch_build.torch_requirement(text) == "torch>=2.6,<3"
    assert torch_build.torch_requirement("diffusers\n") == ""
    assert torch_build.torch_requirement("torch >= = 2 !!\n") == ""  # malformed: left to pip's message
    assert torch_build.torch_requirement("torch\n") == "torch"


def test_facts_are_gathered_from_this_machine_without_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")  # neither nvidia-smi nor rocminfo can be found
    facts = torch_build.gather_machine_facts()
    assert facts.nvidia_smi_output is None and facts.system and facts.machine
    assert torch_build.choose_torch_build(facts).kind in ("cpu", "rocm", "macos")


def test_nvidia_smi_that_hangs_counts_as_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hanging = tmp_path / "nvidia-smi"
    hanging.write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    hanging.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(torch_build, "NVIDIA_SMI_TIMEOUT_S", 0.5)
    facts = torch_build.gather_machine_facts()
    assert "did not answer" in facts.nvidia_smi_output
    assert torch_build.choose_torch_build(facts).kind == "cpu"
