"""The engine's command line as a user meets it: outputs of a finished job, bad input, resume."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import pytest

from server import protocol, svg
from server.cli import main
from tests.conftest import MULTIOBJECT, REPO, multiobject_sketches

SMALL = ["--prior", "tiny", "--frames", "4", "--steps", "2", "--size", "32", "--progress", "none"]


@pytest.fixture(autouse=True)
def tiny_model_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One tiny random model for the whole session, outside the user's home."""
    cache = tmp_path_factory.getbasetemp() / "model-cache"
    monkeypatch.setenv("MULTISKETCH_CACHE", str(cache))
    return cache


# Every engine these tests start gets at most this much address space (a tiny job needs under 3 GiB) and
# ENGINE_TIMEOUT_S, so that no case, hostile or not, can take the machine's memory or hang the suite.
ENGINE_ADDRESS_SPACE = 3 * 2**30
ENGINE_TIMEOUT_S = 300


def _capped() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ENGINE_ADDRESS_SPACE, ENGINE_ADDRESS_SPACE))


def _engine(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=ENGINE_TIMEOUT_S,
        preexec_fn=None if sys.platform == "win32" else _capped,
    )


def _cat11(out: Path, prompt: str = "cats play") -> list[str]:
    """`animate` arguments for the shared two-cats-and-a-ball sketch with its stroke table."""
    sketch = MULTIOBJECT / "cat11"
    return ["animate", str(sketch / "sketch.svg"), "--objects", str(sketch / "objects.tsv"),
            "--prompt", prompt, "--out", str(out)]  # fmt: skip


def _assert_complete_job(out: Path, frames: int) -> dict:
    result = protocol.load_result(out / protocol.RESULT)
    assert (out / protocol.JOB_SPEC).is_file()
    assert (out / protocol.LOG).stat().st_size > 0
    assert (out / protocol.PREVIEW_GIF).stat().st_size > 0
    assert (out / protocol.PREVIEW_MP4).stat().st_size > 0
    assert sorted(p.name for p in (out / protocol.FRAMES_DIR).iterdir()) == [
        f"frame-{i:03d}.svg" for i in range(frames)
    ]
    assert any((out / protocol.CHECKPOINTS_DIR).glob("stage-*.pt"))
    assert result["frames"] == frames
    return result


@pytest.mark.parametrize("sketch", multiobject_sketches(), ids=lambda p: p.name)
def test_every_shared_sketch_animates_with_the_tiny_prior(sketch: Path, tmp_path: Path) -> None:
    out = tmp_path / "job"
    prompt = (sketch / "caption.txt").read_text().strip()
    code = main(
        [
            "animate",
            str(sketch / "sketch.svg"),
            "--objects",
            str(sketch / "objects.tsv"),
            "--prompt",
            prompt,
            "--out",
            str(out),
            *SMALL,
        ]
    )
    assert code == protocol.EXIT_OK
    result = _assert_complete_job(out, frames=4)
    table = {line.split("\t")[0] for line in (sketch / "objects.tsv").read_text().splitlines() if line.strip()}
    assert set(result["objects"]) == table
    for obj in result["objects"].values():
        assert len(obj["frames"]) == 4
        assert all(len(frame["points"]) == len(obj["strokes"]) for frame in obj["frames"])


