"""Shared pytest fixtures: tiny, generic, never touching the network (plain helper functions: tests/helpers.py).

``course_run`` executes every solution notebook once per test session (``course run --profile smoke``);
the tests marked ``notebooks`` share its output instead of executing the lessons again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

# Before any test module imports torch: PyTorch's CPU threads wait passively (see runner.CPU_WAIT_POLICY).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from helpers import write_image


@pytest.fixture
def make_image_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory for a folder of class sub-folders of tiny PNGs.

    ``make_image_folder({"cat": 4, "dog": 6})`` writes ``cat/img_000.png``...; with ``frames_per_track=3``
    the count means tracks and files are named GTSRB-style ``<track:05d>_<frame:05d>.png``.
    """

    def make(counts: dict[str, int], *, name: str = "images", frames_per_track: int | None = None,
             size: tuple[int, int] = (8, 8)) -> Path:
        root = tmp_path / name
        for index, (class_name, count) in enumerate(counts.items()):
            colour = ((60 * index) % 256, 255 - (40 * index) % 256, 128)
            folder = root / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for item in range(count):
                if frames_per_track:
                    for frame in range(frames_per_track):
                        write_image(folder / f"{item:05d}_{frame:05d}.png", size, colour)
                else:
                    write_image(folder / f"img_{item:03d}.png", size, colour)
        return root

    return make


SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


class CourseRun(NamedTuple):
    """What ``course run`` left: its exit status, output folder (``<lesson>/`` folders, ``report.md``) and log."""

    exit_code: int
    output: Path
    log: Path


class _BackgroundCourseRun:
    """``course run --profile smoke`` in a child process, started as soon as the tests are collected.

    The lessons' kernels then run while the tests that need no executed notebook run beside them (two cores,
    and most of a kernel's time is spent waiting), instead of one after the other.
    """

    def __init__(self, output: Path, data_dir: str) -> None:
        self.output = output
        self.log = output.with_name(output.name + ".log")
        command = [sys.executable, "-m", "course_tools.cli", "run", "--profile", "smoke", "--output", str(output),
                   "--quiet", "--solutions", str(SOLUTIONS)]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "COURSE_DATA_DIR": data_dir})

    def result(self) -> CourseRun:
        return CourseRun(self.process.wait(), self.output, self.log)

    def stop(self) -> None:
        """Interrupt a run that is still going (the tests were stopped): it shuts its kernels down itself."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


_COURSE_RUN = pytest.StashKey[_BackgroundCourseRun]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the shared course run in the background if a collected test needs it."""
    if session.config.option.collectonly:
        return
    if any("course_run" in getattr(item, "fixturenames", ()) for item in session.items):
        _start_course_run(session.config)


def _start_course_run(config: pytest.Config) -> _BackgroundCourseRun:
    if _COURSE_RUN not in config.stash:
        folder = Path(tempfile.mkdtemp(prefix="course-run-"))
        data_dir = os.environ.get("COURSE_DATA_DIR") or str(folder / "data")
        config.stash[_COURSE_RUN] = _BackgroundCourseRun(folder / "output", data_dir)
    return config.stash[_COURSE_RUN]


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_COURSE_RUN, None)
    if run is not None:
        run.stop()
        if run.process.returncode == 0:
            shutil.rmtree(run.output.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def course_run(request: pytest.FixtureRequest) -> CourseRun:
    """Every solution notebook executed once per session by ``course run --profile smoke`` (papermill).

    The run starts in the background when the tests are collected (see ``pytest_collection_finish``); this
    fixture waits for it. Data come from ``$COURSE_DATA_DIR`` when set (``make test`` keeps them in
    build/test-data), else from a temporary folder; nothing is downloaded in the smoke profile. A failed run's
    folder and log are kept (the test that checks the exit status prints where).
    """
    return _start_course_run(request.config).result()
