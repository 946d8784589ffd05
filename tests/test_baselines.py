"""Pixel baselines: fitted on the training part, one correct/incorrect per test image, skipped with one line when
the split is too small."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course_utils import baselines, findings
from course_utils.samples import Sample
from course_utils.splits import Split

TINTS = {0: (200, 40, 40), 1: (40, 40, 200), 2: (40, 200, 40)}


def write(path: Path, tint: tuple[int, int, int], seed: int, size: int = 40) -> Path:
    """A noisy image of one tint, with a bright square at a random place (so thumbnails differ)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(tint) + rng.normal(0, 25, (size, size, 3)), 0, 255)
    x, y = rng.integers(0, size - 10, size=2)
    pixels[y:y + 10, x:x + 10] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def make_split(folder: Path, train_per_class: int = 4, test_per_class: int = 2, classes: int = 3) -> Split:
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    seed = 0
    for part, count in (("train", train_per_class), ("val", 1), ("test", test_per_class)):
        for label in range(classes):
            for index in range(count):
                seed += 1
                path = write(folder / part / f"{label}_{index}.png", TINTS[label], seed)
                parts[part].append(Sample(path, label, f"{part}/{label}_{index}"))
    return Split(["red", "blue", "green"][:classes], parts["train"], parts["val"], parts["test"])


def test_thumbnails_average_the_pixels_they_cover(tmp_path):
    path = tmp_path / "half.png"
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, 16:] = 255  # left half black, right half white
    Image.fromarray(pixels).save(path)
    thumbnail = baselines.thumbnails([Sample(path, 0, "a")], side=2)
    assert thumbnail.shape == (1, 2 * 2 * 3)
    assert thumbnail.reshape(2, 2, 3)[:, :, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]


@pytest.mark.parametrize("method", [baselines.nearest_neighbour, baselines.logistic_regression])
def test_each_baseline_returns_one_correct_or_wrong_per_test_image_in_order(tmp_path, method, capsys):
    split = make_split(tmp_path)
    # A blue image labelled "red": whatever the baseline learnt, it must get exactly this one wrong.
    mislabelled = write(tmp_path / "test" / "odd.png", TINTS[1], 999)
    split.test.insert(2, Sample(mislabelled, 0, "test/odd"))
    result = method(split)
    assert result.skipped is None and result.correct.shape == (len(split.test),)
    assert result.correct.tolist() == [1.0, 1.0, 0.0] + [1.0] * (len(split.test) - 3)
    assert result.predicted[2] == 1 and result.accuracy == pytest.approx(6 / 7)
    assert capsys.readouterr().out.strip() == f"{result.name}: test accuracy 85.7% on 7 images"
    # the array goes straight into a finding, paired with a model's correctness on the same test images
    model_correct = np.ones(len(split.test))
    finding = findings.compare_accuracy("model vs baseline", model_correct, result.correct,
                                        [sample.group for sample in split.test], labels=("model", result.name),
                                        headline=False)
    assert finding.difference == pytest.approx(1 / 7)


def test_nearest_neighbour_copies_the_closest_training_image_and_logistic_regression_generalises(tmp_path):
    split = make_split(tmp_path)
    twin = write(tmp_path / "twin.png", TINTS[0], 12345)  # a red image ...
    split.train.append(Sample(twin, 1, "train/twin"))  # ... labelled blue in training, by mistake
    split.test = [Sample(twin, 0, "test/twin")]  # and the very same picture, correctly labelled, in test
    # On 2 x 2 thumbnails (12 numbers) a linear model cannot single out one odd image among the red ones
    assert baselines.nearest_neighbour(split, side=2, verbose=False).predicted.tolist() == [1]  # the twin's label
    assert baselines.logistic_regression(split, side=2, verbose=False).predicted.tolist() == [0]  # red's label


def test_a_class_with_one_training_image_or_an_empty_test_part_skips_with_one_line(tmp_path, capsys):
    split = make_split(tmp_path)
    split.train = [sample for sample in split.train if not (sample.label == 2 and sample.group != "train/2_0")]
    result = baselines.nearest_neighbour(split)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "skipped" in lines[0] and "green (1)" in lines[0] and "drop_rare_classes" in lines[0]
    assert result.correct is None and result.predicted is None and result.accuracy is None
    assert "green (1)" in result.skipped and str(result).endswith(f"skipped ({result.skipped})")
    empty_test = Split(split.classes, make_split(tmp_path / "b").train, [], [])
    assert baselines.logistic_regression(empty_test).skipped == "the test part is empty"
    one_class = Split(split.classes, [s for s in split.train if s.label == 0], [], split.test)
    assert "needs two" in baselines.nearest_neighbour(one_class, verbose=False).skipped