def test_command_line_runs_end_to_end_with_json_progress(tmp_path: Path) -> None:
    out = tmp_path / "job"
    done = _engine(*_cat11(out, "two cats play with a ball"), *SMALL[:-2], "--progress", "json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    names = [event["event"] for event in events]
    assert names[0] == "start" and names[-1] == "done"
    assert events[0]["stages"] == ["object:cat_2", "object:cat", "object:ball", "joint"]
    steps = [event for event in events if event["event"] == "step"]
    assert len(steps) == 4 * 2
    assert all(0 < event["progress"] <= 1 and event["eta_s"] >= 0 for event in steps)
    _assert_complete_job(out, frames=4)


def test_the_memory_mode_and_the_shared_pass_are_reported_and_kept_in_the_job(tmp_path: Path) -> None:
    """`--memory low` is said in the progress events and the log; `--shared-pass` changes the method, so the job
    spec keeps it (a resumed job goes on the same way)."""
    out = tmp_path / "job"
    done = _engine(*_cat11(out), *SMALL, "--progress", "json", "--memory", "low", "--shared-pass")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    memory = [event for event in events if event["event"] == "memory"]
    assert len(memory) == 1 and memory[0]["mode"] == "low" and memory[0]["object_batch"] == 1
    assert "low-memory mode" in (out / "log.txt").read_text()
    assert json.loads((out / "job.json").read_text())["shared_pass"] is True
    _assert_complete_job(out, frames=4)
    refused = _engine(*_cat11(tmp_path / "other"), *SMALL, "--object-batch", "some")
    assert refused.returncode == protocol.EXIT_BAD_INPUT and "--object-batch" in refused.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _tree_state(folder: Path) -> dict[Path, int]:
    """Every path under `folder` with its modification time: equal before and after means nothing was written."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


TWO_STROKES = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">'
    '<path d="M 10 10 C 20 20 30 30 40 40" stroke="black" stroke-width="3" fill="none"/>'
    '<path d="M 100 100 C 120 100 140 120 150 150" stroke="black" stroke-width="3" fill="none"/></svg>'
)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed_svg", "svg"),
        ("empty_svg", "svg"),
        ("no_strokes", "stroke"),
        ("unknown_index", "stroke 7"),
        ("duplicate_index", "stroke 1"),
        ("missing_indices", "no stroke indices"),
        ("empty_prompt", "prompt"),
        ("one_frame", "frames"),
        ("too_many_frames", "frames must be from 2 to"),
        ("huge_render", "render size must be from 16 to"),
        ("unknown_device", "device"),
        ("output_is_a_file", "output folder"),
        ("unwritable_output", "output folder"),
        ("unknown_static_object", "no such object"),
        ("all_static", "nothing to animate"),
        ("unknown_head", "head-gain"),
        ("zero_gain", "head_gains"),
    ],
)
def test_bad_input_gets_a_clear_message_and_exit_code_2(case: str, expected: str, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sketch = _write(inputs / "sketch.svg", TWO_STROKES)
    table = _write(inputs / "objects.tsv", "a\t0\nb\t1\n")
    out = tmp_path / "out"
    args = {"sketch": str(sketch), "--objects": str(table), "--prompt": "things move", "--out": str(out)}
    extra: list[str] = []
    if case == "malformed_svg":
        _write(sketch, "<svg><path d='M 0 0 C 1 1 2 2 3 3'")
    elif case == "empty_svg":
        _write(sketch, "")
    elif case == "no_strokes":
        _write(sketch, '<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><rect/></svg>')
    elif case == "unknown_index":
        _write(table, "a\t0,7\n")
    elif case == "duplicate_index":
        _write(table, "a\t0,1\nb\t1\n")
    elif case == "missing_indices":
        _write(table, "a\t0\nb\t\n")
    elif case == "empty_prompt":
        args["--prompt"] = "  "
    elif case == "one_frame":
        extra = ["--frames", "1"]
    elif case == "too_many_frames":
        extra = ["--frames", "100000"]
    elif case == "huge_render":
        extra = ["--size", "100000"]
    elif case == "unknown_device":
        extra = ["--device", "tpu"]
    elif case == "output_is_a_file":
        args["--out"] = str(_write(tmp_path / "taken", "a file") / "job")
    elif case == "unwritable_output":
        args["--out"] = "/proc/multisketch-job"
    elif case == "unknown_static_object":
        extra = ["--static", "c"]
    elif case == "all_static":
        extra = ["--static", "a", "--static", "b"]
    elif case == "unknown_head":
        extra = ["--head-gain", "wobble=3"]
    elif case == "zero_gain":
        extra = ["--head-gain", "translation=0"]
    before = _tree_state(tmp_path)
    argv = ["animate", args.pop("sketch"), *[v for item in args.items() for v in item], *SMALL, *extra]
    done = _engine(*argv)
    assert done.returncode == protocol.EXIT_BAD_INPUT
    assert expected in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert _tree_state(tmp_path) == before, "bad input wrote files"


def test_missing_modelscope_weights_stop_with_one_message(tmp_path: Path) -> None:
    done = _engine(
        *_cat11(tmp_path / "job"), "--prior", "modelscope", "--frames", "2", "--steps", "1", "--size", "32",
        "--progress", "none", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )  # fmt: skip
    assert done.returncode == protocol.EXIT_BAD_INPUT
    assert protocol.DEFAULT_MODEL in done.stderr
    assert "--model" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_existing_job_is_never_overwritten_without_resume(tmp_path: Path) -> None:
    out = tmp_path / "job"
    assert main([*_cat11(out), *SMALL]) == protocol.EXIT_OK
    first = (out / protocol.RESULT).read_bytes()
    assert main([*_cat11(out), *SMALL]) == protocol.EXIT_BAD_INPUT
    assert (out / protocol.RESULT).read_bytes() == first
    assert main([*_cat11(out), *SMALL, "--frames", "5", "--resume"]) == protocol.EXIT_BAD_INPUT
    assert (out / protocol.RESULT).read_bytes() == first


def test_a_job_stopped_mid_way_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    settings = ["--prior", "tiny", "--frames", "3", "--steps", "6", "--size", "32", "--checkpoint-every", "1",
                "--seed", "5"]  # fmt: skip
    whole = tmp_path / "whole"
    assert main([*_cat11(whole), *settings, "--progress", "none"]) == protocol.EXIT_OK

    stopped = tmp_path / "stopped"
    process = subprocess.Popen(
        [sys.executable, "-m", "server", *_cat11(stopped), *settings, "--progress", "json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "stage" and event["index"] == 1:
            process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == protocol.EXIT_CANCELLED
    assert not (stopped / protocol.RESULT).exists()
    assert (stopped / protocol.CHECKPOINTS_DIR / "stage-0.pt").is_file()

    assert main([*_cat11(stopped), *settings, "--progress", "none", "--resume"]) == protocol.EXIT_OK
    whole_result = json.loads((whole / protocol.RESULT).read_text())
    resumed_result = json.loads((stopped / protocol.RESULT).read_text())
    assert resumed_result == whole_result


def _long_job(out: Path, *extra: str) -> subprocess.Popen[str]:
    """A tiny-prior job long enough to be stopped mid-way (only a stop writes a checkpoint), pipes on all streams."""
    settings = ["--prior", "tiny", "--frames", "3", "--steps", "100000", "--size", "32", "--checkpoint-every", "50000"]
    return subprocess.Popen(
        [sys.executable, "-m", "server", *_cat11(out), *settings, *extra],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_a_step(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line)["event"] == "step":
            return
    raise AssertionError("the engine ended before its first step")


def test_the_engine_stops_with_a_checkpoint_when_its_parent_is_gone(tmp_path: Path) -> None:
    process = _long_job(tmp_path / "job", "--progress", "json", "--stop-when-input-ends")
    _wait_for_a_step(process)
    assert process.stdin is not None
    process.stdin.close()  # what a crashed parent's end of the pipe looks like
    assert process.wait(timeout=120) == protocol.EXIT_CANCELLED
    assert (tmp_path / "job" / protocol.CHECKPOINTS_DIR / "latest.pt").is_file()


def test_a_closed_output_pipe_stops_the_engine_without_a_traceback(tmp_path: Path) -> None:
    process = _long_job(tmp_path / "job", "--progress", "json")
    _wait_for_a_step(process)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # what `| head` does once it has its lines
    assert process.wait(timeout=120) == protocol.EXIT_CANCELLED
    assert "Traceback" not in process.stderr.read()
    assert (tmp_path / "job" / protocol.CHECKPOINTS_DIR / "latest.pt").is_file()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("frames", "24", "'frames' must be an integer"),
        ("frames", 4.5, "'frames' must be an integer"),
        ("steps", "10", "'steps' must be an integer"),
        ("seed", "0", "'seed' must be an integer"),
        ("guidance_local", "30", "'guidance_local' must be a number"),
        ("checkpoint_every", None, "'checkpoint_every' must be an integer"),
        ("checkpoint_every", "100", "'checkpoint_every' must be an integer"),
        ("sketch", 5, "'sketch' must be a string"),
        ("prompt", 7, "'prompt' must be a string"),
        ("version", "1", "'version' must be an integer"),
        ("objects", {"a": [0]}, "'objects' must be a list"),
        ("object_name", 3, "'name' must be a string"),
        ("object_static", "false", "'static' must be true or false"),
    ],
)
def test_a_hand_written_job_spec_of_the_wrong_types_gets_exit_2_and_no_traceback(
    field: str, value: object, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _hand_written_job(tmp_path, field, value)
    assert main(["run", str(tmp_path), "--progress", "none"]) == protocol.EXIT_BAD_INPUT
    errors = capsys.readouterr().err
    assert expected in errors and "Traceback" not in errors


def _hand_written_job(folder: Path, field: str, value: object) -> None:
    """A job folder of the two-stroke sketch whose job.json has `value` in `field` (`object_<key>`: the first
    object's `<key>`), as a user editing it by hand would leave it; json.dumps writes NaN and Infinity as such."""
    _write(folder / "sketch.svg", TWO_STROKES)
    spec = protocol.JobSpec(
        sketch="sketch.svg", prompt="things move", objects=[protocol.ObjectSpec("a", [0])], prior="tiny",
        frames=2, steps=1, size=32,
    ).to_dict()  # fmt: skip
    if field.startswith("object_"):
        spec["objects"][0][field.removeprefix("object_")] = value
    else:
        spec[field] = value
    (folder / protocol.JOB_SPEC).write_text(json.dumps(spec))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("frames", 100_000, "frames must be from 2 to 240 (got 100000)"),
        ("size", 100_000, "size must be from 16 to 1024 px (got 100000)"),
        ("steps", -1, "steps must be from 0 to 100000 (got -1)"),
        ("steps", 100_001, "steps must be from 0 to 100000 (got 100001)"),
        ("guidance_local", math.nan, "guidance_local must be a finite number"),
        ("guidance_global", math.inf, "guidance_global must be a finite number"),
        ("checkpoint_every", 0, "checkpoint_every must be at least 1 step"),
        ("head_gains", {**protocol.HEAD_GAINS, "rotation": math.nan}, "head_gains['rotation'] must be a finite"),
    ],
)
def test_a_hand_written_job_spec_out_of_range_gets_exit_2_and_one_line_naming_the_field(
    field: str, value: object, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """frames or size of 100000 once asked for 114 GB; NaN guidance reached the optimizer."""
    _hand_written_job(tmp_path, field, value)
    before = _tree_state(tmp_path)
    assert main(["run", str(tmp_path), "--progress", "none"]) == protocol.EXIT_BAD_INPUT
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and expected in errors[0], errors
    after = _tree_state(tmp_path)
    after.pop(tmp_path / protocol.LOCK)  # taken by every engine that works in a job folder, empty
    assert after == before, "a refused job wrote files"


def test_a_truncated_job_spec_gets_exit_2_and_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job.json cut short (a crash while it was written, before writes were atomic) left the folder unusable."""
    _hand_written_job(tmp_path, "prompt", "things move")
    spec = tmp_path / protocol.JOB_SPEC
    spec.write_text(spec.read_text()[:100])
    assert main(["run", str(tmp_path), "--progress", "none"]) == protocol.EXIT_BAD_INPUT
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and f"cannot read the job spec {spec}" in errors[0], errors


@pytest.mark.parametrize("index", ["²", "1" * 5000, "-1", "1.0"])
def test_a_stroke_index_that_is_not_a_plain_number_is_refused_by_name(index: str, tmp_path: Path) -> None:
    sketch = _write(tmp_path / "sketch.svg", TWO_STROKES)
    table = _write(tmp_path / "objects.tsv", f"a\t0,{index}\n")
    out = tmp_path / "out"
    done = _engine("animate", str(sketch), "--objects", str(table), "--prompt", "x", "--out", str(out), *SMALL)
    assert done.returncode == protocol.EXIT_BAD_INPUT
    assert "is not a stroke index" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr) < 400, "the message quotes the bad index whole"


def test_a_job_refused_before_its_first_step_leaves_no_folder_behind_so_the_corrected_run_starts(
    tmp_path: Path,
) -> None:
    out = tmp_path / "job"
    base = [*_cat11(out), "--prior", "tiny", "--frames", "3", "--steps", "1", "--progress", "none"]
    refused = _engine(*base, "--size", "40")  # not a multiple of what the model downsamples by
    assert refused.returncode == protocol.EXIT_BAD_INPUT and "multiple" in refused.stderr
    assert not out.exists()
    assert _engine(*base, "--size", "32").returncode == protocol.EXIT_OK


def test_off_a_terminal_the_engine_still_says_each_stage_and_where_the_result_is(tmp_path: Path) -> None:
    done = _engine(*_cat11(tmp_path / "job"), "--prior", "tiny", "--frames", "3", "--steps", "1", "--size", "32")
    assert done.returncode == protocol.EXIT_OK
    assert f"done: {tmp_path / 'job' / protocol.RESULT}" in done.stderr
    assert "stage: object:" in done.stderr and "\r" not in done.stderr


def test_help_shows_defaults_examples_and_exit_codes_and_there_is_a_version() -> None:
    shown = " ".join(_engine("animate", "--help").stdout.split())
    assert "(default: 0)" in shown and "(default: 24;" in shown and "examples:" in shown and "exit codes:" in shown
    assert _engine("--version").stdout.strip().startswith("python -m server ")


def _full_size_modelscope_config(folder: Path) -> Path:
    """A model folder that says it is ModelScope at full size (its UNet's widths), without the 4 GB of weights."""
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text(json.dumps({"block_out_channels": [320, 640, 1280, 1280]}))
    return folder


def test_the_real_model_on_a_cpu_is_refused_under_auto_and_warned_of_under_cpu(tmp_path: Path) -> None:
    model = _full_size_modelscope_config(tmp_path / "modelscope")
    paper = ["--prior", "modelscope", "--model", str(model), "--frames", "24", "--steps", "1000", "--size", "256"]
    refused = _engine(*_cat11(tmp_path / "auto"), *paper, "--device", "auto", "--progress", "none")
    assert refused.returncode == protocol.EXIT_BAD_INPUT and "Traceback" not in refused.stderr
    assert "no GPU was found" in refused.stderr and "--device cpu" in refused.stderr
    assert re.search(r"at least \d+d\d\dh", refused.stderr), refused.stderr  # days, not minutes
    assert not (tmp_path / "auto").exists(), "a refused job leaves no folder"

    chosen = _engine(*_cat11(tmp_path / "cpu"), *paper, "--device", "cpu", "--progress", "none")
    assert re.search(r"warning: the ModelScope model on this CPU would take at least \d+d\d\dh", chosen.stderr)
    assert "diffusers layout" in chosen.stderr.splitlines()[-1]  # it went on to load (a folder of no weights)


def test_every_checkpoint_is_followed_by_a_picture_of_the_animation_so_far(tmp_path: Path) -> None:
    done = _engine(*_cat11(tmp_path / "job"), *[a if a != "none" else "json" for a in SMALL])
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert done.returncode == protocol.EXIT_OK and events.count("checkpoint") >= 2
    assert events.count("preview") == events.count("checkpoint")
    assert all(events[i + 1] == "preview" for i, event in enumerate(events) if event == "checkpoint")
    sheet = imageio.imread(tmp_path / "job" / "progress.png")
    assert sheet.shape == (128, 512, 3) and sheet.min() < 128 < sheet.max()  # 4 frames of ink on white, one row


CAPPED_ENGINE = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))\n"
    "from server.cli import main\n"
    "code = main(sys.argv[2:])\n"
    "peak = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0].split()[1]\n"
    "print(int(peak) * 1024)\n"  # this process's own peak: ru_maxrss would count the test process it was forked from
    "sys.exit(code)\n"
)


