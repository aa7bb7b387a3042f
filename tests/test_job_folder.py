"""The job folder is the engine's own: it never writes among a user's files or through a link, keeps a user's
prompts private, and lets one engine at a time work in it."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from server import files, protocol
from server.cli import main

SMALL = ["--prior", "tiny", "--frames", "3", "--steps", "1", "--size", "32", "--progress", "none"]
SKETCH = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">'
    '<path d="M 10 10 C 20 20 30 30 40 40" stroke="black" stroke-width="3" fill="none"/>'
    '<path d="M 100 100 C 120 100 140 120 150 150" stroke="black" stroke-width="3" fill="none"/></svg>'
)
posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions and links")


@pytest.fixture(autouse=True)
def tiny_model_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTISKETCH_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


def _animate(tmp_path: Path, out: Path, *extra: str) -> int:
    sketch = tmp_path / "drawing.svg"
    if not sketch.exists():
        sketch.write_text(SKETCH)
    return main(["animate", str(sketch), "--prompt", "a line waves", "--out", str(out), *SMALL, *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_folder_of_the_users_files_is_refused_and_left_as_it_was(tmp_path: Path, capsys) -> None:
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "sketch.svg").write_text("my own drawing")
    (documents / "result.json").write_text("my own results")
    (documents / "notes").mkdir()
    (documents / "notes" / "todo.txt").write_text("keep me")
    before = _snapshot(documents)
    assert _animate(tmp_path, documents) == protocol.EXIT_BAD_INPUT
    assert "is not a job folder" in capsys.readouterr().err
    assert _snapshot(documents) == before
    assert sorted(p.name for p in documents.iterdir()) == ["notes", "result.json", "sketch.svg"]


@posix_only
def test_a_folder_holding_a_link_named_sketch_svg_is_refused_and_the_linked_file_kept(tmp_path: Path, capsys) -> None:
    """Copying the sketch into such a folder once followed the link and overwrote the user's file behind it."""
    drawing = tmp_path / "my drawing.svg"
    drawing.write_text("my own drawing")
    out = tmp_path / "job"
    out.mkdir()
    (out / "sketch.svg").symlink_to(drawing)
    assert _animate(tmp_path, out) == protocol.EXIT_BAD_INPUT
    assert "is not a job folder" in capsys.readouterr().err
    assert drawing.read_text() == "my own drawing" and [p.name for p in out.iterdir()] == ["sketch.svg"]


def test_an_empty_folder_becomes_a_job(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert _animate(tmp_path, out) == protocol.EXIT_OK
    assert protocol.load_result(out / protocol.RESULT)["frames"] == 3


@posix_only
def test_job_folders_and_their_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "job"
    assert _animate(tmp_path, out) == protocol.EXIT_OK
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 5 and {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o600}


@posix_only
def test_links_planted_in_a_job_folder_are_replaced_never_written_through(tmp_path: Path, capsys) -> None:
    out = tmp_path / "job"
    assert _animate(tmp_path, out, "--checkpoint-every", "1") == protocol.EXIT_OK
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victims = {}
    for name in (protocol.RESULT, protocol.PREVIEW_GIF):
        victims[name] = outside / name
        victims[name].write_text(f"precious {name}")
        (out / name).unlink()
        (out / name).symlink_to(victims[name])
    for checkpoint in (out / protocol.CHECKPOINTS_DIR).glob("stage-*.pt"):
        checkpoint.unlink()  # the resumed run redoes its stage and writes every output again
    assert _animate(tmp_path, out, "--resume", "--checkpoint-every", "1") == protocol.EXIT_OK
    assert {name: path.read_text() for name, path in victims.items()} == {n: f"precious {n}" for n in victims}
    assert not (out / protocol.RESULT).is_symlink() and protocol.load_result(out / protocol.RESULT)["frames"] == 3

    log_victim = outside / "log.txt"
    log_victim.write_text("precious log")
    (out / protocol.LOG).unlink()
    (out / protocol.LOG).symlink_to(log_victim)
    assert _animate(tmp_path, out, "--resume", "--checkpoint-every", "1") == protocol.EXIT_BAD_INPUT
    assert "symbolic link" in capsys.readouterr().err
    assert log_victim.read_text() == "precious log"


def test_a_second_engine_on_a_busy_job_folder_is_refused_and_changes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "job"
    assert _animate(tmp_path, out) == protocol.EXIT_OK
    before = _snapshot(out)
    held = files.try_lock(out / protocol.LOCK)  # as the first engine holds it while it runs
    assert held is not None
    try:
        assert main(["run", str(out), "--resume", "--progress", "none"]) == protocol.EXIT_BAD_INPUT
        assert "another engine is running" in capsys.readouterr().err
        assert _animate(tmp_path, out, "--resume") == protocol.EXIT_BAD_INPUT
        assert _snapshot(out) == before
    finally:
        files.unlock(held)
    assert main(["run", str(out), "--resume", "--progress", "none"]) == protocol.EXIT_OK


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("the previous result")
    with pytest.raises(RuntimeError), files.replacing(target) as partial:
        partial.write_text("half of a new")
        raise RuntimeError("disk full")
    assert target.read_text() == "the previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_model_folder_named_relative_to_the_job_folder_is_found_from_anywhere(tmp_path: Path) -> None:
    from server.priors.tiny import ensure_tiny_model

    job = tmp_path / "job"
    job.mkdir()
    shutil.copytree(ensure_tiny_model(str(tmp_path / "built")), job / "weights")
    (job / "sketch.svg").write_text(SKETCH)
    objects = [protocol.ObjectSpec(name="line", strokes=[0, 1])]
    spec = protocol.JobSpec(sketch="sketch.svg", prompt="a line waves", objects=objects, frames=3, steps=1, size=32,
                            prior="modelscope", model="weights")  # fmt: skip
    spec.save(job / protocol.JOB_SPEC)
    assert Path.cwd() != job and not (Path.cwd() / "weights").exists()
    assert main(["run", str(job), "--progress", "none"]) == protocol.EXIT_OK
    assert protocol.load_result(job / protocol.RESULT)["frames"] == 3


def test_a_torch_whose_safe_loading_can_be_bypassed_never_reads_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import torch

    out = tmp_path / "job"
    assert _animate(tmp_path, out) == protocol.EXIT_OK
    monkeypatch.setattr(torch, "__version__", "2.5.1+cu121")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran"))
    assert _animate(tmp_path, out, "--resume") == protocol.EXIT_BAD_INPUT
    assert "CVE-2025-32434" in capsys.readouterr().err
