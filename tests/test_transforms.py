"""Tests of course_utils.transforms: pipelines and denormalisation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from course_utils.transforms import (
    denormalize,
    eval_transform,
    train_transform,
)

INFO = SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=24)


def test_eval_transform_resizes_to_a_square_and_normalises_with_the_backbone_numbers():
    image = Image.new("RGB", (30, 12), (255, 0, 128))
    tensor = eval_transform(INFO)(image)  # size taken from info.input_size
    assert tensor.shape == (3, 24, 24) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[:, 5, 5], torch.tensor([1.0, -1.0, 128 / 255 * 2 - 1]), atol=1e-3)
    explicit = eval_transform(image_size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(image)
    assert explicit.shape == (3, 16, 16) and explicit.max() <= 1.0 and explicit.min() >= 0.0
    with pytest.raises(ValueError, match="mean"):
        eval_transform(image_size=16)


def test_train_transform_augments_without_horizontal_flips():
    pipeline = train_transform(INFO, image_size=20)
    steps = [type(step) for step in pipeline.transforms]
    assert v2.RandomHorizontalFlip not in steps and v2.RandomResizedCrop in steps
    assert steps[-1] is v2.Normalize
    image = Image.new("RGB", (32, 32))
    image.paste((255, 255, 255), (0, 0, 16, 32))  # left half white
    torch.manual_seed(0)
    outputs = [pipeline(image) for _ in range(4)]
    assert all(output.shape == (3, 20, 20) for output in outputs)
    assert not torch.equal(outputs[0], outputs[1])  # random: a new variant each time
    left_brighter = [output[:, :, :6].mean() > output[:, :, -6:].mean() for output in outputs]
    assert all(left_brighter)  # never mirrored


def test_denormalize_inverts_normalize():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    images = torch.rand(2, 3, 5, 5)
    normalized = v2.Normalize(mean, std)(images)
    assert torch.allclose(denormalize(normalized, mean, std), images, atol=1e-6)
    assert torch.allclose(denormalize(normalized[0], mean, std), images[0], atol=1e-6)


def test_crop_keeps_the_aspect_ratio_and_cuts_the_edges_where_the_default_squashes_the_whole_image():
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 40, 100))  # a red strip along the left edge
    plain = SimpleNamespace(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    squashed = eval_transform(plain, 64)(image)
    cropped = eval_transform(plain, 64, crop=True)(image)
    assert squashed.shape == cropped.shape == (3, 64, 64)
    assert squashed[0, :, :5].mean() > 0.9  # the whole image: the red edge is in it
    assert cropped[0].max() < 0.05  # the centre square of the 146 x 73 resize: the edge is cut away
