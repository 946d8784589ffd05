"""Lesson 5's practice folder: messy like a real one, the same every time, cached."""

from __future__ import annotations

import hashlib
import shutil

import pytest

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
    assert sorted(p.name for p in folder.parent.iterdir()) == [f".{folder.name}.lock", folder.name]  # no partial


# ------------------------------------------------------------------ nothing of the user's is deleted (issue 24)
def _photos(folder, names=("holiday.jpg", "cat.png")):
    from helpers import write_image

    return [write_image(folder / name) for name in names]


def test_a_users_own_unlabeled_folder_is_left_alone(tmp_path, capsys):
    output = tmp_path / "out"
    theirs = _photos(output / "unlabeled")
    before = {path: path.read_bytes() for path in theirs}
    tests = _photos(tmp_path / "test", ("a.JPG", "b.png", "c.png"))
    folder = sample_folders.copy_unlabeled_images(tests, output)
    assert folder == output / "unlabeled-2"
    assert {path: path.read_bytes() for path in theirs} == before  # their photos are all still there
    assert sorted(path.name for path in (output / "unlabeled").iterdir()) == ["cat.png", "holiday.jpg"]
    assert sorted(datasets.files_under(folder)) == [folder / "image_000.jpg", folder / "image_001.png",
                                                    folder / "image_002.png"]
    out = capsys.readouterr().out
    assert "is not a folder the course made: left as it is" in out and "unlabeled-2" in out


def test_the_courses_own_copy_is_refilled_but_never_one_someone_added_to(tmp_path):
    output = tmp_path / "out"
    first = sample_folders.copy_unlabeled_images(_photos(tmp_path / "a", ("x.png", "y.png", "z.png")), output,
                                                 verbose=False)
    assert first == output / "unlabeled"
    again = sample_folders.copy_unlabeled_images(_photos(tmp_path / "b", ("x.jpg",)), output, verbose=False)
    assert again == first and [path.name for path in datasets.files_under(first)] == ["image_000.jpg"]
    added = _photos(first, ("mine.png",))[0]  # the user puts a photo of their own into the course's folder
    third = sample_folders.copy_unlabeled_images(_photos(tmp_path / "c", ("x.png",)), output, verbose=False)
    assert third == output / "unlabeled-2" and added.is_file()


def test_a_link_or_a_forged_marker_does_not_make_a_folder_the_courses(tmp_path):
    photos = tmp_path / "photos"
    _photos(photos)
    output = tmp_path / "out"
    output.mkdir()
    (output / "unlabeled").symlink_to(photos, target_is_directory=True)
    (photos / sample_folders.COPY_MARKER).write_text('{"files": ["holiday.jpg", "cat.png"]}')  # behind a link
    (output / "unlabeled-2").mkdir()
    (output / "unlabeled-2" / sample_folders.COPY_MARKER).write_text('{"files": ["../photos/cat.png"]}')
    _photos(output / "unlabeled-2", ("mine.png",))
    folder = sample_folders.copy_unlabeled_images(_photos(tmp_path / "a", ("x.png",)), output, verbose=False)
    assert folder == output / "unlabeled-3"
    assert sorted(path.name for path in photos.iterdir()) == [".course-unlabeled-copy.json", "cat.png",
                                                              "holiday.jpg"]
    assert (output / "unlabeled-2" / "mine.png").is_file()


def test_a_partial_folder_of_a_killed_run_is_removed_by_the_next_run(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "root"
    code = ("import sys\nfrom course_utils import sample_folders\n"
            "sample_folders.make_sample_folder(sys.argv[1], verbose=False)")
    child = subprocess.Popen([sys.executable, "-c", code, str(root)])
    try:
        while not list(root.glob(".*.partial-*/labeled/pedestrians/*")) and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # kill -9 half-way through drawing
    finally:
        child.wait()
    partials = list(root.glob(".*.partial-*"))
    assert len(partials) == 1 and not (partials[0] / "manifest.json").exists()  # the killed run's leftover
    made = sample_folders.make_sample_folder(root, verbose=False)
    folder = made.labeled.parent.name
    assert sorted(path.name for path in root.iterdir()) == [f".{folder}.lock", folder]  # the lock file stays
    assert not (made.labeled.parent / ".owner").exists()


def test_a_second_notebook_waits_for_the_first_and_finds_the_folder_finished(tmp_path):
    import shutil
    import subprocess
    import sys
    import time

    from filelock import FileLock

    root = tmp_path / "root"
    first = sample_folders.make_sample_folder(tmp_path / "other", verbose=False)  # to learn the folder's name
    name = first.labeled.parent.name
    root.mkdir()
    code = ("import sys\nfrom course_utils import sample_folders\n"
            "print(sample_folders.make_sample_folder(sys.argv[1], verbose=True).labeled)")
    with FileLock(root / f".{name}.lock"):  # the first notebook is drawing
        child = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert child.poll() is None  # the second one waits instead of drawing beside it
        shutil.copytree(first.labeled.parent, root / name)  # the first one's finished folder arrives
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and "Making lesson 5's sample folder" not in out  # it found the folder finished
    assert out.strip().endswith(f"{name}/labeled")


def test_a_folder_in_the_way_without_the_courses_manifest_is_not_deleted(tmp_path):
    first = sample_folders.make_sample_folder(tmp_path / "a", verbose=False)
    theirs = tmp_path / "b" / first.labeled.parent.name
    _photos(theirs)
    with pytest.raises(FileExistsError, match="is not a practice folder the course made"):
        sample_folders.make_sample_folder(tmp_path / "b", verbose=False)
    assert sorted(path.name for path in theirs.iterdir()) == ["cat.png", "holiday.jpg"]
