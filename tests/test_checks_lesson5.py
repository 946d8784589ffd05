"""Lesson 5's self-checks pass right answers and reject wrong ones with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from course_utils import checks, models
from course_utils.samples import Sample

CLASSES = ["big", "tiny", "mid"]
SAMPLES = [Sample(Path(f"{i}.png"), label, str(i)) for i, label in enumerate([0] * 12 + [1] * 3 + [2] * 10)]


def test_check_rare_classes():
    checks.check_rare_classes(["tiny"], SAMPLES, CLASSES, 10)
    with pytest.raises(checks.ExerciseError, match="tiny"):
        checks.check_rare_classes([], SAMPLES, CLASSES, 10)
    with pytest.raises(checks.ExerciseError):
        checks.check_rare_classes(["tiny", "mid"], SAMPLES, CLASSES, 10)


def test_check_mlp_head():
    model = models.replace_head(models.ScratchCNN(3, channels=(4, 8)), 3, hidden_units=(16,), dropout=0.2)
    checks.check_mlp_head(models.find_head(model)[1], 8, 16, 3)
    with pytest.raises(checks.ExerciseError, match="two linear layers"):
        checks.check_mlp_head(nn.Linear(8, 3), 8, 16, 3)
    with pytest.raises(checks.ExerciseError, match="non-linearity"):
        checks.check_mlp_head(nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 3)), 8, 16, 3)