def _capped_engine(*args: str, address_space: int = 2**30) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """The engine under an address-space cap, as on a machine of little memory: (its run, seconds, peak RSS bytes)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", CAPPED_ENGINE, str(address_space), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    return done, time.monotonic() - started, int(done.stdout.split()[-1]) if done.stdout.strip() else -1


def _assert_refused_at_once(done: subprocess.CompletedProcess[str], seconds: float, peak: int, expected: str) -> None:
    """Exit 2, one line saying `expected`, within seconds and the memory of an interpreter with numpy."""
    assert done.returncode == protocol.EXIT_BAD_INPUT, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert seconds < 5, f"refused after {seconds:.1f} s"
    assert 0 < peak < 150 * 2**20, f"peak memory {peak / 2**20:.0f} MB"  # an ordinary tiny job takes 481 MB


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="address-space limit and /proc as Linux has them")


@linux_only
@pytest.mark.parametrize("objects", [protocol.MAX_OBJECTS + 1, 10_000])
def test_more_objects_than_a_job_may_animate_are_refused_at_once_in_little_memory(objects: int, tmp_path: Path) -> None:
    """10,000 objects once took 7.3 GB before the first step; the sketch reader took 5 s to number 10,000 paths."""
    paths = "".join(f'<path d="M {i % 90} {i // 90 % 90} l 1 1"/>' for i in range(objects))
    sketch = _write(
        tmp_path / "sketch.svg", f'<svg xmlns="http://www.w3.org/2000/svg" width="99" height="99">{paths}</svg>'
    )
    table = _write(tmp_path / "objects.tsv", "".join(f"object {i}\t{i}\n" for i in range(objects)))
    before = _tree_state(tmp_path)
    out = tmp_path / "job"
    refused = _capped_engine(
        "animate", str(sketch), "--objects", str(table), "--prompt", "x", "--out", str(out), *SMALL
    )
    _assert_refused_at_once(*refused, f"at most {protocol.MAX_OBJECTS} objects (got {objects})")
    assert _tree_state(tmp_path) == before and not out.exists()


@linux_only
def test_a_sketch_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    """One token of 21 MB: the reader's size limit, before any parsing (a 200 MB file once froze a reader)."""
    sketch = tmp_path / "huge.svg"
    with sketch.open("w") as file:
        file.write('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><path d="M 0 0 L 1 ')
        file.write("1" * 21_000_000)
        file.write('"/></svg>')
    out = tmp_path / "job"
    refused = _capped_engine("animate", str(sketch), "--prompt", "x", "--out", str(out), *SMALL)
    _assert_refused_at_once(*refused, f"is over {svg.MAX_FILE_BYTES // 2**20} MB")
    assert not out.exists()


