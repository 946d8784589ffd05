"""How long does ``import course_utils`` take in a fresh interpreter? (a benchmark, not a test)

The package defers torch, torchvision, timm and the plotting libraries to the modules that need them, so
the top-level import (and ``course --help``) stays quick. Target: under 2 s. Prints the median of five
fresh interpreters for the bare interpreter, ``import course_utils`` and ``import course_tools.cli``.

    .venv/bin/python benchmarks/bench_import.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(code: str, runs: int = 5) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    bare = median_seconds("pass")
    for code in ("import course_utils", "import course_tools.cli", "import course_utils.models"):
        seconds = median_seconds(code)
        print(f"{code:<32} {seconds:6.2f} s  ({seconds - bare:5.2f} s over a bare interpreter)")


if __name__ == "__main__":
    main()
