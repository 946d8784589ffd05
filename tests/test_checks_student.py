"""What a student meets in the browser (issue 21): every exercise answered wrong first, then right.

Each test is a case the earlier checks got wrong: a right answer refused after a wrong try, a traceback
through library code instead of one ❌ line, advice that was wrong or misleading, or a wrong answer accepted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
from torch import nn
from traitlets.config import Config

from course_utils import checks, environment, hints, models
from course_utils.checks import ExerciseError
from course_utils.image_files import load_rgb
from course_utils.models import ScratchCNN, conv_block, freeze_backbone, replace_head
from course_utils.samples import Sample


def refused(pattern: str):
    """Expect one ExerciseError line matching ``pattern`` that shows no traceback."""
    return pytest.raises(ExerciseError, match=pattern)


def one_line(caught: pytest.ExceptionInfo) -> str:
    """The ❌ line a notebook shows for the error in ``caught``; fails unless it is a single line."""
    shown = caught.value._render_traceback_()
    assert len(shown) == 1 and shown[0].startswith("❌ ")
    assert "Traceback" not in shown[0] and "checks.py" not in shown[0]
    return shown[0]


# ------------------------------------------------------------------------------ 2. stale state (L2 Ex2)


class TinyNet(nn.Module):
    """A model outside the backbone table whose head is ``classifier``, as EfficientNet's is."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(8, 1000)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def test_check_head_accepts_the_right_head_after_a_wrong_try(capsys):
    model = torchvision.models.resnet18()
    model.requires_grad_(False)  # Exercise 1
    model.classifier = nn.Linear(512, 4)  # wrong try: the EfficientNet name on a ResNet
    with refused("You set model.classifier, but this ResNet never uses it.*this check removes the unused"):
        checks.check_head(model, 4)
    head_name, imagenet_head = models.find_head(model)
    setattr(model, head_name, nn.Linear(imagenet_head.in_features, 4))  # the right answer, same kernel
    checks.check_head(model, 4)
    printed = capsys.readouterr().out
    assert printed.startswith("✅ New head at model.fc") and "removed model.classifier" in printed
    assert not hasattr(model, "classifier")
    checks.check_frozen(model)  # the stale layer's trainable weights are gone with it
    assert "only the head's 2,052" in capsys.readouterr().out


def test_check_head_removes_a_stale_fc_where_the_head_is_classifier(capsys):
    model = TinyNet().requires_grad_(False)
    model.fc = nn.Linear(8, 4)  # the ResNet habit on an EfficientNet-like model
    with refused("You set model.fc, but this TinyNet never uses it: its forward ends in model.classifier"):
        checks.check_head(model, 4)
    model.classifier = nn.Linear(8, 4)
    checks.check_head(model, 4)
    assert "New head at model.classifier" in capsys.readouterr().out and not hasattr(model, "fc")
    checks.check_frozen(model)


# ------------------------------------------------------------------------------ 3. no tracebacks


def test_a_list_instead_of_sequential_is_named():
    layers = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)]
    with refused(r"returns a Python list of layers: wrap them in nn.Sequential") as caught:
        checks.check_conv_block(layers, 3, 16)
    one_line(caught)
    with refused("nn.ModuleList.*use nn.Sequential"):
        checks.check_conv_block(nn.ModuleList(layers), 3, 16)
    with refused("returns None: did you forget `return`"):
        checks.check_conv_block(None, 3, 16)


class WrongClassifier(ScratchCNN):
    """The classifier built for 8 features while the last block makes 16."""

    def __init__(self) -> None:
        super().__init__(num_classes=4, channels=(8, 16))
        self.classifier = nn.Linear(8, 4)


class WrongChain(ScratchCNN):
    """The second block built for 16 input channels while the first makes 8."""

    def __init__(self) -> None:
        super().__init__(num_classes=4, channels=(8, 16))
        self.features = nn.Sequential(conv_block(3, 8), conv_block(16, 16))


def test_check_cnn_explains_a_shape_mismatch_instead_of_mat1_and_mat2():
    with refused(r"model.classifier \(nn.Linear\) receives 16 features per image but was built with "
                 r"in_features=8.*channels\[-1\]") as caught:
        checks.check_cnn(WrongClassifier(), 4, 32)
    assert "mat1" not in one_line(caught)
    with refused(r"model.features\[1\]\[0\] \(nn.Conv2d\) receives 8 channels but was built with in_channels=16"
                 r".*out_channels of the block before"):
        checks.check_cnn(WrongChain(), 4, 32)


