"""evaluation.mistakes_by_group: the most confident mistake of each track, with how many of its frames were wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.evaluation import mistakes_by_group

#           image:  0    1    2    3    4    5    6    7
TARGETS = [0, 0, 0, 1, 1, 2, 2, 2]
PREDICTED = [1, 1, 0, 0, 1, 2, 0, 0]  # wrong: 0, 1 (track a), 3 (track b), 6, 7 (track c)
CONFIDENCE = [0.70, 0.95, 0.99, 0.60, 0.90, 0.80, 0.85, 0.75]
GROUPS = ["a", "a", "a", "b", "b", "c", "c", "c"]


def test_one_row_per_track_its_most_confident_mistake_most_confident_first():
    table = mistakes_by_group(TARGETS, PREDICTED, CONFIDENCE, GROUPS)
    assert list(table["group"]) == ["a", "c", "b"]  # ordered by the confidence of each track's worst mistake
    assert list(table["index"]) == [1, 6, 3]  # the most confident wrong frame of each track, not its first one
    assert table["confidence"].tolist() == pytest.approx([0.95, 0.85, 0.60])
    assert list(table["target"]) == [0, 2, 1] and list(table["predicted"]) == [1, 0, 0]


def test_counts_the_wrong_frames_and_all_frames_of_each_track():
    table = mistakes_by_group(TARGETS, PREDICTED, CONFIDENCE, GROUPS).set_index("group")
    assert table.loc["a", "wrong_frames"] == 2 and table.loc["a", "frames"] == 3
    assert table.loc["c", "wrong_frames"] == 2 and table.loc["c", "frames"] == 3
    assert table.loc["b", "wrong_frames"] == 1 and table.loc["b", "frames"] == 2
    assert table["wrong_frames"].sum() == sum(t != p for t, p in zip(TARGETS, PREDICTED, strict=True))


def test_takes_tensors_and_a_probability_matrix():
    probabilities = torch.zeros(len(TARGETS), 3)
    probabilities[torch.arange(len(TARGETS)), torch.tensor(PREDICTED)] = torch.tensor(CONFIDENCE)
    table = mistakes_by_group(torch.tensor(TARGETS), torch.tensor(PREDICTED), probabilities, GROUPS)
    assert list(table["index"]) == [1, 6, 3]
    assert table["confidence"].tolist() == pytest.approx([0.95, 0.85, 0.60])


def test_no_mistakes_gives_an_empty_table_with_the_columns():
    table = mistakes_by_group([0, 1], [0, 1], [0.9, 0.8], ["a", "b"])
    assert table.empty and list(table.columns) == ["index", "group", "target", "predicted", "confidence",
                                                   "wrong_frames", "frames"]


def test_lengths_that_differ_are_one_clear_error():
    with pytest.raises(ValueError, match="same length"):
        mistakes_by_group(TARGETS, PREDICTED, CONFIDENCE, GROUPS[:-1])
    with pytest.raises(ValueError, match="same length"):
        mistakes_by_group(TARGETS, PREDICTED[:-1], np.array(CONFIDENCE), GROUPS)
