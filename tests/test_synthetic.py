from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from course_utils import synthetic
from course_utils.cache_folders import MANIFEST_NAME
from course_utils.config import TARGET_SIGNS
from course_utils.synthetic import (
    ALL_SIGNS,
    OTHER_SIGNS,
    generate_signs,
    render_sign,
)

SMALL = {"classes": ("stop", "no_entry", "speed_limit_50"), "tracks_per_class": 2, "frames_per_track": 3}


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("signs")
    return root, generate_signs(root, **SMALL, seed=0, verbose=False)


def test_sign_lists():
    assert len(OTHER_SIGNS) >= 8
    assert not set(OTHER_SIGNS) & set(TARGET_SIGNS)
    assert ALL_SIGNS == TARGET_SIGNS + OTHER_SIGNS
    assert len(set(ALL_SIGNS)) == len(ALL_SIGNS)


def test_render_sign_is_rgba_with_transparent_corners():
    for name in ALL_SIGNS:
        image = render_sign(name, 40, np.random.default_rng(0))
        assert image.mode == "RGBA" and image.size == (40, 40)
        alpha = np.asarray(image)[..., 3]
        assert alpha[0, 0] == 0 and alpha[20, 20] == 255, name
        edges = np.unique(alpha)
        assert ((edges > 0) & (edges < 255)).any(), f"{name} is not anti-aliased"


def test_render_sign_rejects_unknown_names():
    with pytest.raises(ValueError, match="stop"):
        render_sign("stopp", 32)


def test_target_signs_look_different():
    means = {name: np.asarray(render_sign(name, 64))[..., :3].reshape(-1, 3).mean(0) for name in TARGET_SIGNS}
    stop, no_entry = (np.asarray(render_sign(name, 64), dtype=float) for name in ("stop", "no_entry"))
    for first in TARGET_SIGNS:
        for second in TARGET_SIGNS:
            if first < second:
                assert np.abs(means[first] - means[second]).max() > 5, (first, second)
    # stop and no entry share their red: their shapes (alpha) must still differ clearly
    assert np.abs(stop[..., 3] - no_entry[..., 3]).mean() > 5
    yellow = np.asarray(render_sign("priority_road", 64))[32, 32, :3]
    assert yellow[0] > 200 and yellow[1] > 150 and yellow[2] < 80


def test_folder_layout_counts_and_names(small_set):
    root, folder = small_set
    assert folder.parent == root and len(folder.name) == 12
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(SMALL["classes"])
    for name in SMALL["classes"]:
        names = sorted(p.name for p in (folder / name).glob("*.png"))
        assert names == [f"{t:05d}_{f:05d}.png" for t in range(2) for f in range(3)]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["counts"] == {name: 6 for name in SMALL["classes"]}
    assert not list(root.glob(".*partial*"))


def test_images_have_gtsrb_like_sizes(small_set):
    for path in small_set[1].rglob("*.png"):
        image = Image.open(path)
        assert image.mode == "RGB"
        assert 25 <= image.width <= 125 and 25 <= image.height <= 125
        assert abs(image.width / image.height - 1) < 0.2


def test_frames_of_a_track_grow_and_look_alike(small_set):
    folder = small_set[1]
    first, last = (Image.open(folder / "stop" / f"00000_{i:05d}.png") for i in (0, 2))
    other_track = Image.open(folder / "stop" / "00001_00002.png")
    assert last.width * last.height > first.width * first.height

    def tiny(image):
        return np.asarray(image.resize((16, 16), Image.BILINEAR), dtype=float)

    assert np.abs(tiny(first) - tiny(last)).mean() < np.abs(tiny(last) - tiny(other_track)).mean()


def test_deterministic_for_a_seed(small_set, tmp_path):
    again = generate_signs(tmp_path, **SMALL, seed=0, verbose=False)
    assert again.name == small_set[1].name
    assert _files(again) == _files(small_set[1])
    other = generate_signs(tmp_path, **SMALL, seed=1, verbose=False)
    assert other.name != again.name
    assert _files(other) != _files(again)


def test_adding_a_class_keeps_the_other_images(small_set, tmp_path):
    bigger = generate_signs(tmp_path, **{**SMALL, "classes": (*SMALL["classes"], "give_way")}, verbose=False)
    old = _files(small_set[1])
    new = _files(bigger)
    assert {key: new[key] for key in old} == old
    assert any(key.startswith("give_way/") for key in new)


def test_second_call_does_no_work(small_set, monkeypatch):
    root, folder = small_set

    def fail(*args, **kwargs):
        raise AssertionError("images were drawn again")

    monkeypatch.setattr(synthetic, "_track_frames", fail)
    monkeypatch.setattr(synthetic, "render_sign", fail)
    assert generate_signs(root, **SMALL, seed=0, verbose=False) == folder


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    real = synthetic._track_frames
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_track_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_signs(tmp_path, **SMALL, verbose=False)
    assert [path.name for path in tmp_path.iterdir() if path.suffix != ".lock"] == []  # the lock file may stay
    monkeypatch.setattr(synthetic, "_track_frames", real)
    folder = generate_signs(tmp_path, **SMALL, verbose=False)
    assert len(list(folder.rglob("*.png"))) == 18


def test_a_folder_without_manifest_is_not_deleted_but_named(small_set, tmp_path):
    # nothing proves the course made it: it is named, with the fix, and kept as it is
    folder = generate_signs(tmp_path, **SMALL, verbose=False)
    (folder / MANIFEST_NAME).unlink()
    (folder / "stop" / "00000_00000.png").unlink()
    kept = _files(folder)
    with pytest.raises(FileExistsError, match=f"{folder.name} exists but is not a folder of synthetic signs the "
                                              "course made .no readable manifest.json.: move it away"):
        generate_signs(tmp_path, **SMALL, verbose=False)
    assert _files(folder) == kept
    shutil.rmtree(folder)  # the fix the message gives
    assert _files(generate_signs(tmp_path, **SMALL, verbose=False)) == _files(small_set[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown sign"):
        generate_signs("unused", classes=("stop", "unicorn"), tracks_per_class=1, frames_per_track=1)
    with pytest.raises(ValueError, match="at least 1"):
        generate_signs("unused", tracks_per_class=0, frames_per_track=1)
