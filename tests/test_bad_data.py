"""Odd folders and files in a data set (issue 10: non-UTF-8 names, links, broken images, messages)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import write_image
from torch import nn

from course_utils import evaluation
from course_utils.datasets import list_unlabeled_images, load_dataset, scan_image_folder
from course_utils.samples import DatasetError, Sample
from course_utils.splits import split_samples

LATIN1 = "caf\udce9"  # the bytes b"caf\xe9": a legal Linux name that is not UTF-8


def bytes_name(folder: Path, name: bytes) -> Path:
    """The path of ``folder/name`` for a name given as raw bytes."""
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


# ------------------------------------------------------------------ 4. names that are not UTF-8
def test_a_class_folder_named_in_latin1_is_skipped_and_reported(make_image_folder, capsys):
    root = make_image_folder({"cat": 4, "dog": 4})
    for index in range(3):
        write_image(bytes_name(root, b"caf\xe9") / f"{index}.png")
    samples, classes = scan_image_folder(root)
    assert classes == ["cat", "dog"] and len(samples) == 8
    out = capsys.readouterr().out
    assert "Ignored 1 folder(s)" in out and "caf\\xe9 (name not valid UTF-8 (rename it))" in out


def test_a_file_named_in_latin1_is_skipped_and_reported(make_image_folder, capsys):
    root = make_image_folder({"cat": 4, "dog": 4})
    write_image(bytes_name(root / "cat", b"ph\xf6to.png"))
    samples, _ = scan_image_folder(root)
    assert len(samples) == 8
    out = capsys.readouterr().out
    assert "skipped 1 of 9 files" in out.lower() and "cat/ph\\xf6to.png" in out


def test_split_accepts_class_names_with_undecodable_bytes():
    samples = [Sample(Path(f"{i}.png"), i % 2, f"g{i}") for i in range(20)]
    split = split_samples(samples, [LATIN1, "dog"], seed=0)
    assert len(split.train) + len(split.val) + len(split.test) == 20
    again = split_samples(samples, ["cafe", "dog"], seed=0)  # a plain name splits as before
    assert len(again.train) + len(again.val) + len(again.test) == 20


def test_predict_folder_keeps_predictions_of_files_with_undecodable_names(tmp_path, capsys):
    folder = tmp_path / "new"
    write_image(folder / "a.png")
    write_image(bytes_name(folder, b"\xe9t\xe9.png"))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))

    def transform(image):
        return torch.zeros(3, 8, 8)

    csv = tmp_path / "predictions.csv"
    table = evaluation.predict_folder(model, folder, transform, ["cat", "dog"], csv, verbose=False)
    assert len(table) == 2
    written = pd.read_csv(csv)
    assert sorted(written["file"]) == ["\\xe9t\\xe9.png", "a.png"]
    assert "not valid UTF-8" in capsys.readouterr().out


def test_predict_folder_returns_predictions_when_the_csv_cannot_be_written(tmp_path, capsys):
    folder = tmp_path / "new"
    write_image(folder / "a.png")
    blocker = tmp_path / "results"
    blocker.write_text("a file")
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    table = evaluation.predict_folder(model, folder, lambda image: torch.zeros(3, 8, 8), ["cat", "dog"],
                                      blocker / "predictions.csv", verbose=False)
    assert len(table) == 1  # the computed predictions are returned
    out = capsys.readouterr().out
    assert "Could not write" in out and "results is a file, not a folder" in out
    assert blocker.read_text() == "a file"


# ------------------------------------------------------------------ 6. links back into the data set
def test_a_class_folder_linking_back_to_the_data_root_is_ignored(make_image_folder, capsys):
    root = make_image_folder({"cat": 4, "dog": 4})
    (root / "everything").symlink_to(root, target_is_directory=True)
    (root / "kitty").symlink_to(root / "cat", target_is_directory=True)
    samples, classes = scan_image_folder(root)
    assert classes == ["cat", "dog"] and len(samples) == 8
    out = capsys.readouterr().out
    assert "everything (a link back into the data set" in out and "kitty (a link back" in out


def test_a_class_folder_linking_outside_the_data_set_still_counts(make_image_folder, tmp_path):
    root = make_image_folder({"cat": 4, "dog": 4})
    outside = tmp_path / "elsewhere" / "bird"
    for index in range(3):
        write_image(outside / f"{index}.png")
    (root / "bird").symlink_to(outside, target_is_directory=True)
    _, classes = scan_image_folder(root)
    assert classes == ["bird", "cat", "dog"]


# ------------------------------------------------------------------ 9. misleading messages
def test_a_folder_of_only_broken_images_says_so(tmp_path):
    root = tmp_path / "broken"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for index in range(3):
            (root / name / f"{index}.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DatasetError, match=r"None of the 6 file\(s\) in the class folders of .*broken "
                                           r"\(cat, dog\) is a usable image"):
        scan_image_folder(root)


def test_a_regular_file_as_data_folder_says_it_is_a_file(tmp_path):
    archive = tmp_path / "photos.zip"
    archive.write_bytes(b"PK")
    for call in (lambda: scan_image_folder(archive), lambda: list_unlabeled_images(archive),
                 lambda: load_dataset(str(archive), tmp_path, profile="smoke")):
        with pytest.raises(DatasetError, match="photos.zip is a file, not a folder"):
            call()


def test_val_folder_lacking_a_class_gets_a_note(make_image_folder, capsys):
    root = make_image_folder({"train/cat": 6, "train/dog": 6, "train/fox": 6, "val/cat": 2, "val/dog": 2},
                             name="split")
    split = load_dataset(str(root), profile="smoke")
    assert split.classes == ["cat", "dog", "fox"]
    out = capsys.readouterr().out
    assert "has no folder for class(es) fox: the val part holds no images of them" in out


def test_a_folder_too_small_to_split_stops_with_an_error_naming_the_folder_and_the_fix(make_image_folder, capsys):
    # The README: a folder that cannot be used (..., an empty split) stops with an error that names the folder
    # and the fix. Two images per class leave the validation part empty in the smoke profile.
    root = make_image_folder({f"class_{index:02d}": 2 for index in range(6)}, name="tiny")
    with pytest.raises(DatasetError) as caught:
        load_dataset(str(root), profile="smoke")
    message = str(caught.value)
    assert message.startswith(f"In {root}: the val part would be empty") and "\n" not in message
    assert "-p DATASET <folder>" in message  # what course run can set
    assert "fewer than 3 groups" in capsys.readouterr().out  # which classes, said before it stopped
