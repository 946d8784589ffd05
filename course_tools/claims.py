"""The claims run's table: every lesson's findings, one row per finding and seed, from ``course run`` folders.

``make claims`` runs all lessons in the ``offline`` profile once per seed (``COURSE_STRICT_FINDINGS=1``, one
``course run`` output folder per seed, named ``seed-<N>``) and then calls::

    python -m course_tools.claims build/claims build/claims.md

A lesson stopped by a finding that did not hold wrote no ``metrics.json``; its row then quotes the error from
the executed notebook, so the table still says which verdict failed.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from course_utils.config import LESSONS
from course_utils.files import write_text_atomic
from course_utils.findings import labelled_value
from course_utils.results import read_metrics

__all__ = ["CLAIMS_COLUMNS", "FINDING_COLUMNS", "claims_rows", "finding_cells", "main", "write_claims"]

#: The columns that describe one finding, in the run report and in the claims table alike.
FINDING_COLUMNS = ("Finding", "Values", "Difference (95% interval)", "Held")
CLAIMS_COLUMNS = ("Lesson", "Seed", *FINDING_COLUMNS)


def _difference(value: float, metric: str) -> str:
    return f"{value:+.3f}" if metric == "AUROC" else f"{value * 100:+.1f} pts"


def finding_cells(record: dict[str, Any]) -> tuple[str, str, str, str]:
    """The four cells of :data:`FINDING_COLUMNS` for one finding as stored in ``metrics.json``."""
    metric = record.get("metric", "accuracy")
    values = (f"{labelled_value(record.get('label_a', 'A'), record['value_a'], metric)} vs "
              f"{labelled_value(record.get('label_b', 'B'), record['value_b'], metric)}")
    difference = (f"{_difference(record['difference'], metric)} ({_difference(record['ci_low'], metric)} to "
                  f"{_difference(record['ci_high'], metric)})")
    held = "yes" if record["held"] else "NO" if record.get("headline", True) else "no (observation)"
    return (str(record.get("claim") or record["name"]), values, difference, held)


def _notebook_error(folder: Path, lesson: str) -> str:
    """The error that stopped an executed lesson notebook (e.g. a FindingError), or a plain note."""
    notebook = folder / lesson / f"{lesson}.ipynb"
    if not notebook.is_file():
        return "the lesson did not run"
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return "the executed notebook cannot be read"
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = re.sub(r"\x1b\[[0-9;]*m", "", f"{output.get('ename')}: {output.get('evalue')}")
                return message.strip()
    return "the lesson wrote no metrics.json"


def claims_rows(runs: dict[int, Path], lessons: Sequence[str] = LESSONS) -> list[tuple[str, ...]]:
    """One row per lesson, seed and finding (see :data:`CLAIMS_COLUMNS`); a lesson without results gets one
    row whose "Held" cell is ``NO`` and whose finding cell quotes what stopped it."""
    rows = []
    for lesson in lessons:
        for seed, folder in sorted(runs.items()):
            metrics = read_metrics(Path(folder) / lesson)
            if not metrics:
                rows.append((lesson, str(seed), f"lesson failed: {_notebook_error(Path(folder), lesson)}", "",
                             "", "NO"))
                continue
            for record in metrics.get("findings", []):
                rows.append((lesson, str(seed), *finding_cells(record)))
    return rows


def write_claims(runs: dict[int, Path], output: str | Path, *, lessons: Sequence[str] = LESSONS,
                 profile: str = "offline") -> Path:
    """Write the claims table (markdown) for ``runs`` (``{seed: course run folder}``) to ``output``."""
    rows = claims_rows(runs, lessons)
    held = sum(row[-1] == "yes" for row in rows)

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# Claims run, {datetime.date.today().isoformat()}", "",
             f"Profile {profile}; seeds {', '.join(map(str, sorted(runs)))}; findings held: {held} of {len(rows)}.",
             "Each finding's interval is a 95% group bootstrap (whole test tracks resampled); it holds when the "
             "whole interval lies above the claimed margin. \"no (observation)\": a finding the course does not "
             "vouch for on this data (reported, never enforced).", "",
             "| " + " | ".join(CLAIMS_COLUMNS) + " |", "|" + "---|" * len(CLAIMS_COLUMNS)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return write_text_atomic(Path(output), "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_tools.claims RUNS_DIR OUTPUT.md``: tabulate ``RUNS_DIR/seed-<N>`` folders.

    Returns 1 when a headline finding did not hold (or a lesson failed), else 0; observations
    (``headline=False``) are tabulated but never fail the run.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m course_tools.claims RUNS_DIR OUTPUT.md", file=sys.stderr)
        return 2
    runs_dir, output = Path(args[0]), Path(args[1])
    runs = {int(folder.name.split("-", 1)[1]): folder for folder in runs_dir.glob("seed-*")
            if folder.is_dir() and folder.name.split("-", 1)[1].isdigit()}
    if not runs:
        print(f"No seed-<N> folders in {runs_dir}: run `make claims` first.", file=sys.stderr)
        return 2
    path = write_claims(runs, output)
    rows = claims_rows(runs)
    failed = [row for row in rows if row[-1] == "NO"]
    held = sum(row[-1] == "yes" for row in rows)
    failures = "no headline finding or lesson failed" if not failed else \
        f"{len(failed)} headline {'finding or lesson' if len(failed) == 1 else 'findings or lessons'} failed"
    print(f"Claims table: {path} ({held} of {len(rows)} findings held; {failures})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
