"""Which device a job computes on, from faked GPU availability (this machine has neither CUDA nor MPS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from server import devices, protocol
from server.cli import main
from server.errors import UserError
from tests.conftest import REPO


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """Fakes what torch says this machine has: machine(cuda=..., mps=...)."""

    def fake(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return fake


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, False, "cuda"), (True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_the_apple_gpu_then_the_cpu(machine, cuda: bool, mps: bool, expected: str) -> None:
    machine(cuda=cuda, mps=mps)
    assert devices.resolve_device("auto") == torch.device(expected)


def test_mps_is_used_when_asked_for_and_present(machine) -> None:
    machine(cuda=False, mps=True)
    assert devices.resolve_device("mps").type == "mps"


@pytest.mark.parametrize(("asked", "named"), [("mps", "Apple GPU (MPS)"), ("cuda", "CUDA GPU")])
def test_an_absent_gpu_asked_for_by_name_is_refused_with_what_to_use_instead(machine, asked: str, named: str) -> None:
    machine(cuda=False, mps=False)
    with pytest.raises(UserError) as error:
        devices.resolve_device(asked)
    assert named in str(error.value) and "--device cpu or auto" in str(error.value)


def test_the_cpu_is_always_there(machine) -> None:
    machine(cuda=False, mps=False)
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device("auto") == torch.device("cpu")


def test_the_video_model_is_fp16_only_on_cuda() -> None:
    assert devices.model_dtype(torch.device("cuda")) == torch.float16
    assert devices.model_dtype(torch.device("mps")) == torch.float32
    assert devices.model_dtype(torch.device("cpu")) == torch.float32


def test_mps_is_a_device_of_the_command_line_and_refused_here_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "mps" in protocol.DEVICES
    if torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    example = REPO / "examples" / "dog_and_ball"
    argv = ["animate", str(example / "sketch.svg"), "--objects", str(example / "objects.tsv"), "--prompt", "a dog",
            "--out", str(tmp_path / "job"), "--prior", "tiny", "--frames", "2", "--steps", "1", "--size", "32",
            "--device", "mps", "--progress", "none"]  # fmt: skip
    assert main(argv) == protocol.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "device 'mps' was asked for" in error and "Traceback" not in error
