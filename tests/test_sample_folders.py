"""Lesson 5's practice folder: messy like a real one, the same every time, cached."""

from __future__ import annotations

import hashlib
import shutil

from course_utils import datasets, sample_folders, splits


def _digest(folder):
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return hashlib.sha256(b"".join(path.relative_to(folder).as_posix().encode() + path.read_bytes()
                                   for path in files)).hexdigest()


def test_the_sample_folder_looks_like_a_real_one(tmp_path, capsys):
    made = sample_folders.make_sample_folder(tmp_path / "a", verbose=False)
    assert made.labeled.is_dir() and made.unlabeled.is_dir()
    samples, classes = datasets.scan_image_folder(made.labeled)
    report = capsys.readouterr().out
    assert classes == sorted(sample_folders.SAMPLE_CLASSES)
    assert "Skipped 4 of" in report
    for name in ("notes.txt", "receipt.pdf", "00099_00000.png", "IMG_9999.JPG"):
        assert name in report
    assert "DS_Store" not in report and "Thumbs.db" not in report and "._IMG" not in report
    counts = {name: sum(sample.label == label for sample in samples) for label, name in enumerate(classes)}
    expected = {name: tracks * frames for name, (_, tracks, frames, _) in sample_folders.SAMPLE_CLASSES.items()}
    assert counts == expected
    assert max(counts.values()) >= 10 * min(counts.values())  # very different sizes
    kept, kept_classes = splits.drop_rare_classes(samples, classes, 10, verbose=False)
    assert "road work" not in kept_classes and len(kept_classes) == len(classes) - 1
    # Frames of one sign share a group (the split keeps them together); camera photos are groups of their own.
    groups = {sample.group for sample in samples if classes[sample.label] == "pedestrians"}
    assert len(groups) == sample_folders.SAMPLE_CLASSES["pedestrians"][1]
    assert any(" " in path.name or not path.name.isascii() for path in made.labeled.rglob("*"))
    unlabeled = datasets.list_unlabeled_images(made.unlabeled)
    assert len(unlabeled) == sample_folders.UNLABELED_PER_CLASS * len(classes)
    assert "test_broken.jpg" in capsys.readouterr().out


def test_the_sample_folder_is_deterministic_and_cached(tmp_path):
    first = sample_folders.make_sample_folder(tmp_path / "a", verbose=False)
    second = sample_folders.make_sample_folder(tmp_path / "b", verbose=False)
    assert first.labeled.parent.name == second.labeled.parent.name
    assert _digest(first.labeled.parent) == _digest(second.labeled.parent)
    marker = first.labeled / "roundabout" / "IMG_4000.JPG"
    before = marker.stat().st_mtime_ns
    assert sample_folders.make_sample_folder(tmp_path / "a", verbose=False) == first
    assert marker.stat().st_mtime_ns == before  # found, not rewritten
    assert not list((tmp_path / "a").glob(".*partial*"))


def test_load_dataset_knows_the_practice_folder_by_name(tmp_path, capsys):
    from course_utils.config import DATASETS
    from course_utils.datasets import load_dataset

    assert "sample-folder" in DATASETS
    split = load_dataset("sample-folder", tmp_path, profile="smoke", seed=0)
    assert split.classes and len(split.classes) >= 2
    assert all("lesson5-sample-folder" in str(sample.path) for sample in split.train + split.val + split.test)
    assert "Skipped" in capsys.readouterr().out  # the broken and stray files are reported


def test_a_folder_finished_meanwhile_by_another_notebook_is_kept(tmp_path, monkeypatch):
    first = sample_folders.make_sample_folder(tmp_path / "elsewhere", verbose=False)  # the other process's result
    files_before = sorted(p.relative_to(first.labeled.parent) for p in first.labeled.parent.rglob("*"))
    write_folder = sample_folders._write_folder

    def slow_write(target, seed):  # while this process draws, the other one finishes the same folder
        counts = write_folder(target, seed)
        shutil.copytree(first.labeled.parent, tmp_path / "root" / first.labeled.parent.name)
        (tmp_path / "root" / first.labeled.parent.name / "marker").write_text("the other process's folder")
        return counts

    monkeypatch.setattr(sample_folders, "_write_folder", slow_write)
    result = sample_folders.make_sample_folder(tmp_path / "root", verbose=False)
    folder = result.labeled.parent
    assert (folder / "marker").is_file()  # the finished folder was kept, not deleted while others may read it
    assert sorted(p.relative_to(folder) for p in folder.rglob("*") if p.name != "marker") == files_before
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no partial folder left behind
