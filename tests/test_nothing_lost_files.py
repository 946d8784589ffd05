"""Nothing a user made is lost or overwritten (issue 24: items 1, 6, 11, 14, 15 and 16 for `course predict`).

- only a regular file is ever replaced: a folder, a device, a named pipe or a link is refused with one line;
- `course predict` refuses an output it cannot write before predicting, and exits non-zero when the CSV could
  not be written after all;
- file and class names that a spreadsheet would run as formulas are neutralised in the CSV;
- an unreadable file or sub-folder is skipped and named in the one summary line; a system folder is no data set;
- one image too large for the memory there is is skipped; running out of memory as a whole is one line;
- validation gaps: `DATASET=''`, `--batch-size 0`, `course run --output FILE`, `course prefetch --kit .`.

The tests run as root in the course's container, where `chmod 000` stops nothing: there a denied entry is
simulated by making `os.scandir`, `os.listdir` and `PIL.Image.open` raise the `PermissionError` the system would.
"""

from __future__ import annotations

import csv
import errno
import os
import stat
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import write_image
from PIL import Image
from torch import nn

from course_tools import cli, runner
from course_utils import checkpoints, config, datasets, evaluation, files, models
from course_utils.config import ParameterError, check_parameters
from course_utils.samples import DatasetError

CLASSES = ["cat", "dog", "fox"]


# ------------------------------------------------------------------ helpers
def _checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = models.ScratchCNN(len(CLASSES), channels=(8, 16))
    return checkpoints.save_checkpoint(tmp_path / "model.pt", model, arch="scratch_cnn", classes=CLASSES,
                                       mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=32)


def _photos(tmp_path: Path, count: int = 3) -> Path:
    folder = tmp_path / "photos"
    for index in range(count):
        write_image(folder / f"photo {index}.png", (20, 20), ((70 * index) % 256, 90, 200))
    return folder


def _count_model_builds(monkeypatch) -> list[Path]:
    """Record every checkpoint `course predict` starts to load: empty means nothing was predicted."""
    builds: list[Path] = []
    real = checkpoints.build_model_from_checkpoint

    def recording(path, *args, **kwargs):
        builds.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "build_model_from_checkpoint", recording)
    return builds


def _one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _device(tmp_path: Path) -> Path:
    """A character device like /dev/full: made in tmp_path where this user may (root), else the real /dev/full,
    which a user who may not make devices cannot replace either."""
    node = tmp_path / "full"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except OSError:
        return Path("/dev/full")
    return node


def _make(kind: str, tmp_path: Path) -> Path:
    """A non-regular entry of the given kind at tmp_path/target (a link leads to a file of the user's)."""
    target = tmp_path / "target"
    if kind == "folder":
        target.mkdir()
        (target / "mine.txt").write_text("mine")
    elif kind == "named pipe":
        os.mkfifo(target)
    elif kind == "device":
        return _device(tmp_path)
    elif kind == "link":
        (tmp_path / "notes.txt").write_text("mine")
        target.symlink_to(tmp_path / "notes.txt")
    return target


