"""Tests of course_utils.datasets: image loading, messy folders, GTSRB / pets adapters, load_dataset."""

from __future__ import annotations

import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from helpers import write_image
from PIL import Image

from course_utils import config
from course_utils.datasets import (
    GTSRB_CLASSES,
    DatasetError,
    DownloadError,
    find_split_folders,
    gtsrb_samples,
    list_unlabeled_images,
    load_dataset,
    oxford_pet_samples,
    scan_image_folder,
)
from course_utils.image_files import load_rgb
from course_utils.samples import track_of
from course_utils.splits import group_overlap


# ---------------------------------------- load_rgb
@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("L", 128, (128, 128, 128)),
        ("RGBA", (255, 0, 0, 0), (255, 255, 255)),  # fully transparent -> white background, not black
        ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
        ("LA", (0, 0), (255, 255, 255)),
        ("CMYK", (0, 255, 0, 0), (255, 0, 255)),  # no cyan, full magenta -> magenta
        ("I;16", 65535, (255, 255, 255)),  # 16-bit white stays white, not clipped garbage
        ("I;16", 0, (0, 0, 0)),
        ("I", 65535 // 2, (127, 127, 127)),
        ("F", 0.5, (127, 127, 127)),
    ],
)
def test_load_rgb_converts_every_mode_to_8_bit_rgb(tmp_path, mode, colour, expected):
    suffix = ".jpg" if mode == "CMYK" else ".tif" if mode in ("F", "I") else ".png"
    path = tmp_path / f"image{suffix}"
    Image.new(mode, (4, 4), colour).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (4, 4)
    assert all(abs(a - b) <= 2 for a, b in zip(image.getpixel((1, 1)), expected, strict=True))