def test_an_error_in_the_students_function_is_one_line_with_their_line(tmp_path):
    from PIL import Image

    from course_utils.transforms import eval_transform

    path = tmp_path / "sign.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(path)
    transform = eval_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=32)

    def one_dimensional_logits(model, path, transform, classes):
        model.eval()
        with torch.no_grad():
            logits = model(transform(load_rgb(path)).unsqueeze(0))[0]  # (classes,)
        probabilities = torch.softmax(logits, dim=1)
        return pd.Series(probabilities.numpy(), index=classes)

    with refused(r"Your function raised IndexError \(\"Dimension out of range.*in line \d+ of your code "
                 r"\(`probabilities = torch.softmax\(logits, dim=1\)`\).*dim=-1") as caught:
        checks.check_prediction_function(one_dimensional_logits, ScratchCNN(4, channels=(8,)), path, transform,
                                         ["a", "b", "c", "d"])
    one_line(caught)

    def broken_padding(kernel_size, dilation=1):
        return kernel_size.halve()

    with refused(r"raised AttributeError.*in line \d+ of your code \(`return kernel_size.halve\(\)`\)"):
        checks.check_padding(broken_padding)


def test_an_unsolved_stub_goes_through_unchanged():
    def same_padding(kernel_size, dilation=1):
        raise NotImplementedError("Exercise 2: Same padding: not done yet.")

    with pytest.raises(NotImplementedError, match="^Exercise 2: Same padding"):
        checks.check_padding(same_padding)


def test_wrong_types_are_named_not_crashed_on():
    model = replace_head(torchvision.models.resnet18(), 4)
    with refused("optimizer is a list of parameter groups, not an optimizer"):
        checks.check_optimizer_groups(models.parameter_groups(model, 1e-3, 1e-4), model)
    with refused("optimizer is a generator, not a PyTorch optimizer"):
        checks.check_optimizer_groups(model.parameters(), model)
    with refused("model is None.*setattr"):
        checks.check_head(None, 4)  # model = setattr(model, head_name, ...)
    copy_of = replace_head(torchvision.models.resnet18(), 4)
    with refused("parameter tensors that are not this model's"):
        checks.check_optimizer_groups(torch.optim.AdamW(copy_of.parameters()), model)
    with refused("The threshold is a \\(3,\\); it must be one number"):
        checks.check_threshold(torch.tensor([0.1, 0.2, 0.3]), torch.rand(10), 0.9)


def test_the_head_in_both_optimizer_groups_is_one_line_in_ipython(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    try:
        assert environment.show_exercise_stubs_briefly()  # start_lesson's handler, installed first
        assert hints._show_library_errors_briefly(shell)
        shell.user_ns["LESSON"] = "03_fine_tuning"
        capsys.readouterr()
        result = shell.run_cell("import torch\nhead = torch.nn.Linear(2, 2)\nbody = torch.nn.Linear(2, 2)\n"
                                "torch.optim.AdamW([{'params': head.parameters(), 'lr': 1e-3},\n"
                                "                   {'params': [*body.parameters(), *head.parameters()]}])")
        shown = capsys.readouterr().out.strip()
        assert isinstance(result.error_in_exec, ValueError)  # the cell still fails: Run All stops there
        assert shown.startswith("❌ The same parameters are in two of the optimizer's groups") and "\n" not in shown
        assert shown.endswith("(Stuck? checks.hint(2) gives a hint.)") and "Traceback" not in shown
        result = shell.run_cell("raise NotImplementedError('Exercise 1: Unfreeze: not done yet.')")
        assert capsys.readouterr().out.startswith("✏️ Exercise 1: Unfreeze")  # the stubs' handler still works
        result = shell.run_cell("int('x')")
        assert "invalid literal" in capsys.readouterr().out  # any other ValueError: the usual traceback
    finally:
        InteractiveShell.clear_instance()


# ------------------------------------------------------------------------------ 4. advice that is true


def test_prediction_advice_names_the_class_dimension(tmp_path):
    from PIL import Image

    from course_utils.transforms import eval_transform

    path = tmp_path / "sign.png"
    Image.new("RGB", (40, 40), (20, 30, 200)).save(path)
    transform = eval_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=32)

    def logits_only(model, path, transform, classes):
        model.eval()
        with torch.no_grad():
            logits = model(transform(load_rgb(path)).unsqueeze(0))[0] * 10
        return pd.Series(logits.numpy(), index=classes).sort_values(ascending=False)

    with refused(r"not probabilities.*softmax over the class dimension \(dim=-1, the last one\)"):
        checks.check_prediction_function(logits_only, ScratchCNN(4, channels=(8,)), path, transform,
                                         ["a", "b", "c", "d"])


def test_passing_the_whole_model_as_the_head_says_so():
    model = freeze_backbone(replace_head(ScratchCNN(3, channels=(4, 8)), 3, hidden_units=(16,), dropout=0.2))
    with refused("This is the whole model.*not its head"):
        checks.check_mlp_head(model, 8, 16, 3)