@pytest.fixture
def deny(monkeypatch):
    """``deny(path, ...)``: make files or folders unreadable (chmod 000, and simulated for root)."""
    denied: set[Path] = set()
    real_scandir, real_listdir, real_open = os.scandir, os.listdir, Image.open

    def refuse(path) -> None:
        if isinstance(path, (str, os.PathLike)) and Path(os.fsdecode(path)).absolute() in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    def scandir(path="."):
        refuse(path)
        return real_scandir(path)

    def listdir(path="."):
        refuse(path)
        return real_listdir(path)

    def image_open(fp, *args, **kwargs):
        refuse(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(Image, "open", image_open)
    modes: dict[Path, int] = {}

    def make_unreadable(*paths: Path) -> None:
        for path in paths:
            modes[path] = path.stat().st_mode
            path.chmod(0)
            denied.add(path.absolute())

    yield make_unreadable
    for path, mode in modes.items():
        path.chmod(mode)


# ------------------------------------------------------------------ 1. atomic_write replaces only regular files
@pytest.mark.parametrize(("kind", "words"), [("folder", "is a folder"), ("named pipe", "is a named pipe"),
                                             ("device", "is a device"), ("link", "is a symbolic link")])
def test_atomic_write_replaces_only_a_regular_file_and_names_the_path(tmp_path, kind, words):
    target = _make(kind, tmp_path)
    before = os.lstat(target)
    with pytest.raises(files.NotARegularFileError) as caught:
        files.write_text_atomic(target, "predictions")
    message = str(caught.value)
    assert str(target) in message and words in message and "\n" not in message
    after = os.lstat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    assert not [path for path in target.parent.iterdir() if path.name.endswith(".tmp")]
    if kind == "link":
        assert (tmp_path / "notes.txt").read_text() == "mine"
    if kind == "folder":
        assert (target / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("writer", ["text", "json", "checkpoint"])
def test_every_writer_built_on_atomic_write_refuses_a_named_pipe(tmp_path, writer):
    target = tmp_path / "pipe"
    os.mkfifo(target)
    with pytest.raises(files.NotARegularFileError, match="is a named pipe"):
        if writer == "text":
            files.write_text_atomic(target, "x")
        elif writer == "json":
            files.write_json_atomic(target, {"a": 1})
        else:
            checkpoints.save_checkpoint(target, nn.Linear(2, 2), arch=None, classes=None, mean=None, std=None,
                                        input_size=None)
    assert stat.S_ISFIFO(os.lstat(target).st_mode)


def test_follow_symlinks_writes_the_file_the_link_leads_to_and_keeps_the_link(tmp_path):
    (tmp_path / "real.csv").write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "real.csv")
    with files.atomic_write(link, follow_symlinks=True) as temporary:
        temporary.write_text("new")
    assert link.is_symlink() and (tmp_path / "real.csv").read_text() == "new"
    device = _device(tmp_path)
    to_device = tmp_path / "to-device"
    to_device.symlink_to(device)
    with pytest.raises(files.NotARegularFileError, match="is a device"):
        with files.atomic_write(to_device, follow_symlinks=True) as temporary:
            temporary.write_text("x")
    assert stat.S_ISCHR(os.stat(device).st_mode) and to_device.is_symlink()


def test_check_writable_file_names_a_folder_that_takes_no_new_files(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):  # root may write anywhere: say what the system says to anyone else
        if Path(kwargs.get("dir", "")) == locked:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    try:
        with pytest.raises(PermissionError) as caught:
            files.check_writable_file(locked / "predictions.csv")
    finally:
        locked.chmod(0o755)
    assert str(locked) in str(caught.value) and "permission denied" in str(caught.value)
    assert list(locked.iterdir()) == []
    assert files.check_writable_file(tmp_path / "new" / "predictions.csv") == tmp_path / "new" / "predictions.csv"
    assert not (tmp_path / "new").exists() and [p.name for p in tmp_path.iterdir()] == ["locked"]


# ------------------------------------------------------------------ 6. course predict: an output it cannot write
@pytest.mark.parametrize("kind", ["folder", "device", "named pipe", "link", "below a file"])
def test_predict_refuses_an_unusable_output_before_predicting(tmp_path, monkeypatch, capsys, kind):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    builds = _count_model_builds(monkeypatch)
    if kind == "below a file":
        (tmp_path / "results").write_text("a file of mine")
        output = tmp_path / "results" / "predictions.csv"
    else:
        output = _make(kind, tmp_path)
    before = os.lstat(output) if kind != "below a file" else None
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(output), "--device", "cpu"]) == 2
    printed = capsys.readouterr()
    line = _one_error_line(printed.err)
    assert line.startswith("course predict: error:") and (str(output) in line or str(output.parent) in line)
    assert builds == [] and "Predicted" not in printed.out  # refused before the work
    if before is not None:
        assert os.lstat(output).st_ino == before.st_ino and stat.S_IFMT(os.lstat(output).st_mode) == \
            stat.S_IFMT(before.st_mode)
    else:
        assert (tmp_path / "results").read_text() == "a file of mine"


@pytest.mark.parametrize("name", ["model.pt", "photos/photo 1.png", "notes.md"])
def test_predict_never_replaces_a_file_that_is_not_a_csv(tmp_path, monkeypatch, capsys, name):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    (tmp_path / "notes.md").write_text("my notes")
    output = tmp_path / name
    before = output.read_bytes()
    builds = _count_model_builds(monkeypatch)
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(output)]) == 2
    assert "is not a .csv file" in _one_error_line(capsys.readouterr().err) and builds == []
    assert output.read_bytes() == before