def test_load_rgb_palette_with_transparency_and_exif_rotation(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    assert load_rgb(tmp_path / "palette.png").getpixel((0, 0)) == (10, 200, 30)
    palette.info["transparency"] = 1
    palette.save(tmp_path / "clear.png", transparency=1)
    assert load_rgb(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": how phones store portrait photos
    Image.new("RGB", (6, 2), (0, 0, 200)).save(tmp_path / "phone.jpg", exif=exif)
    assert load_rgb(tmp_path / "phone.jpg").size == (2, 6)


def test_load_rgb_shrinks_huge_images_and_keeps_tiny_ones(tmp_path):
    Image.new("RGB", (5000, 40), (0, 0, 255)).save(tmp_path / "panorama.png")
    huge = load_rgb(tmp_path / "panorama.png")
    assert max(huge.size) == 2048 and huge.getpixel((10, 5)) == (0, 0, 255)
    write_image(tmp_path / "dot.bmp", size=(1, 1))
    assert load_rgb(tmp_path / "dot.bmp").size == (1, 1)


# ---------------------------------------- messy folders
def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    root = tmp_path / "messy"
    good = root / "good_class"
    write_image(good / "gray.png", mode="L", colour=90)
    write_image(good / "palette.gif", mode="P", colour=2)
    write_image(good / "rgba.png", mode="RGBA", colour=(0, 0, 255, 128))
    write_image(good / "cmyk.jpg", mode="CMYK", colour=(0, 0, 0, 0))
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(good / "deep.png")
    write_image(good / "nested" / "deeper.png")
    other = root / "other_class"
    write_image(other / "wide.png", size=(3000, 20))
    write_image(other / "dot.png", size=(1, 1))
    jpeg = _jpeg_bytes()
    (other / "photo.jpg").write_bytes(jpeg)
    (other / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (other / "zero.png").write_bytes(b"")
    (other / "notes.txt").write_text("not an image")
    (other / "renamed.jpg").write_text("a text file with an image extension")
    (other / ".DS_Store").write_bytes(b"\x00\x01")
    (other / "._photo.jpg").write_bytes(b"\x00\x05\x16\x07")
    (root / "empty_class").mkdir()
    (root / ".hidden_folder").mkdir()
    write_image(root / ".hidden_folder" / "x.png")
    return root


def test_messy_folder_keeps_good_images_and_prints_one_summary_line(messy_folder, capsys):
    samples, classes = scan_image_folder(messy_folder)
    assert classes == ["good_class", "other_class"]  # empty and hidden folders are no classes
    names = sorted(sample.path.name for sample in samples)
    assert names == ["cmyk.jpg", "deep.png", "deeper.png", "dot.png", "gray.png", "palette.gif",
                     "photo.jpg", "rgba.png", "wide.png"]
    assert all(load_rgb(sample.path).mode == "RGB" for sample in samples)
    assert {sample.label for sample in samples if sample.path.parent.name == "other_class"} == {1}

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert "Skipped 4 of 13 files" in line and str(messy_folder) in line
    for expected in ("1 truncated or corrupt (other_class/cut.jpg)", "1 empty file (other_class/zero.png)",
                     "1 not an image file (other_class/notes.txt)",
                     "1 not a readable image (other_class/renamed.jpg)",
                     "class folder(s) without usable images: empty_class"):
        assert expected in line
    assert "DS_Store" not in line and "._photo" not in line  # system files are ignored silently


def test_clean_folder_prints_nothing_and_uses_tracks_as_groups(make_image_folder, capsys):
    root = make_image_folder({"a": 2, "b": 1}, frames_per_track=3)
    samples, classes = scan_image_folder(root)
    assert capsys.readouterr().out == ""
    assert classes == ["a", "b"] and len(samples) == 9
    assert {sample.group for sample in samples} == {"a/00000", "a/00001", "b/00000"}
    plain = make_image_folder({"x": 2, "y": 2}, name="plain")
    groups = {sample.group for sample in scan_image_folder(plain)[0]}
    assert groups == {"x/img_000", "x/img_001", "y/img_000", "y/img_001"}


def test_unusable_folders_raise_errors_that_name_the_folder_and_the_fix(tmp_path, make_image_folder):
    loose = tmp_path / "loose"
    write_image(loose / "a.png")
    with pytest.raises(DatasetError, match="No class folders") as error:
        scan_image_folder(loose)
    assert str(loose) in str(error.value) and "list_unlabeled_images" in str(error.value)

    single = make_image_folder({"only_cats": 3}, name="single")
    with pytest.raises(DatasetError, match="Only one class") as error:
        scan_image_folder(single)
    assert str(single) in str(error.value) and "add a sub-folder" in str(error.value)

    with pytest.raises(DatasetError, match="does not exist"):
        scan_image_folder(tmp_path / "nowhere")
    two = make_image_folder({"a": 1, "b": 1}, name="two")
    with pytest.raises(DatasetError, match="No folder for class"):
        scan_image_folder(two, classes=["a", "zebra"])
    assert scan_image_folder(two, classes=["b", "a"])[1] == ["b", "a"]


def test_find_split_folders_accepts_any_capitalisation(tmp_path):
    for name in ("Train", "VALIDATION", "test"):
        (tmp_path / "one" / name).mkdir(parents=True)
    found = find_split_folders(tmp_path / "one")
    assert found == {"train": tmp_path / "one" / "Train", "val": tmp_path / "one" / "VALIDATION",
                     "test": tmp_path / "one" / "test"}
    (tmp_path / "two" / "TRAIN").mkdir(parents=True)
    (tmp_path / "two" / "Valid").mkdir()
    assert set(find_split_folders(tmp_path / "two")) == {"train", "val"}
    (tmp_path / "three" / "cats").mkdir(parents=True)
    assert find_split_folders(tmp_path / "three") is None


def test_list_unlabeled_images_skips_bad_files(messy_folder, capsys):
    images = list_unlabeled_images(messy_folder / "other_class")
    assert [path.name for path in images] == ["dot.png", "photo.jpg", "wide.png"]
    assert capsys.readouterr().out.count("\n") == 1
    with pytest.raises(DatasetError, match="No usable images"):
        list_unlabeled_images(messy_folder / "empty_class")


# ---------------------------------------- user folders via load_dataset
def test_load_dataset_on_a_folder_of_classes(make_image_folder):
    root = make_image_folder({"boat": 10, "kayak": 10, "ferry": 10})
    split = load_dataset(root, profile="smoke", seed=1)
    assert split.classes == ["boat", "ferry", "kayak"]
    assert len(split.train) + len(split.val) + len(split.test) == 30
    assert (split.summary()[["val", "test"]] >= 1).all().all()
    assert load_dataset(str(root), profile="smoke", classes=["kayak", "boat"]).classes == ["kayak", "boat"]


def test_load_dataset_too_small_to_split_names_the_folder(make_image_folder):
    root = make_image_folder({"a": 1, "b": 1})
    with pytest.raises(DatasetError, match="would be empty") as error:
        load_dataset(root, profile="smoke")
    assert str(root) in str(error.value)


def test_load_dataset_keeps_given_parts_and_carves_the_missing_ones(tmp_path, make_image_folder, capsys):
    root = tmp_path / "presplit"
    for part, count in (("Train", 8), ("VAL", 2), ("Test", 3)):
        for class_name in ("cat", "dog"):
            for index in range(count):
                write_image(root / part / class_name / f"{part}_{index}.png")
    split = load_dataset(root, profile="smoke")
    assert (len(split.train), len(split.val), len(split.test)) == (16, 4, 6)
    assert all(sample.path.parent.parent.name == "Test" for sample in split.test)
    assert {split.classes[s.label] for s in split.val} == {"cat", "dog"}
    assert all(split.classes[s.label] == s.path.parent.name for s in split.test)

    kaggle = tmp_path / "kaggle"  # labelled train/, unlabeled test/ (as in a competition)
    for class_name in ("husky", "pug"):
        for index in range(10):
            write_image(kaggle / "train" / class_name / f"{index}.png")
    write_image(kaggle / "test" / "unknown_1.png")
    split = load_dataset(kaggle, profile="smoke")
    assert len(split.train) + len(split.val) + len(split.test) == 20 and split.val and split.test
    assert "unlabeled" in capsys.readouterr().out

    write_image(kaggle / "val" / "wolf" / "1.png")
    with pytest.raises(DatasetError, match="wolf"):
        load_dataset(kaggle, profile="smoke")


def test_load_dataset_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="synthetic-signs"):
        load_dataset("imagenet-22k", tmp_path, profile="smoke")


# ---------------------------------------- GTSRB
def _write_fake_gtsrb(root: Path) -> None:
    """A few tiny .ppm files in torchvision's GTSRB layout (train: class folders; test: CSV)."""
    training = root / "gtsrb" / "GTSRB" / "Training"
    for class_id in (1, 12, 13, 14, 17):
        for track in range(3):
            for frame in range(2):
                write_image(training / f"{class_id:05d}" / f"{track:05d}_{frame:05d}.ppm", size=(6, 5))
    (training / "00014" / "GT-00014.csv").write_text("not an image, as in the real archive")
    test_images = root / "gtsrb" / "GTSRB" / "Final_Test" / "Images"
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for index, class_id in enumerate((14, 17, 12, 13, 1, 40)):
        write_image(test_images / f"{index:05d}.ppm", size=(6, 5))
        rows.append(f"{index:05d}.ppm;6;5;0;0;5;4;{class_id}")
    (root / "gtsrb" / "GT-final_test.csv").write_text("\n".join(rows) + "\n")


def test_gtsrb_class_names():
    assert len(GTSRB_CLASSES) == 43 and len(set(GTSRB_CLASSES)) == 43
    assert [GTSRB_CLASSES[i] for i in (12, 13, 14, 17)] == list(config.TARGET_SIGNS)
    assert GTSRB_CLASSES[0] == "speed_limit_20" and GTSRB_CLASSES[42] == "end_of_no_passing_over_3_5_tons"


def test_gtsrb_samples_reads_torchvision_layout_with_tracks(tmp_path):
    _write_fake_gtsrb(tmp_path)
    train, test, classes = gtsrb_samples(tmp_path)
    assert classes == GTSRB_CLASSES and len(train) == 30 and len(test) == 6
    stop = [sample for sample in train if sample.label == 14]
    assert all(sample.path.parent.name == "00014" for sample in stop)
    assert {sample.group for sample in stop} == {"stop/00000", "stop/00001", "stop/00002"}
    assert [sample.label for sample in test] == [14, 17, 12, 13, 1, 40]
    assert test[0].group == "00000"


def test_load_dataset_gtsrb_selects_target_signs_and_keeps_the_official_test_set(tmp_path):
    _write_fake_gtsrb(tmp_path)
    split = load_dataset("gtsrb", tmp_path, profile="offline", seed=3)
    assert split.classes == list(config.TARGET_SIGNS)
    assert len(split.train) + len(split.val) == 24 and len(split.test) == 4
    assert [split.classes[s.label] for s in split.test] == ["stop", "no_entry", "priority_road", "give_way"]
    assert group_overlap(split) == 0
    every = load_dataset("gtsrb", tmp_path, profile="offline", classes="all")
    assert len(every.classes) == 43 and len(every.test) == 6


def test_gtsrb_failed_download_says_so_in_one_sentence(tmp_path, monkeypatch):
    import torchvision.datasets

    def no_network(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.GTSRB, "download", no_network)
    with pytest.raises(DownloadError) as error:
        load_dataset("gtsrb", tmp_path, profile="full")
    message = str(error.value)
    assert "offline profile" in message and "GTSRB" in message and message.count(". ") == 0
    with pytest.raises(DatasetError, match="not in"):
        gtsrb_samples(tmp_path, download=False)


# ---------------------------------------- Oxford-IIIT Pet
def _write_fake_pets(root: Path) -> None:
    base = root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 3, 1)]
    for split, count in (("trainval", 4), ("test", 2)):
        lines = []
        for name, label, species in breeds:
            for index in range(count):
                image_id = f"{name}_{split}{index}"
                write_image(base / "images" / f"{image_id}.jpg")
                lines.append(f"{image_id} {label} {species} 1")
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_oxford_pet_breeds_and_cats_vs_dogs(tmp_path):
    _write_fake_pets(tmp_path)
    train, test, classes = oxford_pet_samples(tmp_path)
    assert classes == ["abyssinian", "american_bulldog", "bengal"]
    assert len(train) == 12 and len(test) == 6
    assert all(classes[s.label] in s.path.stem.lower() for s in train + test)
    train, _, classes = oxford_pet_samples(tmp_path, target="binary-category")
    assert classes == ["cat", "dog"]
    assert {s.path.stem.split("_")[0]: classes[s.label] for s in train} == {
        "Abyssinian": "cat", "american": "dog", "Bengal": "cat"}
    split = load_dataset("pets-binary", tmp_path, profile="offline")
    assert split.classes == ["cat", "dog"] and len(split.test) == 6 and len(split.val) > 0
    with pytest.raises(ValueError, match="binary-category"):
        oxford_pet_samples(tmp_path, target="species")


# ---------------------------------------- synthetic signs
def test_load_dataset_synthetic_signs_targets_by_default_all_on_request(tmp_path):
    from course_utils import synthetic

    options = {"profile": "smoke", "tracks_per_class": 3, "frames_per_track": 2, "verbose": False}
    split = load_dataset("synthetic-signs", tmp_path, **options)
    assert split.classes == list(config.TARGET_SIGNS)
    assert group_overlap(split) == 0
    everything = split.train + split.val + split.test
    assert len(everything) == 4 * 3 * 2
    assert all(sample.group == f"{sample.path.parent.name}/{track_of(sample.path)}" for sample in everything)
    assert all(split.classes[sample.label] == sample.path.parent.name for sample in everything)
    every = load_dataset("synthetic-signs", tmp_path, classes="all", **options)
    assert every.classes == list(synthetic.ALL_SIGNS)
    assert (every.summary().min() >= 1).all()
