"""The ``course`` command: build and check the student notebooks, run lessons, show parameters, prefetch.

Examples::

    course build                       # solutions/ -> notebooks/
    course check                       # exit 1 when notebooks/ is out of date
    course run --profile offline       # every lesson, report in build/report.md
    course run 01 3 --profile smoke -p EPOCHS 2 --output /tmp/run
    course params 02                   # the parameters of lesson 2, as papermill --help-notebook shows them
    course prefetch --dataset gtsrb --arch resnet18
    course prefetch --dataset gtsrb --arch resnet18 --kit workshop-kit   # a folder to upload to Kaggle
    course predict outputs/05_your_own_images/model.pt my_photos/ --output predictions.csv --top-k 3
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TOOLS_EXTRA", "USAGE_ERRORS", "UsageError", "is_usage_error", "main", "missing_package_advice"]


def _parser() -> argparse.ArgumentParser:
    from course_utils import config  # light: the names the options accept
    from course_utils.dataset_registry import DATASET_REGISTRY

    parser = argparse.ArgumentParser(prog="course", description="Tools for the transfer learning course.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def folders(command: argparse.ArgumentParser, notebooks: bool = True) -> None:
        command.add_argument("--solutions", type=Path, default=Path("solutions"), metavar="DIR",
                             help="folder of the solution notebooks (default: solutions)")
        if notebooks:
            command.add_argument("--notebooks", type=Path, default=Path("notebooks"), metavar="DIR",
                                 help="folder of the student notebooks (default: notebooks)")

    build = commands.add_parser("build", help="regenerate the student notebooks from the solutions")
    folders(build)
    build.add_argument("--repository", metavar="URL",
                       help="publish a fork: point the Repository address in pyproject.toml, every badge and every "
                            "set-up cell at https://github.com/<owner>/<name>")
    folders(commands.add_parser("check", help="exit 1 when the student notebooks are out of date"))

    run = commands.add_parser("run", help="execute lessons with papermill and write a report")
    run.add_argument("lessons", nargs="*", metavar="LESSON",
                     help="01, 1 or 01_cnn_from_scratch (default: all)")
    run.add_argument("--profile", choices=config.PROFILES,
                     help="the lessons' profile (default: $COURSE_PROFILE, else chosen by each notebook)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a notebook parameter, e.g. -p EPOCHS 3 (repeatable)")
    run.add_argument("--output", type=Path, default=Path("build"), metavar="DIR",
                     help="where executed notebooks and the report go (default: build)")
    run.add_argument("--stop-on-failure", action="store_true",
                     help="skip the remaining lessons after a failure")
    run.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's, else python3)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    folders(run, notebooks=False)

    params = commands.add_parser("params", help="show the lessons' parameters (type, default, help)")
    params.add_argument("lessons", nargs="*", metavar="LESSON", help="default: all lessons")
    folders(params, notebooks=False)

    prefetch = commands.add_parser("prefetch", help="download data sets and weights before a workshop")
    prefetch.add_argument("--dataset", choices=tuple(DATASET_REGISTRY), metavar="NAME",
                          help="one of " + "; ".join(f"{name} ({entry.description})"
                                                      for name, entry in DATASET_REGISTRY.items()))
    prefetch.add_argument("--arch", choices=config.BACKBONE_NAMES, metavar="NAME",
                          help=f"the ImageNet weights of one of {', '.join(config.BACKBONE_NAMES)}")
    prefetch.add_argument("--data-dir", type=Path, metavar="DIR", help="default: the lessons' data folder")
    prefetch.add_argument("--torch-home", type=Path, metavar="DIR",
                          help="default: $TORCH_HOME (torch's cache)")
    prefetch.add_argument("--kit", type=Path, metavar="DIR",
                          help="also write a workshop kit there (data, weights, wheels) to upload to Kaggle "
                               "or Google Drive")
    prefetch.add_argument("--wheels-from", type=Path, metavar="DIR",
                          help="with --kit: take the dependency wheels from this folder, not the index")
    prefetch.add_argument("--profile", choices=config.PROFILES,
                          help="also fetch every data set and backbone the lessons use under this profile (full: "
                               "GTSRB, Oxford-IIIT Pet, ResNet-18/50), so a GPU workshop runs from the kit")
    prefetch.add_argument("--results", type=Path, metavar="DIR",
                          help="with --kit: carry the lessons' results (metrics.json) from this `course run` "
                               "output folder, so each lesson on Kaggle compares with the earlier ones")
    prefetch.add_argument("--python-version", default=None, metavar="X.Y",
                          help="with --kit: the Python of the platform the wheels are resolved for (default: "
                               "Kaggle's, 3.11; Colab: 3.12)")

    predict = commands.add_parser("predict", help="predict a folder of images with a saved checkpoint, to a CSV")
    predict.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a .pt file saved by a lesson")
    predict.add_argument("folder", type=Path, metavar="FOLDER", help="the images to predict (sub-folders too)")
    predict.add_argument("--output", type=Path, default=Path("predictions.csv"), metavar="CSV",
                         help="where the predictions go (default: predictions.csv)")
    predict.add_argument("--top-k", type=int, default=3, metavar="K",
                         help="also list the K most probable classes per image (default: 3)")
    predict.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")
    predict.add_argument("--batch-size", type=int, default=32, metavar="N",
                         help="images per batch (default: 32)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    from course_tools.train import add_arguments as train_arguments

    train_arguments(commands.add_parser("train", help="lesson 5's training as a script; also under torchrun (DDP)"))
    return parser


def _train(args: argparse.Namespace) -> int:
    from course_tools.train import run

    return run(args, program="course train")  # its own one-line errors and exit statuses (see course_tools.train)


def _predict(args: argparse.Namespace) -> int:
    from course_tools.predict import predict_to_csv

    for option, value in (("--top-k", args.top_k), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UsageError(f"{option} must be a whole number >= 1, not {value}.")
    if args.device is not None:
        from course_utils.environment import select_device

        try:
            select_device(args.device)  # a device this machine lacks: a usage error, found before any work
        except RuntimeError as error:
            raise UsageError(f"--device {args.device}: {error}") from None
    predict_to_csv(args.checkpoint, args.folder, args.output, top_k=args.top_k, device=args.device,
                   batch_size=args.batch_size, verbose=not args.quiet)
    return 0


def _build(args: argparse.Namespace) -> int:
    from course_tools.notebooks import build
    from course_tools.repository import set_repository_url
    from course_tools.runner import require_solutions_dir

    require_solutions_dir(args.solutions)

    if args.repository:
        print(f"wrote {set_repository_url(args.repository, args.solutions)} (Repository = {args.repository})")
    changed = build(args.solutions, args.notebooks)
    for path in changed:
        print(f"{'removed' if not path.exists() else 'wrote'} {path}")
    print(f"{len(changed)} file(s) changed." if changed else "Everything up to date.")
    return 0


def _check(args: argparse.Namespace) -> int:
    from course_tools.notebooks import check
    from course_tools.runner import require_solutions_dir

    require_solutions_dir(args.solutions)

    problems = check(args.solutions, args.notebooks)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s): run `course build`, then check again.")
        return 1
    print(f"{args.notebooks} is in sync with {args.solutions}.")
    return 0


def _run(args: argparse.Namespace) -> int:
    from course_tools.runner import interrupted_exit_code, run_lessons
    from course_utils.files import check_folder_path

    try:
        check_folder_path(args.output)  # before any lesson starts: "running" then a raw errno helps nobody
    except NotADirectoryError as error:
        raise NotADirectoryError(f"--output: {error}") from None
    parameters = dict(args.parameter)
    results = run_lessons(args.lessons or None, profile=args.profile, parameters=parameters,
                          output_dir=args.output, solutions_dir=args.solutions,
                          stop_on_failure=args.stop_on_failure, kernel_name=args.kernel,
                          verbose=not args.quiet)
    failed = [result for result in results if result.status != "passed"]
    report = args.output / "report.md"
    stopped = next((result for result in results if result.status == "interrupted"), None)
    if stopped is not None:
        print(f"{stopped.error}; report: {report}", file=sys.stderr)
        return interrupted_exit_code(stopped)
    print(f"{len(results) - len(failed)} of {len(results)} lesson(s) passed; report: {report}")
    for result in failed:
        print(f"  {result.status}: {result.error}")
    return 1 if failed else 0


def _params(args: argparse.Namespace) -> int:
    from course_tools.parameters import show_parameters
    from course_tools.runner import available_lessons, require_solutions_dir, resolve_lesson

    known = available_lessons(require_solutions_dir(args.solutions))
    lessons = [resolve_lesson(name, known) for name in args.lessons] if args.lessons else known
    missing = 0
    for lesson in lessons:
        missing += show_parameters(args.solutions / f"{lesson}.ipynb", lesson)
        print()
    return 1 if missing else 0


def _prefetch(args: argparse.Namespace) -> int:
    from course_tools.kit import KIT_PYTHON
    from course_tools.kit import prefetch_and_build_kit as prefetch

    if not (args.dataset or args.arch or args.kit or args.profile):
        raise UsageError("Say what to fetch: --dataset and/or --arch, --profile, or --kit DIR for a workshop kit.")
    for given, option in ((args.wheels_from, "--wheels-from"), (args.results, "--results"),
                          (args.python_version, "--python-version")):
        if given is not None and args.kit is None:
            raise UsageError(f"{option} only applies to --kit DIR.")
    if args.kit is not None:
        kit = Path(os.path.abspath(args.kit))
        here = Path.cwd()
        if kit == here or kit in here.parents:
            raise UsageError(f"--kit {args.kit} is the folder you are in (or one above it): the kit is written as a "
                             "folder of its own; pass a new folder, e.g. --kit workshop-kit.")
        args.kit = Path(os.path.normpath(args.kit))  # "kits/new/.." -> "kits": a folder with a name
    prefetch(args.dataset, args.arch, data_dir=args.data_dir, torch_home=args.torch_home, kit=args.kit,
             wheels_from=args.wheels_from, profile=args.profile, results=args.results,
             python=args.python_version or KIT_PYTHON)
    return 0


#: The course's own errors, by module and class name: what the user gave (a value, a path, a notebook) cannot be
#: used, and the message says what to do. Named, not imported, so that reporting one imports nothing; any
#: ``OSError`` (a missing file, a full disk, no permission) is a usage error too.
USAGE_ERRORS: tuple[str, ...] = (
    "course_utils.samples.DatasetError",
    "course_utils.samples.DownloadError",
    "course_utils.config.ParameterError",
    "course_utils.checkpoint_checks.CheckpointError",
    "course_tools.stripper.MarkerError",
    "course_tools.notebooks.BuildError",
    "course_tools.runner.LessonSelectionError",
    "course_tools.prefetch.PrefetchError",
    "course_tools.repository.RepositoryError",
    "course_tools.cli.UsageError",
)

#: The extra that installs what the ``course`` command needs beyond the lessons' own packages.
TOOLS_EXTRA = "course-utils[tools]"


class UsageError(ValueError):
    """Options of the ``course`` command that do not go together (checked beyond what argparse checks)."""


def is_usage_error(error: BaseException) -> bool:
    """Whether ``error`` is one of :data:`USAGE_ERRORS` (or a subclass) or an ``OSError``: the user can fix it."""
    if isinstance(error, OSError):
        return True
    return any(f"{kind.__module__}.{kind.__qualname__}" in USAGE_ERRORS for kind in type(error).__mro__)


def missing_package_advice(module: str) -> str:
    """The one line for a package the tools need that is not installed, with the command that installs it."""
    package = module.partition(".")[0]
    return (f"the package {package!r} is not installed, and the course's tools need it: "
            f'pip install "{TOOLS_EXTRA}" (in a checkout of the course: pip install -e ".[tools]").')


def _issues_address() -> str:
    """Where to report a bug: the course's Repository address plus ``/issues`` (from the installed package's
    metadata, else from the checkout's pyproject.toml); never raises, since it runs while reporting a bug."""
    from importlib import metadata

    try:
        addresses = metadata.metadata("course-utils").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        addresses = []
    for entry in addresses:
        label, _, address = entry.partition(",")
        if label.strip().lower() == "repository" and address.strip():
            return f"{address.strip()}/issues"
    try:
        from course_tools.repository import repository_url

        return f"{repository_url()}/issues"
    except Exception:  # no pyproject.toml beside an installed copy: say it in words
        return "the course's repository"