def test_class_weights_of_another_scale_are_refused_for_a_true_reason():
    counts = torch.tensor([96.0, 96.0, 96.0, 96.0, 960.0])
    balanced = counts.sum() / (len(counts) * counts)
    logits, labels = torch.randn(64, 5, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 5
    # What the message says: with mean reduction the scale cancels, the loss is the same.
    assert torch.allclose(nn.CrossEntropyLoss(weight=1 / counts)(logits, labels),
                          nn.CrossEntropyLoss(weight=balanced)(logits, labels))
    with refused("the loss would be the same.*divides by the summed weights.*balanced data set gets weight 1") \
            as caught:
        checks.check_class_weights(1 / counts, counts, ["a", "b", "c", "d", "unknown"])
    assert "learning rate" not in one_line(caught)
    with refused("class_weights is a list.*float tensor"):
        checks.check_class_weights(balanced.tolist(), counts, ["a", "b", "c", "d", "unknown"])


def test_blocks_that_were_never_frozen_are_not_told_to_stay_frozen():
    model = replace_head(torchvision.models.resnet18(), 4)  # fresh: everything trains
    for block in models.body_blocks(model)[-2:]:
        block.requires_grad_(True)
    with refused("They were never frozen: a loaded or copied model starts with every parameter trainable") \
            as caught:
        checks.check_unfrozen_last_blocks(model, 2)
    assert "leave the earlier blocks frozen" not in one_line(caught)


# ------------------------------------------------------------------------------ 5. wrong answers refused


def test_rare_classes_at_most_instead_of_fewer_than_is_refused():
    classes = ["big", "tiny", "mid"]
    samples = [Sample(Path(f"{i}.png"), label, str(i)) for i, label in enumerate([0] * 12 + [1] * 3 + [2] * 11)]

    def at_most(samples, classes, min_count):
        counts = {name: 0 for name in classes}
        for sample in samples:
            counts[classes[sample.label]] += 1
        return sorted(name for name, count in counts.items() if count <= min_count)

    def fewer_than(samples, classes, min_count):
        counts = {name: 0 for name in classes}
        for sample in samples:
            counts[classes[sample.label]] += 1
        return sorted(name for name, count in counts.items() if count < min_count)

    assert at_most(samples, classes, 10) == fewer_than(samples, classes, 10)  # this data cannot tell them apart
    with refused("also drops a class with exactly 10 images: 'fewer than 10' means < 10"):
        checks.check_rare_classes(at_most, samples, classes, 10)
    checks.check_rare_classes(fewer_than, samples, classes, 10)
    checks.check_rare_classes(["tiny"], samples, classes, 10)  # a list, as today's notebook passes it
    exactly = [*samples, *(Sample(Path(f"x{i}.png"), 1, f"x{i}") for i in range(7))]  # tiny: exactly 10
    with refused(r"also lists \['tiny'\], with exactly 10 images"):
        checks.check_rare_classes(["tiny"], exactly, classes, 10)
    with refused(r"holds class indices \(\[1\]\); give the class names"):
        checks.check_rare_classes([1], samples, classes, 10)


@pytest.mark.parametrize(("block", "reason"), [
    (nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)),
     "has a bias, but the batch norm right after it subtracts each channel's mean.*bias=False"),
    (nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(16), nn.MaxPool2d(2)),
     "applies the ReLU before the batch norm.*convolution, batch norm, ReLU, max-pool"),
    (nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2)),
     "pools by averaging; the exercise asks for max-pooling.*strongest response"),
])
def test_conv_blocks_the_exercise_does_not_ask_for_are_refused(block, reason):
    with refused(reason) as caught:
        checks.check_conv_block(block, 3, 16)
    one_line(caught)


class OrderedByForward(nn.Module):
    """Layers created in one order, run in the exercise's order: the check follows the forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.pool, self.relu = nn.MaxPool2d(2), nn.ReLU()
        self.norm, self.conv = nn.BatchNorm2d(16), nn.Conv2d(3, 16, 3, padding=1, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.norm(self.conv(images))))


def test_the_block_order_is_read_from_the_forward_pass(capsys):
    checks.check_conv_block(OrderedByForward(), 3, 16)
    assert capsys.readouterr().out.startswith("✅")


def test_probabilities_computed_with_gradients_are_refused(capsys):
    head, features = nn.Linear(8, 4), torch.randn(20, 8)
    with refused(r"computed with gradients on \(requires_grad=True\).*torch.no_grad"):
        checks.check_probabilities(torch.softmax(head(features), dim=1))
    with torch.no_grad():
        checks.check_probabilities(torch.softmax(head(features), dim=1))
    assert capsys.readouterr().out.startswith("✅ 20 rows")
