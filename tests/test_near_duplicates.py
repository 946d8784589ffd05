"""Near-duplicates between training and test images, found by cosine similarity; grouping them before a split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from course_utils import near_duplicates, splits
from course_utils.samples import Sample


def objects(count: int, width: int = 32, seed: int = 0) -> torch.Tensor:
    """One random feature direction per object (nearly orthogonal to each other in 32 dimensions)."""
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed))


def shots(base: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """Another photo of the same objects: the same features, slightly disturbed."""
    return base + noise * torch.randn(base.shape, generator=torch.Generator().manual_seed(seed))


def samples(prefix: str, count: int, labels=None) -> list[Sample]:
    return [Sample(Path(f"{prefix}/{index}.png"), (labels or [0] * count)[index], f"{prefix}/{index}")
            for index in range(count)]


def test_each_test_image_with_a_near_copy_in_training_is_reported_with_its_closest_pair(capsys):
    base = objects(10)
    train = base[:8]  # objects 0-7 in training
    test = shots(base[5:], 0.05, 1)  # objects 5-9 in test: 5, 6, 7 are near-copies, 8, 9 new
    report = near_duplicates.find_near_duplicates(train, test, samples("train", 8), samples("test", 5))
    assert report.count == 3 and report.test_images == 5 and report.share == pytest.approx(0.6)
    assert sorted(zip(report.pairs["test_index"], report.pairs["train_index"], strict=True)) == [(0, 5), (1, 6),
                                                                                                  (2, 7)]
    expected = near_duplicates.cosine_similarities(test, train)
    for row in report.pairs.itertuples():
        assert row.similarity == pytest.approx(float(expected[row.test_index, row.train_index]))
        assert row.test_path == Path(f"test/{row.test_index}.png") and row.train_path == Path(
            f"train/{row.train_index}.png")
    assert report.pairs["similarity"].is_monotonic_decreasing
    assert capsys.readouterr().out.strip() == str(report)
    assert str(report).startswith("3 of 5 test images (60.0%) have a near-duplicate in training (cosine")
    stricter = near_duplicates.find_near_duplicates(train, shots(base[5:], 0.5, 1), threshold=0.99, verbose=False)
    assert stricter.count == 0 and "test_path" not in stricter.pairs  # no samples given: no paths


def test_cosine_similarity_ignores_length_and_a_zero_row_matches_nothing():
    first = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    second = torch.tensor([[3.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    assert near_duplicates.cosine_similarities(first, second).tolist() == [[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]


def test_a_folder_where_every_test_image_is_a_copy_gets_one_warning_line(capsys):
    base = objects(6)
    report = near_duplicates.find_near_duplicates(base, shots(base, 0.01, 2), verbose=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert report.count == 6 and len(lines) == 1
    assert lines[0].startswith("⚠️ Every test image (6) has a near-duplicate") and "group_near_duplicates" in lines[0]


def test_bad_features_are_one_clear_error():
    with pytest.raises(ValueError, match="3 rows for 2 samples"):
        near_duplicates.find_near_duplicates(objects(3), objects(2), samples("train", 2), samples("test", 2))
    with pytest.raises(ValueError, match="differ in width"):
        near_duplicates.find_near_duplicates(objects(3, width=8), objects(2, width=4))
    with pytest.raises(ValueError, match="one row of features per image"):
        near_duplicates.find_near_duplicates(torch.zeros(0, 4), objects(2, width=4))
    with pytest.raises(ValueError, match="between -1 and 1"):
        near_duplicates.group_near_duplicates(objects(2), samples("a", 2), threshold=1.5)


def test_grouping_merges_chains_of_near_copies_and_their_groups_so_a_split_keeps_them_together(capsys):
    base = objects(12, width=64)
    features = torch.cat([base, shots(base[:4], 0.05, 3)])  # objects 0-3 photographed twice
    labels = [index % 2 for index in range(12)] + [index % 2 for index in range(4)]
    pictures = [Sample(Path(f"{index}.png"), label, f"photo{index:02d}") for index, label in enumerate(labels)]
    pictures[11] = Sample(pictures[11].path, pictures[11].label, "photo00")  # already grouped with photo 0
    grouped = near_duplicates.group_near_duplicates(features, pictures)
    groups = [sample.group for sample in grouped]
    assert groups[12:] == groups[:4]  # each second shot joins its first
    assert groups[11] == groups[0] == "photo00"  # and photo 0's old group member comes along
    assert len(set(groups)) == 12 - 1  # 16 images: 4 second shots merged, 11 joined photo 0
    assert [sample.path for sample in grouped] == [sample.path for sample in pictures]
    assert [sample.label for sample in grouped] == labels
    assert "merged 15 groups into 11" in capsys.readouterr().out
    split = splits.split_samples(grouped, ["even", "odd"], val_fraction=0.2, test_fraction=0.3, seed=0)
    train_features = torch.stack([features[grouped.index(sample)] for sample in split.train])
    test_features = torch.stack([features[grouped.index(sample)] for sample in split.test])
    assert near_duplicates.find_near_duplicates(train_features, test_features, verbose=False).count == 0


def test_grouping_a_folder_of_copies_warns_in_one_line(capsys):
    base = objects(3)
    features = torch.cat([base, shots(base, 0.01, 4)])
    grouped = near_duplicates.group_near_duplicates(features, samples("copies", 6), verbose=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("⚠️ Every image (6) has a near-duplicate")
    assert "3 group(s)" in lines[0]
    assert len({sample.group for sample in grouped}) == 3