def _report_bug(command: str) -> int:
    """Print the traceback of the exception being handled and where to report it; return exit status 1."""
    traceback.print_exc()
    print(f"course {command}: internal error: this is a bug in the course, not in what you typed; please report "
          f"it with the traceback above at {_issues_address()}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``course`` command with ``argv`` (default: the command line); return the exit status.

    0 on success, 1 when a check or a lesson failed or memory ran out, 2 for a usage error or a path that cannot
    be used (unknown lesson, parameter value, no solutions folder, an output that cannot be written, ...), 130
    when stopped with Ctrl+C, 143 with SIGTERM, 129 with SIGHUP (128 + the signal's number). Each of these
    errors is one line on standard error; so is a missing package of the tools' extra (exit 2, with the ``pip
    install`` line that adds it). Any other exception is a bug in the course: its traceback, a line saying where
    to report it, and exit 1.
    """
    args = _parser().parse_args(argv)
    handlers = {"build": _build, "check": _check, "run": _run, "params": _params, "prefetch": _prefetch,
                "predict": _predict, "train": _train}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print(f"course {args.command}: interrupted.", file=sys.stderr)
        return 130
    except MemoryError as error:
        advice = str(error) or "Out of memory: close other programs, or use smaller batches or a smaller profile."
        print(f"course {args.command}: error: {advice}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] in ("course_utils", "course_tools"):
            return _report_bug(args.command)
        print(f"course {args.command}: error: {missing_package_advice(error.name)}", file=sys.stderr)
        return 2
    except Exception as error:
        if not is_usage_error(error):
            return _report_bug(args.command)
        print(f"course {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
