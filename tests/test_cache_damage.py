"""Caches are checked, not trusted (issue 10, item 8): feature cache files and generated synthetic signs."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import features, synthetic
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
    assert not (folder / synthetic.OWNER_FILE).exists()


def test_a_partial_folder_of_a_running_generation_is_kept(tmp_path):
    partial = tmp_path / ".abc.partial-1234"
    partial.mkdir()
    (partial / synthetic.OWNER_FILE).write_text(f"{__import__('socket').gethostname()} {os.getpid()}\n")
    assert synthetic.remove_stale_partials(tmp_path, verbose=False) == []
    assert partial.is_dir()
