"""Self-check gaps (issue 20): wrong answers the checks passed because they were not given what tells."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from course_utils import checks, evaluation, models, transforms
from course_utils.checks import ExerciseError
from course_utils.image_files import load_rgb
from course_utils.models import ScratchCNN
from course_utils.samples import Sample


def refused(pattern: str):
    return pytest.raises(ExerciseError, match=pattern)


# ------------------------------------------------------------------------------ check_features


@pytest.fixture()
def sign_images(tmp_path) -> list[Sample]:
    """Eight small images with shapes in them, so that a random crop or colour change moves their features."""
    samples = []
    for index in range(8):
        image = Image.new("RGB", (48, 48), (30 * index % 255, 200 - 20 * index, 90))
        draw = ImageDraw.Draw(image)
        draw.ellipse((4 + index, 6, 30 + index, 40), fill=(250, 20 * index, 20))
        draw.rectangle((30, 2 + index, 46, 20 + index), fill=(0, 0, 255))
        path = tmp_path / f"{index}.png"
        image.save(path)
        samples.append(Sample(path, index % 3, str(index)))
    return samples


def features_through(extractor: nn.Module, transform, samples: list[Sample]) -> torch.Tensor:
    with torch.no_grad():
        return extractor.eval()(torch.stack([transform(load_rgb(sample.path)) for sample in samples]))


def test_check_features_refuses_features_through_the_augmenting_transform(capsys, sign_images):
    torch.manual_seed(0)
    extractor = models.feature_extractor(ScratchCNN(3, channels=(8, 16)))
    eval_tf = transforms.eval_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=32)
    train_tf = transforms.train_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=32)
    labels = torch.tensor([sample.label for sample in sign_images])
    right = features_through(extractor, eval_tf, sign_images)
    checks.check_features(right, labels, sign_images, 16, extractor=extractor, transform=eval_tf)
    assert "8 of them recomputed through the eval transform agree" in capsys.readouterr().out
    torch.manual_seed(1)
    augmented = features_through(extractor, train_tf, sign_images)
    checks.check_features(augmented, labels, sign_images, 16)  # shapes and labels alone cannot tell
    with refused(r"Row 0 of the features is not what the frozen backbone gives for image 0 through the eval "
                 r"transform \(they differ by \d+%\)"):
        checks.check_features(augmented, labels, sign_images, 16, extractor=extractor, transform=eval_tf)


def test_check_features_refuses_rows_of_other_images_with_labels_in_order(sign_images):
    """Issue 21, item 1 from the check's side: shuffled rows stored under the right labels."""
    torch.manual_seed(0)
    extractor = models.feature_extractor(ScratchCNN(3, channels=(8, 16)))
    eval_tf = transforms.eval_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=32)
    labels = torch.tensor([sample.label for sample in sign_images])
    rows = features_through(extractor, eval_tf, sign_images)[[7, 1, 2, 3, 4, 5, 6, 0]]
    with refused("Row 0 of the features belongs to image 7, not to image 0, although the labels are in order"):
        checks.check_features(rows, labels, sign_images, 16, extractor=extractor, transform=eval_tf)


# ------------------------------------------------------------------------------ check_threshold


def max_softmax(head: nn.Module, features: torch.Tensor):
    with torch.no_grad():
        return evaluation.max_softmax_scores(torch.softmax(head(features), dim=1))


@pytest.fixture()
def scored():
    """A head and validation/test features; seed 1 makes a test-chosen threshold keep 95.5% of validation."""
    torch.manual_seed(0)
    head = nn.Linear(8, 4)
    generator = torch.Generator().manual_seed(1)
    val_x, test_x = torch.randn(200, 8, generator=generator) * 2, torch.randn(400, 8, generator=generator) * 2
    return head, val_x, test_x


def test_check_threshold_refuses_a_threshold_computed_on_the_test_images(capsys, scored):
    head, val_x, test_x = scored
    msp_val, msp_test = max_softmax(head, val_x), max_softmax(head, test_x)
    on_test = evaluation.threshold_keeping(msp_test, keep=0.95)
    checks.check_threshold(on_test, msp_val, keep=0.95)  # the scores alone cannot tell where it came from
    with refused("is the score of a test image, not of a validation image: it was computed on the test images"):
        checks.check_threshold(on_test, msp_val, keep=0.95, head=head, validation_features=val_x,
                               test_features=test_x)
    capsys.readouterr()
    right = evaluation.threshold_keeping(msp_val, keep=0.95)
    checks.check_threshold(right, msp_val, keep=0.95, head=head, validation_features=val_x, test_features=test_x)
    assert capsys.readouterr().out.startswith("✅ Threshold")


def test_check_threshold_refuses_scores_of_the_test_images(scored):
    head, val_x, test_x = scored
    msp_test = max_softmax(head, test_x)
    with refused("There are 400 scores, but 200 validation images.*never from the test images"):
        checks.check_threshold(evaluation.threshold_keeping(msp_test, 0.95), msp_test, keep=0.95, head=head,
                               validation_features=val_x)


def test_check_threshold_with_the_validation_features_is_exact(scored):
    head, val_x, _ = scored
    msp_val = max_softmax(head, val_x)
    ordered = sorted(msp_val)
    two_images_off = float(ordered[12])  # keeps 188 of 200 where 190 are wanted: inside the loose tolerance
    checks.check_threshold(two_images_off, msp_val, keep=0.95)
    with refused("keeps 94.0% of the known-class images, but should keep 95.0%"):
        checks.check_threshold(two_images_off, msp_val, keep=0.95, head=head, validation_features=val_x)


# ------------------------------------------------------------------------------ check_cnn


class SkipsDropout(ScratchCNN):
    """Has self.dropout, as the exercise asks, but forward never calls it."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(images))))


def test_check_cnn_sees_a_forward_that_skips_dropout(capsys):
    with refused("forward never calls self.dropout: apply it to the pooled, flattened features"):
        checks.check_cnn(SkipsDropout(4, channels=(8,)), 4, 32)
    checks.check_cnn(ScratchCNN(4, channels=(8,)), 4, 32)
    assert capsys.readouterr().out.startswith("✅")


def test_check_features_keeps_working_on_a_path_given_as_text(sign_images, capsys):
    torch.manual_seed(0)
    extractor = models.feature_extractor(ScratchCNN(3, channels=(8, 16)))
    eval_tf = transforms.eval_transform(mean=(0.5,) * 3, std=(0.5,) * 3, image_size=32)
    as_text = [Sample(str(sample.path), sample.label, sample.group) for sample in sign_images]
    labels = torch.tensor([sample.label for sample in as_text])
    checks.check_features(features_through(extractor, eval_tf, sign_images), labels, as_text, 16,
                          extractor=extractor, transform=eval_tf)
    assert Path(as_text[0].path).is_file() and capsys.readouterr().out.startswith("✅")
