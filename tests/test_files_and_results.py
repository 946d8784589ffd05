"""Atomic writes and the metrics.json contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from course_utils.files import atomic_write, write_json_atomic, write_text_atomic
from course_utils.results import read_metrics, write_metrics


def test_atomic_write_replaces_the_file_when_the_block_succeeds(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_interrupted_write_keeps_the_previous_version_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous checkpoint")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as temporary:
            temporary.write_bytes(b"half a checkp")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_json_is_written_in_a_new_folder(tmp_path):
    path = write_json_atomic(tmp_path / "deep" / "data.json", {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}


def test_metrics_round_trip_with_numpy_numbers(tmp_path):
    write_metrics(
        tmp_path, lesson="01", profile="smoke", dataset="synthetic-signs", arch="scratch_cnn",
        epochs=1, seconds=np.float64(2.5), test_accuracy=np.float32(0.75),
    )
    metrics = read_metrics(tmp_path)
    assert metrics["seconds"] == 2.5
    assert metrics["test_accuracy"] == pytest.approx(0.75)


def test_metrics_without_required_keys_are_refused_with_their_names(tmp_path):
    with pytest.raises(ValueError, match="dataset, arch"):
        write_metrics(tmp_path, lesson="01", profile="smoke", epochs=1, seconds=1.0)


def test_reading_metrics_of_a_lesson_that_wrote_none_gives_an_empty_dict(tmp_path):
    assert read_metrics(tmp_path) == {}


def test_atomically_written_files_get_ordinary_permissions(tmp_path):
    import os

    path = write_text_atomic(tmp_path / "report.md", "# report")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_display_path_is_relative_inside_the_working_folder(tmp_path, monkeypatch):
    from course_utils.files import display_path

    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "outputs" / "01_cnn_from_scratch" / "metrics.json") == \
        "outputs/01_cnn_from_scratch/metrics.json"
    assert display_path(tmp_path) == "."
    # A relative path is printed as given, also one that climbs out of the working folder.
    assert display_path(Path("..") / "build" / "solutions") == "../build/solutions"


def test_display_path_uses_a_tilde_for_the_home_folder_and_keeps_other_paths(tmp_path, monkeypatch):
    from course_utils.files import display_path

    home, work = tmp_path / "home" / "student", tmp_path / "work"
    home.mkdir(parents=True)
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert display_path(home / ".cache" / "transfer-course" / "data") == "~/.cache/transfer-course/data"
    assert display_path("~/data") == "~/data"
    elsewhere = tmp_path / "shared" / "data"
    assert display_path(elsewhere) == elsewhere.as_posix()
