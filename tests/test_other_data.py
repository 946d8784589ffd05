"""The lessons run to the end on data that is not the course's: verdicts that fail there are notices.

Two cases, each executing real lessons with tiny sizes (marked ``notebooks``: they take minutes):
a user's folder of class folders with a few broken files (lessons 2 and 3, ``EPOCHS 1``), and the ``full``
profile on a stand-in GTSRB written in torchvision's on-disk layout (all four lessons). Nothing downloads:
the stand-in is in place before a lesson looks for it, and torchvision skips the download when it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import picture, stand_in_gtsrb

from course_tools.runner import run_lesson

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def _findings(folder: Path, lesson: str) -> list[dict]:
    return json.loads((folder / lesson / "metrics.json").read_text())["findings"]


def _run(lesson: str, output: Path, profile: str, **parameters) -> None:
    result = run_lesson(lesson, profile=profile, parameters=parameters, output_dir=output,
                        solutions_dir=ROOT / "solutions", verbose=False)
    assert result.status == "passed", result.error


def test_lessons_2_and_3_finish_on_a_messy_user_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_STRICT_FINDINGS", raising=False)
    folder = tmp_path / "my_signs"
    for index, name in enumerate(("arrow", "circle", "square")):
        (folder / name).mkdir(parents=True)
        for number in range(10):
            picture(index, number).save(folder / name / f"photo {number}.png")
    (folder / "arrow" / "broken.jpg").write_bytes(b"")  # an empty file
    (folder / "circle" / "not_an_image.png").write_text("this is text")  # a wrong extension
    (folder / "square" / "notes.txt").write_text("taken on a sunny day")  # not an image at all
    output = tmp_path / "out"
    for lesson in ("02_feature_extraction", "03_fine_tuning"):
        _run(lesson, output, "offline", DATASET=str(folder), EPOCHS=1, IMAGE_SIZE=32, BATCH_SIZE=8,
             DATA_DIR=str(tmp_path / "data"))
        assert all(isinstance(record["held"], bool) for record in _findings(output, lesson))
    assert (folder / "arrow" / "broken.jpg").exists()  # the user's files stay as they were


def test_all_lessons_finish_in_the_full_profile_on_a_stand_in_gtsrb(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_STRICT_FINDINGS", raising=False)
    data_dir = tmp_path / "data"
    stand_in_gtsrb(data_dir)
    output = tmp_path / "out"
    for lesson in ("01_cnn_from_scratch", "02_feature_extraction", "03_fine_tuning", "04_unknown_class"):
        _run(lesson, output, "full", ARCH="efficientnet_lite0", IMAGE_SIZE=32, EPOCHS=2, BATCH_SIZE=16,
             DATA_DIR=str(data_dir))
        metrics = json.loads((output / lesson / "metrics.json").read_text())
        assert metrics["profile"] == "full" and metrics["dataset"] == "gtsrb"
        assert all({"name", "held", "difference", "ci_low", "ci_high"} <= set(f) for f in metrics["findings"])
