"""A model download shows its progress: bytes, total and rate as `download` events, from the hub's byte count."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from server import protocol
from server.cli import main
from server.download_progress import event_bar
from tests.conftest import MULTIOBJECT


def _fake_snapshot_download(folder: Path, sizes: list[int]):
    """Stands in for huggingface_hub.snapshot_download: counts each file's bytes on its bars as the hub does."""

    def download(repo_id: str, allow_patterns=None, tqdm_class=None) -> str:
        files = tqdm_class(total=len(sizes), unit="it", desc=f"Fetching {len(sizes)} files")
        arriving = tqdm_class(total=0, unit="B", desc="Downloading bytes", name="huggingface_hub.transfer")
        written = tqdm_class(total=0, unit="B", desc="Reconstructing", name="huggingface_hub.snapshot_download")
        written.total = arriving.total = sum(sizes)
        for size in sizes:
            for _ in range(4):
                time.sleep(0.1)
                arriving.update(size // 4)
                written.update(size // 4)
            files.update(1)
        for bar in (files, arriving, written):
            bar.close()
        return str(folder)

    return download


def test_the_byte_count_becomes_events_a_few_times_a_second_ending_at_the_total() -> None:
    seen: list[dict] = []
    bar = event_bar(lambda **fields: seen.append(fields))(total=4000, unit="B", desc="Reconstructing", name="x")
    for _ in range(8):
        time.sleep(0.1)
        bar.update(500)
    bar.close()
    counts = [event["bytes"] for event in seen]
    assert 2 <= len(seen) <= 6 and counts == sorted(counts) and counts[-1] == 4000
    assert all(event["total"] == 4000 for event in seen) and seen[-1]["rate"] > 0


def test_a_hub_download_reports_its_progress_before_the_job_starts(tmp_path: Path, monkeypatch, capsys) -> None:
    from server.priors import modelscope
    from server.priors.tiny import ensure_tiny_model

    tiny = ensure_tiny_model(str(tmp_path / "tiny"))
    monkeypatch.setattr(modelscope, "snapshot_download", _fake_snapshot_download(Path(tiny), [2000, 6000]))
    sketch = MULTIOBJECT / "cat11"
    code = main(["animate", str(sketch / "sketch.svg"), "--objects", str(sketch / "objects.tsv"), "--prompt", "cats",
                 "--out", str(tmp_path / "job"), "--prior", "modelscope", "--model", "someone/text-to-video",
                 "--frames", "2", "--steps", "1", "--size", "32", "--progress", "json"])  # fmt: skip
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == protocol.EXIT_OK
    downloads = [event for event in events if event["event"] == "download"]
    assert downloads and downloads[-1]["bytes"] == downloads[-1]["total"] == 8000
    names = [event["event"] for event in events]
    assert names.index("download") < names.index("start")


@pytest.mark.parametrize("desc", ["Downloading bytes", "Fetching 3 files"])
def test_the_other_bars_of_the_hub_stay_silent(desc: str) -> None:
    seen: list[dict] = []
    bar = event_bar(lambda **fields: seen.append(fields))(total=3, unit="B" if "bytes" in desc else "it", desc=desc)
    bar.update(3)
    bar.close()
    assert seen == []
