"""Tests of course_utils.transforms: pipelines, denormalisation, dataset and loaders."""

from __future__ import annotations

import platform
from types import SimpleNamespace

import pytest
import torch
from conftest import write_image
from PIL import Image
from torchvision.transforms import v2

from course_utils import transforms
from course_utils.datasets import Sample, scan_image_folder
from course_utils.transforms import (
    ImageDataset,
    default_num_workers,
    denormalize,
    eval_transform,
    make_loader,
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


def test_image_dataset_returns_tensor_and_label(tmp_path):
    path = write_image(tmp_path / "gray.png", mode="L", colour=10)
    dataset = ImageDataset([Sample(path, 3, "gray")], eval_transform(INFO, image_size=8))
    image, label = dataset[0]
    assert len(dataset) == 1 and label == 3 and image.shape == (3, 8, 8)
    raw, _ = ImageDataset([Sample(path, 3, "gray")])[0]
    assert isinstance(raw, Image.Image) and raw.mode == "RGB"


@pytest.mark.parametrize("system", ["Windows", "Darwin"])
def test_no_worker_processes_on_windows_and_macos(monkeypatch, system):
    monkeypatch.setattr(platform, "system", lambda: system)
    assert default_num_workers() == 0


def test_linux_uses_spare_cores_but_at_most_four(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(transforms, "_cpu_count", lambda: 64)
    assert default_num_workers() == 4
    monkeypatch.setattr(transforms, "_cpu_count", lambda: 1)
    assert default_num_workers() == 0


def test_make_loader_yields_normalised_batches(make_image_folder, monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Windows")
    samples, classes = scan_image_folder(make_image_folder({"a": 3, "b": 2}, size=(10, 7)))
    loader = make_loader(samples, eval_transform(INFO, image_size=12), batch_size=4, shuffle=False)
    assert loader.num_workers == 0 and not loader.pin_memory
    batches = list(loader)
    images, labels = batches[0]
    assert images.shape == (4, 3, 12, 12) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1] and batches[1][0].shape == (1, 3, 12, 12)
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < 0  # normalised, not 0..1
    first = [labels.tolist() for _, labels in make_loader(samples, eval_transform(INFO, 12), batch_size=5,
                                                             shuffle=True, seed=3)]
    again = [labels.tolist() for _, labels in make_loader(samples, eval_transform(INFO, 12), batch_size=5,
                                                             shuffle=True, seed=3)]
    assert first == again


def test_make_loader_with_workers(make_image_folder):
    samples, _ = scan_image_folder(make_image_folder({"a": 2, "b": 2}))
    loader = make_loader(samples, eval_transform(INFO, image_size=8), batch_size=2, shuffle=False,
                         num_workers=1)
    assert loader.persistent_workers
    assert sum(len(labels) for _, labels in loader) == 4