DEGENERATE_STROKES = {
    "zero-length line": '<path d="M 10 10 L 10 10"/>',
    "cubic of one point": '<path d="M 10 10 C 10 10 10 10 10 10"/>',
    "scaled to nothing": '<path transform="scale(0)" d="M 10 10 C 20 20 30 20 40 10"/>',
    "singular matrix": '<path transform="matrix(1 1 1 1 0 0)" d="M 10 10 C 20 20 30 20 40 10"/>',
}


@pytest.mark.filterwarnings("error")  # a numpy or torch RuntimeWarning fails the test, as `python -W error` would
@pytest.mark.parametrize("case", [*DEGENERATE_STROKES, "every stroke at one point"])
def test_a_degenerate_but_valid_sketch_animates_to_a_finite_result_without_warnings(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An object whose strokes have no extent once printed numpy warnings; it must still animate, all numbers finite."""
    if case in DEGENERATE_STROKES:
        strokes = DEGENERATE_STROKES[case] + '<path d="M 5 5 C 10 20 20 20 30 5"/>'
    else:
        strokes = DEGENERATE_STROKES["zero-length line"] + DEGENERATE_STROKES["cubic of one point"]
    sketch = _write(
        tmp_path / "sketch.svg", f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">{strokes}</svg>'
    )
    table = _write(tmp_path / "objects.tsv", "dot\t0\nline\t1\n")
    out = tmp_path / "job"
    tiny_job = ["--prior", "tiny", "--frames", "2", "--steps", "2", "--size", "32", "--progress", "none"]
    assert main(["animate", str(sketch), "--objects", str(table), "--prompt", "x", "--out", str(out), *tiny_job]) == 0
    result = protocol.load_result(out / protocol.RESULT)  # refuses NaN, Infinity and coordinates beyond 1e6
    assert set(result["objects"]) == {"dot", "line"}
    assert "warning" not in capsys.readouterr().err.lower()


def _stage_files(objects: int, tmp_path: Path) -> list[int]:
    """Bytes of each stage file (`stage-<i>.pt`, in stage order) of a tiny job of `objects` alike one-stroke objects."""
    folder = tmp_path / f"{objects} objects"
    folder.mkdir()
    strokes = "".join(f'<path d="M {10 + 20 * i} 10 c 5 20 10 20 15 0"/>' for i in range(objects))
    sketch = _write(
        folder / "sketch.svg", f'<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">{strokes}</svg>'
    )
    table = _write(folder / "objects.tsv", "".join(f"object {i}\t{i}\n" for i in range(objects)))
    out = folder / "job"
    tiny_job = ["--prior", "tiny", "--frames", "2", "--steps", "1", "--size", "32", "--progress", "none"]
    assert main(["animate", str(sketch), "--objects", str(table), "--prompt", "x", "--out", str(out), *tiny_job]) == 0
    stages = sorted((out / protocol.CHECKPOINTS_DIR).glob("stage-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    return [p.stat().st_size for p in stages]


def test_checkpoints_on_disk_grow_with_the_objects_not_with_their_square(tmp_path: Path) -> None:
    """Each stage file once held every object's networks (390 MB for 20 objects): twice the objects, twice the bytes."""
    two, four = _stage_files(2, tmp_path), _stage_files(4, tmp_path)
    assert len(two) == 3 and len(four) == 5  # a stage per object, then the joint stage
    one_object = two[0]
    assert all(abs(size - one_object) < 0.05 * one_object for size in two[:2] + four[:4]), (two, four)
    assert sum(four) < 2.2 * sum(two), (two, four)  # each stage holding every object's networks: 3.3 times
