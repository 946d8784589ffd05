"""Shared pytest fixtures: tiny, generic, never touching the network.

``course_run`` executes every solution notebook once per test session (``course run --profile smoke``);
the tests marked ``notebooks`` share its output instead of executing the lessons again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest

# Before any test module imports torch: PyTorch's CPU threads wait passively (see runner.CPU_WAIT_POLICY).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from nbformat.v4 import new_notebook
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (8, 8), colour=(200, 30, 30), mode: str = "RGB") -> Path:
    """Write a tiny one-colour image (format from the suffix) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


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


def python_notebook(cells: list, folder: Path | None = None, name: str | None = None) -> nbformat.NotebookNode:
    """A notebook with the ``python3`` kernelspec holding ``cells``; written to ``folder/name.ipynb`` if given."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = list(cells)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / f"{name}.ipynb"))
    return nb


SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


class CourseRun(NamedTuple):
    """What ``course run`` left: its exit status and output folder (``<lesson>/`` folders, ``report.md``)."""

    exit_code: int
    output: Path


@pytest.fixture(scope="session")
def course_run(tmp_path_factory: pytest.TempPathFactory) -> CourseRun:
    """Every solution notebook executed once per session by ``course run --profile smoke`` (papermill).

    Data come from ``$COURSE_DATA_DIR`` when set (``make test`` keeps them in build/test-data), else from a
    temporary folder; nothing is downloaded in the smoke profile.
    """
    from course_tools.cli import main

    output = tmp_path_factory.mktemp("course-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_DATA_DIR", os.environ.get("COURSE_DATA_DIR") or str(tmp_path_factory.mktemp("data")))
        code = main(["run", "--profile", "smoke", "--output", str(output), "--quiet", "--solutions", str(SOLUTIONS)])
    return CourseRun(code, output)
