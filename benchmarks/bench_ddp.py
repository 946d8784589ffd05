"""One process against two (DistributedDataParallel, gloo) on this CPU: seconds per epoch of ``course train``.

Both runs train lesson 5's practice folder the same way (offline profile: EfficientNet-Lite0, 64 px, the global
batch of 32, the same seed), one after the other in this one call: ``python -m course_tools.train`` with all
the cores to itself (``OMP_NUM_THREADS`` = cores), then ``torchrun --nproc_per_node 2`` with the cores shared
(``OMP_NUM_THREADS`` = cores / 2 per process). The figures are the seconds of each epoch from the runs' own
``metrics.json`` (training and validation, no start-up), per stage: stage 1 trains the head on the frozen body,
stage 2 the whole network. ``--rounds N`` alternates the two N times (1, 2, 2, 1, ...) and reports medians, so
that other jobs on the machine weigh on both alike.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_ddp.py [--rounds 2] [--epochs 2] [--head-epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def practice_folder(data_dir: Path) -> Path:
    from course_utils.sample_folders import make_sample_folder

    return make_sample_folder(data_dir / "lesson5-sample-folder", seed=0, verbose=False).labeled


def run(processes: int, folder: Path, output: Path, options: list[str], cores: int) -> dict:
    """Train once with ``processes`` processes; return the metrics and the wall time."""
    from course_utils.distributed import free_port

    training = ["-m", "course_tools.train", str(folder), "--output", str(output), *options]
    launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                                          "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    environment = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // processes)), "PYTHONPATH": str(REPOSITORY)}
    started = time.perf_counter()
    subprocess.run([sys.executable, *launcher, *training], env=environment, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((output / "metrics.json").read_text())
    return {**metrics, "wall_seconds": time.perf_counter() - started}


def per_stage(metrics: dict) -> dict[int, float]:
    """Median seconds per epoch of each stage."""
    stages: dict[int, list[float]] = {}
    for row in metrics["history"]:
        stages.setdefault(int(row["stage"]), []).append(row["seconds"])
    return {stage: statistics.median(seconds) for stage, seconds in sorted(stages.items())}


def median_run(runs: list[dict]) -> dict:
    """One row for several runs of the same kind: the median of each figure."""
    stages = [per_stage(metrics) for metrics in runs]
    return {"stages": {stage: statistics.median(s[stage] for s in stages) for stage in stages[0]},
            **{key: statistics.median(metrics[key] for metrics in runs)
               for key in ("wall_seconds", "val_accuracy", "test_accuracy")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--head-epochs", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--folder", type=Path, help="default: lesson 5's practice folder, made in a temporary folder")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    options = ["--profile", "offline", "--epochs", str(args.epochs), "--head-epochs", str(args.head_epochs),
               "--device", "cpu"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or practice_folder(Path(scratch))
        runs: dict[int, list[dict]] = {1: [], args.processes: []}
        for round_number in range(args.rounds):
            order = (1, args.processes) if round_number % 2 == 0 else (args.processes, 1)
            for count in order:
                runs[count].append(run(count, folder, Path(scratch) / f"run{count}-{round_number}", options, cores))
    results = {count: median_run(done) for count, done in runs.items()}
    print(f"{cores} cores; {args.rounds} round(s), medians; {' '.join(options)}")
    print(f"{'processes':>9} {'threads each':>12} {'stage 1 s/epoch':>16} {'stage 2 s/epoch':>16} {'wall s':>7} "
          f"{'val acc':>7} {'test acc':>8}")
    for count, metrics in results.items():
        stages = metrics["stages"]
        print(f"{count:>9} {max(1, cores // count):>12} {stages.get(1, float('nan')):>16.2f} "
              f"{stages.get(2, float('nan')):>16.2f} {metrics['wall_seconds']:>7.1f} {metrics['val_accuracy']:>7.3f} "
              f"{metrics['test_accuracy']:>8.3f}")
    one, many = results[1]["stages"], results[args.processes]["stages"]
    for stage in sorted(one.keys() & many.keys()):
        print(f"stage {stage}: {args.processes} processes take {many[stage] / one[stage]:.2f}x the time per epoch "
              "of one")


if __name__ == "__main__":
    main()
