"""Caches are checked, not trusted (issue 10, item 8): feature cache files and generated synthetic signs."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import cache_folders, features
from course_utils.features import clear_feature_cache, compute_features
from course_utils.synthetic import generate_signs

SMALL = {"classes": ("stop", "no_entry"), "tracks_per_class": 2, "frames_per_track": 2}


def loader(rows: int) -> DataLoader:
    generator = torch.Generator().manual_seed(rows)
    data = TensorDataset(torch.randn(rows, 3, 4, 4, generator=generator), torch.arange(rows) % 2)
    return DataLoader(data, batch_size=4)


def test_a_cache_file_holding_another_splits_features_is_recomputed(tmp_path, capsys):
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    clear_feature_cache()
    compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="val", verbose=False)
    clear_feature_cache()
    train_file, val_file = tmp_path / "features-train.pt", tmp_path / "features-val.pt"
    val_file.replace(train_file)  # the train key's file now holds the 6 validation rows
    features_, labels = compute_features(backbone, loader(10), cache_dir=tmp_path, cache_key="train",
                                         verbose=False)
    assert features_.shape == (10, 5) and labels.shape == (10,)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert f"Recomputing the features: the cache file {train_file} does not match" in out
    assert "'val', not 'train'" in out
    assert torch.load(train_file, weights_only=True)["key"] == "train"  # rewritten with the right features
    assert torch.load(train_file, weights_only=True)["shape"] == [10, 5]


def test_a_cache_file_with_the_wrong_number_of_rows_is_recomputed(tmp_path, capsys):
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    clear_feature_cache()
    compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)
    clear_feature_cache()
    features_, _ = compute_features(backbone, loader(8), cache_dir=tmp_path, cache_key="k", verbose=False)
    assert len(features_) == 8
    assert "it has 6 rows for 8 images" in capsys.readouterr().out


def test_a_truncated_cache_file_is_recomputed(tmp_path, capsys):
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    clear_feature_cache()
    compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)
    clear_feature_cache()
    path = tmp_path / "features-k.pt"
    path.write_bytes(path.read_bytes()[:100])
    features_, _ = compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)
    assert len(features_) == 6
    assert "unreadable" in capsys.readouterr().out
    assert features._read_cache(path, "k", 6) is not None  # the file was written again


def test_a_damaged_generated_image_is_named_and_drawn_again(tmp_path, capsys):
    folder = generate_signs(tmp_path, **SMALL, verbose=False)
    image = folder / "stop" / "00001_00000.png"
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 3])
    assert generate_signs(tmp_path, **SMALL, verbose=False) == folder
    assert image.read_bytes() == good
    out = capsys.readouterr().out
    assert f"1 generated image(s) are damaged or missing ({image}): drawing them again." in out


def test_stale_partial_folders_of_killed_generations_are_removed(tmp_path, capsys):
    code = ("import os, sys\nfrom course_utils import synthetic\n"
            "real = synthetic._track_frames\ncalls = []\n"
            "def killed(*args, **kwargs):\n"
            "    calls.append(1)\n"
            "    if len(calls) == 3:\n"
            "        os._exit(9)  # like kill -9: no clean-up runs\n"
            "    return real(*args, **kwargs)\n"
            "synthetic._track_frames = killed\n"
            f"synthetic.generate_signs(sys.argv[1], classes={SMALL['classes']!r}, tracks_per_class=2, "
            "frames_per_track=2, verbose=False)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=dict(os.environ), check=False)
    assert result.returncode == 9
    leftovers = list(tmp_path.glob(".*.partial-*"))
    assert len(leftovers) == 1 and list(leftovers[0].rglob("*.png"))
    folder = generate_signs(tmp_path, **SMALL, verbose=True)
    assert not list(tmp_path.glob(".*.partial-*"))
    assert "Removed 1 unfinished folder(s) of interrupted generations" in capsys.readouterr().out
    assert len(list(folder.rglob("*.png"))) == 8
    assert not (folder / cache_folders.MARKER_FILE).exists()


def test_a_partial_folder_of_a_running_generation_is_kept(tmp_path):
    from filelock import FileLock

    partial = tmp_path / ".abc.partial-1234"
    partial.mkdir()
    (partial / cache_folders.MARKER_FILE).write_text("made by the course")
    with FileLock(tmp_path / ".abc.lock"):  # its writer (another notebook) is alive and holds the folder's lock
        assert cache_folders.remove_abandoned_partials(tmp_path, verbose=False) == []
    assert partial.is_dir()
    assert cache_folders.remove_abandoned_partials(tmp_path, verbose=False) == [partial]  # the writer is gone
    assert not partial.exists()


# ------------------------------------------------- issue 24, item 10: same-size damage is found by a checksum
def cached_features(tmp_path):
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    clear_feature_cache()
    expected = compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)
    clear_feature_cache()
    return backbone, expected, tmp_path / "features-k.pt"


def overwrite_in_place(path, old: bytes, new: bytes) -> None:
    """Replace the first ``old`` bytes in the file by ``new`` (same length): the file keeps its size."""
    data = path.read_bytes()
    start = data.find(old)
    assert start > 0 and len(old) == len(new)
    path.write_bytes(data[:start] + new + data[start + len(old):])


def test_a_cache_file_with_flipped_feature_bytes_is_recomputed_with_one_notice(tmp_path, capsys):
    backbone, (features_, labels), path = cached_features(tmp_path)
    size = path.stat().st_size
    overwrite_in_place(path, features_[0, :2].numpy().tobytes(), struct.pack("<ff", float("nan"), float("inf")))
    assert path.stat().st_size == size
    again, again_labels = compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)
    assert torch.equal(again, features_) and torch.equal(again_labels, labels)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert f"Recomputing the features: the cache file {path} does not match" in out and "checksum" in out
    clear_feature_cache()  # the file was written again: the next run loads it without a word
    assert torch.equal(compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)[0],
                       features_)
    assert capsys.readouterr().out == ""


def test_a_cache_file_with_a_changed_label_is_recomputed(tmp_path, capsys):
    backbone, (_, labels), path = cached_features(tmp_path)
    changed = labels.clone()
    changed[:2] = 1 - changed[:2]  # still valid, finite labels: only a checksum can tell
    overwrite_in_place(path, labels[:2].numpy().tobytes(), changed[:2].numpy().tobytes())
    _, again_labels = compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)
    assert torch.equal(again_labels, labels)
    assert "checksum" in capsys.readouterr().out


def test_a_cache_file_without_a_checksum_is_recomputed(tmp_path, capsys):
    backbone, (features_, labels), path = cached_features(tmp_path)
    torch.save({"features": features_ + 1, "labels": labels, "key": "k", "shape": [6, 5]}, path)  # an older format
    again, _ = compute_features(backbone, loader(6), cache_dir=tmp_path, cache_key="k", verbose=False)
    assert torch.equal(again, features_)
    assert "no checksum" in capsys.readouterr().out


def test_a_generated_image_damaged_in_place_is_named_and_drawn_again(tmp_path, capsys):
    folder = generate_signs(tmp_path, **SMALL, verbose=False)
    image = folder / "no_entry" / "00000_00001.png"
    good = image.read_bytes()
    middle = len(good) // 2
    image.write_bytes(good[:middle] + bytes(byte ^ 0xFF for byte in good[middle:middle + 32]) + good[middle + 32:])
    assert image.stat().st_size == len(good)
    assert generate_signs(tmp_path, **SMALL, verbose=False) == folder
    assert image.read_bytes() == good
    out = capsys.readouterr().out
    assert out == f"⚠️ 1 generated image(s) are damaged or missing ({image}): drawing them again.\n"
    generate_signs(tmp_path, **SMALL, verbose=False)
    assert capsys.readouterr().out == ""  # repaired once, quiet afterwards


def test_a_redrawn_image_that_differs_from_the_record_is_recorded_not_redrawn_forever(tmp_path, capsys):
    folder = generate_signs(tmp_path, **SMALL, verbose=False)
    manifest = cache_folders.read_manifest(folder)
    relative = "stop/00000_00000.png"
    manifest["digests"][relative] = "0" * 64  # as if another Pillow had compressed it differently
    (folder / cache_folders.MANIFEST_NAME).write_text(json.dumps(manifest))
    generate_signs(tmp_path, **SMALL, verbose=False)
    assert "1 generated image(s) are damaged" in capsys.readouterr().out
    generate_signs(tmp_path, **SMALL, verbose=False)
    assert capsys.readouterr().out == ""


def test_a_manifest_naming_files_outside_the_folder_writes_nothing_there(tmp_path, capsys):
    folder = generate_signs(tmp_path / "signs", **SMALL, verbose=False)
    manifest = cache_folders.read_manifest(folder)
    manifest["sizes"]["../../escape.png"] = 1
    manifest["digests"]["../../escape.png"] = "0" * 64
    (folder / cache_folders.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert generate_signs(tmp_path / "signs", **SMALL, verbose=False) == folder
    assert not (tmp_path / "escape.png").exists() and capsys.readouterr().out == ""


def test_a_manifest_that_is_not_a_dictionary_proves_nothing_and_the_folder_is_kept(tmp_path):
    import pytest

    folder = generate_signs(tmp_path, **SMALL, verbose=False)
    (folder / cache_folders.MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(FileExistsError, match="move it away"):
        generate_signs(tmp_path, **SMALL, verbose=False)
    assert (folder / cache_folders.MANIFEST_NAME).read_text() == "[1, 2]" and len(list(folder.rglob("*.png"))) == 8


def test_a_partial_looking_folder_without_the_owner_marker_is_never_removed(tmp_path):
    """Only a folder whose owner file proves the course made it is cleaned up, however old it is."""
    foreign = tmp_path / ".abc.partial-mine"
    foreign.mkdir()
    (foreign / "photo.jpg").write_bytes(b"not the course's")
    old = time.time() - 10 * 24 * 3600
    os.utime(foreign, (old, old))
    assert cache_folders.remove_abandoned_partials(tmp_path, verbose=False) == []
    assert (foreign / "photo.jpg").read_bytes() == b"not the course's"