def test_predict_refuses_a_read_only_folder_before_predicting(tmp_path, monkeypatch, capsys):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    builds = _count_model_builds(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if Path(kwargs.get("dir", "")) == locked:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(locked / "p.csv")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(locked) in line and "read-only file system" in line and builds == []


def test_predict_exits_non_zero_when_the_disk_is_full_and_keeps_the_previous_csv(tmp_path, monkeypatch, capsys):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    output = tmp_path / "predictions.csv"
    output.write_text("yesterday's predictions")

    def full_disk(self, path, *args, **kwargs):
        Path(path).write_text("half a ")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(output), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "Could not write" in line and str(output) in line and "no space left on device" in line
    assert output.read_text() == "yesterday's predictions"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pt", "photos", "predictions.csv"]


# ------------------------------------------------------------------ 11. formulas in names are neutralised
NASTY = ["=1+cmd|' /C calc'!A0.png", "@SUM(A1).png", "+plus.png", "-minus.png", "\tTab.png", "\rreturn.png",
         "plain.png"]


def test_predictions_csv_neutralises_cells_a_spreadsheet_would_run(tmp_path):
    folder = tmp_path / "unlabeled"
    for name in NASTY:
        write_image(folder / name)
    classes = ['=HYPERLINK("http://evil.example","click")', "@cat"]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    nn.init.zeros_(model[1].weight)
    with torch.no_grad():
        model[1].bias.copy_(torch.tensor([2.0, 0.0]))
    output = tmp_path / "predictions.csv"
    table = evaluation.predict_folder(model, folder, lambda image: torch.zeros(3, 8, 8), classes, output, top_k=2,
                           verbose=False)
    assert sorted(table["file"]) == sorted(NASTY)  # the returned table keeps the real names
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    text_cells = [row[column] for row in rows for column in ("file", "predicted_class", "top_1_class",
                                                             "top_2_class")]
    assert text_cells and not [cell for cell in text_cells if cell.startswith(evaluation.FORMULA_STARTS)]
    assert sorted(row["file"] for row in rows) == sorted(evaluation.spreadsheet_safe(name) for name in NASTY)
    assert {row["predicted_class"] for row in rows} == {"'" + classes[0]}
    assert "plain.png" in [row["file"] for row in rows] and "'@SUM(A1).png" in [row["file"] for row in rows]
    assert all(float(row["confidence"]) > 0.5 for row in rows)  # numbers stay numbers


def test_spreadsheet_safe_follows_owasp():
    assert [evaluation.spreadsheet_safe(text) for text in ("=1", "+1", "-1", "@x", "\tx", "\rx", "x=1", "")] == \
        ["'=1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "x=1", ""]


# ------------------------------------------------------------------ 14. unreadable entries, system folders
def test_an_unreadable_sub_folder_and_file_are_skipped_and_named_in_the_one_line(make_image_folder, deny, capsys):
    root = make_image_folder({"cat": 4, "dog": 4})
    for index in range(2):
        write_image(root / "cat" / "private" / f"p{index}.png")
    write_image(root / "dog" / "secret.png")
    deny(root / "cat" / "private", root / "dog" / "secret.png")
    samples, classes = datasets.scan_image_folder(root)
    assert classes == ["cat", "dog"] and len(samples) == 8
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("⚠️")]
    assert len(warnings) == 1, out
    assert "cat/private" in warnings[0] and "dog/secret.png" in warnings[0]
    assert "permission denied" in warnings[0] and "Skipped 2 of 10" in warnings[0]


def test_an_unreadable_data_folder_is_one_dataset_error(make_image_folder, deny):
    root = make_image_folder({"cat": 2, "dog": 2})
    deny(root)
    for call in (datasets.scan_image_folder, datasets.list_unlabeled_images):
        with pytest.raises(DatasetError) as caught:
            call(root)
        assert str(root) in str(caught.value) and "permission denied" in str(caught.value)
        assert "\n" not in str(caught.value)


def test_predict_skips_an_unreadable_sub_folder_and_says_so(tmp_path, deny, capsys):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    write_image(photos / "locked" / "hidden away.png")
    deny(photos / "locked")
    output = tmp_path / "predictions.csv"
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(output), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "locked" in out and "permission denied" in out and "1 file(s) skipped" in out
    assert sorted(pd.read_csv(output)["file"]) == [f"photo {index}.png" for index in range(3)]


SYSTEM_FOLDERS = ["/", "/usr", "/etc", "/proc", "/sys", "/dev"]


@pytest.mark.parametrize("folder", SYSTEM_FOLDERS)
def test_a_system_folder_is_refused_as_a_data_set(folder, tmp_path):
    with pytest.raises(ParameterError, match="system folder"):
        check_parameters({"DATASET": folder})
    for call in (datasets.scan_image_folder, datasets.list_unlabeled_images):
        with pytest.raises(DatasetError, match="system folder"):
            call(folder)
    with pytest.raises(DatasetError, match="system folder"):
        datasets.load_dataset(folder, tmp_path, profile="smoke")


def test_the_home_folder_itself_is_refused_but_a_folder_in_it_is_not(make_image_folder, tmp_path, monkeypatch):
    home = tmp_path / "home"
    photos = make_image_folder({"cat": 3, "dog": 3}, name="home/photos")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(ParameterError, match="system folder"):
        check_parameters({"DATASET": str(home)})
    with pytest.raises(DatasetError, match="system folder"):
        datasets.scan_image_folder(home)
    check_parameters({"DATASET": str(photos)})
    assert datasets.scan_image_folder(photos, verbose=False)[1] == ["cat", "dog"]


def test_predict_refuses_the_root_folder(tmp_path, capsys):
    assert cli.main(["predict", str(_checkpoint(tmp_path)), "/", "--output", str(tmp_path / "p.csv")]) == 2
    assert "system folder" in _one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------ 15. one huge image, a run out of memory
@pytest.mark.parametrize("error", [MemoryError, Image.DecompressionBombError])
def test_predict_skips_an_image_too_large_to_decode(tmp_path, monkeypatch, capsys, error):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    write_image(photos / "huge.png")
    real = evaluation.load_rgb

    def load(path):
        if Path(path).name == "huge.png":
            raise error("decompression bomb" if error is not MemoryError else None)
        return real(path)

    monkeypatch.setattr(evaluation, "load_rgb", load)
    output = tmp_path / "predictions.csv"
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(output), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "huge.png (too large to decode)" in out and "1 file(s) skipped" in out
    assert sorted(pd.read_csv(output)["file"]) == [f"photo {index}.png" for index in range(3)]


def test_predict_skips_a_decompression_bomb_found_by_the_scan(tmp_path, monkeypatch, capsys):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    write_image(photos / "bomb.png", (100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # photos hold 400 pixels, the bomb 10,000
    output = tmp_path / "predictions.csv"
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(output), "--device", "cpu"]) == 0
    assert "bomb.png" in capsys.readouterr().out and len(pd.read_csv(output)) == 3


def test_predict_out_of_memory_as_a_whole_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(checkpoints, "build_model_from_checkpoint", no_memory)
    output = tmp_path / "predictions.csv"
    assert cli.main(["predict", str(checkpoint), str(photos), "--output", str(output)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("course predict: error: Out of memory") and "--batch-size" in line
    assert not output.exists()


# ------------------------------------------------------------------ 16. validation gaps
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_dataset_is_refused(value):
    with pytest.raises(ParameterError, match="is empty"):
        check_parameters({"DATASET": value})


@pytest.mark.parametrize("batch_size", ["0", "-5"])
def test_predict_refuses_a_batch_size_below_1_before_predicting(tmp_path, monkeypatch, capsys, batch_size):
    checkpoint, photos = _checkpoint(tmp_path), _photos(tmp_path)
    builds = _count_model_builds(monkeypatch)
    assert cli.main(["predict", str(checkpoint), str(photos), "--batch-size", batch_size,
                     "--output", str(tmp_path / "p.csv")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--batch-size must be a whole number >= 1, not {batch_size}" in line and builds == []
    with pytest.raises(ValueError, match="batch_size"):
        evaluation.predict_folder(nn.Flatten(), photos, lambda image: torch.zeros(3), ["a"], batch_size=int(batch_size))


@pytest.mark.parametrize("where", ["file", "below a file", "device"])
def test_course_run_refuses_an_output_that_is_not_a_folder_before_running(tmp_path, monkeypatch, capsys, where):
    calls = []
    monkeypatch.setattr(runner, "run_lessons", lambda *args, **kwargs: calls.append(kwargs) or [])
    (tmp_path / "notes.txt").write_text("mine")
    output = {"file": tmp_path / "notes.txt", "below a file": tmp_path / "notes.txt" / "build",
              "device": _device(tmp_path)}[where]
    assert cli.main(["run", "--output", str(output)]) == 2
    printed = capsys.readouterr()
    line = _one_error_line(printed.err)
    assert "--output" in line and "not a folder" in line and calls == [] and printed.out == ""
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("kit", [".", "..", "sub/.."])
def test_prefetch_refuses_a_kit_that_is_the_current_folder(tmp_path, monkeypatch, capsys, kit):
    from course_tools import kit as kit_module

    calls = []
    monkeypatch.setattr(kit_module, "prefetch_and_build_kit", lambda *args, **kwargs: calls.append(kwargs))
    here = tmp_path / "work"
    (here / "sub").mkdir(parents=True)
    monkeypatch.chdir(here)
    assert cli.main(["prefetch", "--kit", kit]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--kit {kit} is the folder you are in" in line and calls == []
    assert cli.main(["prefetch", "--kit", "new-kit/."]) == 0
    assert calls[-1]["kit"] == Path("new-kit")


def test_class_folders_differing_only_in_capitalisation_get_one_notice(make_image_folder, capsys):
    root = make_image_folder({"Cat": 3, "cat": 3, "dog": 3})
    _, classes = datasets.scan_image_folder(root)
    assert classes == ["Cat", "cat", "dog"]
    notices = [line for line in capsys.readouterr().out.splitlines() if "capitalisation" in line]
    assert len(notices) == 1 and "Cat and cat" in notices[0] and "merge them" in notices[0]


def test_system_folders_are_roots_and_the_like_never_the_course_data_folder():
    assert files.is_system_folder("/") and files.is_system_folder("/usr/")
    assert not files.is_system_folder(config.default_data_dir())
