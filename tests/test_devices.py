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


def test_the_free_gpu_memory_counts_torchs_unused_cache_and_stays_within_a_memory_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the memory plan is given: the driver's free bytes plus what torch holds unused, never more than a cap
    set with `torch.cuda.set_per_process_memory_fraction` allows (as when checking the low-memory mode on a large
    card). torch's memory queries want a device index, as the real ones do for a bare "cuda"."""
    gib = 2**30

    def by_index(value):
        def query(index):
            assert isinstance(index, int), f"needs a device index, got {index!r}"
            return value

        return query

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", by_index((100 * gib, 140 * gib)))
    monkeypatch.setattr(torch.cuda, "memory_allocated", by_index(4 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", by_index(6 * gib))
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", by_index(1.0), raising=False)
    assert devices.free_gpu_bytes(torch.device("cuda")) == 102 * gib
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", by_index(7 / 140), raising=False)
    assert devices.free_gpu_bytes(torch.device("cuda")) == 3 * gib
    assert devices.free_gpu_bytes(torch.device("cpu")) is None


def test_the_objects_stages_spread_over_every_visible_gpu_or_the_ones_named() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert devices.lane_devices(None, cuda, gpu_count=1) == [cuda]
    assert devices.lane_devices(None, cuda, gpu_count=2) == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert devices.lane_devices(None, cpu, gpu_count=0) == [cpu]
    assert devices.lane_devices("cuda:1, cuda:0", cuda, gpu_count=2) == [
        torch.device("cuda", 1),
        torch.device("cuda", 0),
    ]
    for wrong, says in (("cuda:0,cuda:3", "there is no cuda:3 (2 GPU(s) visible)"), ("cpu", "not a cuda device"),
                        ("gpu0", "is not a device"), (" , ", "names no device")):  # fmt: skip
        with pytest.raises(UserError, match=says.replace("(", r"\(").replace(")", r"\)")):
            devices.lane_devices(wrong, cuda, gpu_count=2)
