"""Tests of course_utils.checks: each self-check rejects typical wrong answers with a plain message."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from course_utils import checks
from course_utils.checks import ExerciseError
from course_utils.models import (
    ScratchCNN,
    conv_block,
    freeze_backbone,
    parameter_groups,
    replace_head,
    same_padding,
    unfreeze,
)


def fails(pattern: str):
    """Expect the check inside the ``with`` block to raise ExerciseError with a message matching pattern."""
    return pytest.raises(ExerciseError, match=pattern)


def passes(capsys, check, *args, **kwargs) -> str:
    """Run a check that must pass; return the line it printed."""
    assert check(*args, **kwargs) is None
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("✅") and "\n" not in printed
    return printed


def test_exercise_error_stops_a_notebook_like_an_assert():
    assert issubclass(ExerciseError, AssertionError)
    with fails("^❌ "):
        checks.check_padding(lambda kernel_size, dilation=1: 0)


# ---------------------------------------------------------------------------------------------- lesson 1


def test_check_padding(capsys):
    assert "dilation 2" in passes(capsys, checks.check_padding, same_padding)
    with fails("kernel_size=3 .*padding 2.*into 34x34; it must stay 32x32"):
        checks.check_padding(lambda kernel_size, dilation=1: kernel_size - 1)
    with fails("dilation=2 .*padding 1.*dilation \\* \\(kernel_size - 1\\) \\+ 1"):
        checks.check_padding(lambda kernel_size, dilation=1: kernel_size // 2)
    with fails("returns 0.0, a float.*`//`"):
        checks.check_padding(lambda kernel_size, dilation=1: dilation * (kernel_size - 1) / 2)
    with fails("returns None: did you forget `return`"):
        checks.check_padding(lambda kernel_size, dilation=1: None)
    with fails("takes only the kernel size.*`dilation=1`"):
        checks.check_padding(lambda kernel_size: (kernel_size - 1) // 2)


def test_check_conv_block(capsys):
    assert "3 to 16 channels" in passes(capsys, checks.check_conv_block, conv_block(3, 16), 3, 16)
    with fails("makes 32 channels, but it should make 16"):
        checks.check_conv_block(conv_block(3, 32), 3, 16)
    with fails("expects 1 input channels, but the block receives 3"):
        checks.check_conv_block(conv_block(1, 16), 3, 16)
    no_norm = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    with fails(r"no batch norm: add nn.BatchNorm2d\(16\)"):
        checks.check_conv_block(no_norm, 3, 16)
    no_relu = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.MaxPool2d(2))
    with fails("no ReLU"):
        checks.check_conv_block(no_relu, 3, 16)
    no_pool = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
    with fails(r"no nn.MaxPool2d\(2\).*does not halve"):
        checks.check_conv_block(no_pool, 3, 16)
    no_padding = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
    with fails(r"comes out as \(2, 16, 7, 7\), expected \(2, 16, 8, 8\).*padding"):
        checks.check_conv_block(no_padding, 3, 16)
    wrong_norm = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    with fails("fails on a batch of shape"):
        checks.check_conv_block(wrong_norm, 3, 16)


class _NoGlobalPooling(nn.Module):
    """A typical beginner CNN: flattens the feature maps, so it only works at one image size."""

    def __init__(self, num_classes: int, image_size: int):
        super().__init__()
        self.features = nn.Sequential(conv_block(3, 8), conv_block(8, 16))
        self.classifier = nn.Linear(16 * (image_size // 4) ** 2, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class _NoFlatten(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(conv_block(3, 8), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_check_cnn(capsys):
    model = ScratchCNN(num_classes=4, channels=(8, 16))
    model.train()
    assert "4 class scores" in passes(capsys, checks.check_cnn, model, 4, 32)
    assert model.training  # the check leaves the mode as it was
    with fails("gives 10 scores per image but there are 4 classes.*out_features=4"):
        checks.check_cnn(ScratchCNN(num_classes=10, channels=(8,)), 4, 32)
    with fails("expects 1 input channel.*RGB with 3 channels"):
        checks.check_cnn(ScratchCNN(num_classes=4, channels=(8,), in_channels=1), 4, 32)
    with fails("works on 32x32 images but not on 64x64.*AdaptiveAvgPool2d"):
        checks.check_cnn(_NoGlobalPooling(4, 32), 4, 32)
    with fails(r"shape \(2, 4, 1, 1\).*nn.Flatten"):
        checks.check_cnn(_NoFlatten(4), 4, 32)


# ---------------------------------------------------------------------------------------------- lessons 2, 3


@pytest.fixture()
def resnet18():
    return torchvision.models.resnet18()


def test_check_frozen(capsys, resnet18):
    with fails(r"backbone is not frozen: 11,176,512 of its 11,176,512 parameters"):
        checks.check_frozen(replace_head(resnet18, 4))  # head replaced, nothing frozen
    for parameter in resnet18.parameters():
        parameter.requires_grad = False
    with fails("head is frozen too, so nothing would learn"):
        checks.check_frozen(resnet18)  # froze after replacing the head
    freeze_backbone(resnet18)
    resnet18.layer4[1].conv2.weight.requires_grad = True
    with fails("2,359,296 of its 11,176,512 parameters are still trainable"):
        checks.check_frozen(resnet18)
    freeze_backbone(resnet18)
    assert "2,052 of 11,178,564" in passes(capsys, checks.check_frozen, resnet18)


def test_check_head(capsys, resnet18):
    with fails("head was not replaced: model.fc still outputs the 1000 ImageNet"):
        checks.check_head(resnet18, 4)
    resnet18.fc = nn.Linear(512, 5)
    with fails("outputs 5 classes, but the data set has 4"):
        checks.check_head(resnet18, 4)
    resnet18.fc = nn.Linear(2048, 4)  # the ResNet-50 number on a ResNet-18
    with fails("hands 512 features to the head.*in_features"):
        checks.check_head(resnet18, 4)
    resnet18.fc = nn.Identity()
    with fails("no classifier layer"):
        checks.check_head(resnet18, 4)
    resnet18.fc = nn.Linear(512, 4)
    assert "512 features in, 4 classes out" in passes(capsys, checks.check_head, resnet18, 4)
    assert "model.fc" in passes(capsys, checks.check_head, replace_head(resnet18, 4, hidden_units=(32,)), 4)


def test_check_unfrozen_last_blocks(capsys, resnet18):
    replace_head(resnet18, 4)
    freeze_backbone(resnet18)
    with fails("Block 4 of 5 is still frozen, but the last 2 blocks should train"):
        checks.check_unfrozen_last_blocks(resnet18, 2)
    unfreeze(resnet18)
    with fails("Block 1 of 5 trains too.*only the last 2 should"):
        checks.check_unfrozen_last_blocks(resnet18, 2)
    unfreeze(resnet18, last_blocks=2)
    resnet18.layer3[0].bn1.weight.requires_grad = False
    with fails("Block 4 of 5 is only partly unfrozen"):
        checks.check_unfrozen_last_blocks(resnet18, 2)
    unfreeze(resnet18, last_blocks=2)
    for parameter in resnet18.fc.parameters():
        parameter.requires_grad = False
    with fails("head is frozen: it must always train"):
        checks.check_unfrozen_last_blocks(resnet18, 2)
    unfreeze(resnet18, last_blocks=2)
    assert "last 2 of 5 body blocks" in passes(capsys, checks.check_unfrozen_last_blocks, resnet18, 2)


def test_check_optimizer_groups(capsys, resnet18):
    replace_head(resnet18, 4)
    freeze_backbone(resnet18)
    with fails("holds 60 frozen parameter tensors.*requires_grad"):
        checks.check_optimizer_groups(torch.optim.SGD(resnet18.parameters(), lr=0.1), resnet18)
    assert "head" in passes(capsys, checks.check_optimizer_groups,
                            torch.optim.SGD(parameter_groups(resnet18, 1e-3, 1e-4)), resnet18)

    unfreeze(resnet18, last_blocks=1)
    head_only = torch.optim.SGD(resnet18.fc.parameters(), lr=1e-3)
    with fails("trainable body parameter tensors are not in the optimizer"):
        checks.check_optimizer_groups(head_only, resnet18)
    body_only = torch.optim.SGD(resnet18.layer4.parameters(), lr=1e-3)
    with fails("2 of the head's parameter tensors are not in the optimizer"):
        checks.check_optimizer_groups(body_only, resnet18)
    same_lr = torch.optim.SGD(parameter_groups(resnet18, head_lr=1e-3, body_lr=1e-3))
    with fails("body learns at lr=0.001, not less than the head's lr=0.001"):
        checks.check_optimizer_groups(same_lr, resnet18)
    good = torch.optim.AdamW(parameter_groups(resnet18, head_lr=1e-3, body_lr=1e-4))
    assert "body at lr=0.0001" in passes(capsys, checks.check_optimizer_groups, good, resnet18)


# ---------------------------------------------------------------------------------------------- data


class _Sample(NamedTuple):
    path: Path
    label: int
    group: str


def _samples(groups: list[str]) -> list[_Sample]:
    return [_Sample(Path(f"{group}_{frame}.png"), 0, group) for group in groups for frame in range(3)]


def test_check_split_has_no_leak(capsys):
    good = SimpleNamespace(train=_samples(["stop/00001", "stop/00002"]), val=_samples(["stop/00003"]),
                           test=_samples(["stop/00004"]))
    assert "2 train, 1 val, 1 test groups" in passes(capsys, checks.check_split_has_no_leak, good)
    leaky = SimpleNamespace(train=_samples(["stop/00001", "stop/00012"]), val=_samples(["stop/00003"]),
                            test=_samples(["stop/00012"]))
    with fails("1 group\\(s\\) appear in both train and test, e.g. 'stop/00012'"):
        checks.check_split_has_no_leak(leaky)
    empty = SimpleNamespace(train=_samples(["a"]), val=[], test=_samples(["b"]))
    with fails("The val part is empty"):
        checks.check_split_has_no_leak(empty)


def test_check_unknown_layout(capsys):
    known = ["priority_road", "give_way", "stop", "no_entry"]
    layout = [*known, "unknown"]
    assert "4 known classes plus 'unknown'" in passes(capsys, checks.check_unknown_layout, layout, known)
    with fails("There is no 'unknown' class"):
        checks.check_unknown_layout(known, known)
    with fails(r"known class\(es\) \['stop'\] are missing"):
        checks.check_unknown_layout(["priority_road", "give_way", "no_entry", "unknown"], known)
    with fails(r"\['speed_limit_30'\] should have been folded into 'unknown'"):
        checks.check_unknown_layout([*known, "speed_limit_30", "unknown"], known)


# ---------------------------------------------------------------------------------------------- lesson 4


def test_check_probabilities(capsys):
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    assert "2 rows" in passes(capsys, checks.check_probabilities, torch.softmax(logits, dim=1))
    with fails("look like logits.*softmax"):
        checks.check_probabilities(logits)
    with fails("columns sum to 1 instead of the rows.*dim=1"):
        checks.check_probabilities(torch.softmax(logits, dim=0))
    with fails("Rows sum to .*not a sigmoid"):
        checks.check_probabilities(torch.sigmoid(logits).numpy())
    with fails("one row per image"):
        checks.check_probabilities(torch.tensor([0.2, 0.8]))


def test_check_threshold(capsys):
    scores = np.linspace(0.3, 1.0, 200)
    right = float(np.quantile(scores, 0.05))
    assert "keeps 95.0%" in passes(capsys, checks.check_threshold, right, scores, 0.95)
    with fails(r"keeps 5.0% .*should keep 95.0%.*\(1 - keep\) quantile"):
        checks.check_threshold(float(np.quantile(scores, 0.95)), scores, 0.95)
    with fails("outside \\[0, 1\\]"):
        checks.check_threshold(95.0, scores, 0.95)
    with fails("keeps 100.0%"):
        checks.check_threshold(0.0, scores, 0.95)
    with fails("NaN"):
        checks.check_threshold(float("nan"), torch.tensor(scores), 0.95)
