"""The ``course`` command: build and check the student notebooks, run lessons, show parameters, prefetch.

Examples::

    course build                       # solutions/ -> notebooks/
    course check                       # exit 1 when notebooks/ is out of date
    course run --profile offline       # every lesson, report in build/report.md
    course run 01 3 --profile smoke -p EPOCHS 2 --output /tmp/run
    course params 02                   # the parameters of lesson 2, as papermill --help-notebook shows them
    course prefetch --dataset gtsrb --arch resnet18
    course predict outputs/05_your_own_images/model.pt my_photos/ --output predictions.csv --top-k 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Tools for the transfer learning course.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def folders(command: argparse.ArgumentParser, notebooks: bool = True) -> None:
        command.add_argument("--solutions", type=Path, default=Path("solutions"), metavar="DIR",
                             help="folder of the solution notebooks (default: solutions)")
        if notebooks:
            command.add_argument("--notebooks", type=Path, default=Path("notebooks"), metavar="DIR",
                                 help="folder of the student notebooks (default: notebooks)")

    folders(commands.add_parser("build", help="regenerate the student notebooks from the solutions"))
    folders(commands.add_parser("check", help="exit 1 when the student notebooks are out of date"))

    run = commands.add_parser("run", help="execute lessons with papermill and write a report")
    run.add_argument("lessons", nargs="*", metavar="LESSON",
                     help="01, 1 or 01_cnn_from_scratch (default: all)")
    run.add_argument("--profile", choices=("full", "offline", "smoke"),
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
    prefetch.add_argument("--dataset", help="gtsrb, pets, pets-binary or synthetic-signs")
    prefetch.add_argument("--arch", help="resnet18, resnet34, resnet50 or efficientnet_lite0")
    prefetch.add_argument("--data-dir", type=Path, metavar="DIR", help="default: the lessons' data folder")
    prefetch.add_argument("--torch-home", type=Path, metavar="DIR",
                          help="default: $TORCH_HOME (torch's cache)")

    predict = commands.add_parser("predict", help="predict a folder of images with a saved checkpoint, to a CSV")
    predict.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a .pt file saved by a lesson")
    predict.add_argument("folder", type=Path, metavar="FOLDER", help="the images to predict (sub-folders too)")
    predict.add_argument("--output", type=Path, default=Path("predictions.csv"), metavar="CSV",
                         help="where the predictions go (default: predictions.csv)")
    predict.add_argument("--top-k", type=int, default=3, metavar="K",
                         help="also list the K most probable classes per image (default: 3)")
    predict.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: the best available)")
    predict.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per batch (default: 32)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def _predict(args: argparse.Namespace) -> int:
    from course_tools.predict import predict_to_csv

    predict_to_csv(args.checkpoint, args.folder, args.output, top_k=args.top_k, device=args.device,
                   batch_size=args.batch_size, verbose=not args.quiet)
    return 0


def _build(args: argparse.Namespace) -> int:
    from course_tools.notebooks import build

    changed = build(args.solutions, args.notebooks)
    for path in changed:
        print(f"{'removed' if not path.exists() else 'wrote'} {path}")
    print(f"{len(changed)} file(s) changed." if changed else "Everything up to date.")
    return 0


def _check(args: argparse.Namespace) -> int:
    from course_tools.notebooks import check

    problems = check(args.solutions, args.notebooks)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s): run `course build`, then check again.")
        return 1
    print(f"{args.notebooks} is in sync with {args.solutions}.")
    return 0


def _run(args: argparse.Namespace) -> int:
    from course_tools.runner import run_lessons

    parameters = dict(args.parameter)
    results = run_lessons(args.lessons or None, profile=args.profile, parameters=parameters,
                          output_dir=args.output, solutions_dir=args.solutions,
                          stop_on_failure=args.stop_on_failure, kernel_name=args.kernel,
                          progress=not args.quiet)
    failed = [result for result in results if result.status != "passed"]
    report = args.output / "report.md"
    print(f"{len(results) - len(failed)} of {len(results)} lesson(s) passed; report: {report}")
    for result in failed:
        print(f"  {result.status}: {result.error}")
    return 1 if failed else 0


def _params(args: argparse.Namespace) -> int:
    from course_tools.notebooks import format_parameter, read_parameters
    from course_tools.runner import available_lessons, resolve_lesson

    known = available_lessons(args.solutions)
    lessons = [resolve_lesson(name, known) for name in args.lessons] if args.lessons else known
    for lesson in lessons:
        path = args.solutions / f"{lesson}.ipynb"
        print(f"Parameters inferred for notebook '{path}':")
        parameters = read_parameters(path)
        if not parameters:
            print("\n  No cell tagged 'parameters'")
        for parameter in parameters:
            print(format_parameter(parameter))
        print()
    return 0


def _prefetch(args: argparse.Namespace) -> int:
    from course_tools.prefetch import prefetch

    if not (args.dataset or args.arch):
        raise ValueError("Say what to fetch: --dataset and/or --arch.")
    prefetch(args.dataset, args.arch, data_dir=args.data_dir, torch_home=args.torch_home)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``course`` command with ``argv`` (default: the command line); return the exit status.

    0 on success, 1 when a check or a lesson failed, 2 for a usage error (unknown lesson, parameter, ...).
    """
    args = _parser().parse_args(argv)
    handlers = {"build": _build, "check": _check, "run": _run, "params": _params, "prefetch": _prefetch,
                "predict": _predict}
    try:
        return handlers[args.command](args)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"course {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
