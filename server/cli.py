"""Command line: `python -m server animate SKETCH.svg ...` and `python -m server run JOB_DIR`.

Both build or read a job spec, check every input before anything is written, then run the schedule.
Bad input ends with one line on standard error and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, protocol
from .errors import UserError
from .memory import MEMORY_MODES
from .progress import ProgressReporter
from .protocol import JobSpec, ObjectSpec

if TYPE_CHECKING:
    from .job import JobFolder
    from .sketch import Sketch

EXAMPLES = f"""examples:
  python -m server animate sketch.svg --objects objects.tsv --prompt "a dog chases a ball" --out jobs/dog
  python -m server animate sketch.svg --prompt "the ball moves up" --prior toy --out jobs/toy
  python -m server run jobs/dog --resume

exit codes: {protocol.EXIT_OK} done, {protocol.EXIT_FAILED} internal failure (details in the job's log.txt),
  {protocol.EXIT_BAD_INPUT} bad input (one line saying what to fix),
  {protocol.EXIT_CANCELLED} cancelled (--resume continues)
"""
# Priors small enough that a second CPU thread costs more in hand-overs than it gains: the quick demo's job took
# 11.7 s on one thread and 15.0 s on two of an idle 2-core machine, 19 s and 278 s with the other core busy.
SMALL_PRIORS = ("tiny", "toy", "target")
# The job spec's own defaults: the command line shows and uses them, it does not keep its own.
_DEFAULTS = protocol.DEFAULTS


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default where it has a telling one; the examples and exit codes as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        silent = default is None or default is False or default is argparse.SUPPRESS or default == []
        shown = not silent and action.option_strings
        return f"{action.help} (default: %(default)s)" if shown and action.help else action.help


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Animate a multi-object vector sketch with a text-to-video prior (score distillation).",
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    animate = commands.add_parser(
        "animate", help="animate an SVG sketch into a job folder", epilog=EXAMPLES, formatter_class=_HelpFormatter
    )
    animate.add_argument("sketch", type=Path, help="the SVG sketch")
    animate.add_argument("--prompt", required=True, help="what happens in the scene")
    animate.add_argument("--out", required=True, type=Path, help="the job folder to write (created if missing)")
    animate.add_argument("--objects", type=Path, help="stroke table (objects.tsv: name<TAB>i,j,k per object)")
    animate.add_argument(
        "--object-prompt", action="append", default=[], metavar="NAME=TEXT", help="an object's own prompt"
    )
    animate.add_argument("--static", action="append", default=[], metavar="NAME", help="an object that stays still")
    animate.add_argument("--prior", choices=protocol.PRIORS, default=_DEFAULTS["prior"], help="the video model")
    animate.add_argument("--model", default=_DEFAULTS["model"], help="hub id or local folder of the model")
    animate.add_argument("--target-plan", type=Path, help="motion plan for the target prior (trajectories.tsv)")
    animate.add_argument(
        "--frames", type=int, help=f"frames of the animation (default: {_DEFAULTS['frames']}; toy prior: its own)"
    )
    animate.add_argument(
        "--steps", type=int, help=f"iterations per stage (default: {_DEFAULTS['steps']}; toy prior: its own)"
    )
    animate.add_argument(
        "--size", type=int, help=f"render size in pixels (default: {_DEFAULTS['size']}; toy prior: its own)"
    )
    animate.add_argument("--device", choices=protocol.DEVICES, default=_DEFAULTS["device"], help="where to compute")
    animate.add_argument("--seed", type=int, default=_DEFAULTS["seed"], help="the same seed gives the same result")
    animate.add_argument(
        "--guidance-local", type=float, default=_DEFAULTS["guidance_local"], help="guidance of the local pass"
    )
    animate.add_argument(
        "--guidance-global", type=float, default=_DEFAULTS["guidance_global"], help="guidance of the global pass"
    )
    animate.add_argument(
        "--checkpoint-every", type=int, default=_DEFAULTS["checkpoint_every"], help="steps between checkpoints"
    )
    animate.add_argument(
        "--schedule",
        choices=protocol.SCHEDULES,
        default=_DEFAULTS["schedule"],
        help="which stages run (docs/job-format.md)",
    )
    animate.add_argument(
        "--head-gain", action="append", default=[], metavar="HEAD=GAIN", help="a global motion head's gain"
    )
    animate.add_argument(
        "--local-affine",
        choices=protocol.LOCAL_AFFINE,
        default=_DEFAULTS["local_affine"],
        help="may local offsets carry rigid motion",
    )
    animate.add_argument("--joint-global", action="store_true", help="the joint stage trains global motion too")
    animate.add_argument(
        "--shared-pass",
        action="store_true",
        help="fast option: one render, encoding and model call per step serve the local and the global pass "
        "(docs/job-format.md says what it changes)",
    )
    animate.add_argument("--resume", action="store_true", help="continue the interrupted job in --out")
    _add_run_options(animate)

    run = commands.add_parser(
        "run",
        help="run the job spec in a job folder (as written by the Blender add-on)",
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    run.add_argument("job", type=Path, help="job folder holding job.json")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    _add_run_options(run)
    return parser


def _object_batch(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is neither auto nor a whole number from 1")
    return int(text)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """How this engine runs a job, not part of the job: a job resumes under other values of them."""
    parser.add_argument(
        "--object-batch",
        type=_object_batch,
        default=None,
        metavar="N",
        help="run up to N objects' own stages together, in one batch through the model: the same result to float "
        "rounding, faster where the GPU has room, N times the memory of one (default: auto, as many as the free "
        "GPU memory holds; one off a GPU)",
    )
    parser.add_argument(
        "--devices",
        metavar="LIST",
        help="devices to spread the objects' own stages over, e.g. cuda:0,cuda:1; the first also runs the joint "
        "stage (default: every visible GPU when the job runs on CUDA)",
    )
    parser.add_argument(
        "--memory",
        choices=MEMORY_MODES,
        default="auto",
        help="low: fit a GPU of 8 GB (text encoder on the CPU, the VAE encoder a few frames at a time), slower; "
        "auto: low only when the free GPU memory is too little for the standard mode",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "bar", "json", "none"),
        default="auto",
        help="progress on a terminal (bar), as JSON lines on stdout (json), or none; auto: bar on a terminal",
    )
    parser.add_argument(
        "--stop-when-input-ends",
        action="store_true",
        help="stop with a checkpoint when standard input reaches its end (the parent that holds it is gone)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reporter = ProgressReporter(args.progress)
    should_stop = _install_stop_handlers(reporter, args.stop_when_input_ends)
    try:
        if args.command == "animate":
            return _animate(args, reporter, should_stop)
        return _run_claimed_folder(args, reporter, should_stop)
    except UserError as exc:
        reporter.error(str(exc))
        return protocol.EXIT_BAD_INPUT


class _StopRequest:
    """Whether the run should stop at its next step (after a checkpoint): a signal, or no one left to report to."""

    def __init__(self, reporter: ProgressReporter) -> None:
        self.asked = False
        self.reporter = reporter

    def __call__(self) -> bool:
        return self.asked or self.reporter.reader_gone


def _install_stop_handlers(reporter: ProgressReporter, watch_input: bool) -> _StopRequest:
    """SIGTERM, SIGINT and, on Windows, SIGBREAK (CTRL_BREAK_EVENT) ask the schedule to stop at the next step;
    so do the end of standard input (with `watch_input`) and a closed output pipe."""
    stop = _StopRequest(reporter)

    def request_stop(signum: int, frame: Any) -> None:
        stop.asked = True

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), request_stop)
    if watch_input:

        def wait_for_end_of_input() -> None:
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds its lock, and the interpreter
            # aborts at exit when it cannot take it.
            try:
                descriptor = sys.stdin.fileno()
                while os.read(descriptor, 4096):
                    pass
            except (OSError, ValueError):
                pass
            stop.asked = True

        threading.Thread(target=wait_for_end_of_input, name="parent-watch", daemon=True).start()
    return stop


def _spec_from_flags(args: argparse.Namespace) -> JobSpec:
    """The job spec the flags describe, checked against the sketch (paths still the user's)."""
    from .sketch import load_svg

    sketch = load_svg(args.sketch)
    objects = objects_from_flags(sketch, args.objects, args.object_prompt, args.static)
    gains = protocol.HEAD_GAINS | dict(_head_gain(item) for item in args.head_gain)
    sizes = _run_sizes(args)
    spec = JobSpec(
        sketch=str(args.sketch),
        prompt=args.prompt,
        objects=objects,
        frames=sizes["frames"],
        steps=sizes["steps"],
        size=sizes["size"],
        seed=args.seed,
        prior=args.prior,
        model=_local_or_hub(args.model),
        target_plan=str(args.target_plan) if args.target_plan else None,
        device=args.device,
        guidance_local=args.guidance_local,
        guidance_global=args.guidance_global,
        checkpoint_every=args.checkpoint_every,
        schedule=args.schedule,
        head_gains=gains,
        local_affine=args.local_affine,
        joint_global=args.joint_global,
        shared_pass=args.shared_pass,
    )
    spec.validate()
    if not spec.moving_objects():
        raise UserError("nothing to animate: every object is static")
    if args.target_plan:
        from .tables import read_trajectories

        read_trajectories(args.target_plan)
    return spec


def _head_gain(item: str) -> tuple[str, float]:
    """(head, gain) of one --head-gain HEAD=GAIN; the gain's range is the job spec's to check."""
    head, equals, value = item.partition("=")
    if equals and head in protocol.HEAD_GAINS:
        try:
            return head, float(value)
        except ValueError:
            pass
    raise UserError(f"--head-gain {item!r}: expected HEAD=GAIN with HEAD one of {', '.join(protocol.HEAD_GAINS)}")


def objects_from_flags(
    sketch: Sketch, table_path: Path | None, object_prompts: list[str], static: list[str]
) -> list[ObjectSpec]:
    """The objects that --objects, --object-prompt NAME=TEXT and --static NAME describe; UserError for bad ones."""
    from .sketch import default_objects
    from .tables import read_stroke_table

    if table_path:
        table = read_stroke_table(table_path, len(sketch.strokes))
        objects = [ObjectSpec(name, strokes) for name, strokes in table.items()]
    else:
        objects = default_objects(sketch)
    by_name = {obj.name: obj for obj in objects}
    for item in object_prompts:
        name, equals, text = item.partition("=")
        if not equals or name not in by_name:
            raise UserError(f"--object-prompt {item!r}: expected NAME=TEXT with NAME one of {', '.join(by_name)}")
        by_name[name].prompt = text
    for name in static:
        if name not in by_name:
            raise UserError(f"--static {name!r}: no such object (objects: {', '.join(by_name)})")
        by_name[name].static = True
    return objects


def _local_or_hub(model: str) -> str:
    """A model folder that exists here as an absolute path (a job must not depend on the shell's folder), else the
    hub id as given."""
    local = Path(model).expanduser()
    return str(local.resolve()) if local.exists() else model


def _run_sizes(args: argparse.Namespace) -> dict[str, int]:
    """frames, steps and size: the flags where given, else the toy model's own or the job spec's defaults."""
    if args.prior == "toy":
        defaults = protocol.toy_settings()
    else:
        defaults = {key: _DEFAULTS[key] for key in ("frames", "steps", "size")}
    return {key: defaults[key] if getattr(args, key) is None else getattr(args, key) for key in defaults}


def _animate(args: argparse.Namespace, reporter: ProgressReporter, should_stop: _StopRequest) -> int:
    spec = _spec_from_flags(args)  # before importing torch (job): bad input is refused in a second or so
    from .job import JobFolder

    folder = JobFolder(args.out)
    folder.check_writable()
    before = folder.contents()
    with folder.claimed():
        try:
            return _start_or_resume(args, spec, folder, reporter, should_stop)
        except UserError:
            if not folder.computed_anything():  # nothing computed: the corrected command starts afresh
                reporter.attach_log(None)
                folder.discard_all_but(before)
            raise


def _start_or_resume(
    args: argparse.Namespace, spec: JobSpec, folder: JobFolder, reporter: ProgressReporter, should_stop: _StopRequest
) -> int:
    """A new job from the flags, or (with --resume) the folder's job if the flags describe the same one."""
    if folder.holds_job():
        if not args.resume:
            raise UserError(
                f"{args.out} already holds a job: pass --resume to continue it, or choose another --out folder"
            )
        stored = JobSpec.load(folder.spec)
        spec.sketch = stored.sketch
        spec.target_plan = stored.target_plan
        if stored.to_dict() != spec.to_dict():
            changed = [key for key, value in spec.to_dict().items() if stored.to_dict()[key] != value]
            raise UserError(
                f"{args.out} holds a job with other settings ({', '.join(changed)}): "
                "resume it with the same flags, or choose another --out folder"
            )
        return _run_folder(folder, args, reporter, should_stop)
    folder.create()
    spec.sketch = folder.copy_input(args.sketch, "sketch.svg")
    if args.target_plan:
        spec.target_plan = folder.copy_input(args.target_plan, "target_plan.tsv")
    spec.save(folder.spec)
    return _run_folder(folder, args, reporter, should_stop)


def _run_claimed_folder(args: argparse.Namespace, reporter: ProgressReporter, should_stop: _StopRequest) -> int:
    """`run FOLDER`: a job folder the add-on (or a person) wrote, run by this engine alone."""
    from .job import JobFolder

    folder = JobFolder(args.job)
    if not folder.path.is_dir():
        raise UserError(f"no job folder at {folder.path}")
    folder.check_writable()
    with folder.claimed():
        return _run_folder(folder, args, reporter, should_stop)


def _run_folder(
    folder: JobFolder, args: argparse.Namespace, reporter: ProgressReporter, should_stop: _StopRequest
) -> int:
    """Run the job in `folder`, which the caller holds (`JobFolder.claimed`) and has checked to be writable."""
    spec = JobSpec.load(folder.spec)
    spec.validate()
    if not spec.moving_objects():
        raise UserError("nothing to animate: the job has no moving object")
    reporter.attach_log(folder.log)
    started = time.monotonic()
    try:
        result = _optimize(folder, spec, args, reporter, should_stop)
    except UserError:
        raise
    except Exception as exc:  # the log keeps the traceback; the user gets one line
        folder.log(traceback.format_exc())
        reporter.error(f"the engine failed: {type(exc).__name__}: {exc} (details in {folder.log_file})")
        return protocol.EXIT_FAILED
    if result is None:
        reporter.event("cancelled", message="stopped; --resume continues from the last checkpoint")
        return protocol.EXIT_CANCELLED
    reporter.event("done", result=str(folder.result), seconds=round(time.monotonic() - started, 2))
    return protocol.EXIT_OK


def _warn_of_a_cpu_run(spec: JobSpec, stages: list, reporter: ProgressReporter) -> None:
    """The real model on a CPU takes days: refused when `auto` found no GPU, a warning with the estimate when the
    user chose the CPU."""
    from .cpu_estimate import LONG_CPU_JOB_S, cpu_flops, modelscope_seconds

    flops = cpu_flops()
    seconds = modelscope_seconds(stages, spec.steps, spec.frames, spec.size, flops)
    if seconds < LONG_CPU_JOB_S:
        return
    estimate = (
        f"the ModelScope model on this CPU would take at least {protocol.format_duration(seconds)} for this job "
        f"({flops / 1e9:.0f} GFLOP/s measured here)"
    )
    if spec.device == "auto":
        raise UserError(
            f"no GPU was found, and {estimate}: run on a CUDA or Apple GPU, try the method in minutes with "
            "--prior toy, or choose --device cpu to run it here anyway"
        )
    reporter.warning(estimate)


def _optimize(
    folder: Any, spec: JobSpec, args: argparse.Namespace, reporter: ProgressReporter, should_stop: _StopRequest
) -> Path | None:
    """Load everything, run the stages, write the outputs; None when stopped by a signal."""
    import torch

    from .cpu_estimate import is_full_modelscope
    from .devices import free_gpu_bytes, lane_devices, resolve_device
    from .memory import plan_memory
    from .priors import load_prior
    from .schedule import Cancelled, Optimization, plan_stages
    from .sketch import load_svg

    sketch = load_svg(folder.resolve(spec.sketch))
    spec.check_strokes(len(sketch.strokes))
    for shape, count in sketch.ignored_shapes.items():
        reporter.warning(f"{count} <{shape}> element(s) are not strokes (only <path> is animated) and are left out")
    if spec.target_plan:
        spec.target_plan = str(folder.resolve(spec.target_plan))
    device = resolve_device(spec.device)
    stages = plan_stages(spec, len(sketch.strokes))
    if device.type == "cpu" and spec.prior in SMALL_PRIORS and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    spec.model = folder.model_location(spec.model)
    if device.type == "cpu" and spec.prior == "modelscope" and is_full_modelscope(spec.model):
        _warn_of_a_cpu_run(spec, stages, reporter)
    if spec.prior == "modelscope":  # fetched here (after that check), so that a download shows its progress
        from .priors.modelscope import resolve_model

        spec.model = str(resolve_model(spec.model, on_download=lambda **fields: reporter.event("download", **fields)))
    lanes = lane_devices(args.devices, device, torch.cuda.device_count() if device.type == "cuda" else 0)
    device = lanes[0]
    priors, plans = [], []
    moving, video_pixels = len(spec.moving_objects()), spec.frames * spec.size**2
    for lane in lanes:  # each device its own copy of the model, and a plan for its own free memory
        priors.append(load_prior(spec, sketch, lane))
        plans.append(plan_memory(args.memory, args.object_batch, free_gpu_bytes(lane), video_pixels, moving))
        priors[-1].use_memory_plan(plans[-1])
    prior, memory = priors[0], plans[0]
    if spec.prior == "modelscope":
        folder.log(f"model {spec.model}: ModelScope's weights are licensed CC-BY-NC-4.0, non-commercial use only")
    reporter.event("start", stages=[stage.name for stage in stages], steps=spec.steps, device=str(device))
    for lane, plan in zip(lanes, plans, strict=True):
        folder.log(f"memory on {lane}: {plan.reason}")
    reporter.event("memory", mode=memory.mode, object_batch=memory.object_batch,
                   vae_checkpointing=memory.vae_checkpointing, reason=memory.reason,
                   devices=[str(lane) for lane in lanes])  # fmt: skip

    def emit(name: str, **fields: Any) -> None:
        """The schedule's events, and after each checkpoint a picture of the animation so far."""
        reporter.event(name, **fields)
        if name == "checkpoint":
            preview = folder.write_progress_preview(spec, sketch, optimization.animation())
            reporter.event("preview", stage=fields["stage"], step=fields["step"], path=str(preview))

    optimization = Optimization(
        spec, sketch, prior, device, folder.checkpoints, emit, should_stop, object_batch=memory.object_batch,
        more_devices=list(zip(lanes[1:], priors[1:], strict=True)),
    )  # fmt: skip
    try:
        animation = optimization.run(resume=args.resume)
    except Cancelled:
        return None
    for warning in folder.write_outputs(spec, sketch, animation):
        reporter.warning(warning)
    return folder.result


if __name__ == "__main__":
    sys.exit(main())
