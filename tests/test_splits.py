"""Tests of course_utils.splits: group-aware stratified splits and class selection helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from course_utils.samples import DatasetError, Sample
from course_utils.splits import (
    Split,
    classes_below,
    drop_rare_classes,
    group_overlap,
    keep_largest_classes,
    select_classes,
    split_samples,
    with_unknown_class,
)

CLASSES = ["stop", "give_way", "no_entry", "keep_right"]


def tracked_samples(tracks: dict[str, int], frames: int = 5) -> list[Sample]:
    """``frames`` samples per track, GTSRB-like; paths need not exist for splitting."""
    samples = []
    for label, name in enumerate(CLASSES[: len(tracks)]):
        for track in range(tracks[name]):
            for frame in range(frames):
                path = Path(f"{name}/{track:05d}_{frame:05d}.png")
                samples.append(Sample(path, label, f"{name}/{track:05d}"))
    return samples


def test_group_aware_split_never_puts_a_track_in_two_parts():
    samples = tracked_samples({"stop": 20, "give_way": 40, "no_entry": 10})
    split = split_samples(samples, CLASSES[:3], seed=0)
    assert group_overlap(split) == 0
    parts_of_track: dict[str, set[str]] = {}
    for part, part_samples in split.parts().items():
        for sample in part_samples:
            parts_of_track.setdefault(sample.group, set()).add(part)
    assert all(len(parts) == 1 for parts in parts_of_track.values())
    assert sorted(split.train + split.val + split.test) == sorted(samples)


def test_split_is_stratified_by_class():
    samples = tracked_samples({"stop": 20, "give_way": 60, "no_entry": 40})
    split = split_samples(samples, CLASSES[:3], val_fraction=0.2, test_fraction=0.2, seed=4)
    table = split.summary()
    assert list(table.columns) == ["train", "val", "test"] and list(table.index) == CLASSES[:3]
    shares = table.div(table.sum(axis=1), axis=0)
    assert (shares["val"] - 0.2).abs().max() <= 0.06
    assert (shares["test"] - 0.2).abs().max() <= 0.06
    assert table.loc["give_way"].sum() == 300


def test_split_is_reproducible_per_seed_and_differs_between_seeds():
    samples = tracked_samples({"stop": 15, "give_way": 15})
    first = split_samples(samples, CLASSES[:2], seed=7)
    again = split_samples(samples, CLASSES[:2], seed=7)
    other = split_samples(samples, CLASSES[:2], seed=8)
    assert first.test == again.test and first.val == again.val
    assert {s.group for s in first.test} != {s.group for s in other.test}


def test_every_part_gets_a_track_of_every_class_with_three_tracks():
    samples = tracked_samples({"stop": 3, "give_way": 3, "no_entry": 30}, frames=2)
    split = split_samples(samples, CLASSES[:3], seed=0)
    assert (split.summary() >= 2).all().all()


def test_frame_level_split_leaks_tracks():
    samples = tracked_samples({"stop": 10, "give_way": 10}, frames=10)
    leaky = split_samples(samples, CLASSES[:2], seed=0, group_aware=False)
    assert group_overlap(leaky) > 5
    assert len(leaky.train) + len(leaky.val) + len(leaky.test) == len(samples)


def test_split_errors_and_classes_with_too_few_tracks(capsys):
    with pytest.raises(DatasetError, match="would be empty"):
        split_samples(tracked_samples({"stop": 1, "give_way": 1}), CLASSES[:2])
    with pytest.raises(DatasetError, match="no images"):
        split_samples([], CLASSES[:2])
    with pytest.raises(ValueError, match="val_fraction"):
        split_samples(tracked_samples({"stop": 5, "give_way": 5}), CLASSES[:2], val_fraction=0.6,
                      test_fraction=0.5)
    split = split_samples(tracked_samples({"stop": 2, "give_way": 10}), CLASSES[:2])
    assert split.summary().loc["stop", "train"] == 10  # both of its tracks stay in train
    assert "stop (2)" in capsys.readouterr().out


def test_test_fraction_zero_leaves_test_empty():
    split = split_samples(tracked_samples({"stop": 6, "give_way": 6}), CLASSES[:2], test_fraction=0.0)
    assert split.test == [] and split.val and group_overlap(split) == 0


def test_split_repr_is_short():
    split = Split(["a", "b"], [Sample(Path("x"), 0, "x")] * 3, [], [])
    assert repr(split) == "Split(2 classes; train 3, val 0, test 0 images)"


def test_select_keep_largest_and_drop_rare_relabel(capsys):
    samples = tracked_samples({"stop": 5, "give_way": 1, "no_entry": 3, "keep_right": 4}, frames=1)
    kept, classes = keep_largest_classes(samples, CLASSES, 2)
    assert classes == ["stop", "keep_right"]
    assert {classes[s.label] for s in kept} == {"stop", "keep_right"} and len(kept) == 9
    assert all(classes[s.label] == s.group.split("/")[0] for s in kept)

    kept, classes = drop_rare_classes(samples, CLASSES, min_count=3)
    assert classes == ["stop", "no_entry", "keep_right"] and len(kept) == 12
    assert "give_way (1)" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="min_count"):
        drop_rare_classes(samples, CLASSES, min_count=5)

    kept, classes = select_classes(samples, CLASSES, ["no_entry", "stop"])
    assert classes == ["no_entry", "stop"] and all(classes[s.label] == s.group.split("/")[0] for s in kept)
    with pytest.raises(ValueError, match="zebra"):
        select_classes(samples, CLASSES, ["zebra"])


def test_classes_below_keeps_a_class_with_exactly_min_count_images():
    samples = tracked_samples({"stop": 5, "give_way": 1, "no_entry": 3, "keep_right": 4}, frames=1)
    assert classes_below(samples, CLASSES, 3) == ["give_way"]  # no_entry has exactly 3: it stays
    assert classes_below(samples, CLASSES, 4) == ["give_way", "no_entry"]
    assert classes_below(samples[:5], CLASSES, 1) == ["give_way", "keep_right", "no_entry"]  # 0 images count


def test_with_unknown_class_folds_other_classes_and_keeps_tracks():
    samples = tracked_samples({"stop": 6, "give_way": 6, "no_entry": 6, "keep_right": 6}, frames=3)
    relabelled, classes = with_unknown_class(samples, CLASSES, known=["stop", "give_way"])
    assert classes == ["stop", "give_way", "unknown"]
    assert sum(s.label == 2 for s in relabelled) == 36
    assert [s.group for s in relabelled] == [s.group for s in samples]
    split = split_samples(relabelled, classes, seed=1)
    assert group_overlap(split) == 0 and (split.summary() > 0).all().all()
    with pytest.raises(ValueError, match="zebra"):
        with_unknown_class(samples, CLASSES, known=["zebra"])
    with pytest.raises(DatasetError, match="classes='all'"):
        with_unknown_class(samples, CLASSES, known=CLASSES)
