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


def test_exercise_error_shows_its_message_without_a_traceback():
    with pytest.raises(ExerciseError) as caught:
        checks.check_padding(lambda kernel_size, dilation=1: 0)
    shown = caught.value._render_traceback_()  # what IPython/Jupyter shows instead of a traceback
    assert shown == str(caught.value).splitlines() and shown[0].startswith("❌ For kernel_size=3")
    assert not any("checks.py" in line or "Traceback" in line for line in shown)


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
    no_padding = nn.Sequential(nn.Conv2d(3, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
    with fails(r"comes out as \(2, 16, 7, 7\), expected \(2, 16, 8, 8\).*padding"):
        checks.check_conv_block(no_padding, 3, 16)
    wrong_norm = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    with fails(r"fails on a batch of shape .*block\[1\] \(nn.BatchNorm2d\) receives 16 channels but was built for 8"):
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
    with fails("Blocks 1 to 3 of 5 still train.*only the last 2 should.*never frozen"):
        checks.check_unfrozen_last_blocks(resnet18, 2)
    unfreeze(resnet18, last_blocks=2)
    for parameter in resnet18.layer1.parameters():
        parameter.requires_grad = True
    with fails("Block 2 of 5 trains too.*only the last 2 should: set requires_grad = False on its parameters"):
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
    same_lr = torch.optim.SGD(parameter_groups(resnet18, head_lr=1e-3, body_lr=1e-3))  # a measured choice too
    assert "body at lr=0.001" in passes(capsys, checks.check_optimizer_groups, same_lr, resnet18)
    good = torch.optim.AdamW(parameter_groups(resnet18, head_lr=1e-3, body_lr=1e-4))
    assert "body at lr=0.0001" in passes(capsys, checks.check_optimizer_groups, good, resnet18)
    # lesson 5 asks for given rates: one shared rate then fails, and names both rates
    with fails(r"asks for the head at lr=0.001 and the body at lr=0.0001.*body at 0.001\."):
        checks.check_optimizer_groups(same_lr, resnet18, learning_rates=(1e-3, 1e-4))
    assert "body at lr=0.0001" in passes(capsys, checks.check_optimizer_groups, good, resnet18,
                                         learning_rates=(1e-3, 1e-4))


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
    with fails(r"keeps 5.0% .*should keep 95.0%.*keeps the share that should be rejected"):
        checks.check_threshold(float(np.quantile(scores, 0.95)), scores, 0.95)
    with fails("outside \\[0, 1\\]"):
        checks.check_threshold(95.0, scores, 0.95)
    with fails("keeps 100.0%"):
        checks.check_threshold(0.0, scores, 0.95)
    with fails("NaN"):
        checks.check_threshold(float("nan"), torch.tensor(scores), 0.95)


# ---------------------------------------------------------------------------------------------- lesson 2


def test_check_all_frozen(capsys):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    with fails("26 of the model's 26 parameters are still trainable"):
        checks.check_all_frozen(model)
    model.requires_grad = False  # a common slip: sets an attribute, freezes nothing
    with fails("only sets a new attribute"):
        checks.check_all_frozen(model)
    del model.requires_grad
    for parameter in model[0].parameters():
        parameter.requires_grad = False
    with fails("10 of the model's 26 parameters are still trainable"):
        checks.check_all_frozen(model)
    model.requires_grad_(False)
    assert "All 26 parameters are frozen" in passes(capsys, checks.check_all_frozen, model)


def test_check_features(capsys):
    class Sample(NamedTuple):
        path: Path
        label: int
        group: str

    samples = [Sample(Path(f"{index}.png"), index % 3, str(index)) for index in range(6)]
    labels = torch.tensor([sample.label for sample in samples])
    features = torch.randn(6, 8)
    assert "6 images, 8 features each" in passes(capsys, checks.check_features, features, labels, samples, 8)
    with fails("Each image has 3 values.*feature_extractor"):
        checks.check_features(torch.randn(6, 3), labels, samples, 8)
    with fails("Expected a 2-D tensor"):
        checks.check_features(torch.randn(6, 8, 1, 1), labels, samples, 8)
    with fails("5 feature rows and 5 labels for 6 images"):
        checks.check_features(features[:5], labels[:5], samples, 8)
    with fails("shuffle=False"):
        checks.check_features(features, labels.flip(0), samples, 8)
    broken = features.clone()
    broken[0, 0] = float("nan")
    with fails("NaN"):
        checks.check_features(broken, labels, samples, 8)


def test_check_training_step(capsys):
    def right(model, images, labels, optimizer, loss_fn):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    assert "clears old gradients" in passes(capsys, checks.check_training_step, right)

    def no_zero_grad(model, images, labels, optimizer, loss_fn):
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    def zero_grad_too_late(model, images, labels, optimizer, loss_fn):
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        return loss.item()

    def no_step(model, images, labels, optimizer, loss_fn):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        return loss.item()

    def no_backward(model, images, labels, optimizer, loss_fn):
        loss = loss_fn(model(images), labels)
        optimizer.step()
        return loss.item()

    def two_steps(model, images, labels, optimizer, loss_fn):
        for _ in range(2):
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
        return loss.item()

    def no_return(model, images, labels, optimizer, loss_fn):
        right(model, images, labels, optimizer, loss_fn)

    def returns_accuracy(model, images, labels, optimizer, loss_fn):
        right(model, images, labels, optimizer, loss_fn)
        return 0.5

    wrong_answers = [
        (no_zero_grad, "previous batch.*zero_grad"),
        (zero_grad_too_late, "gradients are empty.*zero_grad\\(\\) between backward and step"),
        (no_step, "did not change: call optimizer.step"),
        (no_backward, "did not change.*loss.backward"),
        (two_steps, "not by the gradient of this batch"),
        (no_return, "returns None"),
        (returns_accuracy, "returns 0.5.*loss.item"),
    ]
    for wrong_answer, message in wrong_answers:
        with fails(message):
            checks.check_training_step(wrong_answer)


# ----------------------------------------------------------------------------------------------------------
# Lesson 4: held-out sign types
# ----------------------------------------------------------------------------------------------------------


def _held_out_source():
    """A split of three sign types (stop known; road_work and keep_right others), one track per part."""
    classes = ["stop", "road_work", "keep_right"]
    parts = {name: [_Sample(Path(f"{sign}/{name}_{frame}.png"), label, f"{sign}/{name}")
                    for label, sign in enumerate(classes) for frame in range(2)]
             for name in ("train", "val", "test")}
    return SimpleNamespace(classes=classes, **parts)


def _held_out_layout(source, held_out=("keep_right",), drop_from=("train", "val")):
    """The right answer: held-out types dropped from ``drop_from``, others folded into "unknown"."""
    classes = ["stop", "unknown"]
    parts = {}
    for name in ("train", "val", "test"):
        samples = [s for s in getattr(source, name)
                   if not (name in drop_from and source.classes[s.label] in held_out)]
        parts[name] = [_Sample(s.path, 0 if source.classes[s.label] == "stop" else 1, s.group) for s in samples]
    return SimpleNamespace(classes=classes, **parts)


def test_check_held_out_types(capsys):
    source = _held_out_source()
    assert "only in test (2 images)" in passes(capsys, checks.check_held_out_types,
                                                  _held_out_layout(source), source, ["keep_right"])
    with fails("2 image.*held-out sign type.*keep_right.*are in train"):
        checks.check_held_out_types(_held_out_layout(source, drop_from=("val",)), source, ["keep_right"])
    with fails("test part lost 2 image.*keep_right.*held-out types included"):
        checks.check_held_out_types(_held_out_layout(source, drop_from=("train", "val", "test")), source,
                                    ["keep_right"])
    with fails("train part lost 2 image.*road_work.*not held out"):
        checks.check_held_out_types(_held_out_layout(source, held_out=("keep_right", "road_work")), source,
                                    ["keep_right"])
    wrong = _held_out_layout(source)
    wrong.test[0] = wrong.test[0]._replace(label=1)
    with fails("'stop' image in test has label 1 \\('unknown'\\), expected 0"):
        checks.check_held_out_types(wrong, source, ["keep_right"])
    with fails("held-out sign type.*'yield'.*no test images"):
        checks.check_held_out_types(_held_out_layout(source), source, ["keep_right", "yield"])


# ---------------------------------------------------------------------------------------------- gaps found
# Typical wrong answers that the checks once passed (or right answers they rejected).


def test_check_training_step_accepts_zero_grad_after_step(capsys):
    def zero_grad_last(model, images, labels, optimizer, loss_fn):
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()  # ready for the next batch: as correct as clearing first
        return loss.item()

    assert "clears old gradients" in passes(capsys, checks.check_training_step, zero_grad_last)


def test_check_training_step_rejects_the_loss_tensor():
    def returns_tensor(model, images, labels, optimizer, loss_fn):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    with fails("returns the loss tensor: return loss.item\\(\\)"):
        checks.check_training_step(returns_tensor)


class SoftmaxCNN(ScratchCNN):
    def forward(self, images):
        return torch.softmax(super().forward(images), dim=1)


def test_check_cnn_rejects_softmax_inside_forward(capsys):
    with fails("forward returns probabilities.*CrossEntropyLoss applies the softmax itself"):
        checks.check_cnn(SoftmaxCNN(num_classes=4, channels=(8,)), 4, 32)
    assert "4 class scores" in passes(capsys, checks.check_cnn, ScratchCNN(num_classes=4, channels=(8,)), 4, 32)


class RenamedCNN(nn.Module):
    """Works, but names its layers differently from the exercise: later cells use model.features etc."""

    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(conv_block(3, 8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(8, num_classes)

    def forward(self, images):
        return self.head(self.dropout(self.flatten(self.pool(self.body(images)))))


def test_check_cnn_rejects_wrong_attribute_names():
    with fails("no layer named self.features, self.classifier; later cells use these names"):
        checks.check_cnn(RenamedCNN(4), 4, 32)


def test_check_head_says_where_efficientnets_head_is():
    model = torchvision.models.efficientnet_b0(weights=None)
    model.fc = nn.Linear(1280, 4)  # the ResNet habit: EfficientNet never calls model.fc
    with fails("You set model.fc, but this EfficientNet never uses it: its forward ends in model.classifier.1"):
        checks.check_head(model, 4)


def test_check_prediction_function_rejects_a_missing_eval(capsys, tmp_path):
    from PIL import Image

    from course_utils.transforms import eval_transform

    path = tmp_path / "sign.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(path)
    transform = eval_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=32)
    classes = ["a", "b", "c", "d"]
    torch.manual_seed(0)
    model = ScratchCNN(num_classes=4, channels=(8,))

    def without_eval(model, path, transform, classes):
        import pandas as pd

        from course_utils.image_files import load_rgb
        with torch.no_grad():
            logits = model(transform(load_rgb(path)).unsqueeze(0))
        values = torch.softmax(logits, dim=1)[0].numpy()
        return pd.Series(values, index=classes).sort_values(ascending=False)

    def with_eval(model, path, transform, classes):
        model.eval()
        return without_eval(model, path, transform, classes)

    with fails("BatchNorm statistics.*moved.*model.eval\\(\\)"):
        checks.check_prediction_function(without_eval, model, path, transform, classes)
    assert "evaluation.predict_image" in passes(
        capsys, checks.check_prediction_function, with_eval, model, path, transform, classes)


def test_check_class_weights(capsys):
    counts = torch.tensor([100.0, 100.0, 50.0, 50.0, 700.0])
    classes = ["a", "b", "c", "d", "unknown"]
    with fails("largest class \\('unknown'\\) gets at least the weight"):
        checks.check_class_weights(counts / counts.sum(), counts, classes)
    with fails("ratios between the weights are right, and the loss would be the same.*0.005 times"):
        checks.check_class_weights(1 / counts, counts, classes)
    with fails("one weight per class \\(5\\)"):
        checks.check_class_weights(torch.ones(4), counts, classes)
    right = counts.sum() / (len(counts) * counts)
    assert "'unknown', the largest class" in passes(capsys, checks.check_class_weights, right, counts, classes)


def test_check_train_siblings(capsys):
    from course_utils.splits import test_images_with_train_sibling

    def counts_tracks(split):
        return len({s.group for s in split.test} & {s.group for s in split.train})

    def counts_val_too(split):
        seen = {s.group for s in split.train + split.val}
        return sum(s.group in seen for s in split.test)

    with fails("counts tracks, not images"):
        checks.check_train_siblings(counts_tracks)
    with fails("only in val"):
        checks.check_train_siblings(counts_val_too)
    assert "counts the test images" in passes(capsys, checks.check_train_siblings, test_images_with_train_sibling)
